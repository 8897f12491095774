"""Streaming readers: records come out one at a time with the line they start on, so memory stays
flat however large the file is. Lines longer than `max_line_bytes` stop the read with a clear error
instead of being pulled into memory whole.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.ingest.report import FatalIngestError
from datasets_app.ingest.sniff import UTF8_BOM, describe_encoding

# csv's default field limit is 128 KiB; texts may be longer, and the limit must stay finite.
csv.field_size_limit(8 * 1024 * 1024)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


class _LineGuard(io.RawIOBase):
    """A raw stream that stops with a clear error as soon as one line grows past `max_line_bytes`.

    It sees the bytes in chunks (never more than the limit at a time), so the check costs a couple of
    C-level scans per chunk instead of Python work per line, and no overlong line is ever buffered.
    """

    def __init__(self, inner: BinaryIO, max_line_bytes: int) -> None:
        super().__init__()
        self.inner = inner
        self.limit = max_line_bytes
        self.chunk = max(1, min(1 << 20, max_line_bytes))
        self.run = 0  # bytes since the last line break
        self.newlines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.inner.read(min(len(buffer), self.chunk))
        n = len(data)
        if not n:
            return 0
        buffer[:n] = data
        first = data.find(b"\n")
        if first < 0:
            self.run += n
        else:
            if self.run + first > self.limit:
                self._too_long()
            self.newlines += data.count(b"\n")
            self.run = n - data.rfind(b"\n") - 1
        if self.run > self.limit:
            self._too_long()
        return n

    def _too_long(self):
        raise FatalIngestError(
            f"the line is longer than the {_mb(self.limit)} limit per line; reading stopped there. Check the "
            "file's format (a missing line break or quote?) or shorten the text.",
            code="line_too_long",
            line=self.newlines + 1,
        )


def open_text(fileobj: BinaryIO, *, encoding: str, max_line_bytes: int) -> io.TextIOWrapper:
    """A strict text view in `encoding` of `fileobj` (from its start) with the line-length guard; newline=''
    keeps line endings as they are, which the csv module needs for quoted line breaks."""
    fileobj.seek(0)
    guard = _LineGuard(fileobj, max_line_bytes)
    return io.TextIOWrapper(
        io.BufferedReader(guard, buffer_size=guard.chunk), encoding=encoding, errors="strict", newline=""
    )


def decode_errors(fileobj: BinaryIO, *, encoding: str, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    """(line, message) for every line that does not decode. Only run after a decode error, to say where."""
    if not encoding.lower().replace("_", "-").startswith("utf-8"):
        yield from _other_decode_errors(fileobj, encoding=encoding, max_line_bytes=max_line_bytes)
        return
    fileobj.seek(0)
    lineno = 0
    while True:
        raw = fileobj.readline(max_line_bytes + 1)
        if not raw:
            return
        lineno += 1
        if lineno == 1 and raw.startswith(UTF8_BOM):
            raw = raw[3:]
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                lineno,
                (
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); this part of "
                    f"the file looks like {describe_encoding(raw)}. Save the file as UTF-8."
                ),
            )


def _other_decode_errors(
    fileobj: BinaryIO, *, encoding: str, max_line_bytes: int
) -> Iterator[tuple[int, str]]:
    """Line by line for byte-oriented encodings (cp1252, gbk ...); one error for UTF-16/32, whose line
    breaks are not single bytes."""
    fileobj.seek(0)
    if encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        try:
            codecs.decode(fileobj.read(), encoding)
        except UnicodeDecodeError as exc:
            yield 1, f"not valid {encoding} (byte {exc.start + 1} of the file); check the encoding option."
        return
    for lineno, raw in enumerate(iter(lambda: fileobj.readline(max_line_bytes + 1), b""), start=1):
        try:
            raw.decode(encoding)
        except UnicodeDecodeError as exc:
            yield (
                lineno,
                (
                    f"not valid {encoding} (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "check the encoding option or save the file as UTF-8."
                ),
            )


def csv_failure(exc: csv.Error, start: int) -> FatalIngestError:
    reason = str(exc)
    if "unexpected end of data" in reason:
        message = "a quoted field is never closed (unterminated quote): it runs to the end of the file."
    elif "field larger than field limit" in reason:
        message = (
            f"a field is longer than {_mb(csv.field_size_limit())} (an unterminated quote?); "
            "reading stopped there."
        )
    else:
        message = f"malformed CSV ({reason}); reading stopped there."
    return FatalIngestError(message, code="malformed_csv", line=start)


TOO_DEEP = "invalid JSON: the value is nested too deeply (thousands of levels of [ or {)."


def iter_jsonl_records(
    lines: Iterable[str], *, on_error: Callable[[int, str, str], None]
) -> Iterator[tuple[int, Any]]:
    """(line, parsed value) for every non-blank line; unparsable lines go to `on_error(line, code, msg)`."""
    loads = json.loads
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError as exc:
            on_error(lineno, "invalid_json", f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            on_error(lineno, "json_too_deep", TOO_DEEP)
            continue
        yield lineno, value


def iter_json_array(
    fileobj: BinaryIO, *, max_element_bytes: int, chunk_chars: int = 1 << 20, encoding: str = "utf-8"
) -> Iterator[tuple[int, Any]]:
    """(start line, element) for each element of a top-level JSON array, parsed incrementally with
    `raw_decode` over a sliding buffer, so a 500 MB array never sits in memory whole."""
    return _ArrayReader(fileobj, max_element_bytes, chunk_chars, encoding).elements()


class _ArrayReader:
    def __init__(self, fileobj: BinaryIO, max_element_bytes: int, chunk_chars: int, encoding: str) -> None:
        self.fileobj = fileobj
        self.limit = max_element_bytes
        self.chunk = chunk_chars
        self.encoding = encoding
        self.decoder = json.JSONDecoder()
        self.text = codecs.getincrementaldecoder(encoding)("strict")
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.started = False

    def fail(self, message: str, code: str = "invalid_json", line: int | None = None) -> FatalIngestError:
        return FatalIngestError(message, code=code, line=line or self.line)

    def fill(self) -> bool:
        if self.eof:
            return False
        raw = self.fileobj.read(self.chunk)
        try:
            text = self.text.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise self.fail(
                f"not valid {self.encoding} near here (it looks like {describe_encoding(raw)}). "
                "Choose the encoding option or save the file as UTF-8.",
                code="unsupported_encoding",
            ) from None
        if not raw:
            self.eof = True
        if not self.started and not self.buf and text.startswith("\ufeff"):
            text = text[1:]
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return bool(text) or not self.eof

    def skip_ws(self) -> str:
        while True:
            buf, n = self.buf, len(self.buf)
            while self.pos < n and buf[self.pos] in " \t\r\n":
                if buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < n:
                return buf[self.pos]
            if not self.fill():
                return ""

    def elements(self) -> Iterator[tuple[int, Any]]:
        if self.skip_ws() != "[":
            raise self.fail("expected a JSON array ('[' ...) of records.")
        self.pos += 1
        self.started = True
        expect_value, first = True, True
        while True:
            ch = self.skip_ws()
            if ch == "":
                raise self.fail("the JSON array is not closed (missing ']' at the end of the file).")
            if ch == "]":
                self.pos += 1
                if self.skip_ws() != "":
                    raise self.fail("unexpected content after the closing ']' of the array.")
                return
            if not expect_value:
                if ch != ",":
                    raise self.fail(f"expected ',' or ']' between array elements, found {ch!r}.")
                self.pos += 1
                expect_value = True
                continue
            if ch == "," and first:
                raise self.fail("unexpected ',' at the start of the array.")
            value, end = self.decode_value()
            start_line = self.line
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            expect_value, first = False, False
            yield start_line, value

    def decode_value(self) -> tuple[Any, int]:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                break
            except RecursionError:
                raise self.fail(TOO_DEEP, code="json_too_deep") from None
            except json.JSONDecodeError as exc:
                # A record cut off by the end of the buffer fails near its end (or as an unterminated
                # string); anything earlier is a real syntax error and needs no more data.
                truncated = exc.pos >= len(self.buf) - 8 or exc.msg.startswith("Unterminated string")
                err_line = self.line + self.buf.count("\n", self.pos, exc.pos)
                if not truncated or self.eof:
                    raise self.fail(f"invalid JSON: {exc.msg}.", line=err_line) from None
                if len(self.buf) - self.pos > self.limit:
                    raise self.fail(
                        f"a record is larger than {_mb(self.limit)} or is not valid JSON; reading stopped there.",
                        code="record_too_large",
                    ) from None
                if not self.fill():
                    raise self.fail(f"invalid JSON: {exc.msg}.", line=err_line) from None
        if end - self.pos > self.limit:
            raise self.fail(
                f"a record is larger than {_mb(self.limit)}; reading stopped there.", code="record_too_large"
            )
        return value, end
