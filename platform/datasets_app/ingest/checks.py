"""The whole-data-set steps: duplicates, the split, label counts, leakage, conflicts and the warnings.

Per-row state lives in numpy arrays (a label key, two 64-bit digests and a line number per row), never
in Python objects per row, so a million rows cost tens of megabytes, not hundreds. Each warning lists
its first rows (file, line, text) so a user can find them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datasets_app.ingest.options import CHAT, IngestOptions
from datasets_app.ingest.report import Report
from datasets_app.ingest.rows import SAMPLE_ROWS, Part
from datasets_app.ingest.sniff import encoding_label

RARE_LABEL_MIN = 5
IMBALANCE_RATIO = 10


def stratified_split(keys: np.ndarray, eligible: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the validation rows: about `fraction` of the eligible rows, allotted to each
    key (label) in proportion by largest remainder, keeping at least one row of every key for training.
    Python's `random.Random(seed)` (not numpy's generators, whose streams may change between releases)
    keeps the split reproducible, which matters because the split is part of the version's hash."""
    chosen = np.zeros(len(keys), dtype=bool)
    candidates = np.flatnonzero(eligible)
    target = round(len(candidates) * fraction)
    if target <= 0:
        return chosen
    order = candidates[np.argsort(keys[candidates], kind="stable")]
    group_keys, starts, sizes = np.unique(keys[order], return_index=True, return_counts=True)
    quotas = [min(int(size * fraction), int(size) - 1) for size in sizes]
    remaining = target - sum(quotas)
    by_remainder = sorted(
        range(len(sizes)), key=lambda g: (-(sizes[g] * fraction - int(sizes[g] * fraction)), g)
    )
    for g in by_remainder:
        if remaining <= 0:
            break
        if quotas[g] < sizes[g] - 1:
            quotas[g] += 1
            remaining -= 1
    rng = random.Random(seed)
    for g in range(len(group_keys)):
        if quotas[g]:
            picks = np.fromiter(rng.sample(range(int(sizes[g])), quotas[g]), dtype=np.int64, count=quotas[g])
            chosen[order[starts[g] + picks]] = True
    return chosen


def grouped_split(
    keys: np.ndarray, inputs: np.ndarray, eligible: np.ndarray, *, fraction: float, seed: int
) -> np.ndarray:
    """`stratified_split` over groups of identical inputs, so no input lands on both sides (the
    platform's own split must not leak). A group goes with its first row's label; data without
    repeated inputs gets exactly the row-level split."""
    candidates = np.flatnonzero(eligible)
    if not len(candidates):
        return np.zeros(len(keys), dtype=bool)
    unique, first, inverse = np.unique(inputs[candidates], return_index=True, return_inverse=True)
    if len(unique) == len(candidates):
        return stratified_split(keys, eligible, fraction=fraction, seed=seed)
    representatives = np.zeros(len(keys), dtype=bool)
    representatives[candidates[first]] = True
    chosen_rows = stratified_split(keys, representatives, fraction=fraction, seed=seed)
    moved = np.zeros(len(keys), dtype=bool)
    moved[candidates] = chosen_rows[candidates[first]][inverse.ravel()]
    return moved


def digests(values) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, dtype=np.int64)


def label_keys(part: Part) -> np.ndarray:
    return np.frombuffer(part.keys, dtype=np.uint32) if part.rows else np.zeros(0, np.uint32)


def repeats(values: np.ndarray) -> np.ndarray:
    """True for every row whose digest already occurred on an earlier row."""
    flags = np.ones(len(values), dtype=bool)
    if len(values):
        _unique, first = np.unique(values, return_index=True)
        flags[first] = False
    return flags


def member(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """`np.isin(values, pool)` for int64 digests through one sort and a binary search: numpy 2.x's
    `isin` dedups `pool` with a hash table that costs about a second per million digests."""
    if not len(pool) or not len(values):
        return np.zeros(len(values), dtype=bool)
    ordered = np.sort(pool)
    at = np.searchsorted(ordered, values)
    at[at == len(ordered)] = 0
    return ordered[at] == values


def conflicting(inputs: np.ndarray, rows: np.ndarray, among: np.ndarray) -> tuple[int, np.ndarray]:
    """(inputs that occur with more than one distinct row among `among`, mask of their rows)."""
    mask = np.zeros(len(inputs), dtype=bool)
    if not among.any():
        return 0, mask
    pairs = inputs[among] * np.int64(1_000_003) ^ rows[among]
    _pairs, first = np.unique(pairs, return_index=True)
    values, counts = np.unique(inputs[among][first], return_counts=True)
    bad = values[counts > 1]
    mask[among] = member(inputs[among], bad)
    return len(bad), mask


def label_counts(
    keys: np.ndarray, selected: np.ndarray, names: list[Any], multilabel: bool
) -> dict[str, int]:
    per_key = np.bincount(keys[selected], minlength=len(names)) if len(keys) else []
    counts: dict[str, int] = {}
    for key, n in enumerate(per_key):
        if not n:
            continue
        for label in names[key] if multilabel else (names[key],):
            counts[label] = counts.get(label, 0) + int(n)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass
class Split:
    """Which rows of each part are kept, moved to validation, and what they repeat or leak."""

    train: Part
    val: Part | None
    keys: np.ndarray
    rows: np.ndarray
    inputs: np.ndarray
    dups: np.ndarray
    keep: np.ndarray
    moved: np.ndarray
    selected: np.ndarray
    method: dict[str, Any]
    val_keys: np.ndarray | None = None
    val_rows: np.ndarray | None = None
    val_inputs: np.ndarray | None = None
    val_dups: np.ndarray | None = None
    val_keep: np.ndarray | None = None
    # (part, row index) of the rows each warning lists
    samples: dict[str, list[tuple[Part, int]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def flags(self) -> list[tuple[Part, np.ndarray]]:
        """Per part, each row's destination: 0 training, 1 validation, 2 dropped."""
        flags = [(self.train, np.where(self.selected, 0, np.where(self.moved, 1, 2)))]
        if self.val is not None:
            flags.append((self.val, np.where(self.val_keep, 1, 2)))
        return flags


def make_split(train: Part, val: Part | None, options: IngestOptions) -> Split:
    keys, rows, inputs = label_keys(train), digests(train.row_digests), digests(train.input_digests)
    dups = repeats(rows)
    keep = ~dups if options.deduplicate else np.ones(train.rows, dtype=bool)
    if val is None:
        method = {
            "method": "stratified" if train.task != CHAT else "random",
            "fraction": options.validation_fraction,
            "seed": options.seed,
            "grouped_by_input": True,
        }
        moved = grouped_split(keys, inputs, keep, fraction=options.validation_fraction, seed=options.seed)
        return Split(train, None, keys, rows, inputs, dups, keep, moved, keep & ~moved, method)
    split = Split(
        train, val, keys, rows, inputs, dups, keep, np.zeros(train.rows, dtype=bool), keep,
        {"method": "file", "validation_file": val.filename},
    )  # fmt: skip
    split.val_keys, split.val_rows, split.val_inputs = (
        label_keys(val),
        digests(val.row_digests),
        digests(val.input_digests),
    )
    split.val_dups = repeats(split.val_rows)
    split.val_keep = ~split.val_dups if options.deduplicate else np.ones(val.rows, dtype=bool)
    return split


def find_problems(split: Split) -> None:
    """Counts duplicates, conflicts, leakage and train/validation label conflicts, with sample rows."""
    first = lambda mask: [int(i) for i in np.flatnonzero(mask)[:SAMPLE_ROWS]]  # noqa: E731
    train, val = split.train, split.val
    split.counts["duplicates"] = int(split.dups.sum())
    split.samples["duplicates"] = [(train, i) for i in first(split.dups)]
    if val is not None:
        split.counts["validation_duplicates"] = int(split.val_dups.sum())
        split.samples["validation_duplicates"] = [(val, i) for i in first(split.val_dups)]
    if train.task != CHAT:
        n, mask = conflicting(split.inputs, split.rows, split.keep)
        split.counts["conflicting_labels"] = n
        split.samples["conflicting_labels"] = [(train, i) for i in first(mask)]
    seen_inputs, seen_rows = split.inputs[split.selected], split.rows[split.selected]
    if val is not None:
        v_part, v_inputs, v_rows, v_mask = val, split.val_inputs, split.val_rows, split.val_keep
    else:
        v_part, v_inputs, v_rows, v_mask = train, split.inputs, split.rows, split.moved
    # Only the validation rows are looked up (a tenth of the file when the split is ours).
    leaked = np.zeros(len(v_mask), dtype=bool)
    candidates = np.flatnonzero(v_mask)
    leaked[candidates] = member(v_inputs[candidates], seen_inputs)
    split.counts["leakage"] = int(leaked.sum())
    split.samples["leakage"] = [(v_part, i) for i in first(leaked)]
    if train.task != CHAT:
        crossed = np.zeros(len(v_mask), dtype=bool)
        found = np.flatnonzero(leaked)
        crossed[found] = ~member(v_rows[found], seen_rows)
        split.counts["train_validation_conflicts"] = int(crossed.sum())
        split.samples["train_validation_conflicts"] = [(v_part, i) for i in first(crossed)]
    too_long = [(train, i) for i in train.too_long if split.selected[i] or split.moved[i]]
    if val is not None:
        too_long += [(val, i) for i in val.too_long if split.val_keep[i]]
    split.samples["too_long"] = too_long[:SAMPLE_ROWS]


def sample_text(line: bytes) -> str:
    row = json.loads(line)
    if "messages" in row:
        text = next(
            (m["content"] for m in row["messages"] if m["role"] == "user"), row["messages"][0]["content"]
        )
    else:
        text = row["text"]
    return text if len(text) <= 200 else text[:199] + "…"


def listed(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    shown = "; ".join(f"{r['file']} line {r['line']}: {r['text']!r}" for r in rows)
    return f" First rows: {shown}."


def sample_rows(split: Split, code: str, texts: dict[tuple[str, int], bytes]) -> list[dict[str, Any]]:
    found = []
    for part, index in split.samples.get(code, []):
        raw = texts.get((part.role, index))
        found.append(
            {"file": part.filename, "line": int(part.lines[index]), "text": sample_text(raw) if raw else ""}
        )
    return found


def label_checks(report: Report, part: Part, counts: dict[str, int]) -> None:
    field_name = part.mapping.get("label")
    if len(counts) < 2:
        only = f" (only {next(iter(counts))!r})" if counts else ""
        report.error(
            f"found {len(counts)} distinct label{'s' if len(counts) != 1 else ''}{only} in "
            f"{part.rows:,} rows; a classifier needs at least 2 labels.",
            file=part.filename,
            code="too_few_labels",
            field=field_name,
        )
        return
    rare = {label: n for label, n in counts.items() if n < RARE_LABEL_MIN}
    if rare:
        shown = sorted(rare, key=lambda label: (rare[label], label))[:20]
        listing = ", ".join(f"{label} ({rare[label]})" for label in shown) + (" …" if len(rare) > 20 else "")
        report.warn(
            "rare_labels",
            f"{len(rare)} label(s) have fewer than {RARE_LABEL_MIN} training examples: " + listing,
            count=len(rare),
            params={"n": len(rare), "min": RARE_LABEL_MIN, "labels": listing},
            labels={label: rare[label] for label in shown},
        )
    most, least = max(counts.items(), key=lambda i: i[1]), min(counts.items(), key=lambda i: i[1])
    if least[1] and most[1] / least[1] >= IMBALANCE_RATIO:
        report.warn(
            "class_imbalance",
            f"heavy class imbalance: {most[0]!r} has {most[1]:,} examples, {least[0]!r} "
            f"has {least[1]:,} (ratio {most[1] / least[1]:.0f}:1).",
            count=round(most[1] / least[1]),
            params={
                "most": repr(most[0]),
                "most_n": f"{most[1]:,}",
                "least": repr(least[0]),
                "least_n": f"{least[1]:,}",
                "ratio": f"{most[1] / least[1]:.0f}",
            },
            most=most[0],
            least=least[0],
        )
    variants: dict[str, list[str]] = {}
    for label in counts:
        variants.setdefault(label.casefold(), []).append(label)
    mixed = [sorted(group) for group in variants.values() if len(group) > 1]
    if mixed:
        report.warn(
            "label_case_variants",
            f"{len(mixed)} label(s) differ only in upper/lower case and count as different labels: "
            + "; ".join(" / ".join(group) for group in mixed[:10])
            + ". Rename them with label_names if they mean the same.",
            count=len(mixed),
            params={"n": len(mixed), "groups": "; ".join(" / ".join(group) for group in mixed[:10])},
            labels=mixed[:10],
        )


def read_warnings(report: Report, parts: list[Part]) -> None:
    """How each file was read, when it was not plain UTF-8 CSV quoting: a user should know."""
    for part in parts:
        kind = part.kind
        if kind.encoding_source == "detected":
            report.warn(
                "encoding",
                f"{part.filename} is not UTF-8; it was read as {encoding_label(kind.encoding)} (detected) and "
                "converted to UTF-8. If characters look wrong, choose the encoding option.",
                params={"file": part.filename, "encoding": encoding_label(kind.encoding)},
                encoding=kind.encoding,
            )
        if kind.quoting_reason:
            report.warn("quoting", f"{part.filename}: {kind.quoting_reason}", quoting="none")
        if part.multiline_count:
            lines = ", ".join(str(n) for n in part.multiline_rows)
            report.warn(
                "multiline_rows",
                f"{part.multiline_count:,} row(s) of {part.filename} contain line breaks inside quoted texts, so "
                f"the file has more lines than rows (first at lines {lines}).",
                count=part.multiline_count,
                params={"n": f"{part.multiline_count:,}", "file": part.filename, "lines": lines},
                lines=part.multiline_rows,
            )
        if part.trimmed_count:
            pairs = ", ".join(f"{raw!r} → {clean!r}" for raw, clean in list(part.trimmed_labels.items())[:10])
            rows = [{"file": part.filename, **row} for row in part.trimmed_rows]
            report.warn(
                "trimmed_labels",
                f"{part.trimmed_count:,} label(s) in {part.filename} had spaces around them that were removed "
                f"({pairs}).{listed(rows)}",
                count=part.trimmed_count,
                params={"n": f"{part.trimmed_count:,}", "file": part.filename, "pairs": pairs},
                labels=dict(list(part.trimmed_labels.items())[:10]),
                rows=rows,
            )
        if part.token_note:
            report.warn("token_lengths_unchecked", part.token_note)


def problem_warnings(
    report: Report, split: Split, texts: dict[tuple[str, int], bytes], options: IngestOptions
) -> None:
    removed = bool(options.deduplicate)
    messages = {
        "duplicates": "{n:,} training row(s) repeat an earlier row exactly"
        + ("; they were removed." if removed else " (upload with deduplicate to drop them)."),
        "validation_duplicates": "{n:,} validation row(s) repeat an earlier row exactly"
        + ("; they were removed." if removed else "."),
        "conflicting_labels": "{n:,} text(s) appear with different labels in the training data.",
        "leakage": "{n:,} validation row(s) have the same input as a training row "
        "(train/validation overlap inflates validation scores).",
        "train_validation_conflicts": "{n:,} validation row(s) have the same input as a training row but a "
        "different label.",
    }
    for code, template in messages.items():
        n = split.counts.get(code, 0)
        if not n:
            continue
        rows = sample_rows(split, code, texts)
        extra = {"removed": removed} if code.endswith("duplicates") else {}
        params = {"n": f"{n:,}", **({"variant": "removed"} if extra and removed else {})}
        report.warn(code, template.format(n=n) + listed(rows), count=n, params=params, rows=rows, **extra)


def token_stats(report: Report, split: Split, texts: dict[tuple[str, int], bytes]) -> dict | None:
    counter = split.train.counter
    if counter is None:
        return None
    train, val = split.train, split.val
    long_train = sum(1 for i in train.too_long if split.selected[i])
    if val is not None:
        long_val = sum(1 for i in val.too_long if split.val_keep[i])
    else:
        long_val = sum(1 for i in train.too_long if split.moved[i])
    max_tokens = max(train.max_tokens, val.max_tokens if val else 0)
    if long_train or long_val:
        what = "conversations" if train.task == CHAT else "texts"
        rows = sample_rows(split, "too_long", texts)
        report.warn(
            "too_long",
            f"{long_train:,} training and {long_val:,} validation {what} are longer than "
            f"{counter.max_length} tokens for {counter.name} (longest: {max_tokens:,}); they will be "
            f"truncated in training.{listed(rows)}",
            count=long_train + long_val,
            params={
                "train": f"{long_train:,}",
                "validation": f"{long_val:,}",
                "max_length": counter.max_length,
                "model": counter.name,
                "longest": f"{max_tokens:,}",
                **({"variant": "chat"} if train.task == CHAT else {}),
            },
            train=long_train,
            validation=long_val,
            max_tokens=max_tokens,
            rows=rows,
        )
    return {
        "model": counter.name,
        "max_length": counter.max_length,
        "too_long": long_train,
        "too_long_validation": long_val,
    }
