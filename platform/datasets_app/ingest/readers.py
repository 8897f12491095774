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
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder(encoding)("strict")
    buf = ""
    pos = 0
    line = 1
    eof = False
    started = False

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        raw = fileobj.read(chunk_chars)
        try:
            text = utf8.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise FatalIngestError(
                f"not valid {encoding} near here (it looks like {describe_encoding(raw)}). "
                "Choose the encoding option or save the file as UTF-8.",
                code="unsupported_encoding",
                line=line,
            ) from None
        if not raw:
            eof = True
        if not started and not buf and text.startswith("\ufeff"):
            text = text[1:]
        buf = buf[pos:] + text
        pos = 0
        return bool(text) or not eof

    def skip_ws() -> str:
        nonlocal pos, line
        while True:
            n = len(buf)
            while pos < n and buf[pos] in " \t\r\n":
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < n:
                return buf[pos]
            if not fill():
                return ""

    def fail(message: str, code: str = "invalid_json") -> FatalIngestError:
        return FatalIngestError(message, code=code, line=line)

    if skip_ws() != "[":
        raise fail("expected a JSON array ('[' ...) of records.")
    pos += 1
    started = True
    expect_value = True
    first = True
    while True:
        ch = skip_ws()
        if ch == "":
            raise fail("the JSON array is not closed (missing ']' at the end of the file).")
        if ch == "]":
            pos += 1
            if skip_ws() != "":
                raise fail("unexpected content after the closing ']' of the array.")
            return
        if not expect_value:
            if ch != ",":
                raise fail(f"expected ',' or ']' between array elements, found {ch!r}.")
            pos += 1
            expect_value = True
            continue
        if ch == "," and first:
            raise fail("unexpected ',' at the start of the array.")
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except RecursionError:
                raise fail(TOO_DEEP, code="json_too_deep") from None
            except json.JSONDecodeError as exc:
                # A record cut off by the end of the buffer fails near its end (or as an unterminated
                # string); anything earlier is a real syntax error and needs no more data.
                truncated = exc.pos >= len(buf) - 8 or exc.msg.startswith("Unterminated string")
                if not truncated or eof:
                    err_line = line + buf.count("\n", pos, exc.pos)
                    raise FatalIngestError(
                        f"invalid JSON: {exc.msg}.", code="invalid_json", line=err_line
                    ) from None
                if len(buf) - pos > max_element_bytes:
                    raise fail(
                        f"a record is larger than {_mb(max_element_bytes)} or is not valid JSON; "
                        "reading stopped there.",
                        code="record_too_large",
                    ) from None
                if not fill():
                    err_line = line + buf.count("\n", pos, exc.pos)
                    raise FatalIngestError(
                        f"invalid JSON: {exc.msg}.", code="invalid_json", line=err_line
                    ) from None
        if end - pos > max_element_bytes:
            raise fail(
                f"a record is larger than {_mb(max_element_bytes)}; reading stopped there.",
                code="record_too_large",
            )
        start_line = line
        line += buf.count("\n", pos, end)
        pos = end
        expect_value = False
        first = False
        yield start_line, value
