"""Small formatting filters for the job pages."""

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from common.templatetags.ui_labels import label

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """A duration as people read it: "45 s", "12 min", "2 h 5 min"."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return _("%(n)d s") % {"n": seconds}
    if seconds < 90 * 60:
        return _("%(n)d min") % {"n": round(seconds / 60)}
    hours, rest = divmod(seconds, 3600)
    return _("%(h)d h %(m)d min") % {"h": hours, "m": rest // 60}


LEVEL_LABELS = {"info": gettext_lazy("info"), "warn": gettext_lazy("warning"), "error": gettext_lazy("error")}


@register.filter
def level_label(level: str) -> str:
    return LEVEL_LABELS.get(level, level)


# The job page's text of an event the platform wrote, by the `code` its `data` carries; the stored
# English `message` stays what the API and the log download show, and is the fallback (log lines
# of the training libraries and older events carry no code).
EVENT_TEXTS = {
    "created": gettext_lazy("Created fine-tuning job %(job)s (%(who)s)."),
    "files_validated": gettext_lazy(
        "Files validated: %(train)s training rows, %(valid)s validation rows; about %(tokens)s tokens to "
        "train over %(epochs)s epochs (%(steps)s steps)."
    ),
    "queued": gettext_lazy("Queued on %(queue)s (%(device)s)."),
    "running": gettext_lazy("Running on worker %(worker)s (attempt %(attempt)s)."),
    "running_resumed": gettext_lazy(
        "Running on worker %(worker)s (attempt %(attempt)s), resuming from the checkpoint at step %(step)s."
    ),
    "checkpoint_saved": gettext_lazy("Checkpoint saved at step %(step)s."),
    "paused": gettext_lazy("Paused at step %(step)s; the checkpoint is stored and the worker is free."),
    "paused_during_search": gettext_lazy("Paused during the search; it runs again when the job is resumed."),
    "requeued_worker_paused": gettext_lazy(
        "Worker %(worker)s was paused by an admin: checkpointed at step %(step)s and requeued for another worker."
    ),
    "cancelled": gettext_lazy("Cancelled at step %(step)s."),
    "succeeded": gettext_lazy("Succeeded after %(step)s steps: model %(model)s."),
    "model_stored": gettext_lazy("Model version %(version)s stored (%(files)s files)."),
    "failed": gettext_lazy("Job failed (%(reason)s): %(message)s"),
    "cancelled_by": gettext_lazy("Cancelled by %(who)s."),
    "cancel_requested": gettext_lazy("Cancellation requested by %(who)s; stopping at the next step."),
    "paused_by": gettext_lazy("Paused by %(who)s while queued."),
    "pause_requested": gettext_lazy("Pause requested by %(who)s; checkpointing at the next step."),
    "resumed": gettext_lazy("Resumed by %(who)s; it will continue from its checkpoint at step %(step)s."),
    "resumed_from_start": gettext_lazy(
        "Resumed by %(who)s; it will continue from the start (no checkpoint yet)."
    ),
    "worker_lost_cancelled": gettext_lazy(
        "Worker %(worker)s stopped responding (no heartbeat for %(seconds)s s); the job was being cancelled, "
        "so it is cancelled."
    ),
    "worker_lost_paused": gettext_lazy(
        "Worker %(worker)s stopped responding (no heartbeat for %(seconds)s s); the job was being paused, "
        "so it is paused."
    ),
    "worker_lost_requeued": gettext_lazy(
        "Worker %(worker)s stopped responding (no heartbeat for %(seconds)s s); requeued (%(crashes)s of "
        "%(limit)s losses allowed), it will resume from its checkpoint at step %(step)s."
    ),
    "worker_lost_requeued_from_start": gettext_lazy(
        "Worker %(worker)s stopped responding (no heartbeat for %(seconds)s s); requeued (%(crashes)s of "
        "%(limit)s losses allowed), it will resume from the start (no checkpoint yet)."
    ),
    "resent": gettext_lazy("Re-sent to queue %(queue)s: its message was lost by the broker."),
    # The training engine's own log lines (finetune/engine: `reporter.on_log(..., code=...)`).
    "engine.plan": gettext_lazy(
        "Plan: %(n_train)s training rows, %(n_valid)s validation rows, %(total_steps)s steps (epochs="
        "%(n_epochs)s, batch=%(batch_size)s, lr=%(learning_rate)s, max_length=%(max_length)s, device=%(device)s, "
        "precision=%(precision)s)."
    ),
    "engine.tokenized": gettext_lazy("%(file)s: %(rows)s rows tokenized at max_length=%(max_length)s."),
    "engine.tokenized_from_cache": gettext_lazy(
        "%(file)s: %(rows)s rows tokenized at max_length=%(max_length)s (from cache)."
    ),
    "engine.rows_dropped": gettext_lazy("%(file)s: dropped %(count)s rows (%(reasons)s)."),
    "engine.no_reply_within_max_length": gettext_lazy(
        "%(file)s: %(count)s conversations have no reply within max_length=%(max_length)s."
    ),
    "engine.model_ready": gettext_lazy(
        "Model ready: %(trainable)s trainable of %(total)s parameters (%(percent)s%%) on %(device)s."
    ),
    "engine.baseline": gettext_lazy("Baseline before tuning: %(metrics)s"),
    "engine.exported_weights": gettext_lazy("Exported the weights of step %(step)s: %(metrics)s"),
    "engine.resumed_from_checkpoint": gettext_lazy("Resumed from the checkpoint at step %(step)s."),
    "engine.cancelled": gettext_lazy("Training stopped for the cancellation at step %(step)s."),
    "engine.paused": gettext_lazy("Training checkpointed and paused at step %(step)s."),
    "engine.early_stopping": gettext_lazy(
        "Early stopping at step %(step)s: %(metric)s has not improved for %(patience)s evaluations."
    ),
    "engine.search_started": gettext_lazy("Search: %(trials)s trials within %(budget_minutes)s minutes."),
    "engine.search_winner": gettext_lazy(
        "Search winner: trial %(trial)s (%(method)s, learning rate %(learning_rate)s) with %(metric)s=%(value)s "
        "after %(steps)s steps."
    ),
    "engine.artifacts_written": gettext_lazy(
        "Artifacts written: model, tokenizer, engine.json, label_map.json, metrics.json, spec.json."
    ),
}


@register.filter
def event_text(event) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    text = EVENT_TEXTS.get(data.get("code") or "")
    params = data.get("params")
    if text is None or not isinstance(params, dict):
        return event.message
    if data["code"] == "failed":
        params = {**params, "reason": label(params.get("error_code"), "error")}
    if params.get("who") == "":
        params = {**params, "who": _("an API key")}
    try:
        return str(text) % params
    except (KeyError, TypeError, ValueError):
        return event.message
