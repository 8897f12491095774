"""How a training run talks to its caller (Celery worker, CLI, tests) without knowing who it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

CONTINUE, CANCEL, PAUSE = "continue", "cancel", "pause"


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: float
    percent: float
    eta_seconds: float | None
    samples_per_second: float
    tokens_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Reporter(Protocol):
    # level: info|warn|error. `code` and `params` name the line for a caller that shows it in
    # another language (`message` is the English text and stays the fallback); "" for none.
    def on_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None: ...

    def on_step(self, metrics: dict) -> None: ...

    def on_eval(self, metrics: dict) -> None: ...

    def on_progress(self, progress: Progress) -> None: ...

    def on_checkpoint(self, *, step: int, path: str, metrics: dict) -> None: ...

    def control(self) -> str: ...  # "continue" | "cancel" | "pause"; polled every step

    # A budgeted-search trial started or changed (engine/search.py: trial, rung, method, learning_rate,
    # steps, status, metric, value, curve, eval_curve, winner). Optional: the search checks for it.
    def on_trial(self, trial: dict) -> None: ...


class NullReporter:
    """Ignores everything and never stops the run; subclass it to override only what you need."""

    def on_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None:
        pass

    def on_step(self, metrics: dict) -> None:
        pass

    def on_eval(self, metrics: dict) -> None:
        pass

    def on_progress(self, progress: Progress) -> None:
        pass

    def on_checkpoint(self, *, step: int, path: str, metrics: dict) -> None:
        pass

    def control(self) -> str:
        return CONTINUE

    def on_trial(self, trial: dict) -> None:
        pass


class RecordingReporter(NullReporter):
    """Keeps every event in memory; handy in tests and notebooks."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str]] = []
        self.log_codes: list[tuple[str, dict]] = []  # (code, params) of the lines that have one
        self.steps: list[dict] = []
        self.evals: list[dict] = []
        self.progress: list[Progress] = []
        self.checkpoints: list[dict] = []
        self.trials: list[dict] = []  # every on_trial report, in order

    def on_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None:
        self.logs.append((level, message))
        if code:
            self.log_codes.append((code, params or {}))

    def on_step(self, metrics: dict) -> None:
        self.steps.append(metrics)

    def on_eval(self, metrics: dict) -> None:
        self.evals.append(metrics)

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    def on_checkpoint(self, *, step: int, path: str, metrics: dict) -> None:
        self.checkpoints.append({"step": step, "path": path, "metrics": metrics})

    def on_trial(self, trial: dict) -> None:
        self.trials.append(trial)
