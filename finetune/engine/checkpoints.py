"""Checkpoints that make resume exact: trainable weights, optimizer, scheduler, RNG and loop position.

A checkpoint directory holds no absolute paths, so it can be copied to object storage and back to
another machine; resuming needs only it, the same spec and the same data files (checked by sha256).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import SpecError

FORMAT = 1
BEST_WEIGHTS = "best.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainState:
    """Where the loop is and everything it has measured; the metric history is part of the run's result."""

    global_step: int = 0
    epoch: int = 0  # epochs fully completed
    step_in_epoch: int = 0  # optimizer steps done inside the current epoch
    trained_tokens: int = 0
    trained_samples: int = 0
    train_history: list[dict[str, Any]] = field(default_factory=list)
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)  # {"metric", "value", "step"}
    # The best evaluation after training began ({"metric", "value", "step"}): its weights are exported.
    # Unlike `best`, the baseline never counts: the exported model is always a trained one.
    kept: dict[str, Any] = field(default_factory=dict)
    evals_without_improvement: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # informational; not part of the deterministic result
    # The budgeted search that chose this run's method and learning rate (search.SearchOutcome.summary):
    # a resumed run reads the winner here instead of searching again.
    search: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if p.is_dir() and (m := _STEP_DIR.match(p.name)) and (p / "state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    return meta, tensors


def _set_rng_state(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    v, internal, gauss = meta["python"]
    random.setstate((v, tuple(internal), gauss))
    kind, keys, pos, has_gauss, g = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, g))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    output_dir: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    state: TrainState,
    identity: dict[str, Any],
    label_map: dict[str, Any],
    keep_last: int,
    best_weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """`best_weights`: the trainable weights of the best evaluation so far, when they are not this
    step's; stored beside them so a resumed run (maybe on another machine) can still export the best."""
    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.global_step}"
    # Build in a temp dir and rename, so a crash mid-write never leaves a checkpoint that looks complete.
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".step-{state.global_step}-"))
    weights = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(weights, str(tmp / "trainable.safetensors"))
    if best_weights is not None:
        save_file(best_weights, str(tmp / BEST_WEIGHTS))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    extra = {"scheduler": scheduler.state_dict()}
    if scaler is not None:
        extra["scaler"] = scaler.state_dict()
    torch.save(extra, tmp / "scheduler.pt")
    rng_meta, rng_tensors = _rng_state()
    torch.save(rng_tensors, tmp / "rng.pt")
    (tmp / "rng.json").write_text(json.dumps(rng_meta))
    (tmp / "state.json").write_text(
        json.dumps({"format": FORMAT, "state": state.to_dict(), "identity": identity}, indent=1)
    )
    (tmp / "label_map.json").write_text(json.dumps(label_map, indent=1))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    rotate(output_dir, keep_last)
    return final


def rotate(output_dir: str | Path, keep_last: int) -> None:
    for old in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(ckpt: str | Path) -> tuple[TrainState, dict[str, Any]]:
    p = Path(ckpt)
    if not (p / "state.json").is_file():
        raise SpecError(
            "resume_from", f"{ckpt} is not a checkpoint directory (no state.json)", code="invalid_checkpoint"
        )
    raw = json.loads((p / "state.json").read_text())
    if raw.get("format") != FORMAT:
        raise SpecError(
            "resume_from",
            f"checkpoint format {raw.get('format')} is not supported",
            code="invalid_checkpoint",
        )
    return TrainState(**raw["state"]), raw["identity"]


def check_identity(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Resuming with a different model, data or hyperparameters would silently train something else."""
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise SpecError(
                "resume_from",
                f"the checkpoint was made with a different {key} ({saved.get(key)!r} vs now {current.get(key)!r})",
                code="incompatible_checkpoint",
            )


def load_checkpoint(
    ckpt: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any
) -> None:
    p = Path(ckpt)
    weights = load_file(str(p / "trainable.safetensors"))
    params = dict(model.named_parameters())
    trainable = {n for n, q in params.items() if q.requires_grad}
    if set(weights) != trainable:
        raise SpecError(
            "resume_from",
            "the checkpoint's trainable weights do not match this model",
            code="incompatible_checkpoint",
        )
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t.to(params[n].device))
    optimizer.load_state_dict(torch.load(p / "optimizer.pt", map_location="cpu", weights_only=True))
    extra = torch.load(p / "scheduler.pt", map_location="cpu", weights_only=True)
    scheduler.load_state_dict(extra["scheduler"])
    if scaler is not None and "scaler" in extra:
        scaler.load_state_dict(extra["scaler"])
    # RNG last: building the model and optimizer above consumed random numbers.
    _set_rng_state(json.loads((p / "rng.json").read_text()), torch.load(p / "rng.pt", weights_only=True))


def load_best_weights(ckpt: str | Path) -> dict[str, torch.Tensor] | None:
    """The best evaluation's trainable weights stored with a checkpoint, if they differ from its own."""
    p = Path(ckpt) / BEST_WEIGHTS
    return load_file(str(p)) if p.is_file() else None
