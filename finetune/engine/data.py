"""Reading normalized data files, tokenizing them (with a disk cache) and building padded batches."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import SpecError
from .vocabulary import Task

ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100

# Used when the tokenizer has none. Plain-text role markers need no new special tokens, so the
# embedding matrix never has to grow; eos after each turn teaches the model to stop.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + (eos_token or '') + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class Rows:
    """Rows of one file that survived filtering, in file order, plus why the others were dropped."""

    path: str
    sha256: str
    rows: list[dict[str, Any]]
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)


def _raw_records(path: Path, field_name: str) -> Iterable[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # utf-8-sig: spreadsheets often write a BOM that would otherwise end up in the first column name
        with open(path, newline="", encoding="utf-8-sig") as f:
            yield from csv.DictReader(f)
    elif suffix == ".json":
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise SpecError(
                    field_name, f"{path.name} is not valid JSON: {e}", code="invalid_file"
                ) from None
        if not isinstance(data, list):
            raise SpecError(field_name, f"{path.name} must hold a JSON list of rows", code="invalid_file")
        yield from data
    else:  # the contract format: JSON Lines
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise SpecError(
                        field_name, f"{path.name} line {n} is not valid JSON: {e}", code="invalid_file"
                    ) from None


def _alpaca_to_messages(r: dict[str, Any]) -> list[dict[str, str]]:
    """Alpaca/LLaMA-Factory rows (instruction, input, output, history) -> chat messages."""
    messages: list[dict[str, str]] = []
    if r.get("system"):
        messages.append({"role": "system", "content": str(r["system"])})
    for turn in r.get("history") or []:
        if isinstance(turn, (list, tuple)) and len(turn) == 2:
            messages += [
                {"role": "user", "content": str(turn[0])},
                {"role": "assistant", "content": str(turn[1])},
            ]
    prompt = str(r.get("instruction") or "")
    if r.get("input"):
        prompt = f"{prompt}\n{r['input']}" if prompt else str(r["input"])
    messages += [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": str(r.get("output") or "")},
    ]
    return messages


def _normalize(task: str, r: Any) -> tuple[dict[str, Any] | None, str]:
    """One raw record -> the normalized row, or None and the reason it is dropped."""
    if not isinstance(r, dict):
        return None, "not an object"
    if task == Task.CHAT_SFT:
        messages = r.get("messages")
        if messages is None and ("instruction" in r or "output" in r):
            messages = _alpaca_to_messages(r)
        if not isinstance(messages, list) or not messages:
            return None, "no messages"
        clean = []
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                return None, "malformed message"
            clean.append({"role": m["role"], "content": m["content"]})
        if not any(m["role"] == "assistant" and m["content"].strip() for m in clean):
            return None, "no assistant reply"
        return {"messages": clean}, ""
    text = r.get("text")
    if not isinstance(text, str) or not text.strip():
        return None, "empty text"
    row: dict[str, Any] = {"text": text}
    pair = r.get("text_pair")
    if isinstance(pair, str) and pair.strip():
        row["text_pair"] = pair
    if task == Task.MULTILABEL_CLASSIFICATION:
        labels = r.get("labels", r.get("label"))
        if isinstance(labels, str):  # CSV convenience: "a|b"
            labels = [s for s in (p.strip() for p in labels.split("|")) if s]
        if not isinstance(labels, list) or not all(
            isinstance(x, (str, int)) and not isinstance(x, bool) for x in labels
        ):
            return None, "missing labels"
        row["labels"] = sorted({str(x) for x in labels})
        return row, ""
    label = r.get("label", r.get("category"))
    if isinstance(label, bool) or label is None or (isinstance(label, str) and not label.strip()):
        return None, "missing label"
    if not isinstance(label, (str, int)):
        return None, "missing label"
    row["label"] = str(label).strip()
    return row, ""


def read_rows(path: str | None, task: str, field_name: str) -> Rows:
    if not path:
        raise SpecError(field_name, "is required", code="required")
    p = Path(path)
    if not p.is_file():
        raise SpecError(field_name, f"file not found: {path}", code="file_not_found")
    rows: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for raw in _raw_records(p, field_name):
        row, why = _normalize(task, raw)
        if row is None:
            dropped[why] = dropped.get(why, 0) + 1
        else:
            rows.append(row)
    return Rows(path=str(p), sha256=sha256_file(p), rows=rows, dropped=dropped)


def labels_of(rows: Rows, task: str) -> set[str]:
    if task == Task.CLASSIFICATION:
        return {r["label"] for r in rows.rows}
    if task == Task.MULTILABEL_CLASSIFICATION:
        return {label for r in rows.rows for label in r["labels"]}
    return set()


# ---------------------------------------------------------------------------------------------- tokenizing


def tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(str(getattr(tokenizer, "chat_template", None)).encode())
    h.update(json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def render_chat(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]], full: str) -> list[tuple[int, int]]:
    """Character spans of assistant replies in the rendered conversation.

    The rendering of the history up to a reply (with the generation prompt) is a prefix of the rendering
    that includes the reply, for nearly every template; the difference is exactly what the model must
    produce (reply + end-of-turn marker). Templates that rewrite earlier turns fall back to locating the
    reply text itself.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = end = -1
        try:
            prefix = render_chat(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
            upto = render_chat(tokenizer, messages[: i + 1])
            if i and upto.startswith(prefix) and full.startswith(upto) and len(upto) > len(prefix):
                start, end = len(prefix), len(upto)
        except Exception:  # noqa: BLE001 - some templates refuse partial conversations; use the fallback
            pass
        if start < 0:
            start = full.find(m["content"], cursor)
            if start < 0:
                continue
            end = start + len(m["content"])
        spans.append((start, end))
        cursor = end
    return spans


def _token_lengths_text(tokenizer: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
    texts = [r["text"] for r in rows]
    pairs = [r.get("text_pair") for r in rows]
    if any(pairs):
        enc = tokenizer([t for t in texts], [p or "" for p in pairs], truncation=False)
    else:
        enc = tokenizer(texts, truncation=False)
    return [len(ids) for ids in enc["input_ids"]]


def token_lengths(tokenizer: Any, rows: Sequence[dict[str, Any]], task: str, sample: int = 4000) -> list[int]:
    """Untruncated token lengths of (an evenly spaced sample of) the rows, for choosing max_length."""
    if len(rows) > sample:
        step = len(rows) / sample
        rows = [rows[int(i * step)] for i in range(sample)]
    if task == Task.CHAT_SFT:
        return [len(encode_chat(tokenizer, r["messages"], None)[0]) for r in rows]
    return _token_lengths_text(tokenizer, rows)


def encode_chat(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int | None
) -> tuple[list[int], list[int]]:
    full = render_chat(tokenizer, messages)
    spans = assistant_spans(tokenizer, messages, full)
    bos = getattr(tokenizer, "bos_token", None)
    # Templates that write the BOS themselves must not get a second one from the tokenizer.
    add_special = not (bos and full.startswith(bos))
    enc = tokenizer(full, add_special_tokens=add_special, return_offsets_mapping=True, truncation=False)
    ids: list[int] = list(enc["input_ids"])
    mask = [0] * len(ids)
    for t, (s, e) in enumerate(enc["offset_mapping"]):
        if e > s and any(s < b and e > a for a, b in spans):
            mask[t] = 1
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return ids, mask


@dataclass
class Encoded:
    """Token ids (ragged) of one file's rows at one max_length; token_type_ids / loss_mask when relevant."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None = None
    loss_mask: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, idx: Sequence[int]) -> Encoded:
        return Encoded(
            [self.input_ids[i] for i in idx],
            None if self.token_type_ids is None else [self.token_type_ids[i] for i in idx],
            None if self.loss_mask is None else [self.loss_mask[i] for i in idx],
        )

    def concat(self, other: Encoded) -> Encoded:
        def cat(a: list | None, b: list | None) -> list | None:
            return None if a is None or b is None else a + b

        return Encoded(
            self.input_ids + other.input_ids,
            cat(self.token_type_ids, other.token_type_ids),
            cat(self.loss_mask, other.loss_mask),
        )


def _encode(tokenizer: Any, rows: Sequence[dict[str, Any]], task: str, max_length: int) -> Encoded:
    if task == Task.CHAT_SFT:
        ids, masks = [], []
        for r in rows:
            i, m = encode_chat(tokenizer, r["messages"], max_length)
            ids.append(i)
            masks.append(m)
        return Encoded(ids, None, masks)
    texts = [r["text"] for r in rows]
    pairs = [r.get("text_pair") for r in rows]
    kwargs: dict[str, Any] = {"truncation": True, "max_length": max_length}
    enc = tokenizer(texts, [p or "" for p in pairs], **kwargs) if any(pairs) else tokenizer(texts, **kwargs)
    return Encoded(
        [list(x) for x in enc["input_ids"]],
        [list(x) for x in enc["token_type_ids"]] if "token_type_ids" in enc else None,
    )


def _pack(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    flat = np.fromiter((v for x in lists for v in x), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def _unpack(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    return [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUNEFORGE_CACHE_DIR") or Path.home() / ".cache" / "tuneforge")


def encode_rows(
    tokenizer: Any, rows: Rows, task: str, max_length: int, cache_dir: Path | None, tok_fp: str
) -> tuple[Encoded, bool]:
    """Tokenize rows, reusing the on-disk cache keyed by (file sha256, tokenizer, max length). Returns (encoded, hit)."""
    path = None
    if cache_dir is not None:
        key = f"{rows.sha256[:32]}-{tok_fp}-{task}-{max_length}"
        path = cache_dir / "tokenized" / f"{key}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    enc = Encoded(
                        _unpack(z["ids"], z["ids_off"]),
                        _unpack(z["tt"], z["tt_off"]) if "tt" in z else None,
                        _unpack(z["mask"], z["mask_off"]) if "mask" in z else None,
                    )
                if len(enc) == len(rows):
                    return enc, True
            except Exception:  # noqa: BLE001 - a corrupt cache entry is rebuilt, never fatal
                pass
    enc = _encode(tokenizer, rows.rows, task, max_length)
    if path is not None:
        arrays: dict[str, np.ndarray] = {}
        arrays["ids"], arrays["ids_off"] = _pack(enc.input_ids)
        if enc.token_type_ids is not None:
            arrays["tt"], arrays["tt_off"] = _pack(enc.token_type_ids)
        if enc.loss_mask is not None:
            arrays["mask"], arrays["mask_off"] = _pack(enc.loss_mask)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename: several workers may share the cache and must never read half a file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
            os.close(fd)
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        except OSError:
            pass
    return enc, False


# ---------------------------------------------------------------------------------------------- batching


@dataclass
class Split:
    """A tokenized split ready for batching: features plus targets (label ids or multi-hot rows)."""

    encoded: Encoded
    targets: list[Any]  # int label ids | list[float] multi-hot | None for SFT

    def __len__(self) -> int:
        return len(self.encoded)

    def n_tokens(self, idx: Sequence[int]) -> int:
        return sum(len(self.encoded.input_ids[i]) for i in idx)


def make_targets(rows: Sequence[dict[str, Any]], task: str, label2id: dict[str, int]) -> list[Any]:
    if task == Task.CLASSIFICATION:
        return [label2id[r["label"]] for r in rows]
    if task == Task.MULTILABEL_CLASSIFICATION:
        out = []
        for r in rows:
            v = [0.0] * len(label2id)
            for label in r["labels"]:
                v[label2id[label]] = 1.0
            out.append(v)
        return out
    return [None] * len(rows)


def collate(split: Split, idx: Sequence[int], task: str, pad_id: int) -> dict[str, torch.Tensor]:
    enc = split.encoded
    seqs = [enc.input_ids[i] for i in idx]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        attn[row, : len(s)] = 1
    batch = {"input_ids": ids, "attention_mask": attn}
    if enc.token_type_ids is not None:
        tt = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, i in enumerate(idx):
            tt[row, : len(enc.token_type_ids[i])] = torch.tensor(enc.token_type_ids[i], dtype=torch.long)
        batch["token_type_ids"] = tt
    if task == Task.CHAT_SFT:
        labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
        for row, i in enumerate(idx):
            m = torch.tensor(enc.loss_mask[i], dtype=torch.bool)  # type: ignore[index]
            s = ids[row, : len(m)]
            labels[row, : len(m)] = torch.where(m, s, torch.full_like(s, IGNORE_INDEX))
        batch["labels"] = labels
    elif task == Task.CLASSIFICATION:
        batch["labels"] = torch.tensor([split.targets[i] for i in idx], dtype=torch.long)
    else:
        batch["labels"] = torch.tensor([split.targets[i] for i in idx], dtype=torch.float32)
    return batch


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled row order of one epoch, a pure function of (seed, epoch) so resume needs no sampler state."""
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def batches_of(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# Rows sorted by length inside windows of this many batches: wide enough that neighbours have similar
# lengths, narrow enough that each batch still draws from a random slice of the epoch (Hugging Face's
# `group_by_length` uses the same 50).
LENGTH_GROUP_WINDOW = 50


def length_grouped_batches(
    order: list[int], lengths: list[int], batch_size: int, *, seed: int, epoch: int
) -> list[list[int]]:
    """The epoch's shuffled rows cut into batches of similar length, the batches in a shuffled order.

    A batch is padded to its longest row, so random batches of short texts with a long tail (Banking77:
    mean 16 tokens, p99 53) are mostly padding: grouping cuts the tokens a CPU computes by 2.7x there.
    Same rows and the same number of batches per epoch as `batches_of`, and a pure function of
    (seed, epoch) like `epoch_order`, so a resumed run sees the same batches.
    """
    window = batch_size * LENGTH_GROUP_WINDOW
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i], reverse=True)
        batches += batches_of(chunk, batch_size)
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch + 104_729)
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def replay_subset(n_rows: int, fraction: float, seed: int) -> list[int]:
    """Which earlier rows to replay: a seeded sample of round(fraction * n_rows) of them, in file order."""
    k = int(round(fraction * n_rows))
    if k <= 0:
        return []
    g = torch.Generator()
    g.manual_seed(seed + 7919)
    return sorted(torch.randperm(n_rows, generator=g)[:k].tolist())
