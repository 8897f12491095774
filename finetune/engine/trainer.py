"""The training loop: a plain torch loop, so resume is exact and control is polled every step."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import artifacts, checkpoints, data, modeling, search
from .checkpoints import TrainState
from .metrics import (
    classification_metrics,
    majority_baseline,
    metric_direction,
    multilabel_metrics,
    normalize_metric_name,
    sft_metrics,
)
from .planning import Plan, prepare
from .predictions import write_validation_predictions
from .reporting import CANCEL, PAUSE, NullReporter, Progress, Reporter
from .spec import JobSpec, check_static
from .vocabulary import ADAPTER_METHODS, Method, Task


@dataclass
class TrainResult:
    status: str  # "succeeded" | "cancelled" | "paused"
    output_dir: str
    metrics: dict
    last_checkpoint: str | None
    steps: int
    trained_tokens: int
    resolved_spec: dict
    # The budgeted search's summary (winner, trials, time) when hyperparameters.search was set.
    search: dict | None = None


# ---------------------------------------------------------------------------------------------- loss & eval


class Objective:
    """Loss and evaluation for one task; the model only produces logits."""

    def __init__(self, plan: Plan) -> None:
        self.task = plan.spec.task
        self.labels = plan.labels
        hp = plan.hp
        self.smoothing = hp.label_smoothing
        self.weight: torch.Tensor | None = None
        if hp.class_weights:
            self.weight = balanced_class_weights(plan).to(plan.device)
        self.prompt_tokens = hp.num_virtual_tokens if plan.spec.method == Method.PROMPT_TUNING else 0

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits
        if self.task == Task.CHAT_SFT and self.prompt_tokens:
            logits = logits[:, -batch["input_ids"].shape[1] :]  # drop the virtual prompt positions
        return logits.float()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, train: bool = True) -> torch.Tensor:
        if self.task == Task.CLASSIFICATION:
            if train:
                return F.cross_entropy(logits, labels, weight=self.weight, label_smoothing=self.smoothing)
            return F.cross_entropy(logits, labels)
        if self.task == Task.MULTILABEL_CLASSIFICATION:
            if train:
                target = labels * (1 - self.smoothing) + 0.5 * self.smoothing
                return F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.weight)
            return F.binary_cross_entropy_with_logits(logits, labels)
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
        shift_labels = labels[:, 1:].reshape(-1)
        return F.cross_entropy(shift_logits, shift_labels, ignore_index=data.IGNORE_INDEX)


def balanced_class_weights(plan: Plan) -> torch.Tensor:
    """'Balanced' weights (n / (k * n_c)); for multi-label, BCE pos_weight = negatives / positives per label."""
    k = len(plan.labels)
    if plan.spec.task == Task.CLASSIFICATION:
        counts = torch.bincount(torch.tensor(plan.train.targets), minlength=k).float()
        return len(plan.train) / (k * counts.clamp(min=1))
    t = torch.tensor(plan.train.targets, dtype=torch.float32)
    pos = t.sum(0)
    return (len(t) - pos) / pos.clamp(min=1)


def evaluate(
    model: nn.Module,
    split: data.Split,
    plan: Plan,
    objective: Objective,
    autocast: Callable[[], Any],
    n_labels: int | None = None,
) -> dict[str, Any]:
    """Validation metrics; n_labels scores only the first n labels' logits (the earlier version's head)."""
    task = plan.spec.task
    labels_used = plan.labels[:n_labels] if n_labels else plan.labels
    bs = max(1, plan.hp.batch_size * 2)
    # Length-sorted batches pad less; metrics do not depend on order.
    order = sorted(range(len(split)), key=lambda i: len(split.encoded.input_ids[i]))
    pad = plan.tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    loss_sum, n_items, n_correct = 0.0, 0, 0
    preds: list[Any] = []
    golds: list[Any] = []
    with torch.no_grad():
        for idx in data.batches_of(order, bs):
            batch = {k: v.to(plan.device) for k, v in data.collate(split, idx, task, pad).items()}
            with autocast():
                logits = objective.logits(model, batch)
            labels = batch["labels"]
            if n_labels:
                logits = logits[:, :n_labels]
                if task == Task.MULTILABEL_CLASSIFICATION:
                    labels = labels[:, :n_labels]
            if task == Task.CHAT_SFT:
                shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
                mask = shift_labels != data.IGNORE_INDEX
                loss_sum += F.cross_entropy(
                    shift_logits.reshape(-1, logits.shape[-1]),
                    shift_labels.reshape(-1),
                    ignore_index=data.IGNORE_INDEX,
                    reduction="sum",
                ).item()
                n_items += int(mask.sum())
                n_correct += int(((shift_logits.argmax(-1) == shift_labels) & mask).sum())
            else:
                loss_sum += objective.loss(logits, labels, train=False).item() * len(idx)
                n_items += len(idx)
                if task == Task.CLASSIFICATION:
                    preds += logits.argmax(-1).tolist()
                    golds += labels.tolist()
                else:
                    preds += (logits > 0).int().tolist()  # sigmoid(x) > 0.5
                    golds += labels.int().tolist()
    if was_training:
        model.train()
    if task == Task.CHAT_SFT:
        return sft_metrics(loss_sum, n_items, n_correct)
    import numpy as np

    out: dict[str, Any] = {"loss": round(loss_sum / max(n_items, 1), 6)}
    if task == Task.CLASSIFICATION:
        out.update(classification_metrics(golds, preds, labels_used))
    else:
        out.update(multilabel_metrics(np.asarray(golds), np.asarray(preds), labels_used))
    return out


def _prefixed(prefix: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class _Session:
    """Counters of this process's share of the run (a resumed run starts a new session)."""

    start_step: int
    started: float = field(default_factory=time.perf_counter)
    compute_seconds: float = 0.0
    samples: int = 0
    tokens: int = 0


class Run:
    def __init__(self, plan: Plan, reporter: Reporter) -> None:
        self.plan = plan
        self.reporter = reporter
        self.spec: JobSpec = plan.spec
        self.hp = plan.hp
        self.objective = Objective(plan)
        self.output_dir = Path(self.spec.output_dir)
        self.state = TrainState()
        self.model: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.scheduler: Any
        self.scaler: Any = None
        self.last_checkpoint: str | None = None
        self.checkpointed_at = time.monotonic()
        self._pad = plan.tokenizer.pad_token_id
        # CPU copies of the trainable weights at the best evaluation so far (state.best["step"]):
        # those are the weights exported, not the last ones.
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.exported_eval: dict[str, Any] | None = None
        # Search trials are thrown away: they write no checkpoints (a pause ends them without one).
        self.save_checkpoints = True

    # -- setup

    def autocast(self) -> Any:
        if self.plan.device.type != "cuda" or self.plan.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.plan.precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def identity(self) -> dict[str, Any]:
        """What must not change between a checkpoint and its resume (paths and device may)."""
        resolved = self.plan.resolved_spec()
        for k in (
            "output_dir",
            "device",
            "cache_dir",
            "train_file",
            "validation_file",
            "replay_file",
            "previous_validation_file",
            "init_from",
        ):
            resolved.pop(k, None)
        resolved["base_model"] = self.plan.base_name
        # "auto" precision legitimately resolves differently on another machine; an explicit one must match.
        resolved["hyperparameters"]["precision"] = self.spec.hyperparameters.precision
        # When to checkpoint changes nothing that is trained, and checkpoints made before the
        # setting existed must still resume.
        resolved["hyperparameters"].pop("checkpoint_every_minutes", None)
        # Likewise when patience starts counting: it may end the run sooner or later, but the steps a
        # checkpoint holds were trained the same way (and jobs checkpointed before it existed resume).
        resolved["hyperparameters"].pop("early_stopping_start_step", None)
        # The search only chose the method and learning rate, which are in the identity already; a
        # search's spec and its winner's plain spec train the same run.
        resolved["hyperparameters"].pop("search", None)
        return {**resolved, "data": self.plan.fingerprints, "labels": self.plan.labels}

    def build(self) -> None:
        p = self.plan
        self.model = modeling.build_model(
            base_path=p.base_path,
            task=p.spec.task,
            method=p.spec.method,
            hp=self.hp,
            labels=p.labels,
            tokenizer=p.tokenizer,
            config=p.config,
            targets=p.targets,
            device=p.device,
            init_from=p.init_from,
            seed=p.spec.seed,
        )
        self.model.train()
        self.trainable = [x for _, x in modeling.trainable_parameters(self.model)]
        decay, no_decay = [], []
        for name, param in modeling.trainable_parameters(self.model):
            # Biases and norms are not regularised (standard AdamW practice).
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.hp.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.hp.learning_rate)
        from transformers import get_linear_schedule_with_warmup

        warmup = int(round(self.hp.warmup_ratio * p.total_steps))
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, p.total_steps)
        if p.precision == "fp16":
            # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
            self.scaler = torch.amp.GradScaler("cuda")
        n_train = sum(x.numel() for _, x in modeling.trainable_parameters(self.model))
        n_all = sum(x.numel() for x in self.model.parameters())
        share = f"{100 * n_train / max(n_all, 1):.2f}"
        self.reporter.on_log(
            "info",
            f"model ready: {n_train:,} trainable of {n_all:,} parameters ({share}%) on {p.device}",
            code="model_ready",
            params={
                "trainable": f"{n_train:,}",
                "total": f"{n_all:,}",
                "percent": share,
                "device": str(p.device),
            },
        )

    # -- evaluation

    def run_eval(self, *, before_training: bool = False) -> dict[str, Any]:
        p = self.plan
        out: dict[str, Any] = {
            "step": self.state.global_step,
            "epoch": round(self.state.global_step / p.steps_per_epoch, 4),
        }
        if p.valid is not None:
            out.update(_prefixed("valid", evaluate(self.model, p.valid, p, self.objective, self.autocast)))
        if p.previous_valid is not None:
            out.update(
                _prefixed(
                    "previous_valid",
                    evaluate(
                        self.model,
                        p.previous_valid,
                        p,
                        self.objective,
                        self.autocast,
                        self._earlier_head(before_training),
                    ),
                )
            )
        return out

    def _earlier_head(self, before_training: bool) -> int | None:
        """Before training, score the earlier version exactly as it was: its own labels only, not the new zero rows."""
        p = self.plan
        if (
            not before_training
            or p.init_from is None
            or p.spec.task == Task.CHAT_SFT
            or p.previous_valid is None
        ):
            return None
        n_old = len(p.init_from["labels"])
        if n_old >= len(p.labels):
            return None
        t = p.previous_valid.targets
        fits = (
            all(x < n_old for x in t)
            if p.spec.task == Task.CLASSIFICATION
            else all(not any(row[n_old:]) for row in t)
        )
        return n_old if fits else None

    def baseline(self) -> None:
        """Scores before any training: the untuned model and, for classification, the majority class."""
        p = self.plan
        if p.valid is None and p.previous_valid is None:
            return
        before = self.run_eval(before_training=True)
        base: dict[str, Any] = {"base_model": before}
        if p.valid is not None and p.spec.task != Task.CHAT_SFT:
            base["majority_class"] = majority_baseline(
                p.train.targets, p.valid.targets, p.labels, p.spec.task
            )
        self.state.baseline = base
        self.state.eval_history.append(before)
        self.reporter.on_eval(before)
        if p.valid is not None:
            key = normalize_metric_name(self.hp.early_stopping_metric)
            if key in before:
                self.state.best = {"metric": key, "value": before[key], "step": 0}
        self.reporter.on_log(
            "info",
            "baseline before tuning: " + _short(before),
            code="baseline",
            params={"metrics": _short(before)},
        )

    def after_eval(self, metrics: dict[str, Any]) -> bool:
        """Track the best score; True when early stopping says stop."""
        key = normalize_metric_name(self.hp.early_stopping_metric)
        if key not in metrics:
            return False
        value = metrics[key]
        if self._better(key, value, self.state.kept.get("value")):
            self.state.kept = {"metric": key, "value": value, "step": metrics["step"]}
            self.best_weights = self._trainable_copy()
        if self._better(key, value, self.state.best.get("value")):
            self.state.best = {"metric": key, "value": value, "step": metrics["step"]}
            self.state.evals_without_improvement = 0
        elif metrics["step"] >= (self.hp.early_stopping_start_step or 0):
            self.state.evals_without_improvement += 1
        patience = self.hp.early_stopping_patience
        return patience is not None and self.state.evals_without_improvement >= patience

    @staticmethod
    def _better(key: str, value: float, than: float | None) -> bool:
        return than is None or (value < than if metric_direction(key) == "min" else value > than)

    def _trainable_copy(self) -> dict[str, torch.Tensor]:
        return {
            n: p.detach().to("cpu", copy=True).contiguous()
            for n, p in self.model.named_parameters()
            if p.requires_grad
        }

    def final_evaluation(self) -> dict[str, Any] | None:
        """The one evaluation of the model that is exported: the best evaluation's weights are put
        back (when a later step was worse), then scored once more, so the reported metrics are the
        exported model's own. None without a validation set."""
        p, st = self.plan, self.state
        if p.valid is None and p.previous_valid is None:
            return None
        kept = st.kept.get("step", st.global_step) if self.best_weights is not None else st.global_step
        if kept != st.global_step and self.best_weights is not None:
            params = dict(self.model.named_parameters())
            with torch.no_grad():
                for n, t in self.best_weights.items():
                    params[n].copy_(t.to(params[n].device))
        metrics = self.run_eval()
        metrics["step"] = kept
        metrics["epoch"] = round(kept / p.steps_per_epoch, 4)
        self.exported_eval = metrics
        self.reporter.on_log(
            "info",
            f"exported the weights of step {kept}: " + _short(metrics),
            code="exported_weights",
            params={"step": kept, "metrics": _short(metrics)},
        )
        return metrics

    # -- checkpoints

    def checkpoint(self, metrics: dict[str, Any]) -> str:
        path = checkpoints.save_checkpoint(
            self.output_dir,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            state=self.state,
            identity=self.identity(),
            label_map=artifacts.label_map(self.plan.labels, self.spec.task),
            keep_last=self.hp.keep_last_checkpoints,
            best_weights=self.best_weights
            if self.state.kept.get("step", self.state.global_step) != self.state.global_step
            else None,
        )
        self.last_checkpoint = str(path)
        self.checkpointed_at = time.monotonic()
        self.reporter.on_checkpoint(step=self.state.global_step, path=str(path), metrics=metrics)
        return str(path)

    def resume(self, ckpt: str) -> None:
        state, identity = checkpoints.read_state(ckpt)
        checkpoints.check_identity(identity, self.identity())
        checkpoints.load_checkpoint(
            ckpt, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler
        )
        self.state = state
        self.last_checkpoint = str(ckpt)
        if state.kept.get("step") == state.global_step:
            self.best_weights = self._trainable_copy()
        else:
            # None for checkpoints written before best weights were kept: the last ones are exported.
            self.best_weights = checkpoints.load_best_weights(ckpt)
        # By step, not path: the folder is local to this machine and means nothing to whoever reads the log.
        self.reporter.on_log(
            "info",
            f"resumed from the checkpoint at step {state.global_step}",
            code="resumed_from_checkpoint",
            params={"step": state.global_step},
        )

    # -- loop

    def loop(self) -> str:
        """Train to the end (or to early stopping, a cancel or a pause); returns the status."""
        p, st = self.plan, self.state
        session = _Session(start_step=st.global_step)
        self.checkpointed_at = time.monotonic()
        while st.global_step < p.total_steps:
            order = data.epoch_order(len(p.train), self.spec.seed, st.epoch)
            if self.hp.group_by_length:
                lengths = [len(ids) for ids in p.train.encoded.input_ids]
                batches = data.length_grouped_batches(
                    order, lengths, self.hp.batch_size, seed=self.spec.seed, epoch=st.epoch
                )
            else:
                batches = data.batches_of(order, self.hp.batch_size)
            while st.step_in_epoch < p.steps_per_epoch and st.global_step < p.total_steps:
                interrupted = self._obey_control()
                if interrupted:
                    return interrupted
                self._report_step(self._train_step(batches, session), session)
                epoch_done = st.step_in_epoch == p.steps_per_epoch
                if epoch_done:
                    # Advance before any checkpoint so a resume starts the next epoch's shuffle.
                    st.epoch += 1
                    st.step_in_epoch = 0
                if self._evaluate_and_checkpoint(epoch_done=epoch_done):
                    st.train_seconds += time.perf_counter() - session.started
                    return "succeeded"
                if epoch_done:
                    break
        st.train_seconds += time.perf_counter() - session.started
        return "succeeded"

    def _obey_control(self) -> str | None:
        """ "cancelled" or "paused" (after a checkpoint) when the reporter asks, else None."""
        control = self.reporter.control()
        if control == CANCEL:
            step = self.state.global_step
            self.reporter.on_log("info", f"cancelled at step {step}", code="cancelled", params={"step": step})
            return "cancelled"
        if control == PAUSE:
            if self.save_checkpoints:
                self.checkpoint(self._last_metrics())
            step = self.state.global_step
            self.reporter.on_log("info", f"paused at step {step}", code="paused", params={"step": step})
            return "paused"
        return None

    def _train_step(self, batches: list[list[int]], session: _Session) -> dict[str, Any]:
        """One optimizer step over `gradient_accumulation_steps` batches; returns its metrics."""
        p, hp, st = self.plan, self.hp, self.state
        t0 = time.perf_counter()
        accum = hp.gradient_accumulation_steps
        group = batches[st.step_in_epoch * accum : (st.step_in_epoch + 1) * accum]
        loss_total = 0.0
        for idx in group:
            batch = {
                k: v.to(p.device, non_blocking=True)
                for k, v in data.collate(p.train, idx, p.spec.task, self._pad).items()
            }
            with self.autocast():
                loss = self.objective.loss(self.objective.logits(self.model, batch), batch["labels"])
            scaled = loss / len(group)
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_total += loss.item()
            n_tok = int(batch["attention_mask"].sum())
            st.trained_tokens += n_tok
            st.trained_samples += len(idx)
            session.tokens += n_tok
            session.samples += len(idx)
        grad_norm, lr = self._optimizer_step()
        session.compute_seconds += time.perf_counter() - t0
        st.global_step += 1
        st.step_in_epoch += 1
        step_metrics: dict[str, Any] = {
            "step": st.global_step,
            "epoch": round(st.global_step / p.steps_per_epoch, 4),
            "train_loss": round(loss_total / len(group), 6),
            "learning_rate": lr,
        }
        if grad_norm is not None:
            step_metrics["grad_norm"] = round(grad_norm, 6) if math.isfinite(grad_norm) else grad_norm
        return step_metrics

    def _optimizer_step(self) -> tuple[float | None, float]:
        """Clip, step and schedule; returns (gradient norm before clipping, learning rate used)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if self.hp.max_grad_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.hp.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, lr

    def _report_step(self, step_metrics: dict[str, Any], session: _Session) -> None:
        st, total = self.state, self.plan.total_steps
        st.train_history.append(step_metrics)
        self.reporter.on_step(step_metrics)
        elapsed = time.perf_counter() - session.started
        done_here = st.global_step - session.start_step
        compute = max(session.compute_seconds, 1e-9)
        self.reporter.on_progress(
            Progress(
                step=st.global_step,
                total_steps=total,
                epoch=step_metrics["epoch"],
                percent=round(100.0 * st.global_step / total, 2),
                eta_seconds=round(elapsed / done_here * (total - st.global_step), 1),
                samples_per_second=round(session.samples / compute, 2),
                tokens_per_second=round(session.tokens / compute, 1),
            )
        )

    def _evaluate_and_checkpoint(self, *, epoch_done: bool) -> bool:
        """Evaluate and checkpoint when due after this step; True when early stopping ends the run."""
        p, hp, st = self.plan, self.hp, self.state
        last = st.global_step >= p.total_steps
        eval_every = hp.eval_every_steps
        has_eval = p.valid is not None or p.previous_valid is not None
        stop = False
        if has_eval and (
            (eval_every and st.global_step % eval_every == 0) or (not eval_every and epoch_done) or last
        ):
            metrics = self.run_eval()
            st.eval_history.append(metrics)
            self.reporter.on_eval(metrics)
            stop = self.after_eval(metrics)
            if stop:
                st.stopped_early = True
                self.reporter.on_log(
                    "info",
                    f"early stopping at step {st.global_step}: {st.best['metric']} has not improved for {hp.early_stopping_patience} evaluations",
                    code="early_stopping",
                    params={
                        "step": st.global_step,
                        "metric": st.best["metric"],
                        "patience": hp.early_stopping_patience,
                    },
                )
        if self.save_checkpoints and not last and not stop and self._checkpoint_due(epoch_done=epoch_done):
            self.checkpoint(self._last_metrics())
        return stop

    def _checkpoint_due(self, *, epoch_done: bool) -> bool:
        """At each epoch's end, every `save_every_steps`, and `checkpoint_every_minutes` after the
        last checkpoint (so a run killed mid-epoch loses at most that much work)."""
        hp = self.hp
        if epoch_done or (hp.save_every_steps and self.state.global_step % hp.save_every_steps == 0):
            return True
        minutes = hp.checkpoint_every_minutes
        return minutes is not None and time.monotonic() - self.checkpointed_at >= 60 * minutes

    def _last_metrics(self) -> dict[str, Any]:
        out = (
            dict(self.state.train_history[-1])
            if self.state.train_history
            else {"step": self.state.global_step}
        )
        if self.state.eval_history and self.state.eval_history[-1]["step"] == self.state.global_step:
            out.update({k: v for k, v in self.state.eval_history[-1].items() if isinstance(v, (int, float))})
        return out

    # -- results

    def metrics(self) -> dict[str, Any]:
        st = self.state
        last = (
            st.eval_history[-1]
            if st.eval_history and st.eval_history[-1]["step"] == st.global_step and st.global_step > 0
            else None
        )
        final = self.exported_eval or last
        out: dict[str, Any] = {
            "final": final,
            "last": last,
            "kept": self._kept(final),
            "baseline": st.baseline,
            "best": st.best or None,
            "train": {
                "steps": st.global_step,
                "epochs": round(st.global_step / self.plan.steps_per_epoch, 4),
                "final_train_loss": st.train_history[-1]["train_loss"] if st.train_history else None,
                "trained_tokens": st.trained_tokens,
                "trained_samples": st.trained_samples,
                "stopped_early": st.stopped_early,
                "train_seconds": round(st.train_seconds, 3),
            },
            "history": {"train": st.train_history, "eval": st.eval_history},
        }
        if st.search:
            out["search"] = st.search
        gains = {}
        base = (st.baseline or {}).get("base_model") or {}
        for k, v in (final or {}).items():
            if (
                k.startswith("valid_")
                and isinstance(v, (int, float))
                and isinstance(base.get(k), (int, float))
            ):
                gains[k] = round(v - base[k], 6)
        if gains:
            out["gain_over_base_model"] = gains
        if final and self.plan.previous_valid is not None and base:
            forgetting = {}
            for k, v in final.items():
                if (
                    k.startswith("previous_valid_")
                    and isinstance(v, (int, float))
                    and isinstance(base.get(k), (int, float))
                ):
                    forgetting[k] = {"before": base[k], "after": v, "change": round(v - base[k], 6)}
            out["forgetting"] = forgetting
        return out

    def _kept(self, final: dict[str, Any] | None) -> dict[str, Any] | None:
        """Which step's weights were exported, and why (the model card says it in words)."""
        st = self.state
        if final is None or self.exported_eval is None:
            return None
        reason = "best" if st.kept and st.kept.get("step") == final["step"] else "last"
        metric = normalize_metric_name(self.hp.early_stopping_metric)
        return {
            "step": final["step"],
            "last_step": st.global_step,
            "metric": metric,
            "value": final.get(metric),
            "reason": reason,
            "stopped_early": st.stopped_early,
            # Why training ended where it did: `patience` evaluations without improvement, or the plan's steps.
            "planned_steps": self.plan.total_steps,
            "patience": self.hp.early_stopping_patience,
            "patience_from_step": self.hp.early_stopping_start_step,
        }


def _short(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))


def train_trial(plan: Plan, reporter: Reporter) -> tuple[str, Callable[[], dict[str, Any]]]:
    """One search trial (search.TrialTrainer): train the plan's steps with no baseline, checkpoint or
    export; returns the loop's status and a function giving the trial's final validation metrics."""
    run = Run(plan, reporter)
    run.save_checkpoints = False
    run.build()
    status = run.loop()

    def final_metrics() -> dict[str, Any]:
        h = run.state.eval_history
        return dict(h[-1]) if h and h[-1]["step"] == run.state.global_step else run.run_eval()

    return status, final_metrics


def _search_first(
    spec: JobSpec, reporter: Reporter, earlier: dict
) -> tuple[JobSpec, dict | None, TrainResult | None]:
    """With hyperparameters.search: the winner's spec and the search summary (read back from the
    checkpoint when resuming), or the result to return when the search was cancelled or paused."""
    if spec.hyperparameters.search is None:
        return spec, None, None
    check_static(spec)  # a bad search setting fails before any planning
    if earlier.get("winner"):
        return search.spec_for_winner(spec, earlier["winner"]), earlier, None
    outcome = search.run_search(spec, reporter, train_trial=train_trial)
    if outcome.status != "succeeded":
        stopped = TrainResult(
            status=outcome.status,
            output_dir=str(spec.output_dir),
            metrics={"search": outcome.summary},
            last_checkpoint=None,
            steps=0,
            trained_tokens=0,
            resolved_spec=spec.to_dict(),
            search=outcome.summary,
        )
        return spec, outcome.summary, stopped
    return search.spec_for_winner(spec, outcome.summary["winner"]), outcome.summary, None


def train(spec: JobSpec, reporter: Reporter | None = None, *, resume_from: str | None = None) -> TrainResult:
    """Fine-tune per the spec (after the budgeted search, when it asks for one). Raises SpecError
    (before any compute) for bad input."""
    reporter = reporter or NullReporter()
    # Read first: a wrong path fails fast, before loading the model; a finished search is not redone.
    earlier_search = checkpoints.read_state(resume_from)[0].search if resume_from is not None else {}
    searched = spec
    spec, search_summary, stopped = _search_first(spec, reporter, earlier_search)
    if stopped is not None:
        return stopped
    plan = prepare(spec, reporter)
    s = plan.summary()
    reporter.on_log(
        "info",
        f"plan: {s['n_train']} training rows, {s['n_valid']} validation rows, {s['total_steps']} steps "
        f"(epochs={s['n_epochs']}, batch={s['batch_size']}, lr={s['learning_rate']}, max_length={s['max_length']}, "
        f"device={s['device']}, precision={s['precision']})",
        code="plan",
        params={
            key: s[key]
            for key in (
                "n_train",
                "n_valid",
                "total_steps",
                "n_epochs",
                "batch_size",
                "learning_rate",
                "max_length",
                "device",
                "precision",
            )
        },
    )
    run = Run(plan, reporter)
    run.build()
    if resume_from is not None:
        run.resume(resume_from)
    else:
        artifacts.remove_stale(spec.output_dir)
        run.baseline()
    if search_summary is not None:
        run.state.search = search_summary
    status = run.loop()
    if status == "succeeded":
        run.final_evaluation()
    resolved = plan.resolved_spec()
    if search_summary is not None:
        resolved["hyperparameters"]["search"] = searched.hyperparameters.search
    if plan.spec.method in ADAPTER_METHODS and resolved["hyperparameters"]["target_modules"] is None:
        pcfg = next(iter(run.model.peft_config.values()))  # type: ignore[attr-defined]
        resolved["hyperparameters"]["target_modules"] = (
            sorted(pcfg.target_modules) if pcfg.target_modules else None
        )
    metrics = run.metrics()
    if status == "succeeded":
        write_validation_predictions(
            plan=plan, model=run.model, logits=run.objective.logits, autocast=run.autocast
        )
        artifacts.export(plan, run.model, metrics, resolved, reporter)
    return TrainResult(
        status=status,
        output_dir=str(spec.output_dir),
        metrics=metrics,
        last_checkpoint=run.last_checkpoint,
        steps=run.state.global_step,
        trained_tokens=run.state.trained_tokens,
        resolved_spec=resolved,
        search=search_summary,
    )
