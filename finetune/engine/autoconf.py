"""Resolving "auto" hyperparameters from the data, the model and the device.

Each rule is deliberately simple and documented in docs/engine.md, so a user can predict what "auto" picks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .vocabulary import Method, Task

# Learning rates that train reliably for each method (full fine-tuning moves every weight, so it needs
# the smallest; prompt tuning moves only a few embeddings, so it needs the largest).
_LR = {
    (Method.FULL, "cls"): 5e-5,  # 1e-4 below SMALL_MODEL_PARAMETERS (see auto_learning_rate)
    (Method.FULL, "sft"): 2e-5,
    (Method.LORA, "cls"): 2e-3,
    (Method.LORA, "sft"): 2e-4,
    (Method.QLORA, "cls"): 2e-3,
    (Method.QLORA, "sft"): 2e-4,
    (Method.IA3, "cls"): 5e-3,
    (Method.IA3, "sft"): 3e-3,
    (Method.PROMPT_TUNING, "cls"): 3e-2,
    (Method.PROMPT_TUNING, "sft"): 3e-2,
}


# Below this size a model is "small": full fine-tuning costs little more than LoRA per step (the
# backward pass through a 6-layer encoder is cheap) and learns more, so "auto" picks it, and small
# encoders take a larger full-fine-tuning rate. MiniLM-L6 (22M), BERT-base (110M) are small.
SMALL_MODEL_PARAMETERS = 150e6

# Classification: optimizer steps "auto" aims at, by data size and number of classes (docs/engine.md,
# "How the auto rules were chosen"). Many classes need more samples seen: each class must be seen
# often enough for its decision boundary to settle.
SAMPLES_SEEN_FLOOR = 60_000
SAMPLES_SEEN_PER_CLASS = 1200
MIN_OPTIMIZER_STEPS = 200
MAX_EPOCHS = 20

# Evaluations "auto" aims at in a run, so the best checkpoint is picked among enough candidates.
TARGET_EVALUATIONS = 5
AUTO_PATIENCE = 3
# Patience counts only from this fraction of the planned steps (docs/engine.md, financial tweets).
EARLY_STOPPING_START_FRACTION = 2 / 3
AUTO_WARMUP_RATIO = 0.06


def auto_method(task: str, n_params: int, init_method: str | None = None) -> str:
    """Full fine-tuning for small models (LoRA saves nothing worth its lower accuracy there), LoRA on
    every linear layer for larger ones; a continued model keeps the method of the version it continues."""
    if init_method:
        return init_method
    return Method.FULL if n_params < SMALL_MODEL_PARAMETERS else Method.LORA


def auto_lora_rank(method_was_auto: bool) -> int:
    """r=8 for an explicit LoRA (what it always was); r=16 when "auto" chose LoRA on all linear layers
    for a larger model, where the extra capacity is cheap next to the frozen base."""
    return 16 if method_was_auto else 8


def auto_learning_rate(method: str, task: str, n_params: int) -> float:
    """The table rate (tuned on ~20-500M parameter models with linear decay); small encoders fully
    fine-tuned take 1e-4 (the rate of the Banking77 reference loop); billion-parameter models are more
    fragile, so they get a fifth of it (prompt tuning excepted: it only trains the prompt)."""
    lr = _LR[(method, "sft" if task == Task.CHAT_SFT else "cls")]
    if method == Method.FULL and task != Task.CHAT_SFT and n_params < 100e6:
        lr = 1e-4
    if n_params >= 1e9 and method != Method.PROMPT_TUNING:
        lr /= 5
    return lr


def auto_max_length(lengths: Sequence[int], task: str, limit: int | None) -> int:
    """99th percentile (classification) or 98th (chat) rounded up to a multiple of 8. Batches are padded
    to their longest row, so a high percentile costs only on the long rows; Banking77's p95 (37 tokens)
    would cut 3.4 % of its rows at 40, p99 (53) gives 56 and cuts 0.3 %, as the reference's 64 does."""
    q = 98 if task == Task.CHAT_SFT else 99
    pct = float(np.percentile(np.asarray(lengths), q)) if len(lengths) else 128.0
    value = max(16, int(math.ceil(pct / 8.0) * 8))
    cap = (
        2048 if task == Task.CHAT_SFT else 512
    )  # beyond this "auto" should not silently pick quadratic-cost lengths
    value = min(value, cap)
    if limit is not None:
        value = min(value, limit)
    return value


def auto_epochs(n_train: int, task: str, *, n_labels: int = 2, batch_size: int = 32) -> int:
    """Classification: enough passes to see max(60k, 1200 x classes) samples and to make at least 200
    optimizer steps, at most 20 epochs; chat: ~1k conversations seen (2-5 epochs, 1 from 20k rows)."""
    n = max(n_train, 1)
    if task == Task.CHAT_SFT:
        return 1 if n_train >= 20_000 else int(min(5, max(2, math.ceil(1_000 / n))))
    samples = max(SAMPLES_SEEN_FLOOR, SAMPLES_SEEN_PER_CLASS * n_labels)
    steps_per_epoch = math.ceil(n / max(batch_size, 1))
    epochs = max(math.ceil(samples / n), math.ceil(MIN_OPTIMIZER_STEPS / steps_per_epoch))
    return int(min(MAX_EPOCHS, max(1, epochs)))


def auto_eval_every_steps(n_epochs: int, total_steps: int) -> int | None:
    """None (each epoch) when that gives enough evaluations, else a step cadence that gives ~5."""
    if n_epochs >= TARGET_EVALUATIONS or total_steps < TARGET_EVALUATIONS:
        return None
    return int(math.ceil(total_steps / TARGET_EVALUATIONS))


def auto_early_stopping_start_step(total_steps: int, *, early_stopping: bool) -> int | None:
    """Two thirds of the planned steps: by then linear decay has the rate at a third of its peak, where
    the metric that dipped after an early, high-rate peak can climb back (financial tweets: 87.94 % at
    epoch 2, 85.59 % at epoch 4, 87.86 % at epoch 5, where patience 3 had stopped the run; measured in
    docs/engine.md, the last epochs did not beat epoch 2 there). None without early stopping."""
    if not early_stopping:
        return None
    return int(math.ceil(total_steps * EARLY_STOPPING_START_FRACTION))


def auto_early_stopping_metric(task: str) -> str:
    """What users judge a model by: accuracy (single-label), macro-F1 (multi-label: exact match is
    harsh and flat), loss (chat). Validation loss rises from overconfidence while accuracy still climbs."""
    if task == Task.CLASSIFICATION:
        return "eval_accuracy"
    if task == Task.MULTILABEL_CLASSIFICATION:
        return "eval_f1_macro"
    return "eval_loss"


def auto_batch_size(device: torch.device, max_length: int, n_params: int, n_train: int, method: str) -> int:
    """Largest power of two whose activations fit a token budget scaled by device memory and model size."""
    if device.type == "cuda":
        mem_gb = torch.cuda.get_device_properties(device).total_memory / 2**30
        size_factor = max(
            1.0, n_params / 350e6
        )  # activations grow with width/depth; ~350M params as the unit
        if method == Method.FULL:
            size_factor *= 2.0  # optimizer states and full gradients compete for the same memory
        budget = mem_gb * 2048 / size_factor
        cap = 64
    else:
        budget = 4096.0  # CPU: larger batches only add latency per step, not throughput
        cap = 32
    bs = max(1, int(budget // max(max_length, 1)))
    # Small datasets need updates more than throughput: keep at least ~12 optimizer steps per epoch.
    bs = min(bs, cap, max(1, n_train // 12))
    return 2 ** int(math.floor(math.log2(bs)))


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def resolve_device(requested: str) -> torch.device:
    from .errors import SpecError

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SpecError(
            "device",
            f"{requested!r} was requested but this machine has no CUDA GPU",
            code="device_unavailable",
        )
    dev = torch.device(requested)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SpecError(
            "device",
            f"{requested!r}: only {torch.cuda.device_count()} GPU(s) here",
            code="device_unavailable",
        )
    return dev
