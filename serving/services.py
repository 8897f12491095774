"""Writes for serving: endpoints, publishing (with the "not worse than live" gate), rollback, canary,
unpublish, and the deploy / int8-check work the Celery tasks run. Keyword-only, atomic."""

from __future__ import annotations

import json
import logging
import re

from django.db import transaction
from django.utils.translation import gettext

from common.errors import Conflict, InvalidInput, NotFound
from serving.models import Endpoint, EndpointEvent, Int8Check

logger = logging.getLogger(__name__)

DEPLOY_TASK = "serving.deploy_endpoint"
INT8_TASK = "serving.measure_int8"
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SERVE_MODES = ("adapter", "merged")
QUANTIZE = ("none", "int8")
TRUNCATION = ("truncate", "refuse")
# Higher is better for these; a version's figure is the first of them its final evaluation has.
GATE_METRICS = ("accuracy", "micro_f1", "macro_f1", "f1")


def _send(name: str, *args) -> None:
    from workers.celery_app import app

    def send():
        try:
            app.send_task(name, args=list(args), queue="default")
        except Exception:
            logger.exception("could not publish %s%r", name, args)

    transaction.on_commit(send)


def _event(endpoint: Endpoint, *, kind: str, actor=None, from_version=None, to_version=None, message=""):
    return EndpointEvent.objects.create(
        endpoint=endpoint,
        team_id=endpoint.team_id,
        slug=endpoint.slug,
        kind=kind,
        actor=actor,
        from_version=from_version,
        to_version=to_version,
        message=message,
    )


def clean_options(options: dict | None, *, base: dict | None = None) -> dict:
    out = dict(base or {"serve": "adapter", "quantize": "none", "truncation": "truncate"})
    if options is None:
        return out
    if not isinstance(options, dict):
        raise InvalidInput("options must be an object.", field="options")
    choices = {"serve": SERVE_MODES, "quantize": QUANTIZE, "truncation": TRUNCATION}
    for key, value in options.items():
        if key in choices:
            if value not in choices[key]:
                raise InvalidInput(
                    f"options.{key} must be one of {', '.join(choices[key])}; got {value!r}.",
                    field=f"options.{key}",
                )
            out[key] = value
        elif key == "max_batch_size":
            if value is not None and (not isinstance(value, int) or not 1 <= value <= 256):
                raise InvalidInput("options.max_batch_size must be 1 to 256.", field="options.max_batch_size")
            out[key] = value
        else:
            raise InvalidInput(f"Unknown option {key!r}.", field=f"options.{key}")
    return out


def _version_of_team(*, team, model_version_id: str):
    from finetune.models import ModelVersion

    version = ModelVersion.objects.filter(team=team, pk=model_version_id).first()
    if version is None:
        version = ModelVersion.objects.filter(team=team, name=model_version_id).first()
    if version is None:
        raise NotFound(
            gettext("No model version %(id)s in this team.") % {"id": repr(model_version_id)},
            code="model_version_not_found",
            field="model_version",
        )
    return version


def gate_metric(version) -> tuple[str, float] | None:
    final = (version.metrics or {}).get("final") or {}
    for name in GATE_METRICS:
        value = final.get(name)
        if isinstance(value, (int, float)):
            return name, float(value)
    return None


INT8_START = "POST /api/v1/int8-checks"


def int8_check_of(*, team, version) -> Int8Check | None:
    return Int8Check.objects.filter(team=team, model_version=version).first()


def int8_gate(*, team, version, options: dict, force: bool) -> None:
    """Serving a version with int8 needs its accuracy change measured first (the user saw it and
    confirmed): without a finished Int8Check it is a 409 naming the check and how to start it.
    `force` skips it, as it skips the "not worse than live" gate."""
    if options.get("quantize") != "int8" or force:
        return
    check = int8_check_of(team=team, version=version)
    if check is not None and check.status == Int8Check.Status.DONE:
        return
    details = {
        "model_version": version.id,
        "check": None
        if check is None
        else {"id": check.id, "status": check.status, "message": check.message},
        "start": {"method": "POST", "path": "/api/v1/int8-checks", "body": {"model_version": version.id}},
    }
    if check is None:
        why = f'start one with {INT8_START} {{"model_version": "{version.id}"}}'
    elif check.status == Int8Check.Status.PENDING:
        why = f"its check {check.id} is still measuring; publish again once it is done"
    else:
        why = f"its check {check.id} failed ({check.message}); start it again with {INT8_START}"
    raise Conflict(
        f"{version.name} has no finished int8 accuracy check: {why}. "
        "Publish with force to serve it with int8 without one.",
        code="int8_check_required",
        field="options.quantize",
        details=details,
    )


@transaction.atomic
def endpoint_create(
    *, team, user, slug: str, model_version_id: str, options: dict | None = None, force: bool = False
) -> Endpoint:
    slug = (slug or "").strip().lower()
    if not SLUG_RE.match(slug):
        raise InvalidInput(
            gettext(
                "slug: 1 to 64 lowercase letters, digits or hyphens, not starting or ending with a hyphen."
            ),
            field="slug",
        )
    if Endpoint.objects.filter(team=team, slug=slug).exists():
        raise Conflict(
            gettext("The team already has an endpoint named %(slug)s.") % {"slug": repr(slug)},
            code="slug_taken",
            field="slug",
        )
    version = _version_of_team(team=team, model_version_id=model_version_id)
    options = clean_options(options)
    int8_gate(team=team, version=version, options=options, force=force)
    endpoint = Endpoint.objects.create(
        team=team,
        slug=slug,
        pending_version=version,
        options=options,
        status=Endpoint.Status.DEPLOYING,
        status_message=f"Deploying {version.name}.",
        created_by=user,
    )
    _event(endpoint, kind=EndpointEvent.Kind.PUBLISHED, actor=user, to_version=version)
    _send(DEPLOY_TASK, endpoint.id, version.id)
    return endpoint


@transaction.atomic
def endpoint_publish(
    *, endpoint: Endpoint, user, model_version_id: str, force: bool = False, options: dict | None = None
) -> Endpoint:
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    version = _version_of_team(team=endpoint.team, model_version_id=model_version_id)
    new_options = clean_options(options, base=endpoint.options)
    int8_gate(team=endpoint.team, version=version, options=new_options, force=force)
    live = endpoint.model_version
    if live is not None and not force:
        new_m, live_m = gate_metric(version), gate_metric(live)
        if new_m and live_m and new_m[0] == live_m[0] and new_m[1] < live_m[1]:
            raise Conflict(
                gettext(
                    "%(model)s has validation %(metric)s %(value).4f, below the live %(live)s's %(live_value).4f; "
                    "publish with force to replace it anyway."
                )
                % {
                    "model": version.name,
                    "metric": new_m[0],
                    "value": new_m[1],
                    "live": live.name,
                    "live_value": live_m[1],
                },
                code="worse_than_live",
                field="model_version",
                details={"metric": new_m[0], "candidate": new_m[1], "live": live_m[1]},
            )
    endpoint.pending_version = version
    endpoint.options = new_options
    endpoint.status = Endpoint.Status.DEPLOYING
    endpoint.status_message = f"Deploying {version.name}."
    endpoint.save(update_fields=["pending_version", "options", "status", "status_message", "updated_at"])
    _event(endpoint, kind=EndpointEvent.Kind.PUBLISHED, actor=user, from_version=live, to_version=version)
    _send(DEPLOY_TASK, endpoint.id, version.id)
    return endpoint


def endpoint_deploy(*, endpoint_id: str, version_id: str) -> None:
    """The deploy task's body: fetch the artifacts, warm-load them, then switch. Idempotent: a stale
    message (the endpoint moved on to another version) does nothing. A version that cannot load
    leaves the endpoint on its old version, and says why."""
    from finetune.models import ModelVersion
    from serving import inference

    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    version = ModelVersion.objects.filter(pk=version_id).first()
    if endpoint is None or version is None or endpoint.pending_version_id != version_id:
        return
    try:
        path = inference.ensure_local(version)
        target = inference.InferenceTarget(
            endpoint=endpoint, model_version=version, task=version.task, options=endpoint.options
        )
        if target.is_classifier:
            inference.get_runtime().classify(
                path,
                ["warm-up"],
                mode=inference.serve_mode(endpoint.options),
                quantize=endpoint.options.get("quantize") == "int8",
            )
        else:
            inference.get_runtime().generate(
                path,
                [{"role": "user", "content": "hi"}],
                mode=inference.serve_mode(endpoint.options),
                max_tokens=1,
                seed=0,
            )
        error = None
    except Exception as e:  # whatever stops it loading is the user's answer
        logger.exception("deploy of %s to %s failed", version_id, endpoint_id)
        error = f"{type(e).__name__}: {e}"
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint_id)
        if endpoint.pending_version_id != version_id:
            return
        live = endpoint.model_version
        endpoint.pending_version = None
        if error:
            endpoint.status = Endpoint.Status.READY if live else Endpoint.Status.FAILED
            endpoint.status_message = f"{version.name} could not be loaded: {error}" + (
                f" Still serving {live.name}." if live else ""
            )
            endpoint.save(update_fields=["pending_version", "status", "status_message", "updated_at"])
            _event(
                endpoint,
                kind=EndpointEvent.Kind.DEPLOY_FAILED,
                from_version=live,
                to_version=version,
                message=error,
            )
            return
        if live is not None and live.pk != version.pk:
            endpoint.previous_version = live
        endpoint.model_version = version
        endpoint.status = Endpoint.Status.READY
        endpoint.status_message = f"Serving {version.name}."
        endpoint.save()
        _event(
            endpoint,
            kind=EndpointEvent.Kind.SWITCHED if live else EndpointEvent.Kind.READY,
            from_version=live,
            to_version=version,
        )


@transaction.atomic
def endpoint_rollback(*, endpoint: Endpoint, user) -> Endpoint:
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.previous_version is None:
        raise Conflict(
            gettext("The endpoint %(slug)s has no previous version to roll back to.")
            % {"slug": endpoint.slug},
            code="no_previous_version",
        )
    live, back = endpoint.model_version, endpoint.previous_version
    endpoint.model_version, endpoint.previous_version = back, live
    endpoint.pending_version = None
    endpoint.status = Endpoint.Status.READY
    endpoint.status_message = f"Serving {back.name} (rolled back from {live.name if live else '-'})."
    endpoint.save()
    _event(endpoint, kind=EndpointEvent.Kind.ROLLED_BACK, actor=user, from_version=live, to_version=back)
    return endpoint


@transaction.atomic
def endpoint_set_canary(*, endpoint: Endpoint, user, model_version_id: str, percent: int) -> Endpoint:
    if not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 99:
        raise InvalidInput("percent must be an integer from 1 to 99.", field="percent")
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    version = _version_of_team(team=endpoint.team, model_version_id=model_version_id)
    if endpoint.model_version is None:
        raise Conflict(
            gettext("The endpoint has no live version to split traffic with."), code="model_not_ready"
        )
    if version.task != endpoint.model_version.task:
        raise InvalidInput(
            gettext("The canary is a %(task)s model; the live one is %(live)s.")
            % {"task": version.task, "live": endpoint.model_version.task},
            field="model_version",
        )
    endpoint.canary_version, endpoint.canary_percent = version, percent
    endpoint.save(update_fields=["canary_version", "canary_percent", "updated_at"])
    _event(
        endpoint, kind=EndpointEvent.Kind.CANARY_SET, actor=user, to_version=version, message=f"{percent}%"
    )
    return endpoint


@transaction.atomic
def endpoint_clear_canary(*, endpoint: Endpoint, user) -> Endpoint:
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    old = endpoint.canary_version
    endpoint.canary_version, endpoint.canary_percent = None, 0
    endpoint.save(update_fields=["canary_version", "canary_percent", "updated_at"])
    _event(endpoint, kind=EndpointEvent.Kind.CANARY_SET, actor=user, from_version=old, message="0%")
    return endpoint


@transaction.atomic
def endpoint_update(*, endpoint: Endpoint, user, options: dict, force: bool = False) -> Endpoint:
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    new_options = clean_options(options, base=endpoint.options)
    version = endpoint.pending_version or endpoint.model_version
    if version is not None and endpoint.options.get("quantize") != "int8":  # switching to int8
        int8_gate(team=endpoint.team, version=version, options=new_options, force=force)
    endpoint.options = new_options
    endpoint.save(update_fields=["options", "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_unpublish(*, endpoint: Endpoint, user) -> None:
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    _event(endpoint, kind=EndpointEvent.Kind.UNPUBLISHED, actor=user, from_version=endpoint.model_version)
    endpoint.delete()


@transaction.atomic
def int8_check_request(
    *, team, endpoint: Endpoint | None = None, model_version_id: str | None = None, again: bool = True
) -> Int8Check:
    """(Re)measure a version's int8 accuracy change in the background. `again=False` keeps a check
    that is measuring or done (the web publish flow starts one only if there is none)."""
    if model_version_id:
        version = _version_of_team(team=team, model_version_id=model_version_id)
    else:
        version = endpoint and (endpoint.pending_version or endpoint.model_version)
    if version is None:
        raise InvalidInput("Name the model_version to measure.", field="model_version")
    if version.task not in ("classification", "multilabel_classification"):
        raise InvalidInput(
            f"int8 accuracy is measured for classifiers; this is {version.task}.", field="model_version"
        )
    check = Int8Check.objects.select_for_update().filter(team=team, model_version=version).first()
    if check is not None and not again and check.status != Int8Check.Status.FAILED:
        return check
    if check is None:
        check = Int8Check(team=team, model_version=version)
    check.endpoint = endpoint or check.endpoint
    check.status, check.message = Int8Check.Status.PENDING, ""
    check.fp32_accuracy = check.int8_accuracy = check.accuracy_change = None
    check.n = 0
    check.save()
    _send(INT8_TASK, check.id)
    return check


def _validation_rows(version) -> tuple[list[str], list]:
    dv = version.job.dataset_version
    if not dv.validation_file:
        raise ValueError(f"the dataset version of {version.name} has no validation file")
    texts, labels = [], []
    with dv.validation_file.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["labels"] if "labels" in row else row["label"])
    return texts, labels


def int8_check_run(*, check_id: str) -> None:
    from serving import inference
    from serving.runtime import measure_int8_change

    check = (
        Int8Check.objects.select_related("model_version__job__dataset_version").filter(pk=check_id).first()
    )
    if check is None or check.status != Int8Check.Status.PENDING:
        return
    try:
        texts, labels = _validation_rows(check.model_version)
        report = measure_int8_change(
            path=inference.ensure_local(check.model_version),
            resolve_base=inference.resolve_base,
            texts=texts,
            labels=labels,
        )
    except Exception as e:
        logger.exception("int8 check %s failed", check_id)
        Int8Check.objects.filter(pk=check_id).update(
            status=Int8Check.Status.FAILED, message=f"{type(e).__name__}: {e}"
        )
        return
    Int8Check.objects.filter(pk=check_id).update(
        status=Int8Check.Status.DONE,
        fp32_accuracy=report.fp32_accuracy,
        int8_accuracy=report.int8_accuracy,
        accuracy_change=report.accuracy_change,
        n=report.n,
    )
