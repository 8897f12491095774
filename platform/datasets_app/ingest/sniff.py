"""What kind of file an upload is, decided from its name and first bytes before any parsing.

Only UTF-8 text is accepted (with or without a BOM). Anything else is refused with a message that
names what was found: an image, an archive (never decompressed, so a zip bomb costs nothing), or a
text encoding such as UTF-16 or Latin-1 (named with charset-normalizer).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from datasets_app.ingest.report import FatalIngestError

HEAD_BYTES = 64 * 1024
UTF8_BOM = codecs.BOM_UTF8

CSV_EXTENSIONS = {".csv", ".tsv", ".txt"}
JSON_EXTENSIONS = {".json", ".jsonl", ".ndjson"}
ARCHIVE_EXTENSIONS = {
    ".zip": "a ZIP archive",
    ".gz": "a gzip archive",
    ".tgz": "a gzip archive",
    ".bz2": "a bzip2 archive",
    ".xz": "an xz archive",
    ".7z": "a 7-Zip archive",
    ".rar": "a RAR archive",
    ".tar": "a tar archive",
    ".zst": "a zstd archive",
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".parquet": "a Parquet file",
}
# Leading bytes of formats people rename or upload by mistake.
MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Excel/Office file)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"PAR1", "a Parquet file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (xls/doc)"),
    (b"SQLite format 3\x00", "an SQLite database"),
]
BOMS = [
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian, with BOM)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian, with BOM)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian, with BOM)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian, with BOM)"),
]
DELIMITERS = [",", "\t", ";", "|"]


@dataclass
class SourceKind:
    format: str  # "csv" | "tsv" | "jsonl" | "json"
    delimiter: str | None
    encoding: str  # "utf-8" | "utf-8-sig"


def extension(filename: str) -> str:
    return os.path.splitext(filename.lower())[1]


def describe_encoding(sample: bytes) -> str:
    """A human name for the encoding of bytes that are not UTF-8."""
    for bom, name in BOMS:
        if sample.startswith(bom):
            return name
    even, odd = sample[0:2000:2], sample[1:2000:2]
    if sample and odd.count(0) > len(odd) * 0.3 and even.count(0) < len(even) * 0.05:
        return "UTF-16 (little-endian)"
    if sample and even.count(0) > len(even) * 0.3 and odd.count(0) < len(odd) * 0.05:
        return "UTF-16 (big-endian)"
    if _looks_latin1(sample):
        return "Latin-1 / Windows-1252"
    from charset_normalizer import from_bytes

    best = from_bytes(sample[:HEAD_BYTES]).best()
    if best is None:
        return "binary data (no text encoding fits)"
    name = best.encoding.replace("_", "-")
    aliases = {
        "latin-1": "Latin-1 (ISO-8859-1)",
        "iso8859-1": "Latin-1 (ISO-8859-1)",
        "cp1252": "Windows-1252 (Latin-1 family)",
        "utf-16": "UTF-16",
        "utf-16-le": "UTF-16 (little-endian)",
        "utf-16-be": "UTF-16 (big-endian)",
        "gb18030": "GB18030 (Chinese)",
        "gbk": "GBK (Chinese)",
        "big5": "Big5 (Chinese)",
        "shift-jis": "Shift JIS (Japanese)",
        "cp932": "Shift JIS (Japanese)",
    }
    return aliases.get(name.lower(), name)


def _looks_latin1(sample: bytes) -> bool:
    """Western European text in a single-byte code page: its non-ASCII bytes are mostly lone letters
    between ASCII ones (the é in café), while CJK double-byte encodings come in pairs. Statistical
    detectors often misname such short samples (mac-latin2, cp1250), so this is checked first."""
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    runs = [len(run) for run in re.findall(r"[^\x00-\x7f]+", text)]
    if not runs:
        return False
    lone = sum(1 for n in runs if n == 1) / len(runs)
    letters = sum(1 for ch in text if ord(ch) > 127 and ch.isalpha()) / sum(runs)
    return lone >= 0.8 and letters >= 0.8


def not_utf8_message(sample: bytes, *, line: int | None = None, byte: int | None = None) -> str:
    where = (
        f" (first invalid byte 0x{byte:02x} on line {line})" if line is not None and byte is not None else ""
    )
    return (
        f"the file is not UTF-8 text: it looks like {describe_encoding(sample)}{where}. "
        "Save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and upload it again."
    )


def _first_invalid_utf8(head: bytes, *, complete: bool) -> tuple[int, int] | None:
    """(line, byte value) of the first invalid UTF-8 byte in `head`, or None if it decodes."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(head, final=complete)
    except UnicodeDecodeError as exc:
        return head.count(b"\n", 0, exc.start) + 1, head[exc.start]
    return None


def sniff(fileobj: BinaryIO, filename: str, *, fmt: str | None = None) -> SourceKind:
    """Decide format, delimiter and encoding from the name and the first 64 KB; rewinds the file."""
    ext = extension(filename)
    if ext in ARCHIVE_EXTENSIONS:
        raise FatalIngestError(
            f"the file is {ARCHIVE_EXTENSIONS[ext]} (by its name); archives and spreadsheets are not accepted. "
            "Upload the uncompressed CSV, TSV, JSONL or JSON file.",
            code="unsupported_file_type",
        )
    fileobj.seek(0)
    head = fileobj.read(HEAD_BYTES)
    complete = len(head) < HEAD_BYTES
    fileobj.seek(0)
    if not head.strip(b" \t\r\n" + UTF8_BOM):
        raise FatalIngestError("the file is empty.", code="empty_file")
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise FatalIngestError(
                f"the file is {what}, not a CSV, TSV, JSONL or JSON text file. "
                "Upload the uncompressed text file (archives are not accepted).",
                code="unsupported_file_type",
            )
    if head[257:262] == b"ustar":
        raise FatalIngestError(
            "the file is a tar archive. Upload the uncompressed text file.", code="unsupported_file_type"
        )
    for bom, _name in BOMS:
        if head.startswith(bom):
            raise FatalIngestError(not_utf8_message(head), code="unsupported_encoding")
    encoding = "utf-8-sig" if head.startswith(UTF8_BOM) else "utf-8"
    body = head[len(UTF8_BOM) :] if encoding == "utf-8-sig" else head
    if b"\x00" in body:
        raise FatalIngestError(not_utf8_message(body), code="unsupported_encoding")
    invalid = _first_invalid_utf8(body, complete=complete)
    if invalid is not None:
        raise FatalIngestError(
            not_utf8_message(body, line=invalid[0], byte=invalid[1]),
            code="unsupported_encoding",
            line=invalid[0],
        )

    text = body.decode("utf-8", errors="ignore")
    first = text.lstrip()[:1]
    if fmt is None:
        if ext in (".jsonl", ".ndjson"):
            fmt = "jsonl"
        elif ext == ".json":
            fmt = "json" if first == "[" else "jsonl"
        elif ext == ".tsv":
            fmt = "tsv"
        elif ext in CSV_EXTENSIONS:
            fmt = "csv"
        else:
            fmt = "json" if first == "[" else "jsonl" if first == "{" else "csv"
    if fmt == "json" and first != "[":
        fmt = "jsonl"
    delimiter = None
    if fmt == "tsv":
        delimiter = "\t"
    elif fmt == "csv":
        delimiter = sniff_delimiter(text)
        if delimiter == "\t":
            fmt = "tsv"
    return SourceKind(format=fmt, delimiter=delimiter, encoding=encoding)


def sniff_delimiter(text: str) -> str:
    """The delimiter under which the first records have the most consistent width (>= 2 columns).

    csv.Sniffer guesses from character frequencies and is easily fooled by commas in texts; parsing
    the first records with each candidate and preferring a consistent column count is steadier.
    """
    lines = text.splitlines(keepends=True)[:60]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line of the sample may be cut off
    sample = "".join(lines)
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r][:50]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width) / len(rows)
        score = (consistent, -DELIMITERS.index(delimiter))
        if score > best_score:
            best, best_score = delimiter, score
    return best
