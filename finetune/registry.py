"""Writes to the base-model registry, for platform staff: add a model from a path the workers can
read (a worker checks that it loads before it can be enabled), enable, disable, choose the default.

Web and workers share no disk, so the check runs as a Celery task on the queue of the device class
the model will train on, where the path must exist.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import Conflict, InvalidInput, NotFound
from finetune.models import BaseModel
from workers.routing import queue_for_device

logger = logging.getLogger(__name__)

CHECK_TASK = "finetune.check_base_model"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.pt")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def base_model_get_any(*, name: str) -> BaseModel:
    model = BaseModel.objects.filter(name=name).first()
    if model is None:
        raise NotFound(f"No base model named {name!r}.", code="base_model_not_found", field="name")
    return model


def base_model_add(
    *,
    name: str,
    display_name: str,
    source: str,
    kind: str,
    tasks: list[str],
    max_length: int,
    device_class: str,
    description: str = "",
) -> BaseModel:
    """Registers a base model, disabled until a worker on `device_class`'s queue has loaded its
    config and tokenizer from `source` (the check enables it)."""
    if kind not in BaseModel.Kind.values:
        raise InvalidInput(f"kind must be one of {', '.join(BaseModel.Kind.values)}.", field="kind")
    if not source.strip():
        raise InvalidInput("Give the path (or offline Hugging Face id) the workers load.", field="source")
    queue = queue_for_device(device_class)
    try:
        with transaction.atomic():
            model = BaseModel.objects.create(
                name=name.strip(),
                display_name=display_name.strip() or name.strip(),
                source=source.strip(),
                kind=kind,
                tasks=tasks,
                max_length=max_length,
                description=description,
                enabled=False,
                check_status=BaseModel.Check.PENDING,
            )
    except IntegrityError:
        raise Conflict(f"A base model named {name!r} exists already.", field="name") from None
    transaction.on_commit(lambda: _publish_check(name=model.name, queue=queue))
    return model


def base_model_recheck(*, name: str, device_class: str) -> BaseModel:
    model = base_model_get_any(name=name)
    queue = queue_for_device(device_class)
    BaseModel.objects.filter(pk=model.pk).update(check_status=BaseModel.Check.PENDING, check_message="")
    transaction.on_commit(lambda: _publish_check(name=model.name, queue=queue))
    model.refresh_from_db()
    return model


def _publish_check(*, name: str, queue: str) -> None:
    from workers.celery_app import app

    try:
        app.send_task(CHECK_TASK, args=[name], queue=queue)
    except Exception:
        # The model stays "checking"; the staff page offers "Check again".
        logger.exception("could not publish the load check of base model %s to %s", name, queue)


def load_problem(*, source: str, kind: str) -> str | None:
    """Why `source` does not load as a `kind` model here (config, tokenizer, weights), or None.
    Offline: nothing is downloaded."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except Exception as exc:
        return f"The model config does not load from {source!r}: {exc}"
    try:
        AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:
        return f"The tokenizer does not load from {source!r}: {exc}"
    folder = Path(source)
    if folder.is_dir() and not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        return f"{source!r} has a config and a tokenizer but no weights (*.safetensors or *.bin)."
    architectures = getattr(config, "architectures", None) or []
    causal = any(a.endswith(CAUSAL_SUFFIXES) for a in architectures)
    if kind == BaseModel.Kind.CAUSAL_LM and architectures and not causal:
        return f"{source!r} is a {', '.join(architectures)}, not a causal language model."
    if kind == BaseModel.Kind.ENCODER and causal:
        return f"{source!r} is a causal language model ({', '.join(architectures)}), not an encoder."
    return None


def base_model_check(*, name: str) -> BaseModel:
    """The check task's body: load the config and tokenizer on this worker and record the outcome;
    a model that loads is enabled. Idempotent (a repeated message checks again)."""
    model = base_model_get_any(name=name)
    problem = load_problem(source=os.path.expanduser(model.source), kind=model.kind)
    updates = {
        "check_status": BaseModel.Check.FAILED if problem else BaseModel.Check.OK,
        "check_message": problem or "",
        "checked_at": timezone.now(),
    }
    if problem is None:
        updates["enabled"] = True
    BaseModel.objects.filter(pk=model.pk).update(**updates)
    model.refresh_from_db()
    return model


def base_model_set_enabled(*, name: str, enabled: bool) -> BaseModel:
    model = base_model_get_any(name=name)
    if enabled and model.check_status in (BaseModel.Check.PENDING, BaseModel.Check.FAILED):
        raise Conflict(
            f"{name} cannot be enabled: its load check has not passed ({model.get_check_status_display()}).",
            field="name",
        )
    if not enabled and model.is_default:
        raise Conflict(f"{name} is the default base model: choose another default first.", field="name")
    BaseModel.objects.filter(pk=model.pk).update(enabled=enabled)
    model.refresh_from_db()
    return model


@transaction.atomic
def base_model_make_default(*, name: str) -> BaseModel:
    model = base_model_get_any(name=name)
    if not model.enabled:
        raise Conflict(f"{name} is disabled: enable it before making it the default.", field="name")
    # One default at a time (a partial unique constraint): clear the old one first.
    BaseModel.objects.filter(is_default=True).exclude(pk=model.pk).update(is_default=False)
    BaseModel.objects.filter(pk=model.pk).update(is_default=True)
    model.refresh_from_db()
    return model
