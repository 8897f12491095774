"""Which column holds the text, the label and (optionally) the second text of a pair.

Headers are matched case-insensitively after trimming and folding spaces/hyphens to underscores;
the first synonym found wins. Explicit overrides win over detection and must name a real column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TEXT_NAMES = [
    "text",
    "text_a",
    "sentence",
    "utterance",
    "content",
    "tweet",
    "review",
    "comment",
    "message",
    "query",
    "question",
    "body",
    "document",
    "sentence1",
    "premise",
    "input",
    "prompt",
]
LABEL_NAMES = [
    "label",
    "labels",
    "category",
    "intent",
    "class",
    "sentiment",
    "target",
    "tag",
    "tags",
    "topic",
    "emotion",
    "y",
]
PAIR_NAMES = ["text_pair", "text2", "text_b", "sentence2", "hypothesis", "second_text", "pair"]


def fold(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass
class ColumnMapping:
    text: str
    label: str | None
    text_pair: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"text": self.text, "label": self.label, "text_pair": self.text_pair}


class MappingError(Exception):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _find(columns: list[str], synonyms: list[str], taken: set[str]) -> str | None:
    folded = {}
    for column in columns:
        folded.setdefault(fold(column), column)
    for name in synonyms:
        column = folded.get(name)
        if column is not None and column not in taken:
            return column
    return None


def _override(columns: list[str], wanted: str | None, role: str) -> str | None:
    if not wanted:
        return None
    if wanted in columns:
        return wanted
    by_fold = {fold(c): c for c in columns}
    if fold(wanted) in by_fold:
        return by_fold[fold(wanted)]
    raise MappingError(
        f"{role}_column {wanted!r} is not a column of this file (columns: {', '.join(columns)}).",
        field=f"{role}_column",
    )


def detect_mapping(
    columns: list[str],
    *,
    text: str | None = None,
    label: str | None = None,
    text_pair: str | None = None,
    need_label: bool = True,
) -> ColumnMapping:
    text_col = _override(columns, text, "text")
    label_col = _override(columns, label, "label")
    pair_col = _override(columns, text_pair, "text_pair")
    taken = {c for c in (text_col, label_col, pair_col) if c}
    if label_col is None and need_label:
        label_col = _find(columns, LABEL_NAMES, taken)
        if label_col:
            taken.add(label_col)
    if text_col is None:
        text_col = _find(columns, TEXT_NAMES, taken)
        if text_col:
            taken.add(text_col)
    if pair_col is None and text_pair is None:
        pair_col = _find(columns, PAIR_NAMES, taken)
    if text_col is None:
        raise MappingError(
            f"No text column found among the columns ({', '.join(columns) or 'none'}). Name it one of "
            f"{', '.join(TEXT_NAMES[:6])}, or choose it with text_column.",
            field="text_column",
        )
    if label_col is None and need_label:
        raise MappingError(
            f"No label column found among the columns ({', '.join(columns)}). Name it one of "
            f"{', '.join(LABEL_NAMES[:6])}, or choose it with label_column.",
            field="label_column",
        )
    if label_col is not None and label_col == text_col:
        raise MappingError(f"The text and label columns are both {text_col!r}.", field="label_column")
    return ColumnMapping(text=text_col, label=label_col, text_pair=pair_col)
