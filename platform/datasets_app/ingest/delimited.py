"""CSV, TSV and any other single-character-delimited text: classification and multi-label rows.

Quoting is the risky part of such files: NLP corpora are often tab- or '@'-separated with bare '"'
inside the texts, and a CSV reader then swallows every line between a text that starts with a quote
and one that ends with one. A record that spans lines which each look like a whole row is therefore
never accepted: in `auto` mode a tab/other-delimited file is read again with quoting off, otherwise
the import stops naming the line.
"""

from __future__ import annotations

import csv
import itertools
from json.encoder import encode_basestring  # the C string encoder (ensure_ascii=False)
from pathlib import Path
from typing import Any

from datasets_app.ingest.columns import ColumnMapping, MappingError, detect_mapping, fold
from datasets_app.ingest.options import CHAT, CLASSIFICATION, MULTILABEL, MULTILABEL_SEPARATOR
from datasets_app.ingest.readers import csv_failure
from datasets_app.ingest.report import FatalIngestError
from datasets_app.ingest.rows import SAMPLE_ROWS, Part, RowError, RowParser
from datasets_app.ingest.sniff import QUOTING_DELIMITERS

BATCH_ROWS = 4096


class Requote(Exception):
    """The file must be read again with quoting off (auto mode found bare quotes mid-file)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def looks_like_data(cells: list[str]) -> bool:
    """A first line that reads like a sentence or numbers rather than column names."""
    words = [c for c in cells if len(c.split()) >= 3 or len(c) > 30]
    numbers = [c for c in cells if c.strip().lstrip("-").replace(".", "", 1).isdigit()]
    return bool(words) or len(numbers) == len(cells)


class DelimitedParser(RowParser):
    def may_requote(self) -> bool:
        return self.options.quoting == "auto" and self.kind.delimiter not in QUOTING_DELIMITERS

    def csv_error(self, exc: csv.Error, line: int) -> Exception:
        if self.kind.quoting == "csv" and self.may_requote():
            return Requote(f"line {line}: {csv_failure(exc, line).message}")
        failure = csv_failure(exc, line)
        if self.kind.quoting == "csv":
            failure.message += " If the texts contain '\"' without CSV quoting, upload with quoting=none."
        return failure

    def parse_into(self, path: Path, out) -> Part:
        delimiter = self.kind.delimiter or ","
        quoting = csv.QUOTE_NONE if self.kind.quoting == "none" else csv.QUOTE_MINIMAL
        reader = csv.reader(self.text_stream(), delimiter=delimiter, strict=True, quoting=quoting)
        header, first, header_from_file = self.read_header(reader)
        task = self.task or CLASSIFICATION
        if task == CHAT:
            raise FatalIngestError(
                'chat data must be JSONL ({"messages": [...]}) or Alpaca-style JSON, not '
                f"{self.kind.format.upper()}.",
                code="unsupported_format",
            )
        mapping = self.column_mapping(header, header_from_file)
        if self.task is None and fold(mapping.label or "") in ("labels", "tags"):
            task = MULTILABEL
        self.task = task
        part = self.new_part(path, task, mapping.as_dict())
        records = itertools.chain([first], reader) if first is not None else reader
        try:
            self.csv_loop(reader, records, header, mapping, part, out, first is not None)
        except UnicodeDecodeError:
            self.decode_failed()
            return part
        if part.rows == 0 and self.report.error_count == 0:
            raise FatalIngestError(
                f"the file has a header ({', '.join(header)}) but no data rows.", code="no_rows", line=2
            )
        return part

    def read_header(self, reader) -> tuple[list[str], list[str] | None, bool]:
        """(column names, the first data record when the first line is data, names came from the file)."""
        try:
            first = next(reader, None)
            while first == []:
                first = next(reader, None)
        except csv.Error as exc:
            raise self.csv_error(exc, 1) from None
        except UnicodeDecodeError:
            self.decode_failed()
            raise FatalIngestError(
                f"the file is not valid {self.kind.encoding} (see the lines listed).",
                code="unsupported_encoding",
            ) from None
        if first is None:
            raise FatalIngestError("the file is empty.", code="empty_file")
        columns, header = self.options.columns, self.options.header
        if header == "no":
            return list(columns), first, False
        cells = [h.strip() for h in first]
        if header == "auto" and columns and [fold(c) for c in cells] != [fold(c) for c in columns]:
            return list(columns), first, False
        return cells, None, header == "auto"

    def column_mapping(self, header: list[str], header_from_file: bool) -> ColumnMapping:
        try:
            return detect_mapping(
                header,
                text=self.options.text_column,
                label=self.options.label_column,
                text_pair=self.options.text_pair_column,
            )
        except MappingError as exc:
            if header_from_file and looks_like_data(header):
                shown = (self.kind.delimiter or ",").join(header)
                raise FatalIngestError(
                    f"this file seems to have no header: its first line reads like data ({shown[:120]!r}). "
                    "Upload with header=no and columns naming the columns in order (e.g. columns=text,label).",
                    code="no_header",
                    field="header",
                    line=1,
                ) from None
            raise FatalIngestError(exc.message, code="column_mapping", field=exc.field, line=1) from None

    def spanning_record(
        self, part: Part, fields: list[str], line: int, end: int, width: int, li: int, labels
    ) -> None:
        """A record over several physical lines: legitimate only if no inner line looks like a whole
        row (the right number of fields and, in the label column, a label already seen)."""
        delimiter = self.kind.delimiter or ","
        # Lines inside a field: with bare quotes they are whole swallowed rows, delimiters and all.
        inner = [piece.split(delimiter) for cell in fields if "\n" in cell for piece in cell.split("\n")[1:]]
        if width > 1 and any(len(cells) == width and cells[li].rstrip("\r") in labels for cells in inner):
            message = (
                f"a quoted field opened on line {line} runs to line {end} and takes in lines that each look "
                "like a whole row, which would merge them into one. The texts probably contain '\"' "
                "without CSV quoting"
            )
            if self.may_requote():
                raise Requote(f"line {line}: {message}; the file was read with quoting=none instead.")
            raise FatalIngestError(
                f"{message}: upload with quoting=none to read quotes as ordinary characters, or fix the quoting.",
                code="merged_rows",
                line=line,
            )
        part.multiline_count += 1
        if len(part.multiline_rows) < SAMPLE_ROWS:
            part.multiline_rows.append(line)

    def label_tail(self, raw: str, part: Part) -> tuple[str | None, int, bool]:
        """The encoded `,"label":"…"}\\n` tail of a raw label cell, its key and whether it was trimmed."""
        label = raw.strip()
        if not label:
            return None, -1, False
        if label != raw:
            part.trimmed_labels[raw] = label
        shown = self.map_label(label) if self.label_names else label
        return ',"label":' + encode_basestring(shown) + "}\n", self.labels.key(shown), label != raw

    def trimmed(self, part: Part, line: int, raw: str, text: str) -> None:
        part.trimmed_count += 1
        if len(part.trimmed_rows) < SAMPLE_ROWS:
            part.trimmed_rows.append({"line": line, "label": raw, "text": text[:200]})

    def slow_row(
        self, fields: list[str], idx: tuple[int, int, int], mapping: ColumnMapping, part: Part, line: int
    ):
        """Rows the fast path does not take: pairs, multi-label, masking, empty or over-long cells."""
        ti, li, pi = idx
        raw = fields[li]
        label = raw.strip()
        if not label:
            raise RowError(mapping.label, "missing_label", "the label is empty.")
        text = self.text_value(fields[ti], mapping.text)
        pair = self.text_value(fields[pi], mapping.text_pair) if pi >= 0 else None
        if label != raw:
            part.trimmed_labels[raw] = label
            self.trimmed(part, line, raw, text)
        if part.task == MULTILABEL:
            names = sorted({p.strip() for p in label.split(MULTILABEL_SEPARATOR) if p.strip()})
            if self.label_names:
                names = sorted({self.map_label(n) for n in names})
            return (
                self.encode({"text": text, "labels": names}) + "\n",
                self.labels.key(tuple(names)),
                text,
                pair,
            )
        if self.label_names:
            label = self.map_label(label)
        row: dict[str, Any] = (
            {"text": text, "label": label}
            if pair is None
            else {"text": text, "text_pair": pair, "label": label}
        )
        return self.encode(row) + "\n", self.labels.key(label), text, pair

    def ragged(self, line: int, row_number: int, header: list[str], found: int) -> None:
        self.row_error(
            line,
            row_number,
            RowError(
                None, "ragged_row", f"expected {len(header)} fields ({', '.join(header)}), found {found}."
            ),
        )

    def csv_loop(
        self, reader, records, header, mapping: ColumnMapping, part: Part, out, first_is_data
    ) -> None:
        width = len(header)
        idx = (header.index(mapping.text), header.index(mapping.label),
               header.index(mapping.text_pair) if mapping.text_pair else -1)  # fmt: skip
        ti, li = idx[0], idx[1]
        max_chars = self.options.max_text_chars
        slow = self.options.pii_masking or part.task == MULTILABEL or idx[2] >= 0
        counter = self.counter
        short_chars = (counter.max_length - counter.specials - 1) // 4 if counter is not None else 0
        if idx[2] >= 0:
            short_chars = -1  # pairs are measured as text + text_pair: always ask check_tokens
        quote = encode_basestring
        # Rows are written in joined batches: one write call per few thousand rows, not per row.
        batch: list[str] = []
        keys_append, lines_append = part.keys.append, part.lines.append
        row_digests_append, input_digests_append = part.row_digests.append, part.input_digests.append
        tails: dict[str, tuple[str | None, int, bool]] = {}  # per raw label cell, built once
        row_number = kept = 0
        previous = reader.line_num - 1 if first_is_data else reader.line_num
        try:
            for fields in records:
                line, previous = previous + 1, reader.line_num
                if not fields:
                    continue
                row_number += 1
                if previous != line:
                    self.spanning_record(part, fields, line, previous, width, li, tails)
                if len(fields) != width:
                    self.ragged(line, row_number, header, len(fields))
                    continue
                text = fields[ti].strip()
                tail = tails.get(fields[li])
                if tail is None:
                    tail = tails[fields[li]] = self.label_tail(fields[li], part)
                pair = None
                if slow or tail[0] is None or not text or len(text) > max_chars:
                    try:
                        encoded, key, text, pair = self.slow_row(fields, idx, mapping, part, line)
                    except RowError as exc:
                        self.row_error(line, row_number, exc)
                        continue
                else:
                    encoded, key = '{"text":' + quote(text) + tail[0], tail[1]
                    if tail[2]:
                        self.trimmed(part, line, fields[li], text)
                batch.append(encoded)
                keys_append(key)
                lines_append(line)
                row_digests_append(hash(encoded))
                input_digests_append(hash(text) if pair is None else hash((text, pair)))
                # Texts this short cannot exceed the limit (see check_tokens): skip the call.
                if counter is not None and len(text) > short_chars:
                    self.check_tokens(part, kept, text if pair is None else f"{text}\n{pair}")
                kept += 1
                if len(batch) >= BATCH_ROWS:
                    out.write("".join(batch))
                    batch.clear()
        except csv.Error as exc:
            raise self.csv_error(exc, previous + 1) from None
        out.write("".join(batch))
        part.rows = kept
        self.data_rows = row_number
