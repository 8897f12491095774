"""How long a job will take: tokens to train divided by a throughput, shown as a range.

The throughput is what workers measured on earlier runs of the same base model, method and device
class at a similar max length (`ThroughputSample`, recorded when a run succeeds): the range spans
the slowest to the fastest of the latest runs. Before any such run, a built-in table (docs/jobs.md):
tokens per second for full fine-tuning of a 100M-parameter model, scaled inversely with the model's
size and by a factor per method, with a wide range because it is a guess. Deployments can override
the table with TUNEFORGE_THROUGHPUT_TOKENS_PER_SECOND.
"""

from __future__ import annotations

from django.conf import settings

from finetune.engine.vocabulary import Method
from finetune.selectors import measured_throughput

REFERENCE_PARAMETERS_MILLIONS = 100.0

# Tokens per second, full fine-tuning of a 100M-parameter model, fp32 on CPU and bf16 on GPUs.
THROUGHPUT_TOKENS_PER_SECOND: dict[str, float] = {
    "cpu": 1_500.0,
    "gpu": 40_000.0,  # "any GPU": sized for the slowest GPU a deployment is likely to have
    "l4": 40_000.0,
    "a100": 150_000.0,
    "h100": 300_000.0,
    "h200": 330_000.0,
}

# Parameter-efficient methods skip most of the backward pass; QLoRA pays for dequantisation.
METHOD_SPEEDUP: dict[str, float] = {
    Method.FULL: 1.0,
    Method.LORA: 1.4,
    Method.IA3: 1.5,
    Method.PROMPT_TUNING: 1.5,
    Method.QLORA: 0.8,
}

# Model load, tokenisation and the final upload: a floor under every estimate.
STARTUP_SECONDS = 30.0

# The table is a guess for this machine: a run may well be this much slower or faster.
TABLE_SPREAD = (0.5, 1.5)
# One measured run says little about the next one on a shared machine.
SINGLE_RUN_SPREAD = (0.8, 1.25)


def throughput_for(*, device_class: str, method: str, parameters_millions: float | None) -> float:
    table = {
        **THROUGHPUT_TOKENS_PER_SECOND,
        **getattr(settings, "TUNEFORGE_THROUGHPUT_TOKENS_PER_SECOND", {}),
    }
    base = float(table.get(device_class, table["gpu"]))
    size = parameters_millions or REFERENCE_PARAMETERS_MILLIONS
    return base * (REFERENCE_PARAMETERS_MILLIONS / size) * METHOD_SPEEDUP.get(method, 1.0)


def estimate_for(
    *,
    validation: dict,
    device_class: str,
    method: str,
    parameters_millions: float | None,
    base_model_id: str | None = None,
    search: dict | None = None,
) -> dict:
    """The estimate shown before launch, from `validate_spec`'s figures and the measured runs; with
    a budgeted search (`hyperparameters.search`), its budget comes on top (the search stops at it)."""
    method = validation.get("method") or method  # what "auto" resolved to
    trained_tokens = int(validation.get("trained_tokens_estimate") or 0)
    max_length = int(validation.get("max_length") or 0)
    measured = (
        measured_throughput(
            base_model_id=base_model_id, method=method, device_class=device_class, max_length=max_length
        )
        if base_model_id
        else []
    )
    if measured:
        ordered = sorted(measured)
        tokens_per_second = ordered[len(ordered) // 2]
        slow, fast = ordered[0], ordered[-1]
        if len(ordered) == 1:
            slow, fast = tokens_per_second * SINGLE_RUN_SPREAD[0], tokens_per_second * SINGLE_RUN_SPREAD[1]
        basis = "measured"
    else:
        tokens_per_second = throughput_for(
            device_class=device_class, method=method, parameters_millions=parameters_millions
        )
        slow, fast = tokens_per_second * TABLE_SPREAD[0], tokens_per_second * TABLE_SPREAD[1]
        basis = "table"
    search_seconds = 60.0 * float(search.get("budget_minutes") or 0) if isinstance(search, dict) else 0.0
    seconds = STARTUP_SECONDS + search_seconds + trained_tokens / tokens_per_second
    low = STARTUP_SECONDS + search_seconds + trained_tokens / fast
    high = STARTUP_SECONDS + search_seconds + trained_tokens / slow
    return {
        "trained_tokens": trained_tokens,
        "method": method,
        "n_epochs": validation.get("n_epochs"),
        "batch_size": validation.get("batch_size"),
        "max_length": validation.get("max_length"),
        "learning_rate": validation.get("learning_rate"),
        "early_stopping_start_step": validation.get("early_stopping_start_step"),
        "total_steps": validation.get("total_steps"),
        "n_train": validation.get("n_train"),
        "n_valid": validation.get("n_valid"),
        "device_class": device_class,
        "tokens_per_second": round(tokens_per_second, 1),
        "estimated_seconds": round(seconds, 1),
        "estimated_seconds_low": round(low, 1),
        "estimated_seconds_high": round(high, 1),
        "estimate_basis": basis,
        "measured_runs": len(measured),
        "search_seconds": round(search_seconds, 1),
        "gpu_hours": round(seconds / 3600.0, 4) if device_class != "cpu" else 0.0,
    }


def duration_range_text(low_seconds: float, high_seconds: float) -> str:
    """ "about 25–35 min", "about 1.5–2 h": what a person reads, never raw seconds."""
    from django.utils.translation import gettext

    low, high = max(low_seconds, 0.0), max(high_seconds, low_seconds, 0.0)
    if high < 60:
        return gettext("under a minute")
    if high < 90 * 60:
        lo, hi = max(1, round(low / 60)), max(1, round(high / 60))
        if lo == hi:
            return gettext("about %(n)s min") % {"n": lo}
        return gettext("about %(low)s–%(high)s min") % {"low": lo, "high": hi}
    lo_h, hi_h = _hours(low), _hours(high)
    if lo_h == hi_h:
        return gettext("about %(n)s h") % {"n": lo_h}
    return gettext("about %(low)s–%(high)s h") % {"low": lo_h, "high": hi_h}


def _hours(seconds: float) -> str:
    """Half hours under 10 h, whole hours above: more digits would claim a precision there is not."""
    hours = seconds / 3600
    value = round(hours * 2) / 2 if hours < 10 else round(hours)
    return f"{value:g}"
