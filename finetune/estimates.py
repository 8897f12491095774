"""How long a job will take: tokens to train divided by a documented throughput per device class.

The table is deliberately simple (docs/jobs.md explains it): training throughput in tokens per
second for full fine-tuning of a 100M-parameter model, scaled inversely with the model's size and
by a factor per method. Deployments can override the table with TUNEFORGE_THROUGHPUT_TOKENS_PER_SECOND.
"""

from __future__ import annotations

from django.conf import settings

from finetune.engine.vocabulary import Method

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


def throughput_for(*, device_class: str, method: str, parameters_millions: float | None) -> float:
    table = {
        **THROUGHPUT_TOKENS_PER_SECOND,
        **getattr(settings, "TUNEFORGE_THROUGHPUT_TOKENS_PER_SECOND", {}),
    }
    base = float(table.get(device_class, table["gpu"]))
    size = parameters_millions or REFERENCE_PARAMETERS_MILLIONS
    return base * (REFERENCE_PARAMETERS_MILLIONS / size) * METHOD_SPEEDUP.get(method, 1.0)


def estimate_for(
    *, validation: dict, device_class: str, method: str, parameters_millions: float | None
) -> dict:
    """The estimate shown before launch, from `validate_spec`'s figures."""
    trained_tokens = int(validation.get("trained_tokens_estimate") or 0)
    tokens_per_second = throughput_for(
        device_class=device_class, method=method, parameters_millions=parameters_millions
    )
    seconds = STARTUP_SECONDS + trained_tokens / tokens_per_second
    return {
        "trained_tokens": trained_tokens,
        "n_epochs": validation.get("n_epochs"),
        "batch_size": validation.get("batch_size"),
        "max_length": validation.get("max_length"),
        "total_steps": validation.get("total_steps"),
        "n_train": validation.get("n_train"),
        "n_valid": validation.get("n_valid"),
        "device_class": device_class,
        "tokens_per_second": round(tokens_per_second, 1),
        "estimated_seconds": round(seconds, 1),
        "gpu_hours": round(seconds / 3600.0, 4) if device_class != "cpu" else 0.0,
    }
