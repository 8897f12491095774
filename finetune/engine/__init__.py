"""Tuneforge fine-tuning engine: a pure library (no Django), usable from Celery workers, the CLI and tests.

from finetune.engine import JobSpec, train
result = train(JobSpec.from_dict({...}), reporter)
"""

from .errors import SpecError
from .modeling import resolve_base_model
from .planning import validate_spec
from .reporting import NullReporter, Progress, RecordingReporter, Reporter
from .spec import Hyperparameters, JobSpec
from .trainer import TrainResult, train

__all__ = [
    "Hyperparameters",
    "JobSpec",
    "NullReporter",
    "Progress",
    "RecordingReporter",
    "Reporter",
    "SpecError",
    "TrainResult",
    "resolve_base_model",
    "train",
    "validate_spec",
]
