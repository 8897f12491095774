"""How much dynamic int8 quantization changes a classifier's accuracy, measured on a validation set."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from . import loading
from .artifact import MULTILABEL, read_artifact
from .classify import classify_direct
from .errors import InvalidRequest
from .loading import BaseResolver, LoadedModel


@dataclass
class QuantizationReport:
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_change: float  # int8 - fp32
    agreement: float  # share of inputs where both predict the same
    fp32_mb: float
    int8_mb: float
    n: int


def _accuracy(preds: list, gold: list) -> float:
    return sum(p == g for p, g in zip(preds, gold, strict=True)) / len(gold)


def measure_int8_change(
    *,
    path: str | Path,
    resolve_base: BaseResolver,
    texts: list[str],
    labels: list,
    batch_size: int = 32,
) -> QuantizationReport:
    """Accuracy of the fp32 and the int8 model on (texts, labels): a label per text, or a label list for multi-label."""
    if len(texts) != len(labels) or not texts:
        raise InvalidRequest(
            f"texts and labels must be non-empty and equally long ({len(texts)} vs {len(labels)})"
        )
    info = read_artifact(path)
    if not info.is_classifier:
        raise InvalidRequest(f"{path} is a {info.task} model; int8 accuracy is measured for classifiers")
    tok = loading.load_tokenizer(info.path, info)
    merge = info.format == "adapter" and not info.merged
    fp32 = loading.load_standalone(info, resolve_base, merge_adapter=merge)
    fp32_bytes = loading.module_bytes(fp32)
    int8_bytes = loading.int8_bytes(fp32)
    int8 = loading.quantize_int8(copy.deepcopy(fp32))
    max_len = loading.max_length_of(fp32, tok)

    def predict(module: torch.nn.Module) -> list:
        lm = LoadedModel(
            key=("measure",), info=info, tokenizer=tok, max_length=max_len, nbytes=0, module=module
        )
        out = []
        for i in range(0, len(texts), batch_size):
            for c in classify_direct(lm, texts[i : i + batch_size]):
                out.append(sorted(c.labels) if info.task == MULTILABEL else c.label)
        return out

    gold = [sorted(g) for g in labels] if info.task == MULTILABEL else list(labels)
    a, b = predict(fp32), predict(int8)
    fa, ia = _accuracy(a, gold), _accuracy(b, gold)
    return QuantizationReport(
        fp32_accuracy=fa,
        int8_accuracy=ia,
        accuracy_change=ia - fa,
        agreement=_accuracy(a, b),
        fp32_mb=fp32_bytes / 2**20,
        int8_mb=int8_bytes / 2**20,
        n=len(texts),
    )
