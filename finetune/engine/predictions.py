"""The validation predictions of the final model, one JSON line per validation row, written next
to the other artifacts (`validation_predictions.jsonl`) so the job page can list the misclassified
examples. Single-label classification only: there one predicted label and its probability say
what went wrong; other tasks write nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .vocabulary import Task

FILENAME = "validation_predictions.jsonl"


def write_validation_predictions(
    *,
    plan: Any,
    model: Any,
    logits: Callable[[Any, dict[str, Any]], Any],
    autocast: Callable[[], Any],
) -> Path | None:
    """Score every validation row with `model` and write {index, text, [text_pair], label,
    predicted, score, label_score} per row in file order; returns the file (None when nothing fits)."""
    # Imported here: the web processes read FILENAME and must not load torch for it.
    import torch

    from . import data

    spec = plan.spec
    if spec.task != Task.CLASSIFICATION or plan.valid is None or not spec.validation_file:
        return None
    # The split holds token ids only; the texts come from the file it was encoded from (same filter,
    # same order, so row i of the file is row i of the split).
    rows = data.read_rows(spec.validation_file, spec.task, "validation_file").rows
    if len(rows) != len(plan.valid):
        return None
    pad = plan.tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    predicted: list[int] = []
    scores: list[float] = []
    label_scores: list[float] = []
    with torch.no_grad():
        for idx in data.batches_of(list(range(len(plan.valid))), max(1, plan.hp.batch_size * 2)):
            batch = {k: v.to(plan.device) for k, v in data.collate(plan.valid, idx, spec.task, pad).items()}
            with autocast():
                probs = torch.softmax(logits(model, batch), dim=-1)
            best = probs.max(dim=-1)
            predicted += best.indices.tolist()
            scores += best.values.tolist()
            label_scores += probs.gather(1, batch["labels"].view(-1, 1)).view(-1).tolist()
    if was_training:
        model.train()
    out = Path(spec.output_dir) / FILENAME
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            line: dict[str, Any] = {"index": i, "text": row["text"]}
            if "text_pair" in row:
                line["text_pair"] = row["text_pair"]
            line.update(
                label=plan.labels[plan.valid.targets[i]],
                predicted=plan.labels[predicted[i]],
                score=round(scores[i], 6),
                label_score=round(label_scores[i], 6),
            )
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return out
