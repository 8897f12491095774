"""Turning a JobSpec into a Plan: every check and every "auto" decision, before any training compute."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from . import autoconf, data, modeling
from .errors import SpecError
from .reporting import NullReporter, Reporter
from .spec import AUTO, Hyperparameters, JobSpec, check_static
from .vocabulary import ADAPTER_METHODS, Method, Task

_EVAL_METRICS = {
    Task.CLASSIFICATION: ("loss", "accuracy", "f1_macro", "f1_micro"),
    Task.MULTILABEL_CLASSIFICATION: ("loss", "accuracy", "hamming_accuracy", "f1_macro", "f1_micro"),
    Task.CHAT_SFT: ("loss", "perplexity", "token_accuracy"),
}


@dataclass
class Plan:
    spec: JobSpec
    hp: Hyperparameters  # every "auto" replaced by a concrete value
    base_path: str
    base_name: str  # portable name written into artifacts
    config: Any
    tokenizer: Any
    tokenizer_fp: str
    device: torch.device
    precision: str
    labels: list[str]
    targets: list[str] | str | None
    n_params: int
    cache_dir: Path
    train: data.Split
    valid: data.Split | None
    previous_valid: data.Split | None
    train_rows: data.Rows
    n_replay: int
    fingerprints: dict[str, str | None]
    steps_per_epoch: int
    total_steps: int
    init_from: dict[str, Any] | None = None
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def dataset_hash(self) -> str:
        return self.spec.dataset_hash or f"sha256:{self.train_rows.sha256}"

    def trained_tokens_estimate(self) -> int:
        per_epoch = sum(len(x) for x in self.train.encoded.input_ids)
        return int(per_epoch * self.total_steps / max(self.steps_per_epoch, 1))

    def resolved_spec(self) -> dict[str, Any]:
        """The spec with every "auto" decided; JobSpec.from_dict() of it reproduces the run."""
        d = replace(self.spec, hyperparameters=self.hp, device=str(self.device)).to_dict()
        return d

    def summary(self) -> dict[str, Any]:
        hp = self.hp
        return {
            "n_train": len(self.train),
            "n_replay": self.n_replay,
            "n_valid": len(self.valid) if self.valid is not None else 0,
            "n_previous_valid": len(self.previous_valid) if self.previous_valid is not None else 0,
            "labels": list(self.labels),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "trained_tokens_estimate": self.trained_tokens_estimate(),
            "max_length": hp.max_length,
            "n_epochs": hp.n_epochs,
            "batch_size": hp.batch_size,
            "learning_rate": hp.learning_rate,
            "method": self.spec.method,
            "warmup_ratio": hp.warmup_ratio,
            "eval_every_steps": hp.eval_every_steps,
            "early_stopping_patience": hp.early_stopping_patience,
            "early_stopping_metric": hp.early_stopping_metric,
            "early_stopping_start_step": hp.early_stopping_start_step,
            "lora_r": hp.lora_r if self.spec.method in ADAPTER_METHODS else None,
            # What "auto" resolves to for this method/task/model, kept so a rate set as a multiple of it
            # (the OpenAI face's learning_rate_multiplier) can be reported back as that multiple.
            "auto_learning_rate": autoconf.auto_learning_rate(
                self.spec.method, self.spec.task, self.n_params
            ),
            "gradient_accumulation_steps": hp.gradient_accumulation_steps,
            "precision": self.precision,
            "device": str(self.device),
            "target_modules": self.targets,
            "base_model": self.base_name,
            "base_model_path": self.base_path,
            "dataset_hash": self.dataset_hash,
            "dropped_rows": self.dropped,
        }


def cache_dir_for(spec: JobSpec) -> Path:
    return Path(spec.cache_dir).expanduser() if spec.cache_dir else data.default_cache_dir()


def _check_device_and_precision(spec: JobSpec) -> tuple[torch.device, str]:
    hp = spec.hyperparameters
    if spec.method == Method.QLORA:
        if not torch.cuda.is_available() or spec.device == "cpu":
            raise SpecError(
                "method",
                "QLoRA quantizes the base model to 4 bits with bitsandbytes, which needs a CUDA GPU; "
                "this run has none. Use method 'lora' on CPU.",
                code="qlora_requires_cuda",
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise SpecError(
                "method",
                "QLoRA needs the bitsandbytes package (pip install tuneforge[gpu])",
                code="missing_dependency",
            ) from None
    device = autoconf.resolve_device(spec.device)
    precision = autoconf.resolve_precision(hp.precision, device)
    if precision in ("bf16", "fp16") and device.type != "cuda":
        raise SpecError(
            "hyperparameters.precision",
            f"{precision} training needs a CUDA GPU; use fp32 or auto on CPU",
            code="precision_unavailable",
        )
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise SpecError(
            "hyperparameters.precision",
            "this GPU does not support bf16; use fp16 or auto",
            code="precision_unavailable",
        )
    return device, precision


def _check_init_from(spec: JobSpec) -> dict[str, Any] | None:
    if not spec.init_from:
        return None
    if not Path(spec.init_from).is_dir():
        raise SpecError("init_from", f"directory not found: {spec.init_from}", code="file_not_found")
    info = modeling.read_artifact_manifest(spec.init_from)
    if info.get("task") != spec.task:
        raise SpecError(
            "init_from",
            f"the earlier model was trained for {info.get('task')!r}, not {spec.task!r}",
            code="incompatible_init",
        )
    if modeling.portable_name(info.get("base_model", "")) != modeling.portable_name(spec.base_model):
        raise SpecError(
            "init_from",
            f"the earlier model is built on {info.get('base_model')!r}; set base_model to that",
            code="incompatible_init",
        )
    if spec.method == AUTO:
        return info  # "auto" continues with the earlier version's own method
    if info["format"] == "adapter" and spec.method != info.get("method"):
        raise SpecError(
            "init_from",
            f"the earlier version is a {info.get('method')} adapter; continue it with method {info.get('method')!r}",
            code="incompatible_init",
        )
    if info["format"] == "full" and spec.method != "full":
        # An adapter saved on top of a fine-tuned copy would name weights that exist only in that copy.
        raise SpecError(
            "init_from",
            "the earlier version is fully fine-tuned; continue it with method 'full'",
            code="incompatible_init",
        )
    return info


def _read_split_rows(spec: JobSpec) -> tuple[data.Rows, data.Rows | None, data.Rows | None, data.Rows | None]:
    train_rows = data.read_rows(spec.train_file, spec.task, "train_file")
    if not len(train_rows):
        why = ", ".join(f"{n} {reason}" for reason, n in train_rows.dropped.items()) or "the file is empty"
        raise SpecError("train_file", f"no usable rows after filtering ({why})", code="no_rows")
    valid_rows = (
        data.read_rows(spec.validation_file, spec.task, "validation_file") if spec.validation_file else None
    )
    if valid_rows is not None and not len(valid_rows):
        raise SpecError("validation_file", "no usable rows after filtering", code="no_rows")
    replay_rows = (
        data.read_rows(spec.replay_file, spec.task, "replay_file")
        if spec.replay_file and spec.replay_fraction > 0
        else None
    )
    prev_rows = (
        data.read_rows(spec.previous_validation_file, spec.task, "previous_validation_file")
        if spec.previous_validation_file
        else None
    )
    if prev_rows is not None and not len(prev_rows):
        raise SpecError("previous_validation_file", "no usable rows after filtering", code="no_rows")
    return train_rows, valid_rows, replay_rows, prev_rows


def _labels(
    spec: JobSpec,
    train_rows: data.Rows,
    replay_rows: data.Rows | None,
    valid_rows: data.Rows | None,
    prev_rows: data.Rows | None,
    init: dict | None,
) -> list[str]:
    if spec.task == Task.CHAT_SFT:
        return []
    seen = data.labels_of(train_rows, spec.task)
    if replay_rows is not None:
        seen |= data.labels_of(replay_rows, spec.task)
    earlier = list(init["labels"]) if init else []
    # Earlier versions keep their label ids so the grown head reuses their rows.
    labels = earlier + sorted(seen - set(earlier))
    if spec.task == Task.CLASSIFICATION and len(labels) < 2:
        raise SpecError(
            "train_file",
            f"classification needs at least 2 distinct labels, found {labels}",
            code="too_few_labels",
        )
    known = set(labels)
    for name, rows in (("validation_file", valid_rows), ("previous_validation_file", prev_rows)):
        if rows is None:
            continue
        unseen = sorted(data.labels_of(rows, spec.task) - known)
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise SpecError(
                name, f"has labels the training data never contains: {shown}", code="unseen_labels"
            )
    return labels


def _check_early_stopping_metric(spec: JobSpec) -> None:
    """The metric picks the exported checkpoint as well as when to stop, so it is checked whenever set."""
    hp = spec.hyperparameters
    metric = hp.early_stopping_metric
    if metric == AUTO:
        return
    bare = metric.split("_", 1)[1] if metric.startswith(("eval_", "valid_")) else metric
    if bare not in _EVAL_METRICS[spec.task]:
        raise SpecError(
            "hyperparameters.early_stopping_metric",
            f"{metric!r} is not measured for {spec.task}; use one of {', '.join('eval_' + m for m in _EVAL_METRICS[spec.task])}",
            code="invalid_value",
        )


@dataclass
class _Base:
    """The base model as far as planning needs it: no weights are loaded."""

    path: str
    config: Any
    tokenizer: Any
    limit: int | None  # the model's position limit, if any
    extra: int  # virtual prompt tokens that share the limit


def _load_base(spec: JobSpec) -> _Base:
    """Config and tokenizer of the base model, refusing a task it cannot do or a max_length it cannot hold."""
    hp = spec.hyperparameters
    base_path = modeling.resolve_base_model(spec.base_model)
    config = modeling.load_config(base_path)
    if spec.task == Task.CHAT_SFT and not modeling.can_generate_text(config):
        raise SpecError(
            "task",
            f"chat_sft needs a decoder (causal) language model; {spec.base_model!r} is a {config.model_type} encoder-only model",
            code="unsupported_task",
        )
    if spec.task != Task.CHAT_SFT and not modeling.can_classify(config):
        raise SpecError(
            "task",
            f"{config.model_type} models have no sequence-classification head in transformers",
            code="unsupported_task",
        )
    tokenizer = modeling.load_tokenizer(base_path, spec.task)
    limit = modeling.position_limit(config, tokenizer)
    extra = hp.num_virtual_tokens if spec.method == Method.PROMPT_TUNING else 0
    if hp.max_length != AUTO and limit is not None and hp.max_length + extra > limit:
        why = f" (plus {extra} virtual prompt tokens)" if extra else ""
        raise SpecError(
            "hyperparameters.max_length",
            f"{hp.max_length}{why} exceeds the model's limit of {limit} tokens",
            code="invalid_max_length",
        )
    return _Base(path=base_path, config=config, tokenizer=tokenizer, limit=limit, extra=extra)


def _adapter_targets(
    spec: JobSpec, config: Any, modules: dict[str, str], init: dict | None, *, method_was_auto: bool
) -> list[str] | str | None:
    """The modules a LoRA/QLoRA/IA3 adapter wraps (None for other methods, or an earlier adapter's own).
    When "auto" chose LoRA (a larger model), every linear layer: query/value only left accuracy behind."""
    if spec.method not in ADAPTER_METHODS or (init and init["format"] == "adapter"):
        return None
    default = "all-linear" if method_was_auto else modeling.default_target_modules(config, spec.method)
    targets = spec.hyperparameters.target_modules or default
    if isinstance(targets, list):
        modeling.check_target_modules(targets, modules, spec.method)
    elif spec.method == Method.IA3:
        raise SpecError(
            "hyperparameters.target_modules",
            f"no IA3 defaults for {config.model_type}; list the modules",
            code="invalid_target_module",
        )
    return targets


class _Encoder:
    """Tokenizes row sets into training splits, recording what was dropped and why."""

    def __init__(
        self, spec: JobSpec, hp: Hyperparameters, tokenizer: Any, labels: list[str], reporter: Reporter
    ):
        self.spec, self.hp, self.tokenizer, self.reporter = spec, hp, tokenizer, reporter
        self.cache_dir = cache_dir_for(spec)
        self.tokenizer_fp = data.tokenizer_fingerprint(tokenizer)
        self.label2id = {label: i for i, label in enumerate(labels)}
        self.dropped: dict[str, dict[str, int]] = {}

    def note_read_drops(self, named_rows: dict[str, data.Rows | None]) -> None:
        for name, rows in named_rows.items():
            if rows is not None and rows.dropped:
                self.dropped[name] = dict(rows.dropped)
                count, reasons = (
                    sum(rows.dropped.values()),
                    ", ".join(f"{n} {r}" for r, n in rows.dropped.items()),
                )
                self.reporter.on_log(
                    "warn",
                    f"{name}: dropped {count} rows ({reasons})",
                    code="rows_dropped",
                    params={"file": name, "count": count, "reasons": reasons},
                )

    def split(self, rows: data.Rows, field_name: str, idx: list[int] | None = None) -> data.Split:
        spec, hp = self.spec, self.hp
        enc, hit = data.encode_rows(
            self.tokenizer, rows, spec.task, hp.max_length, self.cache_dir, self.tokenizer_fp
        )
        self.reporter.on_log(
            "info",
            f"{field_name}: {len(rows)} rows tokenized at max_length={hp.max_length}"
            + (" (from cache)" if hit else ""),
            code="tokenized_from_cache" if hit else "tokenized",
            params={"file": field_name, "rows": len(rows), "max_length": hp.max_length},
        )
        keep = list(range(len(rows))) if idx is None else idx
        if spec.task == Task.CHAT_SFT:
            keep = self._with_replies(enc, keep, field_name)
        rows_kept = [rows.rows[i] for i in keep]
        return data.Split(enc.select(keep), data.make_targets(rows_kept, spec.task, self.label2id))

    def _with_replies(self, enc: Any, keep: list[int], field_name: str) -> list[int]:
        """A conversation whose replies were all cut off by max_length teaches nothing."""
        max_length = self.hp.max_length
        kept = [i for i in keep if any(enc.loss_mask[i])]
        if len(kept) < len(keep):
            self.dropped.setdefault(field_name, {})["no assistant tokens within max_length"] = len(
                keep
            ) - len(kept)
            self.reporter.on_log(
                "warn",
                f"{field_name}: {len(keep) - len(kept)} conversations have no reply within max_length={max_length}",
                code="no_reply_within_max_length",
                params={"file": field_name, "count": len(keep) - len(kept), "max_length": max_length},
            )
        if not kept:
            raise SpecError(
                field_name,
                f"no rows left after filtering: every reply is beyond max_length={max_length}",
                code="no_rows",
            )
        return kept


def _resolve_method(spec: JobSpec, n_params: int, init: dict | None) -> JobSpec:
    """Decide method "auto" (docs/engine.md) and run the checks that depend on the method."""
    if spec.method != AUTO:
        return spec
    spec = replace(spec, method=autoconf.auto_method(spec.task, n_params, init["method"] if init else None))
    hp = spec.hyperparameters
    if hp.target_modules is not None and spec.method not in ADAPTER_METHODS:
        raise SpecError(
            "hyperparameters.target_modules",
            f'does not apply to method {spec.method!r}, which "auto" chose for this model; set method to lora',
            code="invalid_value",
        )
    if hp.merge_adapter and spec.method not in ADAPTER_METHODS:
        raise SpecError(
            "hyperparameters.merge_adapter",
            f'"auto" chose method {spec.method!r} for this model, which has no adapter to merge',
            code="invalid_value",
        )
    return spec


def _resolve_auto(
    hp: Hyperparameters,
    *,
    spec: JobSpec,
    device: torch.device,
    precision: str,
    n_params: int,
    n_train: int,
    n_labels: int,
    method_was_auto: bool,
) -> None:
    if hp.batch_size == AUTO:
        hp.batch_size = autoconf.auto_batch_size(device, hp.max_length, n_params, n_train, spec.method)
    if hp.n_epochs == AUTO:
        hp.n_epochs = autoconf.auto_epochs(
            n_train, spec.task, n_labels=n_labels, batch_size=hp.batch_size * hp.gradient_accumulation_steps
        )
    if hp.learning_rate == AUTO:
        hp.learning_rate = autoconf.auto_learning_rate(spec.method, spec.task, n_params)
    if hp.precision == AUTO:
        hp.precision = precision
    if hp.lora_r == AUTO:
        hp.lora_r = autoconf.auto_lora_rank(method_was_auto)
    if hp.lora_alpha == AUTO:
        hp.lora_alpha = 2 * hp.lora_r
    if hp.early_stopping_metric == AUTO:
        hp.early_stopping_metric = autoconf.auto_early_stopping_metric(spec.task)
    if hp.early_stopping_patience == AUTO:
        hp.early_stopping_patience = autoconf.AUTO_PATIENCE if spec.validation_file else None


def prepare(spec: JobSpec, reporter: Reporter | None = None) -> Plan:
    """All checks and decisions, cheapest first, so a bad spec fails in well under a second."""
    reporter = reporter or NullReporter()
    check_static(spec)
    hp = copy.deepcopy(spec.hyperparameters)
    _check_early_stopping_metric(spec)
    device, precision = _check_device_and_precision(spec)
    init = _check_init_from(spec)
    base = _load_base(spec)

    train_rows, valid_rows, replay_rows, prev_rows = _read_split_rows(spec)
    labels = _labels(spec, train_rows, replay_rows, valid_rows, prev_rows, init)
    skeleton = modeling.meta_model(base.config, spec.task, len(labels))
    n_params = sum(p.numel() for p in skeleton.parameters())
    method_was_auto = spec.method == AUTO
    spec = _resolve_method(spec, n_params, init)
    targets = _adapter_targets(
        spec, base.config, modeling.module_types(skeleton), init, method_was_auto=method_was_auto
    )
    if hp.max_length == AUTO:
        lengths = data.token_lengths(base.tokenizer, train_rows.rows, spec.task)
        limit = None if base.limit is None else base.limit - base.extra
        hp.max_length = autoconf.auto_max_length(lengths, spec.task, limit)

    encoder = _Encoder(spec, hp, base.tokenizer, labels, reporter)
    encoder.note_read_drops(
        {
            "train_file": train_rows,
            "validation_file": valid_rows,
            "replay_file": replay_rows,
            "previous_validation_file": prev_rows,
        }
    )
    train = encoder.split(train_rows, "train_file")
    n_replay = 0
    if replay_rows is not None:
        subset = data.replay_subset(len(replay_rows), spec.replay_fraction, spec.seed)
        replay = encoder.split(replay_rows, "replay_file", subset)
        n_replay = len(replay)
        train = data.Split(train.encoded.concat(replay.encoded), train.targets + replay.targets)
    valid = encoder.split(valid_rows, "validation_file") if valid_rows is not None else None
    previous_valid = encoder.split(prev_rows, "previous_validation_file") if prev_rows is not None else None

    _resolve_auto(
        hp,
        spec=spec,
        device=device,
        precision=precision,
        n_params=n_params,
        n_train=len(train),
        n_labels=len(labels),
        method_was_auto=method_was_auto,
    )
    steps_per_epoch = math.ceil(math.ceil(len(train) / hp.batch_size) / hp.gradient_accumulation_steps)
    total_steps = spec.max_steps if spec.max_steps is not None else steps_per_epoch * hp.n_epochs
    if hp.eval_every_steps is None and spec.validation_file:
        hp.eval_every_steps = autoconf.auto_eval_every_steps(
            math.ceil(total_steps / steps_per_epoch), total_steps
        )
    if hp.early_stopping_start_step == AUTO:
        hp.early_stopping_start_step = autoconf.auto_early_stopping_start_step(
            total_steps, early_stopping=hp.early_stopping_patience is not None
        )
    fingerprints = {
        "train_file": train_rows.sha256,
        "validation_file": valid_rows.sha256 if valid_rows is not None else None,
        "replay_file": replay_rows.sha256 if replay_rows is not None else None,
        "previous_validation_file": prev_rows.sha256 if prev_rows is not None else None,
        "tokenizer": encoder.tokenizer_fp,
    }
    return Plan(
        spec=spec,
        hp=hp,
        base_path=base.path,
        base_name=spec.base_model_name or modeling.portable_name(spec.base_model),
        config=base.config,
        tokenizer=base.tokenizer,
        tokenizer_fp=encoder.tokenizer_fp,
        device=device,
        precision=precision,
        labels=labels,
        targets=targets,
        n_params=n_params,
        cache_dir=encoder.cache_dir,
        train=train,
        valid=valid,
        previous_valid=previous_valid,
        train_rows=train_rows,
        n_replay=n_replay,
        fingerprints=fingerprints,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        init_from=init,
        dropped=encoder.dropped,
    )


def validate_spec(spec: JobSpec) -> dict[str, Any]:
    """Cheap checks before compute; returns what the run will do (sizes, labels, steps, resolved hyperparameters)."""
    return prepare(spec).summary()
