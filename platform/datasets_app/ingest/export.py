"""Reading normalized rows back: CSV export (safe to open in a spreadsheet), previews and histograms."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from finetune.engine.vocabulary import Task

# A cell starting with one of these is run as a formula by Excel/LibreOffice/Sheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def iter_rows(fileobj: BinaryIO) -> Iterator[dict[str, Any]]:
    for line in fileobj:
        if line.strip():
            yield json.loads(line)


def csv_header(task: str, rows_have_pair: bool = False) -> list[str]:
    if task == Task.CHAT_SFT:
        return ["conversation", "turn", "role", "content"]
    if task == Task.MULTILABEL_CLASSIFICATION:
        return ["text", "labels"]
    return ["text", "text_pair", "label"] if rows_have_pair else ["text", "label"]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_records(rows: Iterable[dict[str, Any]], task: str) -> Iterator[list[str]]:
    """Rows as CSV records: multi-label labels joined with '|', one chat message per record."""
    for number, row in enumerate(rows, start=1):
        if task == Task.CHAT_SFT:
            for turn, message in enumerate(row["messages"], start=1):
                yield [str(number), str(turn), message["role"], message["content"]]
        elif task == Task.MULTILABEL_CLASSIFICATION:
            yield [row["text"], "|".join(row["labels"])]
        elif "text_pair" in row:
            yield [row["text"], row["text_pair"], row["label"]]
        else:
            yield [row["text"], row["label"]]


def csv_lines(rows: Iterable[dict[str, Any]], task: str, *, has_pair: bool = False) -> Iterator[str]:
    """The CSV text of `rows`, line by line (streamable), every cell neutralized against formulas."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(csv_header(task, has_pair))
    for record in csv_records(rows, task):
        yield writer.writerow([neutralize(cell) for cell in record])


def row_text(row: dict[str, Any]) -> str:
    """The text a tokenizer sees for a row (what the token-length statistics measure)."""
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"])
    if "text_pair" in row:
        return f"{row['text']}\n{row['text_pair']}"
    return row["text"]


def row_labels(row: dict[str, Any]) -> list[str]:
    if "labels" in row:
        return list(row["labels"])
    if "label" in row:
        return [row["label"]]
    return []


def nice_width(span: float, bins: int) -> int:
    """A bin width of 1, 2 or 5 × 10^k that splits `span` into at most `bins` bins."""
    raw = max(span / bins, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * magnitude >= raw:
            return int(step * magnitude)
    return int(10 * magnitude)


def histogram(values: list[int], *, bins: int = 20) -> list[dict[str, int]]:
    if not values:
        return []
    width = nice_width(max(values) + 1, bins)
    counts: dict[int, int] = {}
    for v in values:
        counts[v // width] = counts.get(v // width, 0) + 1
    last = max(counts)
    return [{"start": b * width, "end": (b + 1) * width, "count": counts.get(b, 0)} for b in range(last + 1)]


def percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]
