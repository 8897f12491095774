"""A small reader for gettext .po files (polib is not a dependency): enough for the catalogs that
`makemessages` writes — comments, flags, msgctxt, msgid, msgid_plural, msgstr and msgstr[n], each
possibly continued over several quoted lines."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")\s*$')


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[str, str] = field(default_factory=dict)  # "" for a plain msgstr, "0", "1"… for plurals
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False
    line: int = 0

    @property
    def key(self) -> tuple[str | None, str]:
        return self.msgctxt, self.msgid

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(value for value in self.msgstr.values())


def _unquote(text: str) -> str:
    # A .po string is a C string; Python's literal syntax reads the escapes makemessages writes.
    return ast.literal_eval(text)


def parse_po(path: Path) -> list[Entry]:
    """Every entry of the file, the header (msgid "") included, in file order."""
    entries: list[Entry] = []
    current: Entry | None = None
    last: str | None = None

    def finish() -> None:
        nonlocal current, last
        if current is not None and (last is not None):
            entries.append(current)
        current, last = None, None

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
        elif line.startswith("#"):
            if last is not None and last != "comment":
                finish()
            if current is None:
                current = Entry(line=number)
            if line.startswith("#,"):
                current.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if current is None or (
            last is not None
            and last.startswith("msgstr")
            and line.startswith("msg")
            and not line.startswith("msgstr")
        ):
            finish()
            current = Entry(line=number)
        current.obsolete = current.obsolete or obsolete
        match = _KEYWORD.match(line)
        if match:
            keyword, text = match.groups()
            value = _unquote(text)
            if keyword == "msgctxt":
                current.msgctxt = value
            elif keyword == "msgid":
                current.msgid = value
            elif keyword == "msgid_plural":
                current.msgid_plural = value
            else:
                index = keyword[7:-1] if "[" in keyword else ""
                current.msgstr[index] = value
            last = keyword
        elif line.startswith('"') and last is not None:
            value = _unquote(line)
            if last == "msgctxt":
                current.msgctxt = (current.msgctxt or "") + value
            elif last == "msgid":
                current.msgid += value
            elif last == "msgid_plural":
                current.msgid_plural = (current.msgid_plural or "") + value
            else:
                index = last[7:-1] if "[" in last else ""
                current.msgstr[index] += value
        else:
            raise ValueError(f"{path}:{number}: cannot read {raw!r}")
    finish()
    return entries


def messages(path: Path) -> list[Entry]:
    """The catalog's messages: no header, no obsolete (#~) entries."""
    return [entry for entry in parse_po(path) if entry.msgid and not entry.obsolete]
