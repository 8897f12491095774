"""The ingestion core: parse → validate → normalize → (mask) → split → write, streaming, Django-free.

`ingest()` reads the uploaded file(s) once, record by record, writing normalized JSONL rows to a
scratch file and keeping only a few machine words per row (a label key and two 64-bit digests) for
the checks that need the whole data set: duplicates, leakage, label counts and the stratified split.
A second sequential pass writes the final training and validation files and their sha256.
Nothing here touches the database or the storage backend; the caller stores the result.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # the C string encoder (ensure_ascii=False)
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from datasets_app.ingest.columns import ColumnMapping, MappingError, detect_mapping, fold
from datasets_app.ingest.pii import mask_pii
from datasets_app.ingest.readers import (
    csv_failure,
    iter_json_array,
    iter_jsonl_records,
    open_text,
    utf8_errors,
)
from datasets_app.ingest.report import FatalIngestError, Report
from datasets_app.ingest.sniff import SourceKind, sniff
from finetune.engine.vocabulary import Task

CLASSIFICATION = Task.CLASSIFICATION
MULTILABEL = Task.MULTILABEL_CLASSIFICATION
CHAT = Task.CHAT_SFT
TASKS = tuple(Task)
ROLES = ("system", "user", "assistant")
MULTILABEL_SEPARATOR = "|"

RARE_LABEL_MIN = 5
IMBALANCE_RATIO = 10
TOKEN_BATCH = 256


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
    max_text_chars: int = 1_000_000
    max_line_bytes: int = 8 * 1024 * 1024
    # Called once with the task when it is known (it may be detected from the file), so chat data can
    # be measured with a chat model's tokenizer; returns None to skip the token-length check.
    token_counter: Callable[[str], TokenCounter | None] | None = None


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


@dataclass
class _Part:
    """One parsed file: its normalized rows in a scratch file plus per-row keys and digests."""

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
    too_long: list[int] = field(default_factory=list)
    max_tokens: int = 0
    counter: TokenCounter | None = None


class _RowError(Exception):
    def __init__(self, field: str | None, code: str, message: str) -> None:
        self.field = field
        self.code = code
        self.message = message


def _label_text(value: Any, field_name: str) -> str:
    if isinstance(value, str):
        value = value.strip()
        if value:
            return value
        raise _RowError(field_name, "missing_label", "the label is empty.")
    if value is None:
        raise _RowError(field_name, "missing_label", "the label is missing.")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    raise _RowError(
        field_name, "invalid_label", f"a label must be a string or a number, not {type(value).__name__}."
    )


class _Labels:
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


class _Parser:
    """Parses one file into a `_Part`, reporting row errors into the shared report."""

    def __init__(
        self,
        *,
        source: Source,
        role: str,
        options: IngestOptions,
        report: Report,
        labels: _Labels,
        workdir: Path,
        task: str | None,
    ) -> None:
        self.source = source
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
    def row_error(self, line: int | None, row: int | None, exc: _RowError) -> None:
        self.report.error(exc.message, file=self.filename, code=exc.code, line=line, row=row, field=exc.field)
        if exc.code == "missing_label":
            self.missing_labels += 1

    def bad_line(self, lineno: int, message: str) -> None:
        self.report.error(message, file=self.filename, code="invalid_encoding", line=lineno)

    # --- shared row plumbing
    def text_value(self, value: Any, field_name: str) -> str:
        if isinstance(value, str):
            value = value.strip()
        elif value is None:
            raise _RowError(field_name, "missing_text", "the text is missing.")
        else:
            raise _RowError(
                field_name, "invalid_text", f"the text must be a string, not {type(value).__name__}."
            )
        if not value:
            raise _RowError(field_name, "missing_text", "the text is empty.")
        if len(value) > self.options.max_text_chars:
            raise _RowError(
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

    def resolve_counter(self, part: _Part) -> None:
        factory = self.options.token_counter
        self.counter = part.counter = factory(part.task) if factory is not None else None

    def check_tokens(self, part: _Part, index: int, text: str) -> None:
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

    def flush_tokens(self, part: _Part) -> None:
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
    def parse(self) -> _Part:
        kind = sniff(self.source.fileobj, self.filename)
        path = self.workdir / f"{self.role}.rows.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            if kind.format in ("csv", "tsv"):
                part = self.parse_csv(kind, path, out)
            else:
                part = self.parse_json(kind, path, out)
            if self.counter is not None:
                self.flush_tokens(part)
        self.finish(part)
        return part

    def finish(self, part: _Part) -> None:
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
                labels=shown,
            )

    # --- CSV / TSV: classification and multi-label
    def text_stream(self, kind: SourceKind):
        return open_text(
            self.source.fileobj, encoding=kind.encoding, max_line_bytes=self.options.max_line_bytes
        )

    def decode_failed(self) -> None:
        """Lists every line that is not UTF-8 (the text stream only says that one was not)."""
        for lineno, message in utf8_errors(self.source.fileobj, max_line_bytes=self.options.max_line_bytes):
            self.bad_line(lineno, message)

    def parse_csv(self, kind: SourceKind, path: Path, out) -> _Part:
        text = self.text_stream(kind)
        reader = csv.reader(text, delimiter=kind.delimiter or ",", strict=True)
        try:
            header = next(reader, None)
            while header == []:
                header = next(reader, None)
        except csv.Error as exc:
            raise csv_failure(exc, 1) from None
        except UnicodeDecodeError:
            self.decode_failed()
            raise FatalIngestError(
                "the file is not valid UTF-8 (see the lines listed).", code="unsupported_encoding"
            ) from None
        if header is None:
            raise FatalIngestError("the file is empty.", code="empty_file")
        header = [h.strip() for h in header]
        task = self.task or CLASSIFICATION
        if task == CHAT:
            raise FatalIngestError(
                'chat data must be JSONL ({"messages": [...]}) or Alpaca-style JSON, not '
                f"{kind.format.upper()}.",
                code="unsupported_format",
            )
        try:
            mapping = detect_mapping(
                header,
                text=self.options.text_column,
                label=self.options.label_column,
                text_pair=self.options.text_pair_column,
            )
        except MappingError as exc:
            raise FatalIngestError(exc.message, code="column_mapping", field=exc.field, line=1) from None
        if self.task is None and fold(mapping.label or "") in ("labels", "tags"):
            task = MULTILABEL
        self.task = task
        part = _Part(
            role=self.role, filename=self.filename, kind=kind, task=task, path=path, mapping=mapping.as_dict()
        )
        self.resolve_counter(part)
        try:
            self.csv_loop(reader, header, mapping, part, out)
        except UnicodeDecodeError:
            self.decode_failed()
            if self.report.error_count == 0:
                raise
            return part
        if part.rows == 0 and self.report.error_count == 0:
            raise FatalIngestError(
                f"the file has a header ({', '.join(header)}) but no data rows.", code="no_rows", line=2
            )
        return part

    def csv_loop(self, reader, header: list[str], mapping: ColumnMapping, part: _Part, out) -> None:
        width = len(header)
        ti = header.index(mapping.text)
        li = header.index(mapping.label)
        pi = header.index(mapping.text_pair) if mapping.text_pair else -1
        text_field, label_field, pair_field = mapping.text, mapping.label, mapping.text_pair
        multilabel = part.task == MULTILABEL
        max_chars = self.options.max_text_chars
        slow = self.options.pii_masking or multilabel or pi >= 0
        label_names = self.label_names
        counter = self.counter
        short_chars = (counter.max_length - counter.specials - 1) // 4 if counter is not None else 0
        if pi >= 0:
            short_chars = -1  # pairs are measured as text + text_pair: always ask check_tokens
        quote = encode_basestring
        # Rows are written in joined batches: one write call per few thousand rows, not per row.
        batch: list[str] = []
        batch_append = batch.append
        keys_append = part.keys.append
        row_digests_append = part.row_digests.append
        input_digests_append = part.input_digests.append
        label_key = self.labels.key
        # The encoded tail `,"label":"…"}\n` and the key of each label, built once per distinct label.
        tails: dict[str, tuple[str, int]] = {}
        row_number = 0
        kept = 0
        previous = reader.line_num
        try:
            for fields in reader:
                line = previous + 1
                previous = reader.line_num
                if not fields:
                    continue
                row_number += 1
                # The common case (a well-formed single-label row) stays inline: this loop is the hot path.
                if len(fields) != width:
                    self.row_error(
                        line,
                        row_number,
                        _RowError(
                            None,
                            "ragged_row",
                            f"expected {width} fields ({', '.join(header)}), found {len(fields)}.",
                        ),
                    )
                    continue
                text = fields[ti].strip()
                label = fields[li].strip()
                if slow or not text or not label or len(text) > max_chars:
                    try:
                        if not label:
                            raise _RowError(label_field, "missing_label", "the label is empty.")
                        text = self.text_value(fields[ti], text_field)
                        pair = self.text_value(fields[pi], pair_field) if pi >= 0 else None
                    except _RowError as exc:
                        self.row_error(line, row_number, exc)
                        continue
                    if multilabel:
                        names = sorted({p.strip() for p in label.split(MULTILABEL_SEPARATOR) if p.strip()})
                        if label_names:
                            names = sorted({self.map_label(n) for n in names})
                        row = {"text": text, "labels": names}
                        key = label_key(tuple(names))
                    else:
                        if label_names:
                            label = self.map_label(label)
                        row = (
                            {"text": text, "label": label}
                            if pair is None
                            else {"text": text, "text_pair": pair, "label": label}
                        )
                        key = label_key(label)
                    encoded = self.encode(row) + "\n"
                else:
                    pair = None
                    tail = tails.get(label)
                    if tail is None:
                        shown = self.map_label(label) if label_names else label
                        tail = tails[label] = (',"label":' + quote(shown) + "}\n", label_key(shown))
                    encoded = '{"text":' + quote(text) + tail[0]
                    key = tail[1]
                batch_append(encoded)
                keys_append(key)
                row_digests_append(hash(encoded))
                input_digests_append(hash(text) if pair is None else hash((text, pair)))
                # Texts this short cannot exceed the limit (see check_tokens): skip the call.
                if counter is not None and len(text) > short_chars:
                    self.check_tokens(part, kept, text if pair is None else f"{text}\n{pair}")
                kept += 1
                if len(batch) >= 4096:
                    out.write("".join(batch))
                    batch.clear()
        except csv.Error as exc:
            raise csv_failure(exc, previous + 1) from None
        out.write("".join(batch))
        part.rows = kept
        self.data_rows = row_number

    # --- JSONL / JSON array: every task
    def parse_json(self, kind: SourceKind, path: Path, out) -> _Part:
        if kind.format == "json":
            records: Iterator[tuple[int, Any]] = iter_json_array(
                self.source.fileobj, max_element_bytes=self.options.max_line_bytes
            )
        else:
            records = iter_jsonl_records(
                self.text_stream(kind),
                on_error=lambda line, code, message: self.report.error(
                    message, file=self.filename, code=code, line=line
                ),
            )
        part: _Part | None = None
        build: Callable[[dict], tuple[dict, Any, int, str]] | None = None
        row_number = 0
        try:
            for line, record in records:
                row_number += 1
                self.data_rows = row_number
                part, build = self.json_record(kind, path, out, line, row_number, record, part, build)
        except UnicodeDecodeError:
            self.decode_failed()
            if self.report.error_count == 0:
                raise
        if part is None:
            if self.report.error_count == 0:
                raise FatalIngestError("the file contains no records.", code="no_rows")
            part = _Part(
                role=self.role,
                filename=self.filename,
                kind=kind,
                task=self.task or CLASSIFICATION,
                path=path,
                mapping={},
            )
        return part

    def json_record(
        self,
        kind: SourceKind,
        path: Path,
        out,
        line: int,
        row_number: int,
        record: Any,
        part: _Part | None,
        build,
    ):
        if not isinstance(record, dict):
            self.report.error(
                f"expected a JSON object, got {type(record).__name__}.",
                file=self.filename,
                code="not_an_object",
                line=line,
                row=row_number,
            )
            return part, build
        if build is None:
            part, build = self.json_builder(kind, path, record)
        try:
            row, input_key, key, token_text = build(record)
        except _RowError as exc:
            self.row_error(line, row_number, exc)
            return part, build
        encoded = self.encode(row)
        out.write(encoded)
        out.write("\n")
        part.keys.append(key)
        part.row_digests.append(hash(encoded))
        part.input_digests.append(hash(input_key))
        if self.counter is not None:
            self.check_tokens(part, part.rows, token_text)
        part.rows += 1
        return part, build

    def json_builder(self, kind: SourceKind, path: Path, first: dict):
        if "messages" in first or ("instruction" in first and "output" in first):
            detected = CHAT
        else:
            label_key = self.options.label_column or next(
                (k for k in first if fold(k) in ("labels", "label", "tags")), None
            )
            detected = (
                MULTILABEL
                if label_key is not None and isinstance(first.get(label_key), list)
                else CLASSIFICATION
            )
        task = self.task or detected
        if (task == CHAT) != (detected == CHAT) or (task == CLASSIFICATION and detected == MULTILABEL):
            raise FatalIngestError(
                f"this file holds {detected} data, but the task is {task}.",
                code="task_mismatch",
                field="task",
            )
        self.task = task
        if task == CHAT:
            alpaca = "messages" not in first and "instruction" in first
            mapping = (
                {
                    "format": "alpaca",
                    "instruction": "instruction",
                    "input": "input",
                    "output": "output",
                    "history": "history",
                    "system": "system",
                }
                if alpaca
                else {"format": "messages", "messages": "messages"}
            )
            part = _Part(
                role=self.role, filename=self.filename, kind=kind, task=task, path=path, mapping=mapping
            )
            self.resolve_counter(part)
            return part, self.chat_row
        try:
            columns = detect_mapping(
                list(first.keys()),
                text=self.options.text_column,
                label=self.options.label_column,
                text_pair=self.options.text_pair_column,
            )
        except MappingError as exc:
            raise FatalIngestError(
                f"in the first record: {exc.message}", code="column_mapping", field=exc.field
            ) from None
        part = _Part(
            role=self.role, filename=self.filename, kind=kind, task=task, path=path, mapping=columns.as_dict()
        )
        self.resolve_counter(part)

        def classification_row(record: dict) -> tuple[dict, Any, int, str]:
            raw = record.get(columns.label)
            if raw is None or raw == "" or raw == []:
                raise _RowError(columns.label, "missing_label", "the label is missing or empty.")
            text = self.text_value(record.get(columns.text), columns.text)
            pair = (
                self.text_value(record.get(columns.text_pair), columns.text_pair)
                if columns.text_pair
                else None
            )
            if task == MULTILABEL:
                if isinstance(raw, str):
                    raw = [p for p in raw.split(MULTILABEL_SEPARATOR) if p.strip()]
                if not isinstance(raw, list) or not raw:
                    raise _RowError(columns.label, "missing_label", "expected a non-empty list of labels.")
                names = sorted({_label_text(v, columns.label) for v in raw})
                if self.label_names:
                    names = sorted({self.map_label(n) for n in names})
                row: dict[str, Any] = {"text": text, "labels": names}
                key = self.labels.key(tuple(names))
            else:
                label = _label_text(raw, columns.label)
                if self.label_names:
                    label = self.map_label(label)
                row = (
                    {"text": text, "label": label}
                    if pair is None
                    else {"text": text, "text_pair": pair, "label": label}
                )
                key = self.labels.key(label)
            return (
                row,
                (text if pair is None else (text, pair)),
                key,
                text if pair is None else f"{text}\n{pair}",
            )

        return part, classification_row

    def content(self, value: Any, field_name: str) -> str:
        if not isinstance(value, str):
            if value is None:
                raise _RowError(field_name, "missing_text", "the content is missing.")
            raise _RowError(
                field_name, "invalid_text", f"the content must be a string, not {type(value).__name__}."
            )
        if not value.strip():
            raise _RowError(field_name, "missing_text", "the content is empty.")
        if len(value) > self.options.max_text_chars:
            raise _RowError(
                field_name,
                "text_too_long",
                f"the content has {len(value):,} characters; the limit is {self.options.max_text_chars:,}.",
            )
        return mask_pii(value, self.masked) if self.options.pii_masking else value

    def chat_row(self, record: dict) -> tuple[dict, Any, int, str]:
        if "messages" in record:
            raw = record["messages"]
            if not isinstance(raw, list) or not raw:
                raise _RowError("messages", "invalid_messages", "'messages' must be a non-empty list.")
            messages = []
            for i, message in enumerate(raw):
                where = f"messages[{i}]"
                if not isinstance(message, dict):
                    raise _RowError(
                        where, "invalid_messages", "each message must be an object with role and content."
                    )
                role = message.get("role")
                if role not in ROLES:
                    raise _RowError(
                        f"{where}.role",
                        "unknown_role",
                        f"unknown role {role!r}; expected one of {', '.join(ROLES)}.",
                    )
                messages.append(
                    {"role": role, "content": self.content(message.get("content"), f"{where}.content")}
                )
        elif "instruction" in record or "output" in record:
            messages = self.alpaca_messages(record)
        else:
            raise _RowError(
                "messages",
                "invalid_messages",
                "expected 'messages' (chat) or 'instruction' and 'output' (Alpaca).",
            )
        last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        if last_assistant < 0:
            raise _RowError(
                "messages", "no_assistant_turn", "the conversation has no assistant turn to learn from."
            )
        prompt = self.encode(messages[:last_assistant])
        return {"messages": messages}, prompt, 0, "\n".join(m["content"] for m in messages)

    def alpaca_messages(self, record: dict) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        system = record.get("system")
        if isinstance(system, str) and system.strip():
            messages.append({"role": "system", "content": self.content(system, "system")})
        history = record.get("history") or []
        if not isinstance(history, list):
            raise _RowError(
                "history", "invalid_history", "'history' must be a list of [user, assistant] pairs."
            )
        for i, pair in enumerate(history):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise _RowError(
                    f"history[{i}]", "invalid_history", "each history entry must be a [user, assistant] pair."
                )
            messages.append({"role": "user", "content": self.content(pair[0], f"history[{i}][0]")})
            messages.append({"role": "assistant", "content": self.content(pair[1], f"history[{i}][1]")})
        instruction = self.content(record.get("instruction"), "instruction")
        extra = record.get("input")
        if extra is not None and not isinstance(extra, str):
            raise _RowError("input", "invalid_text", f"'input' must be a string, not {type(extra).__name__}.")
        if extra and extra.strip():
            instruction = f"{instruction}\n\n{self.content(extra, 'input')}"
        messages.append({"role": "user", "content": instruction})
        output = record.get("output")
        if output is None or (isinstance(output, str) and not output.strip()):
            raise _RowError(
                "output", "no_assistant_turn", "'output' (the assistant's answer) is missing or empty."
            )
        messages.append({"role": "assistant", "content": self.content(output, "output")})
        return messages


# --- the whole-data-set steps ------------------------------------------------------------------
# Per-row state lives in numpy arrays (a label key and two 64-bit digests per row), never in Python
# objects per row, so a million rows cost tens of megabytes, not hundreds.


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


def _digests(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, dtype=np.int64)


def _repeats(digests: np.ndarray) -> np.ndarray:
    """True for every row whose digest already occurred on an earlier row."""
    flags = np.ones(len(digests), dtype=bool)
    if len(digests):
        _unique, first = np.unique(digests, return_index=True)
        flags[first] = False
    return flags


def _conflicts(inputs: np.ndarray, rows: np.ndarray) -> int:
    """Inputs that occur with more than one distinct row (i.e. with different labels)."""
    if not len(inputs):
        return 0
    _pairs, first = np.unique(inputs * np.int64(1_000_003) ^ rows, return_index=True)
    _values, counts = np.unique(inputs[first], return_counts=True)
    return int((counts > 1).sum())


def _label_counts(
    keys: np.ndarray, selected: np.ndarray, label_keys: list[Any], multilabel: bool
) -> dict[str, int]:
    per_key = np.bincount(keys[selected], minlength=len(label_keys)) if len(keys) else []
    counts: dict[str, int] = {}
    for key, n in enumerate(per_key):
        if not n:
            continue
        for label in label_keys[key] if multilabel else (label_keys[key],):
            counts[label] = counts.get(label, 0) + int(n)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _write(
    sources: list[tuple[Path, np.ndarray]], train_path: Path, val_path: Path
) -> tuple[str, str, int, int]:
    """Copies the scratch rows into the final files by flag: 0 training, 1 validation, 2 dropped."""
    train_hash, val_hash = hashlib.sha256(), hashlib.sha256()
    n_train = n_val = 0
    with open(train_path, "wb") as train_out, open(val_path, "wb") as val_out:
        for path, flags in sources:
            flag_bytes = flags.astype(np.uint8).tobytes()
            offset = 0
            with open(path, "rb") as rows:
                while lines := rows.readlines(1 << 20):
                    chunk = flag_bytes[offset : offset + len(lines)]
                    offset += len(lines)
                    if not chunk.strip(b"\x00"):
                        train_part, val_part = b"".join(lines), b""
                    else:
                        train_part = b"".join([line for line, f in zip(lines, chunk, strict=True) if f == 0])
                        val_part = b"".join([line for line, f in zip(lines, chunk, strict=True) if f == 1])
                    train_out.write(train_part)
                    train_hash.update(train_part)
                    val_out.write(val_part)
                    val_hash.update(val_part)
            n_train += int((flags == 0).sum())
            n_val += int((flags == 1).sum())
    return train_hash.hexdigest(), val_hash.hexdigest(), n_train, n_val


def content_sha256(train_sha: str, validation_sha: str | None) -> str:
    """A version's identity: the sha256 of the two splits' digests (validation empty when absent)."""
    return hashlib.sha256(f"train:{train_sha}\nvalidation:{validation_sha or ''}\n".encode()).hexdigest()


def _label_checks(
    report: Report, part: _Part, counts: dict[str, int], filename: str, field_name: str | None
) -> None:
    if len(counts) < 2:
        only = f" (only {next(iter(counts))!r})" if counts else ""
        report.error(
            f"found {len(counts)} distinct label{'s' if len(counts) != 1 else ''}{only} in "
            f"{part.rows:,} rows; a classifier needs at least 2 labels.",
            file=filename,
            code="too_few_labels",
            field=field_name,
        )
        return
    rare = {label: n for label, n in counts.items() if n < RARE_LABEL_MIN}
    if rare:
        shown = sorted(rare, key=lambda label: (rare[label], label))[:20]
        report.warn(
            "rare_labels",
            f"{len(rare)} label(s) have fewer than {RARE_LABEL_MIN} training examples: "
            + ", ".join(f"{label} ({rare[label]})" for label in shown)
            + (" …" if len(rare) > 20 else ""),
            count=len(rare),
            labels={label: rare[label] for label in shown},
        )
    most, least = max(counts.items(), key=lambda i: i[1]), min(counts.items(), key=lambda i: i[1])
    if least[1] and most[1] / least[1] >= IMBALANCE_RATIO:
        report.warn(
            "class_imbalance",
            f"heavy class imbalance: {most[0]!r} has {most[1]:,} examples, {least[0]!r} "
            f"has {least[1]:,} (ratio {most[1] / least[1]:.0f}:1).",
            count=round(most[1] / least[1]),
            most=most[0],
            least=least[0],
        )


def _parse_all(
    train: Source,
    validation: Source | None,
    options: IngestOptions,
    report: Report,
    labels: _Labels,
    workdir: Path,
) -> tuple[_Part, _Part | None]:
    try:
        train_part = _Parser(
            source=train,
            role="train",
            options=options,
            report=report,
            labels=labels,
            workdir=workdir,
            task=options.task,
        ).parse()
    except FatalIngestError as exc:
        report.error(exc.message, file=train.filename, code=exc.code, line=exc.line, field=exc.field)
        raise report.failure() from None
    val_part = None
    if validation is not None:
        try:
            val_part = _Parser(
                source=validation,
                role="validation",
                options=options,
                report=report,
                labels=labels,
                workdir=workdir,
                task=train_part.task,
            ).parse()
        except FatalIngestError as exc:
            report.error(exc.message, file=validation.filename, code=exc.code, line=exc.line, field=exc.field)
    if report.error_count:
        raise report.failure()
    return train_part, val_part


def ingest(
    *, train: Source, validation: Source | None, options: IngestOptions, workdir: Path
) -> IngestResult:
    """Validates and normalizes an upload into `workdir`; raises `IngestFailed` with the report when
    any blocking error is found (the caller must then store nothing)."""
    if options.task is not None and options.task not in TASKS:
        raise ValueError(f"unknown task {options.task!r}")
    if not 0 <= options.validation_fraction < 1:
        raise ValueError("validation_fraction must be in [0, 1)")
    report = Report()
    labels = _Labels()
    train_part, val_part = _parse_all(train, validation, options, report, labels, workdir)
    task = train_part.task
    multilabel = task == MULTILABEL
    train_keys = (
        np.frombuffer(train_part.keys, dtype=np.uint32) if train_part.rows else np.zeros(0, np.uint32)
    )
    train_rows, train_inputs = _digests(train_part.row_digests), _digests(train_part.input_digests)

    # Duplicates (exact normalized rows) and, optionally, their removal.
    train_dups = _repeats(train_rows)
    n_dups = int(train_dups.sum())
    train_keep = ~train_dups if options.deduplicate else np.ones(train_part.rows, dtype=bool)
    if val_part is not None:
        val_keys = np.frombuffer(val_part.keys, dtype=np.uint32) if val_part.rows else np.zeros(0, np.uint32)
        val_inputs = _digests(val_part.input_digests)
        val_dups = _repeats(_digests(val_part.row_digests))
        n_val_dups = int(val_dups.sum())
        val_keep = ~val_dups if options.deduplicate else np.ones(val_part.rows, dtype=bool)

    # The split: a user-supplied validation file, or a seeded stratified share of the training rows.
    if val_part is not None:
        split: dict[str, Any] = {"method": "file", "validation_file": val_part.filename}
        moved = np.zeros(train_part.rows, dtype=bool)
    else:
        n_val_dups = 0
        split = {
            "method": "stratified" if task != CHAT else "random",
            "fraction": options.validation_fraction,
            "seed": options.seed,
        }
        moved = stratified_split(
            train_keys, train_keep, fraction=options.validation_fraction, seed=options.seed
        )
    train_selected = train_keep & ~moved

    if task == CHAT:
        train_counts: dict[str, int] = {}
        val_counts: dict[str, int] = {}
    else:
        train_counts = _label_counts(train_keys, train_selected, labels.keys, multilabel)
        val_counts = (
            _label_counts(val_keys, val_keep, labels.keys, multilabel)
            if val_part is not None
            else _label_counts(train_keys, moved, labels.keys, multilabel)
        )
        _label_checks(report, train_part, train_counts, train.filename, train_part.mapping.get("label"))
        if report.error_count:
            raise report.failure()

    # Leakage: validation rows whose input also appears among the training rows.
    train_seen = train_inputs[train_selected]
    val_seen = val_inputs[val_keep] if val_part is not None else train_inputs[moved]
    leaks = int(np.isin(val_seen, train_seen).sum()) if len(val_seen) and len(train_seen) else 0
    conflicts = _conflicts(train_inputs[train_keep], train_rows[train_keep]) if task != CHAT else 0

    train_path, val_path = workdir / "train.jsonl", workdir / "validation.jsonl"
    flags = np.where(train_selected, 0, np.where(moved, 1, 2))
    sources = [(train_part.path, flags)]
    if val_part is not None:
        sources.append((val_part.path, np.where(val_keep, 1, 2)))
    train_sha, val_sha, n_train, n_val = _write(sources, train_path, val_path)
    for part in (train_part, val_part):
        if part is not None:
            os.unlink(part.path)
    if n_val == 0:
        os.unlink(val_path)
    sha = content_sha256(train_sha, val_sha if n_val else None)

    # Warnings.
    if n_dups:
        report.warn(
            "duplicates",
            f"{n_dups:,} training row(s) repeat an earlier row exactly"
            + ("; they were removed." if options.deduplicate else " (upload with deduplicate to drop them)."),
            count=n_dups,
            removed=bool(options.deduplicate),
        )
    if n_val_dups:
        report.warn(
            "validation_duplicates",
            f"{n_val_dups:,} validation row(s) repeat an earlier row exactly"
            + ("; they were removed." if options.deduplicate else "."),
            count=n_val_dups,
            removed=bool(options.deduplicate),
        )
    if conflicts:
        report.warn(
            "conflicting_labels", f"{conflicts:,} text(s) appear with different labels.", count=conflicts
        )
    if leaks:
        report.warn(
            "leakage",
            f"{leaks:,} validation row(s) have the same input as a training row "
            "(train/validation overlap inflates validation scores).",
            count=leaks,
        )
    if n_val == 0:
        why = (
            " (too few rows for the chosen fraction)"
            if options.validation_fraction > 0 and not val_part
            else ""
        )
        report.warn("no_validation", f"the validation split is empty{why}.", count=0)
    if task != CHAT and val_counts:
        only_val = sorted(set(val_counts) - set(train_counts))
        if only_val:
            report.warn(
                "validation_only_labels",
                f"{len(only_val)} label(s) occur only in the validation data: {', '.join(only_val[:20])}.",
                count=len(only_val),
                labels=only_val[:20],
            )
    token_stats = _token_stats(
        report,
        train_part.counter,
        task,
        train_part,
        val_part,
        train_selected,
        moved,
        val_keep if val_part is not None else None,
    )

    report.stats = {
        "format": train_part.kind.format,
        "delimiter": train_part.kind.delimiter,
        "encoding": train_part.kind.encoding,
        "source_rows": train_part.rows + (val_part.rows if val_part else 0),
        "rows": n_train,
        "validation_rows": n_val,
        "labels": len(train_counts),
        "label_counts": train_counts,
        "validation_label_counts": val_counts,
        "duplicates": n_dups,
        "duplicates_removed": (n_dups + n_val_dups) if options.deduplicate else 0,
        "leakage": leaks,
        "conflicting_labels": conflicts,
        "split": split,
        "tokens": token_stats,
    }
    mapping = dict(train_part.mapping)
    if val_part is not None:
        mapping["validation"] = val_part.mapping
    return IngestResult(
        task=task,
        source_format=train_part.kind.format,
        column_mapping=mapping,
        train_path=train_path,
        validation_path=val_path if n_val else None,
        row_count=n_train,
        validation_row_count=n_val,
        labels=sorted(set(train_counts) | set(val_counts)),
        label_counts=train_counts,
        validation_label_counts=val_counts,
        sha256=sha,
        report=report.as_dict(),
    )


def _token_stats(
    report: Report,
    counter: TokenCounter | None,
    task: str,
    train_part: _Part,
    val_part: _Part | None,
    train_selected: np.ndarray,
    moved: np.ndarray,
    val_keep: np.ndarray | None,
) -> dict | None:
    if counter is None:
        return None
    long_train = sum(1 for i in train_part.too_long if train_selected[i])
    if val_part is not None:
        long_val = sum(1 for i in val_part.too_long if val_keep[i])
    else:
        long_val = sum(1 for i in train_part.too_long if moved[i])
    max_tokens = max(train_part.max_tokens, val_part.max_tokens if val_part else 0)
    if long_train or long_val:
        what = "conversations" if task == CHAT else "texts"
        report.warn(
            "too_long",
            f"{long_train:,} training and {long_val:,} validation {what} are longer than "
            f"{counter.max_length} tokens for {counter.name} (longest: {max_tokens:,}); they will be "
            "truncated in training.",
            count=long_train + long_val,
            train=long_train,
            validation=long_val,
            max_tokens=max_tokens,
        )
    return {
        "model": counter.name,
        "max_length": counter.max_length,
        "too_long": long_train,
        "too_long_validation": long_val,
    }
