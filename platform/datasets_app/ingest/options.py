"""What an import is asked to do (options), what it is given (sources) and what it returns (result).

`IngestOptions` is the one options dataclass: the upload service extends it with the tokenizer
choice instead of repeating its fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from finetune.engine.vocabulary import Task

CLASSIFICATION = Task.CLASSIFICATION
MULTILABEL = Task.MULTILABEL_CLASSIFICATION
CHAT = Task.CHAT_SFT
TASKS = tuple(Task)
ROLES = ("system", "user", "assistant")
MULTILABEL_SEPARATOR = "|"

QUOTING_CHOICES = ("auto", "csv", "none")
HEADER_CHOICES = ("auto", "yes", "no")


class TokenCounter(Protocol):
    """Counts tokens with one tokenizer; `specials` is what the tokenizer adds around a text."""

    name: str
    max_length: int
    specials: int

    def lengths(self, texts: list[str]) -> list[int]: ...


@dataclass
class Source:
    fileobj: BinaryIO
    filename: str


@dataclass
class IngestOptions:
    task: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    text_pair_column: str | None = None
    label_names: dict[str, str] | None = None
    pii_masking: bool = False
    deduplicate: bool = False
    validation_fraction: float = 0.1
    seed: int = 0
    # How to read a text file: None/"auto" detect; explicit values win over detection.
    encoding: str | None = None  # a Python codec name: "latin-1", "cp1252", "gbk", "utf-16" ...
    quoting: str = "auto"  # "csv": "..." quotes fields; "none": a quote is an ordinary character
    delimiter: str | None = None  # any single character
    header: str = "auto"  # "yes", "no" (then `columns` names the fields in order), "auto"
    columns: list[str] | None = None
    max_text_chars: int = 1_000_000
    max_line_bytes: int = 8 * 1024 * 1024
    # Called once with the task when it is known (it may be detected from the file), so chat data can
    # be measured with a chat model's tokenizer; returns None to skip the token-length check, or a
    # string saying why the lengths cannot be checked (it becomes a warning).
    token_counter: Callable[[str], TokenCounter | str | None] | None = field(default=None, repr=False)


@dataclass
class IngestResult:
    task: str
    source_format: str
    column_mapping: dict[str, Any]
    train_path: Path
    validation_path: Path | None
    row_count: int
    validation_row_count: int
    labels: list[str]
    label_counts: dict[str, int]
    validation_label_counts: dict[str, int]
    sha256: str
    report: dict[str, Any]


def check_read_options(options: IngestOptions) -> tuple[str, str] | None:
    """(field, why) for the first read option that is not valid; None when all are."""
    problem = _read_option_problem(options)
    return (problem.split(" ", 1)[0], problem) if problem else None


def _read_option_problem(options: IngestOptions) -> str | None:
    import codecs

    if options.quoting not in QUOTING_CHOICES:
        return f"quoting must be one of {', '.join(QUOTING_CHOICES)}."
    if options.header not in HEADER_CHOICES:
        return f"header must be one of {', '.join(HEADER_CHOICES)}."
    if options.delimiter is not None and (
        len(options.delimiter) != 1 or options.delimiter in '\r\n"' or options.delimiter.isalnum()
    ):
        return "delimiter must be one character that is not a letter, a digit, a quote or a line break."
    if options.encoding:
        try:
            codecs.lookup(options.encoding)
        except LookupError:
            return f"encoding {options.encoding!r} is unknown; use a name such as utf-8, latin-1, cp1252, gbk, utf-16."
    if options.columns is not None and (
        not options.columns
        or any(not c.strip() for c in options.columns)
        or len(set(options.columns)) != len(options.columns)
    ):
        return "columns must be distinct, non-empty names in the file's column order, e.g. text,label."
    if options.header == "no" and not options.columns:
        return "columns are needed with header=no: the names of the file's columns in order, e.g. text,label."
    return None
