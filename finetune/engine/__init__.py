"""Tuneforge fine-tuning engine: a pure library (no Django), usable from Celery workers, the CLI and tests.

from finetune.engine import JobSpec, train
result = train(JobSpec.from_dict({...}), reporter)

The names below load on first use (PEP 562): importing `finetune.engine.vocabulary` or `.spec`,
as the datasets app and Django models do, must not drag torch and transformers into every process.
"""

from importlib import import_module

_EXPORTS = {
    "Hyperparameters": ".spec",
    "JobSpec": ".spec",
    "NullReporter": ".reporting",
    "Progress": ".reporting",
    "RecordingReporter": ".reporting",
    "Reporter": ".reporting",
    "SpecError": ".errors",
    "TrainResult": ".trainer",
    "resolve_base_model": ".modeling",
    "train": ".trainer",
    "validate_spec": ".planning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
