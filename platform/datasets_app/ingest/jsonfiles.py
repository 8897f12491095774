"""JSONL and JSON-array files: classification and multi-label records, chat `messages` and Alpaca
(`instruction`/`input`/`output`/`history`) records. The first record decides the task and mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datasets_app.ingest.columns import MappingError, detect_mapping, fold
from datasets_app.ingest.options import CHAT, CLASSIFICATION, MULTILABEL, MULTILABEL_SEPARATOR, ROLES
from datasets_app.ingest.pii import mask_pii
from datasets_app.ingest.readers import iter_json_array, iter_jsonl_records
from datasets_app.ingest.report import FatalIngestError
from datasets_app.ingest.rows import SAMPLE_ROWS, Part, RowError, RowParser, label_text

# (normalized row, input key for leakage/duplicates, label key, text to measure in tokens)
Built = tuple[dict, Any, int, str]
ALPACA_MAPPING = {
    "format": "alpaca",
    "instruction": "instruction",
    "input": "input",
    "output": "output",
    "history": "history",
    "system": "system",
}


class JsonParser(RowParser):
    def records(self) -> Iterator[tuple[int, Any]]:
        if self.kind.format == "json":
            self.source.fileobj.seek(0)
            return iter_json_array(
                self.source.fileobj,
                max_element_bytes=self.options.max_line_bytes,
                encoding=self.kind.encoding,
            )
        return iter_jsonl_records(
            self.text_stream(),
            on_error=lambda line, code, message: self.report.error(
                message, file=self.filename, code=code, line=line
            ),
        )

    def parse_into(self, path: Path, out) -> Part:
        part: Part | None = None
        build: Callable[[dict, int], Built] | None = None
        row_number = 0
        try:
            for line, record in self.records():
                row_number += 1
                self.data_rows = row_number
                if not isinstance(record, dict):
                    self.report.error(
                        f"expected a JSON object, got {type(record).__name__}.",
                        file=self.filename,
                        code="not_an_object",
                        line=line,
                        row=row_number,
                    )
                    continue
                if build is None:
                    part, build = self.builder(path, record)
                self.add_record(part, build, out, line, row_number, record)
        except UnicodeDecodeError:
            self.decode_failed()
        if part is None:
            if self.report.error_count == 0:
                raise FatalIngestError("the file contains no records.", code="no_rows")
            part = Part(
                role=self.role, filename=self.filename, kind=self.kind, task=self.task or CLASSIFICATION,
                path=path, mapping={},
            )  # fmt: skip
        return part

    def add_record(self, part: Part, build, out, line: int, row_number: int, record: dict) -> None:
        try:
            row, input_key, key, token_text = build(record, line)
        except RowError as exc:
            self.row_error(line, row_number, exc)
            return
        encoded = self.encode(row)
        out.write(encoded)
        out.write("\n")
        part.keys.append(key)
        part.lines.append(line)
        part.row_digests.append(hash(encoded))
        part.input_digests.append(hash(input_key))
        if self.counter is not None:
            self.check_tokens(part, part.rows, token_text)
        part.rows += 1

    def builder(self, path: Path, first: dict):
        if "messages" in first or ("instruction" in first and "output" in first):
            detected = CHAT
        else:
            label_key = self.options.label_column or next(
                (k for k in first if fold(k) in ("labels", "label", "tags")), None
            )
            is_list = label_key is not None and isinstance(first.get(label_key), list)
            detected = MULTILABEL if is_list else CLASSIFICATION
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
            mapping = ALPACA_MAPPING if alpaca else {"format": "messages", "messages": "messages"}
            return self.new_part(path, task, dict(mapping)), self.chat_row
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
        part = self.new_part(path, task, columns.as_dict())
        return part, lambda record, line: self.classification_row(record, line, columns, part)

    def classification_row(self, record: dict, line: int, columns, part: Part) -> Built:
        raw = record.get(columns.label)
        if raw is None or raw == "" or raw == []:
            raise RowError(columns.label, "missing_label", "the label is missing or empty.")
        text = self.text_value(record.get(columns.text), columns.text)
        pair = (
            self.text_value(record.get(columns.text_pair), columns.text_pair) if columns.text_pair else None
        )
        if isinstance(raw, str) and raw != raw.strip() and raw.strip():
            part.trimmed_labels[raw] = raw.strip()
            part.trimmed_count += 1
            if len(part.trimmed_rows) < SAMPLE_ROWS:
                part.trimmed_rows.append({"line": line, "label": raw, "text": text[:200]})
        if part.task == MULTILABEL:
            if isinstance(raw, str):
                raw = [p for p in raw.split(MULTILABEL_SEPARATOR) if p.strip()]
            if not isinstance(raw, list) or not raw:
                raise RowError(columns.label, "missing_label", "expected a non-empty list of labels.")
            names = sorted({label_text(v, columns.label) for v in raw})
            if self.label_names:
                names = sorted({self.map_label(n) for n in names})
            row: dict[str, Any] = {"text": text, "labels": names}
            key = self.labels.key(tuple(names))
        else:
            label = label_text(raw, columns.label)
            if self.label_names:
                label = self.map_label(label)
            row = (
                {"text": text, "label": label}
                if pair is None
                else {"text": text, "text_pair": pair, "label": label}
            )
            key = self.labels.key(label)
        if pair is None:
            return row, text, key, text
        return row, (text, pair), key, f"{text}\n{pair}"

    def content(self, value: Any, field_name: str) -> str:
        if not isinstance(value, str):
            if value is None:
                raise RowError(field_name, "missing_text", "the content is missing.")
            raise RowError(
                field_name, "invalid_text", f"the content must be a string, not {type(value).__name__}."
            )
        if not value.strip():
            raise RowError(field_name, "missing_text", "the content is empty.")
        if len(value) > self.options.max_text_chars:
            raise RowError(
                field_name,
                "text_too_long",
                f"the content has {len(value):,} characters; the limit is {self.options.max_text_chars:,}.",
            )
        return mask_pii(value, self.masked) if self.options.pii_masking else value

    def chat_row(self, record: dict, line: int) -> Built:
        if "messages" in record:
            messages = self.chat_messages(record["messages"])
        elif "instruction" in record or "output" in record:
            messages = self.alpaca_messages(record)
        else:
            raise RowError(
                "messages",
                "invalid_messages",
                "expected 'messages' (chat) or 'instruction' and 'output' (Alpaca).",
            )
        last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        if last_assistant < 0:
            raise RowError(
                "messages", "no_assistant_turn", "the conversation has no assistant turn to learn from."
            )
        prompt = self.encode(messages[:last_assistant])
        return {"messages": messages}, prompt, 0, "\n".join(m["content"] for m in messages)

    def chat_messages(self, raw: Any) -> list[dict[str, str]]:
        if not isinstance(raw, list) or not raw:
            raise RowError("messages", "invalid_messages", "'messages' must be a non-empty list.")
        messages = []
        for i, message in enumerate(raw):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                raise RowError(
                    where, "invalid_messages", "each message must be an object with role and content."
                )
            role = message.get("role")
            if role not in ROLES:
                raise RowError(
                    f"{where}.role",
                    "unknown_role",
                    f"unknown role {role!r}; expected one of {', '.join(ROLES)}.",
                )
            messages.append(
                {"role": role, "content": self.content(message.get("content"), f"{where}.content")}
            )
        return messages

    def alpaca_messages(self, record: dict) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        system = record.get("system")
        if isinstance(system, str) and system.strip():
            messages.append({"role": "system", "content": self.content(system, "system")})
        history = record.get("history") or []
        if not isinstance(history, list):
            raise RowError(
                "history", "invalid_history", "'history' must be a list of [user, assistant] pairs."
            )
        for i, pair in enumerate(history):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise RowError(
                    f"history[{i}]", "invalid_history", "each history entry must be a [user, assistant] pair."
                )
            messages.append({"role": "user", "content": self.content(pair[0], f"history[{i}][0]")})
            messages.append({"role": "assistant", "content": self.content(pair[1], f"history[{i}][1]")})
        instruction = self.content(record.get("instruction"), "instruction")
        extra = record.get("input")
        if extra is not None and not isinstance(extra, str):
            raise RowError("input", "invalid_text", f"'input' must be a string, not {type(extra).__name__}.")
        if extra and extra.strip():
            instruction = f"{instruction}\n\n{self.content(extra, 'input')}"
        messages.append({"role": "user", "content": instruction})
        output = record.get("output")
        if output is None or (isinstance(output, str) and not output.strip()):
            raise RowError(
                "output", "no_assistant_turn", "'output' (the assistant's answer) is missing or empty."
            )
        messages.append({"role": "assistant", "content": self.content(output, "output")})
        return messages
