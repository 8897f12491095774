"""What every format's parser shares: the parsed part of one file, row errors, text and label checks,
label interning and the token-length check."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets_app.ingest.options import IngestOptions, Source, TokenCounter
from datasets_app.ingest.pii import mask_pii
from datasets_app.ingest.readers import decode_errors, open_text
from datasets_app.ingest.report import FatalIngestError, Report
from datasets_app.ingest.sniff import SourceKind

TOKEN_BATCH = 256
SAMPLE_ROWS = 5  # rows listed in a warning


@dataclass
class Part:
    """One parsed file: its normalized rows in a scratch file plus per-row keys, digests and lines."""

    role: str
    filename: str
    kind: SourceKind
    task: str
    path: Path
    mapping: dict[str, Any]
    rows: int = 0
    keys: array = field(default_factory=lambda: array("I"))
    row_digests: array = field(default_factory=lambda: array("q"))
    input_digests: array = field(default_factory=lambda: array("q"))
    lines: array = field(default_factory=lambda: array("I"))  # the physical line each row starts on
    too_long: list[int] = field(default_factory=list)
    max_tokens: int = 0
    counter: TokenCounter | None = None
    token_note: str | None = None  # why lengths were not checked
    trimmed_labels: dict[str, str] = field(default_factory=dict)  # raw label -> label after trimming
    trimmed_rows: list[dict[str, Any]] = field(default_factory=list)
    trimmed_count: int = 0
    multiline_rows: list[int] = field(default_factory=list)  # lines of records spanning lines
    multiline_count: int = 0


class RowError(Exception):
    def __init__(self, field: str | None, code: str, message: str) -> None:
        self.field = field
        self.code = code
        self.message = message


def label_text(value: Any, field_name: str) -> str:
    if isinstance(value, str):
        value = value.strip()
        if value:
            return value
        raise RowError(field_name, "missing_label", "the label is empty.")
    if value is None:
        raise RowError(field_name, "missing_label", "the label is missing.")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    raise RowError(
        field_name, "invalid_label", f"a label must be a string or a number, not {type(value).__name__}."
    )


class Labels:
    """Interns label keys (a label, or a sorted label set for multi-label rows) as small integers."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.keys: list[Any] = []

    def key(self, value: Any) -> int:
        index = self.index.get(value)
        if index is None:
            index = self.index[value] = len(self.keys)
            self.keys.append(value)
        return index


class RowParser(ABC):
    """Parses one file into a `Part`, reporting row errors into the shared report."""

    def __init__(
        self,
        *,
        source: Source,
        kind: SourceKind,
        role: str,
        options: IngestOptions,
        report: Report,
        labels: Labels,
        workdir: Path,
        task: str | None,
    ) -> None:
        self.source = source
        self.kind = kind
        self.filename = source.filename
        self.role = role
        self.options = options
        self.report = report
        self.labels = labels
        self.workdir = workdir
        self.task = task
        self.masked = report.masked
        self.encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self.counter: TokenCounter | None = None
        self.pending: list[tuple[int, str]] = []
        self.missing_labels = 0
        self.data_rows = 0
        self.label_names = options.label_names or None
        self.unmapped_labels: set[str] = set()

    # --- reporting
    def row_error(self, line: int | None, row: int | None, exc: RowError) -> None:
        self.report.error(exc.message, file=self.filename, code=exc.code, line=line, row=row, field=exc.field)
        if exc.code == "missing_label":
            self.missing_labels += 1

    def decode_failed(self) -> None:
        """Lists every line that does not decode (the text stream only says that one did not)."""
        for lineno, message in decode_errors(
            self.source.fileobj, encoding=self.kind.encoding, max_line_bytes=self.options.max_line_bytes
        ):
            self.report.error(message, file=self.filename, code="invalid_encoding", line=lineno)
        if self.report.error_count == 0:
            raise FatalIngestError(
                f"the file is not valid {self.kind.encoding}.", code="unsupported_encoding"
            )

    # --- shared row plumbing
    def new_part(self, path: Path, task: str, mapping: dict[str, Any]) -> Part:
        part = Part(
            role=self.role, filename=self.filename, kind=self.kind, task=task, path=path, mapping=mapping
        )
        factory = self.options.token_counter
        found = factory(task) if factory is not None else None
        if isinstance(found, str):
            part.token_note, found = found, None
        self.counter = part.counter = found
        return part

    def text_stream(self):
        return open_text(
            self.source.fileobj, encoding=self.kind.encoding, max_line_bytes=self.options.max_line_bytes
        )

    def text_value(self, value: Any, field_name: str) -> str:
        if isinstance(value, str):
            value = value.strip()
        elif value is None:
            raise RowError(field_name, "missing_text", "the text is missing.")
        else:
            raise RowError(
                field_name, "invalid_text", f"the text must be a string, not {type(value).__name__}."
            )
        if not value:
            raise RowError(field_name, "missing_text", "the text is empty.")
        if len(value) > self.options.max_text_chars:
            raise RowError(
                field_name,
                "text_too_long",
                f"the text has {len(value):,} characters; the limit is {self.options.max_text_chars:,}.",
            )
        if self.options.pii_masking:
            value = mask_pii(value, self.masked)
        return value

    def map_label(self, label: str) -> str:
        mapped = self.label_names.get(label)
        if mapped is None:
            self.unmapped_labels.add(label)
            return label
        return mapped

    def check_tokens(self, part: Part, index: int, text: str) -> None:
        counter = self.counter
        # A token covers at least one UTF-8 byte in every tokenizer family we use (WordPiece, BPE,
        # byte-level BPE, SentencePiece with byte fallback, +1 for a prefix space), so only texts whose
        # byte length could exceed the limit are tokenized; the count of over-long texts stays exact.
        if len(text) * 4 + counter.specials + 1 <= counter.max_length:
            return
        if len(text.encode("utf-8")) + counter.specials + 1 <= counter.max_length:
            return
        self.pending.append((index, text))
        if len(self.pending) >= TOKEN_BATCH:
            self.flush_tokens(part)

    def flush_tokens(self, part: Part) -> None:
        if not self.pending:
            return
        lengths = self.counter.lengths([text for _, text in self.pending])
        for (index, _text), n in zip(self.pending, lengths, strict=True):
            if n > self.counter.max_length:
                part.too_long.append(index)
            if n > part.max_tokens:
                part.max_tokens = n
        self.pending = []

    # --- entry point
    def parse(self) -> Part:
        path = self.workdir / f"{self.role}.rows.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            part = self.parse_into(path, out)
            if self.counter is not None:
                self.flush_tokens(part)
        self.finish(part)
        return part

    @abstractmethod
    def parse_into(self, path: Path, out) -> Part:
        """Writes the file's normalized rows to `out` and returns its part."""

    def finish(self, part: Part) -> None:
        if self.missing_labels and self.missing_labels == self.data_rows:
            label_field = part.mapping.get("label") or "label"
            self.report.error(
                f"the label column {label_field!r} is empty in every row ({self.missing_labels:,} rows).",
                file=self.filename,
                code="empty_label_column",
                field=label_field,
            )
            # The column-level error is the one worth reading first.
            self.report.errors.insert(0, self.report.errors.pop())
        if self.unmapped_labels:
            shown = sorted(self.unmapped_labels)[:20]
            self.report.warn(
                "unmapped_labels",
                f"{self.filename}: {len(self.unmapped_labels)} label(s) are not in "
                f"label_names and were kept as they are: {', '.join(shown)}.",
                count=len(self.unmapped_labels),
                params={"file": self.filename, "n": len(self.unmapped_labels), "labels": ", ".join(shown)},
                labels=shown,
            )
