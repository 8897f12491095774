"""What a model folder is: an engine artifact (engine.json, label_map.json, ...) or a plain Hugging Face folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.engine.vocabulary import Task

from .errors import ArtifactError

CLASSIFICATION = Task.CLASSIFICATION
MULTILABEL = Task.MULTILABEL_CLASSIFICATION
# What the runtime serves for a chat model: an engine chat_sft artifact or a plain causal-LM folder.
CHAT = "chat"
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ArtifactInfo:
    path: str
    task: str  # CLASSIFICATION | MULTILABEL | CHAT
    format: str  # "adapter" | "full"
    merged: bool
    base_model: str | None  # portable base name, for adapters (and merged exports, for adapter mode)
    labels: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    peft_type: str | None = None
    adapter_dir: str | None = None  # where adapter_config.json lives (root, or adapter/ for merged exports)

    @property
    def is_classifier(self) -> bool:
        return self.task in (CLASSIFICATION, MULTILABEL)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot read JSON ({e})") from None


def _adapter_dir(root: Path) -> Path | None:
    for d in (root, root / "adapter"):
        if (d / "adapter_config.json").is_file():
            return d
    return None


def read_artifact(path: str | Path) -> ArtifactInfo:
    """Describe a model folder without loading weights. Raises ArtifactError naming the missing file."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root} is not a directory")
    adapter_dir = _adapter_dir(root)
    peft_type = None
    adapter_base = None
    if adapter_dir is not None:
        acfg = _read_json(adapter_dir / "adapter_config.json")
        peft_type = acfg.get("peft_type")
        adapter_base = acfg.get("base_model_name_or_path")
    if (root / "engine.json").is_file():
        engine = _read_json(root / "engine.json")
        lm = _read_json(root / "label_map.json") if (root / "label_map.json").is_file() else {}
        task = engine.get("task")
        if task == Task.CHAT_SFT:
            task = CHAT
        if task not in (CLASSIFICATION, MULTILABEL, CHAT):
            raise ArtifactError(f"{root}/engine.json: unknown task {engine.get('task')!r}")
        labels = list(lm.get("labels") or [])
        if task != CHAT and not labels:
            raise ArtifactError(f"{root}/label_map.json: a classifier needs its labels")
        fmt = engine.get("format", "full")
        if fmt == "adapter" and adapter_dir is None:
            raise ArtifactError(f"{root}: engine.json says adapter but there is no adapter_config.json")
        return ArtifactInfo(
            path=str(root.resolve()),
            task=task,
            format=fmt,
            merged=bool(engine.get("merged")),
            base_model=engine.get("base_model") or adapter_base,
            labels=labels,
            thresholds=_thresholds(lm, labels),
            peft_type=peft_type,
            adapter_dir=str(adapter_dir.resolve()) if adapter_dir else None,
        )
    # A plain Hugging Face folder, e.g. a chat model an operator registered by path.
    if adapter_dir is not None:
        raise ArtifactError(
            f"{root}: a bare peft adapter without engine.json; its task and labels are unknown"
        )
    if not (root / "config.json").is_file():
        raise ArtifactError(f"{root} has neither engine.json nor config.json")
    cfg = _read_json(root / "config.json")
    archs = cfg.get("architectures") or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return ArtifactInfo(path=str(root.resolve()), task=CHAT, format="full", merged=False, base_model=None)
    if any(a.endswith("ForSequenceClassification") for a in archs):
        id2label = cfg.get("id2label") or {}
        labels = [id2label[k] for k in sorted(id2label, key=int)]
        task = MULTILABEL if cfg.get("problem_type") == "multi_label_classification" else CLASSIFICATION
        return ArtifactInfo(
            path=str(root.resolve()),
            task=task,
            format="full",
            merged=False,
            base_model=None,
            labels=labels,
            thresholds=_thresholds({}, labels),
        )
    raise ArtifactError(
        f"{root}/config.json: architectures {archs} are neither a causal LM nor a sequence classifier"
    )


def _thresholds(lm: dict[str, Any], labels: list[str]) -> dict[str, float]:
    """Per-label multi-label thresholds: label_map.json's "thresholds" where given, else 0.5 (the engine's rule)."""
    given = lm.get("thresholds") or {}
    return {label: float(given.get(label, DEFAULT_THRESHOLD)) for label in labels}
