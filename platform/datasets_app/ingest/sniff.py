"""What kind of file an upload is, decided from its name and first bytes before any parsing.

Text is read in its own encoding and normalized to UTF-8: UTF-8 (with or without a BOM), UTF-16/32
(by BOM or by their zero bytes), Latin-1 / Windows-1252 and, when charset-normalizer is confident,
whatever it detects; an explicit `encoding` wins. Anything else is refused with a message that names
what was found: an image, an archive (never decompressed, so a zip bomb costs nothing), or a text
encoding that cannot be told with confidence.
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

# charset-normalizer's "chaos" (mess ratio) at or under which its best guess is trusted.
CONFIDENT_CHAOS = 0.1


@dataclass
class SourceKind:
    format: str  # "csv" | "tsv" | "jsonl" | "json"
    delimiter: str | None
    encoding: str  # a Python codec name: "utf-8", "utf-8-sig", "cp1252", "utf-16" ...
    encoding_source: str = "utf-8"  # "utf-8" | "detected" | "option"
    quoting: str = "csv"  # for csv/tsv: "csv" or "none" (quotes are ordinary characters)
    quoting_reason: str | None = None  # why quoting is "none" when it was not asked for


def encoding_label(codec: str) -> str:
    """The name a person knows an encoding by."""
    names = {
        "utf-8": "UTF-8",
        "utf-8-sig": "UTF-8 (with BOM)",
        "utf-16": "UTF-16",
        "utf-16-le": "UTF-16 (little-endian)",
        "utf-16-be": "UTF-16 (big-endian)",
        "utf-32": "UTF-32",
        "latin-1": "Latin-1 (ISO-8859-1)",
        "cp1252": "Windows-1252",
        "gbk": "GBK (Chinese)",
        "gb18030": "GB18030 (Chinese)",
        "gb2312": "GB2312 (Chinese)",
        "big5": "Big5 (Chinese)",
        "shift_jis": "Shift JIS (Japanese)",
        "cp932": "Shift JIS (Japanese)",
    }
    return names.get(codec.lower().replace("_", "-"), names.get(codec.lower(), codec))


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


CP1252_PUNCTUATION = "“”‘’„‚€–—…«»°£§´·©®±×÷"


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
    letters = sum(1 for ch in text if ord(ch) > 127 and (ch.isalpha() or ch in CP1252_PUNCTUATION)) / sum(
        runs
    )
    return lone >= 0.6 and letters >= 0.8


def not_utf8_message(sample: bytes, *, line: int | None = None, byte: int | None = None) -> str:
    where = (
        f" (first invalid byte 0x{byte:02x} on line {line})" if line is not None and byte is not None else ""
    )
    return (
        f"the file is not UTF-8 text: it looks like {describe_encoding(sample)}{where}, but the encoding "
        "cannot be told with confidence. Choose it with the encoding option (e.g. latin-1, cp1252, gbk, "
        "utf-16), or save the file as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and upload it again."
    )


def _first_invalid_utf8(head: bytes, *, complete: bool) -> tuple[int, int] | None:
    """(line, byte value) of the first invalid UTF-8 byte in `head`, or None if it decodes."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(head, final=complete)
    except UnicodeDecodeError as exc:
        return head.count(b"\n", 0, exc.start) + 1, head[exc.start]
    return None


def sniff(
    fileobj: BinaryIO,
    filename: str,
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    quoting: str = "auto",
) -> SourceKind:
    """Decide format, delimiter, encoding and quoting from the name and the first 64 KB (explicit
    options win); rewinds the file."""
    explicit_encoding = encoding
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
    encoding, source = pick_encoding(head, complete=complete, explicit=explicit_encoding)
    text = _decode_sample(head, encoding)
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
    if delimiter is not None and fmt not in ("csv", "tsv"):
        fmt = "csv"
    if fmt == "json" and first != "[":
        fmt = "jsonl"
    kind = SourceKind(format=fmt, delimiter=None, encoding=encoding, encoding_source=source)
    if fmt in ("csv", "tsv"):
        kind.delimiter = delimiter or ("\t" if fmt == "tsv" else sniff_delimiter(text))
        kind.format = "tsv" if kind.delimiter == "\t" else "csv"
        kind.quoting = quoting if quoting != "auto" else "csv"
        if (
            quoting == "auto"
            and kind.delimiter not in QUOTING_DELIMITERS
            and unpaired_quotes(text, kind.delimiter)
        ):
            kind.quoting = "none"
            kind.quoting_reason = (
                "the texts contain '\"' characters that do not pair up as CSV quotes, so quotes were read "
                "as ordinary characters (quoting=none)."
            )
    return kind


# CSV with commas or semicolons (spreadsheet exports) really uses quoting; tab-separated and other
# delimiters (NLP corpora) usually do not, and their texts hold bare quotes.
QUOTING_DELIMITERS = (",", ";")


def unpaired_quotes(text: str, delimiter: str) -> bool:
    """True when a field of the sample starts with '"' but is not one whole CSV-quoted field on its
    line (an unquoted text that merely begins with a quote), i.e. the quotes are not CSV quoting."""
    if '"' not in text:
        return False
    for line in text.splitlines()[:-1] or text.splitlines():
        for cell in line.split(delimiter):
            if cell.startswith('"') and not _whole_quoted(cell):
                return True
    return False


def _whole_quoted(cell: str) -> bool:
    inner = cell[1:-1] if len(cell) >= 2 and cell.endswith('"') else None
    return inner is not None and '"' not in inner.replace('""', "")


CJK_CODECS = ("gb18030", "gbk", "gb2312", "big5", "big5hkscs", "shift_jis", "cp932", "euc_jp")


def _coherent(best, head: bytes) -> bool:
    """charset-normalizer names a language for alphabetic scripts; for Chinese/Japanese it does not,
    so there the decoded text must be mostly ideographs/kana (random bytes decode to rare ones too,
    but seldom to the common block)."""
    if best.coherence >= 0.1:
        return True
    if best.encoding not in CJK_CODECS:
        return False
    wide = [ch for ch in head.decode(best.encoding, errors="ignore") if ord(ch) > 127]
    common = sum(
        1
        for ch in wide
        if "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u30ff" or "\uff00" <= ch <= "\uffef"
    )
    return bool(wide) and common / len(wide) >= 0.9


def _mostly_utf8(head: bytes) -> bool:
    """Many valid UTF-8 characters and few invalid bytes: a UTF-8 file with a stray foreign part.
    (Single-byte and CJK encodings form a valid UTF-8 sequence only now and then by chance.)"""
    decoded = head.decode("utf-8", errors="replace")
    invalid = decoded.count("\ufffd")
    valid = sum(1 for ch in decoded if ord(ch) > 127) - invalid
    return valid >= 3 * max(invalid, 1)


def _decode_sample(head: bytes, encoding: str) -> str:
    text = head.decode(encoding, errors="ignore")
    return text[1:] if text.startswith("\ufeff") else text


def pick_encoding(head: bytes, *, complete: bool, explicit: str | None) -> tuple[str, str]:
    """(codec, how it was chosen) for a file starting with `head`; refuses when no encoding can be
    told with confidence."""
    if explicit:
        return explicit, "option"
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32")):
        if head.startswith(bom):
            return codec, "detected"
    for bom in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if head.startswith(bom):
            return "utf-16", "detected"
    if head.startswith(UTF8_BOM):
        return "utf-8-sig", "utf-8"
    if b"\x00" not in head and _first_invalid_utf8(head, complete=complete) is None:
        return "utf-8", "utf-8"
    invalid = _first_invalid_utf8(head, complete=complete)
    if invalid is not None and _mostly_utf8(head):
        # Mostly UTF-8 with some bytes that are not: a mixed file, converting would garble it.
        raise FatalIngestError(
            f"the file is UTF-8 text with bytes that are not UTF-8 (first invalid byte 0x{invalid[1]:02x} on "
            f"line {invalid[0]}): parts of it were saved in another encoding. Save it as UTF-8 and upload again.",
            code="unsupported_encoding",
            line=invalid[0],
        )
    described = describe_encoding(head)
    if described.startswith("UTF-16 ("):
        return ("utf-16-le" if "little" in described else "utf-16-be"), "detected"
    if b"\x00" not in head and _looks_latin1(head):
        # Latin-1 and Windows-1252 agree on letters; bytes 0x80-0x9f are controls in Latin-1 and
        # punctuation (curly quotes, €) in Windows-1252.
        if not any(0x80 <= b <= 0x9F for b in head):
            return "latin-1", "detected"
        try:
            head.decode("cp1252")
            return "cp1252", "detected"
        except UnicodeDecodeError:
            return "latin-1", "detected"
    if b"\x00" not in head:
        from charset_normalizer import from_bytes

        best = from_bytes(head).best()
        if best is not None and best.chaos <= CONFIDENT_CHAOS and _coherent(best, head):
            return best.encoding, "detected"
    raise FatalIngestError(
        not_utf8_message(head, line=invalid[0], byte=invalid[1]) if invalid else not_utf8_message(head),
        code="unsupported_encoding",
        line=invalid[0] if invalid else None,
    )


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
