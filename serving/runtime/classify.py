"""Classification: tokenising with a truncation policy, and one forward over rows of possibly many adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .artifact import MULTILABEL
from .errors import InputTooLong, InvalidRequest
from .loading import LoadedModel

TRUNCATE, REFUSE = "truncate", "refuse"


@dataclass
class Encoded:
    features: dict[str, list[int]]
    tokens: int  # before truncation
    truncated: bool


@dataclass
class Classification:
    label: str  # the top label
    score: float  # its probability
    scores: dict[str, float]  # every label: softmax (single-label) or sigmoid (multi-label)
    labels: list[str] = field(default_factory=list)  # multi-label: every label over its threshold
    truncated: bool = False
    tokens: int = 0


def encode(lm: LoadedModel, texts: list[str], *, truncation: str = TRUNCATE) -> list[Encoded]:
    """Token ids per text. `refuse` raises InputTooLong naming the first input over the limit."""
    if truncation not in (TRUNCATE, REFUSE):
        raise InvalidRequest(f"truncation must be {TRUNCATE!r} or {REFUSE!r}, got {truncation!r}")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("inputs must be a list of strings")
    with lm.tokenizer_lock:
        return _encode(lm, texts, truncation)


def _encode(lm: LoadedModel, texts: list[str], truncation: str) -> list[Encoded]:
    tok, limit = lm.tokenizer, lm.max_length
    full = tok(texts, truncation=False, verbose=False)
    out: list[Encoded] = []
    for i in range(len(texts)):
        n = len(full["input_ids"][i])
        if n > limit:
            if truncation == REFUSE:
                raise InputTooLong(index=i, tokens=n, max_tokens=limit)
            # Re-encode with truncation so the closing special tokens survive the cut.
            cut = tok(texts[i], truncation=True, max_length=limit)
            out.append(Encoded({k: list(v) for k, v in cut.items()}, n, True))
        else:
            out.append(Encoded({k: list(full[k][i]) for k in full.keys()}, n, False))
    return out


def _pad(rows: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r.features["input_ids"]) for r in rows)
    batch: dict[str, torch.Tensor] = {}
    for name in rows[0].features:
        fill = pad_id if name == "input_ids" else 0
        batch[name] = torch.tensor(
            [r.features[name] + [fill] * (width - len(r.features[name])) for r in rows], dtype=torch.long
        )
    return batch


def logits_for(rows: list[tuple[LoadedModel, Encoded]]) -> list[torch.Tensor]:
    """One logits row per input, in order. Rows of adapters over one base share a single forward."""
    results: list[torch.Tensor | None] = [None] * len(rows)
    groups: dict[int, list[int]] = {}
    for i, (lm, _) in enumerate(rows):
        groups.setdefault(id(lm.group) if lm.group is not None else id(lm), []).append(i)
    for idx in groups.values():
        lm0 = rows[idx[0]][0]
        pad_id = lm0.tokenizer.pad_token_id or 0
        with lm0.forward_lock, torch.inference_mode():
            if lm0.group is None:
                batch = _pad([rows[i][1] for i in idx], pad_id)
                out = lm0.module(**batch).logits
                for j, i in enumerate(idx):
                    results[i] = out[j].float()
            elif lm0.group.supports_mixed_batch and len({rows[i][0].adapter_name for i in idx}) > 1:
                batch = _pad([rows[i][1] for i in idx], pad_id)
                names = [rows[i][0].adapter_name for i in idx]
                # peft routes each row through its own LoRA weights and its own modules_to_save head.
                out = lm0.group.peft_model(**batch, adapter_names=names).logits
                for j, i in enumerate(idx):
                    results[i] = out[j].float()
            else:
                # One adapter (the common case), or a tuner without mixed batches: the plain forward of
                # the active adapter. peft's `adapter_names` path installs hooks and splits every layer
                # per adapter on each call, which costs a single-adapter batch time for nothing.
                by_adapter: dict[str, list[int]] = {}
                for i in idx:
                    by_adapter.setdefault(rows[i][0].adapter_name, []).append(i)
                for name, sub in by_adapter.items():
                    lm0.group.activate(name)
                    out = lm0.group.peft_model(**_pad([rows[i][1] for i in sub], pad_id)).logits
                    for j, i in enumerate(sub):
                        results[i] = out[j].float()
    return results  # type: ignore[return-value]


def to_classification(lm: LoadedModel, logits: torch.Tensor, enc: Encoded) -> Classification:
    labels = lm.info.labels
    if lm.task == MULTILABEL:
        probs = torch.sigmoid(logits).tolist()
        over = [lab for lab, p in zip(labels, probs, strict=True) if p >= lm.info.thresholds[lab]]
    else:
        probs = torch.softmax(logits, dim=-1).tolist()
        over = []
    top = max(range(len(probs)), key=probs.__getitem__)
    return Classification(
        label=labels[top],
        score=float(probs[top]),
        scores={lab: float(p) for lab, p in zip(labels, probs, strict=True)},
        labels=over,
        truncated=enc.truncated,
        tokens=enc.tokens,
    )


def classify_direct(lm: LoadedModel, texts: list[str], *, truncation: str = TRUNCATE) -> list[Classification]:
    """One forward for these texts, no batching across callers."""
    if not lm.info.is_classifier:
        raise InvalidRequest(f"{lm.info.path} is a {lm.task} model, not a classifier")
    encoded = encode(lm, texts, truncation=truncation)
    if not encoded:
        return []
    logits = logits_for([(lm, e) for e in encoded])
    return [to_classification(lm, lg, e) for lg, e in zip(logits, encoded, strict=True)]
