"""Evaluation metrics (scikit-learn for classification) and the baselines users compare against."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from .vocabulary import Task

LOWER_IS_BETTER = ("loss", "perplexity")


def _r(x: float) -> float:
    return float(round(float(x), 6))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "f1_macro": _r(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "f1_micro": _r(f1_score(y_true, y_pred, labels=ids, average="micro", zero_division=0)),
        "per_class": {
            labels[i]: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
            for i in ids
        },
        # Rows are true labels, columns predictions, both in label_map order.
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    return {
        # Exact-match (subset) accuracy: every label of the row right.
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "hamming_accuracy": _r(float((y_true == y_pred).mean())),
        "f1_macro": _r(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1_micro": _r(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "per_class": {
            labels[i]: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
            for i in range(len(labels))
        },
        # One 2x2 matrix per label: [[tn, fp], [fn, tp]].
        "confusion_matrix": {
            labels[i]: m.tolist() for i, m in enumerate(multilabel_confusion_matrix(y_true, y_pred))
        },
    }


def sft_metrics(loss_sum: float, n_tokens: int, n_correct: int) -> dict[str, Any]:
    loss = loss_sum / max(n_tokens, 1)
    return {
        "loss": _r(loss),
        "perplexity": _r(math.exp(min(loss, 50.0))),
        "token_accuracy": _r(n_correct / max(n_tokens, 1)),
    }


def majority_baseline(
    train_targets: Sequence[Any], valid_targets: Sequence[Any], labels: list[str], task: str
) -> dict[str, Any]:
    """What always answering the most frequent training label scores on the validation set."""
    if task == Task.CLASSIFICATION:
        majority = Counter(train_targets).most_common(1)[0][0]
        m = classification_metrics(list(valid_targets), [majority] * len(valid_targets), labels)
        return {
            "majority_label": labels[majority],
            "accuracy": m["accuracy"],
            "f1_macro": m["f1_macro"],
            "f1_micro": m["f1_micro"],
        }
    train = np.asarray(train_targets, dtype=np.float32)
    # Per label: predict it present when most training rows have it.
    pred_row = (train.mean(axis=0) > 0.5).astype(int)
    y_true = np.asarray(valid_targets, dtype=int)
    y_pred = np.tile(pred_row, (len(y_true), 1))
    m = multilabel_metrics(y_true, y_pred, labels)
    return {
        "majority_labels": [labels[i] for i in np.flatnonzero(pred_row)],
        "accuracy": m["accuracy"],
        "f1_macro": m["f1_macro"],
        "f1_micro": m["f1_micro"],
    }


def metric_direction(name: str) -> str:
    return "min" if any(name.endswith(s) for s in LOWER_IS_BETTER) else "max"


def normalize_metric_name(name: str) -> str:
    """``eval_loss`` / ``loss`` / ``valid_loss`` all name the same validation metric key."""
    for prefix in ("eval_", "valid_", "validation_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return f"valid_{name}"
