"""Job spec dataclasses and the checks that need no files, model or data."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError
from .vocabulary import ADAPTER_METHODS, Method, Task

TASKS = tuple(Task)
METHODS = tuple(Method)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTO = "auto"


@dataclass
class Hyperparameters:
    n_epochs: int | str = AUTO
    batch_size: int | str = AUTO
    learning_rate: float | str = AUTO
    max_length: int | str = AUTO
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    eval_every_steps: int | None = None  # None = auto: each epoch, or ~5 evaluations in runs under 5 epochs
    save_every_steps: int | None = None  # None = each epoch only
    # Also checkpoint this long after the last checkpoint, so a lost worker costs at most this much
    # work even inside a long epoch; None = by epoch and save_every_steps only.
    checkpoint_every_minutes: float | None = 5.0
    keep_last_checkpoints: int = 2
    # Counted in evaluations; "auto": 3 with a validation file, else off. The metric also picks the
    # checkpoint that is exported (the best evaluation, not the last).
    early_stopping_patience: int | str | None = AUTO
    early_stopping_metric: str = AUTO
    # Evaluations before this step still keep the best checkpoint but do not count toward patience:
    # the metric often peaks while the rate is high, dips, and climbs again once it has decayed.
    # "auto": two thirds of the planned steps when early stopping is on; 0 counts from the start.
    early_stopping_start_step: int | str | None = AUTO
    class_weights: bool = False
    label_smoothing: float = 0.0
    precision: str = AUTO  # auto|fp32|bf16|fp16 (auto: bf16 on capable CUDA, else fp32)
    gradient_checkpointing: bool = False
    lora_r: int | str = AUTO  # auto: 8, or 16 when method "auto" chose LoRA
    lora_alpha: int | str = AUTO  # auto: 2 x lora_r
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    num_virtual_tokens: int = 20  # prompt tuning
    merge_adapter: bool = False
    # Not in the first contract draft; clipping is what every reference loop does, None disables it.
    max_grad_norm: float | None = 1.0
    # Batches of rows of similar length (data.length_grouped_batches): less padding, same rows per epoch.
    group_by_length: bool = True
    # {"trials": N, "budget_minutes": M[, "learning_rates": [...]]}: a successive-halving search over
    # learning rate and method before the run (finetune/engine/search.py); None = no search.
    search: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Hyperparameters:
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SpecError(
                f"hyperparameters.{unknown[0]}",
                f"unknown hyperparameter; known ones are: {', '.join(sorted(names))}",
                code="unknown_field",
            )
        hp = cls(**d)
        _check_types(hp)
        return hp

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class JobSpec:
    base_model: str
    task: str  # a vocabulary.Task
    method: str  # a vocabulary.Method
    train_file: str
    output_dir: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    seed: int = 42
    device: str = AUTO  # auto|cpu|cuda|cuda:N
    init_from: str | None = None
    replay_file: str | None = None
    replay_fraction: float = 0.0
    previous_validation_file: str | None = None  # forgetting measured here
    dataset_hash: str | None = None
    max_steps: int | None = None
    # The name artifacts record for the base model. A platform runs from a local copy
    # (`base_model` = a path on this machine) but the artifacts must name something portable.
    base_model_name: str | None = None
    cache_dir: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        if not isinstance(d, dict):
            raise SpecError("spec", "a job spec must be a JSON object", code="invalid_type")
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SpecError(
                unknown[0],
                f"unknown spec field; known ones are: {', '.join(sorted(names))}",
                code="unknown_field",
            )
        for required in ("base_model", "task", "method", "train_file", "output_dir"):
            if not d.get(required):
                raise SpecError(required, "is required", code="required")
        hp = d.get("hyperparameters")
        if isinstance(hp, Hyperparameters):
            d["hyperparameters"] = hp
        elif hp is None or isinstance(hp, dict):
            d["hyperparameters"] = Hyperparameters.from_dict(hp)
        else:
            raise SpecError("hyperparameters", "must be an object", code="invalid_type")
        spec = cls(**d)
        _check_spec_types(spec)
        return spec

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hyperparameters"] = self.hyperparameters.to_dict()
        return d


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_types(hp: Hyperparameters) -> None:
    """Type checks only; ranges are checked in check_static so one place owns the wording."""

    for name in ("n_epochs", "batch_size", "max_length"):
        v = getattr(hp, name)
        if v != AUTO and not _is_int(v):
            raise SpecError(
                f"hyperparameters.{name}", f'must be an integer or "auto", got {v!r}', code="invalid_type"
            )
    if hp.learning_rate != AUTO and not _is_number(hp.learning_rate):
        raise SpecError(
            "hyperparameters.learning_rate",
            f'must be a number or "auto", got {hp.learning_rate!r}',
            code="invalid_type",
        )
    for name in ("gradient_accumulation_steps", "keep_last_checkpoints", "num_virtual_tokens"):
        if not _is_int(getattr(hp, name)):
            raise SpecError(f"hyperparameters.{name}", "must be an integer", code="invalid_type")
    for name in ("lora_r", "lora_alpha"):
        v = getattr(hp, name)
        if v != AUTO and not _is_int(v):
            raise SpecError(
                f"hyperparameters.{name}", f'must be an integer or "auto", got {v!r}', code="invalid_type"
            )
    for name in ("eval_every_steps", "save_every_steps"):
        v = getattr(hp, name)
        if v is not None and not _is_int(v):
            raise SpecError(f"hyperparameters.{name}", "must be an integer or null", code="invalid_type")
    for name in ("early_stopping_patience", "early_stopping_start_step"):
        v = getattr(hp, name)
        if v is not None and v != AUTO and not _is_int(v):
            raise SpecError(
                f"hyperparameters.{name}", 'must be an integer, "auto" or null', code="invalid_type"
            )
    for name in ("warmup_ratio", "weight_decay", "label_smoothing", "lora_dropout"):
        if not _is_number(getattr(hp, name)):
            raise SpecError(f"hyperparameters.{name}", "must be a number", code="invalid_type")
    if hp.checkpoint_every_minutes is not None and not _is_number(hp.checkpoint_every_minutes):
        raise SpecError(
            "hyperparameters.checkpoint_every_minutes", "must be a number or null", code="invalid_type"
        )
    if hp.max_grad_norm is not None and not _is_number(hp.max_grad_norm):
        raise SpecError("hyperparameters.max_grad_norm", "must be a number or null", code="invalid_type")
    for name in ("class_weights", "gradient_checkpointing", "merge_adapter", "group_by_length"):
        if not isinstance(getattr(hp, name), bool):
            raise SpecError(f"hyperparameters.{name}", "must be true or false", code="invalid_type")
    if hp.target_modules is not None and (
        not isinstance(hp.target_modules, list)
        or not all(isinstance(t, str) and t for t in hp.target_modules)
    ):
        raise SpecError(
            "hyperparameters.target_modules", "must be a list of module names or null", code="invalid_type"
        )
    for name in ("precision", "early_stopping_metric"):
        if not isinstance(getattr(hp, name), str):
            raise SpecError(f"hyperparameters.{name}", "must be a string", code="invalid_type")
    _check_search_types(hp.search)


SEARCH_KEYS = ("trials", "budget_minutes", "learning_rates")
SEARCH_MAX_TRIALS = 16


def _check_search_types(search: Any) -> None:
    if search is None:
        return
    if not isinstance(search, dict):
        raise SpecError(
            "hyperparameters.search",
            'must be an object such as {"trials": 4, "budget_minutes": 10}, or null',
            code="invalid_type",
        )
    unknown = sorted(set(search) - set(SEARCH_KEYS))
    if unknown:
        raise SpecError(
            f"hyperparameters.search.{unknown[0]}",
            f"unknown search setting; known ones are: {', '.join(SEARCH_KEYS)}",
            code="unknown_field",
        )
    for key in ("trials", "budget_minutes"):
        if key not in search:
            raise SpecError(f"hyperparameters.search.{key}", "is required", code="required")
    if not _is_int(search["trials"]):
        raise SpecError(
            "hyperparameters.search.trials",
            f"must be an integer, got {search['trials']!r}",
            code="invalid_type",
        )
    if not _is_number(search["budget_minutes"]):
        raise SpecError(
            "hyperparameters.search.budget_minutes",
            f"must be a number of minutes, got {search['budget_minutes']!r}",
            code="invalid_type",
        )
    rates = search.get("learning_rates")
    if rates is not None and (
        not isinstance(rates, list) or not rates or not all(_is_number(r) for r in rates)
    ):
        raise SpecError(
            "hyperparameters.search.learning_rates",
            "must be a non-empty list of numbers, or left out",
            code="invalid_type",
        )


def _check_spec_types(spec: JobSpec) -> None:
    for name in ("base_model", "task", "method", "train_file", "output_dir", "device"):
        if not isinstance(getattr(spec, name), str):
            raise SpecError(name, "must be a string", code="invalid_type")
    for name in (
        "validation_file",
        "init_from",
        "replay_file",
        "previous_validation_file",
        "dataset_hash",
        "cache_dir",
    ):
        v = getattr(spec, name)
        if v is not None and not isinstance(v, str):
            raise SpecError(name, "must be a string or null", code="invalid_type")
    if not _is_int(spec.seed):
        raise SpecError("seed", "must be an integer", code="invalid_type")
    if spec.max_steps is not None and not _is_int(spec.max_steps):
        raise SpecError("max_steps", "must be an integer or null", code="invalid_type")
    if not _is_number(spec.replay_fraction):
        raise SpecError("replay_fraction", "must be a number", code="invalid_type")


def check_static(spec: JobSpec) -> None:
    """Range and combination checks that need nothing but the spec itself."""

    if not isinstance(spec.hyperparameters, Hyperparameters):
        raise SpecError("hyperparameters", "must be a Hyperparameters object", code="invalid_type")
    _check_spec_types(spec)
    hp = spec.hyperparameters
    _check_types(hp)
    if spec.task not in TASKS:
        raise SpecError(
            "task", f"unknown task {spec.task!r}; choose one of {', '.join(TASKS)}", code="unknown_task"
        )
    if spec.method not in METHODS and spec.method != AUTO:
        raise SpecError(
            "method",
            f"unknown method {spec.method!r}; choose auto or one of {', '.join(METHODS)}",
            code="unknown_method",
        )
    _check_optimisation(hp)
    _check_task_fit_and_schedule(spec, hp)
    _check_precision_and_adapter(spec, hp)
    _check_run_inputs(spec)
    _check_search(spec, hp)


def _check_optimisation(hp: Hyperparameters) -> None:
    """Ranges of the optimiser and batching hyperparameters."""
    if hp.learning_rate != AUTO and hp.learning_rate <= 0:
        raise SpecError(
            "hyperparameters.learning_rate",
            f"must be positive, got {hp.learning_rate}",
            code="invalid_learning_rate",
        )
    if hp.batch_size != AUTO and hp.batch_size < 1:
        raise SpecError(
            "hyperparameters.batch_size",
            f"must be at least 1, got {hp.batch_size}",
            code="invalid_batch_size",
        )
    if hp.max_length != AUTO and hp.max_length < 1:
        raise SpecError(
            "hyperparameters.max_length",
            f"must be at least 1 token, got {hp.max_length}",
            code="invalid_max_length",
        )
    if hp.n_epochs != AUTO and hp.n_epochs < 1:
        raise SpecError(
            "hyperparameters.n_epochs", f"must be at least 1, got {hp.n_epochs}", code="invalid_value"
        )
    if hp.gradient_accumulation_steps < 1:
        raise SpecError(
            "hyperparameters.gradient_accumulation_steps", "must be at least 1", code="invalid_value"
        )
    if not 0.0 <= hp.warmup_ratio < 1.0:
        raise SpecError("hyperparameters.warmup_ratio", "must be in [0, 1)", code="invalid_value")
    if hp.weight_decay < 0:
        raise SpecError("hyperparameters.weight_decay", "must not be negative", code="invalid_value")
    if not 0.0 <= hp.label_smoothing < 1.0:
        raise SpecError("hyperparameters.label_smoothing", "must be in [0, 1)", code="invalid_value")


def _check_task_fit_and_schedule(spec: JobSpec, hp: Hyperparameters) -> None:
    """Hyperparameters that only some tasks take, and the evaluation/checkpoint schedule."""
    if hp.label_smoothing and spec.task == Task.CHAT_SFT:
        raise SpecError(
            "hyperparameters.label_smoothing", "applies to classification tasks only", code="invalid_value"
        )
    if hp.class_weights and spec.task == Task.CHAT_SFT:
        raise SpecError(
            "hyperparameters.class_weights", "applies to classification tasks only", code="invalid_value"
        )
    for name in ("eval_every_steps", "save_every_steps", "early_stopping_patience"):
        v = getattr(hp, name)
        if v is not None and v != AUTO and v < 1:
            raise SpecError(f"hyperparameters.{name}", "must be at least 1 (or null)", code="invalid_value")
    if hp.checkpoint_every_minutes is not None and hp.checkpoint_every_minutes <= 0:
        raise SpecError(
            "hyperparameters.checkpoint_every_minutes", "must be positive (or null)", code="invalid_value"
        )
    if hp.early_stopping_start_step not in (None, AUTO) and hp.early_stopping_start_step < 0:
        raise SpecError(
            "hyperparameters.early_stopping_start_step", "must be 0 or more (or null)", code="invalid_value"
        )
    if hp.keep_last_checkpoints < 1:
        raise SpecError("hyperparameters.keep_last_checkpoints", "must be at least 1", code="invalid_value")
    if hp.early_stopping_patience not in (None, AUTO) and not spec.validation_file:
        raise SpecError(
            "hyperparameters.early_stopping_patience",
            "early stopping needs a validation_file to measure the metric on",
            code="needs_validation",
        )


def _check_precision_and_adapter(spec: JobSpec, hp: Hyperparameters) -> None:
    if hp.precision not in PRECISIONS:
        raise SpecError(
            "hyperparameters.precision", f"choose one of {', '.join(PRECISIONS)}", code="invalid_value"
        )
    if hp.max_grad_norm is not None and hp.max_grad_norm <= 0:
        raise SpecError("hyperparameters.max_grad_norm", "must be positive or null", code="invalid_value")
    if any(v != AUTO and v < 1 for v in (hp.lora_r, hp.lora_alpha)):
        raise SpecError(
            "hyperparameters.lora_r", "lora_r and lora_alpha must be at least 1", code="invalid_value"
        )
    if not 0.0 <= hp.lora_dropout < 1.0:
        raise SpecError("hyperparameters.lora_dropout", "must be in [0, 1)", code="invalid_value")
    if hp.num_virtual_tokens < 1:
        raise SpecError("hyperparameters.num_virtual_tokens", "must be at least 1", code="invalid_value")
    # With method "auto" these two are checked once planning has chosen the method.
    if hp.target_modules is not None and spec.method not in (*ADAPTER_METHODS, AUTO):
        raise SpecError(
            "hyperparameters.target_modules",
            f"does not apply to method {spec.method!r}",
            code="invalid_value",
        )
    if hp.merge_adapter and spec.method not in (*ADAPTER_METHODS, AUTO):
        raise SpecError(
            "hyperparameters.merge_adapter",
            f"only LoRA, QLoRA and IA3 adapters can be merged into the base, not {spec.method!r}",
            code="invalid_value",
        )


def _check_run_inputs(spec: JobSpec) -> None:
    """Step limit, replay data and device."""
    if spec.max_steps is not None and spec.max_steps < 1:
        raise SpecError("max_steps", "must be at least 1 (or null)", code="invalid_value")
    if not 0.0 <= spec.replay_fraction <= 1.0:
        raise SpecError("replay_fraction", "must be between 0 and 1", code="invalid_value")
    if spec.replay_fraction > 0 and not spec.replay_file:
        raise SpecError(
            "replay_file", "replay_fraction > 0 needs a replay_file with the earlier data", code="required"
        )
    if (
        spec.device != AUTO
        and spec.device != "cpu"
        and not (spec.device == "cuda" or spec.device.startswith("cuda:"))
    ):
        raise SpecError(
            "device", f"unknown device {spec.device!r}; use auto, cpu, cuda or cuda:N", code="invalid_value"
        )


def _check_search(spec: JobSpec, hp: Hyperparameters) -> None:
    """Ranges of `hyperparameters.search` and what it needs from the rest of the spec."""
    search = hp.search
    if search is None:
        return
    trials = search["trials"]
    if not 2 <= trials <= SEARCH_MAX_TRIALS:
        raise SpecError(
            "hyperparameters.search.trials",
            f"must be between 2 and {SEARCH_MAX_TRIALS}, got {trials}",
            code="invalid_value",
        )
    if search["budget_minutes"] <= 0:
        raise SpecError(
            "hyperparameters.search.budget_minutes",
            f"must be a positive number of minutes, got {search['budget_minutes']}",
            code="invalid_value",
        )
    if any(r <= 0 for r in search.get("learning_rates") or ()):
        raise SpecError(
            "hyperparameters.search.learning_rates", "every rate must be positive", code="invalid_value"
        )
    if not spec.validation_file:
        raise SpecError(
            "hyperparameters.search",
            "the search compares trials on validation data; add a validation_file",
            code="needs_validation",
        )
    if hp.learning_rate != AUTO:
        raise SpecError(
            "hyperparameters.learning_rate",
            'the search chooses the learning rate; leave it "auto" (or list candidates in '
            "hyperparameters.search.learning_rates)",
            code="invalid_value",
        )
