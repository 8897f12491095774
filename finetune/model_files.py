"""Reads of a model version's stored files for the web pages: the model card as safe HTML, and all
artifacts as one zip streamed from storage (filesystem or S3 alike, nothing buffered whole)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from django.core.files.storage import default_storage
from markdown_it import MarkdownIt

from finetune.models import ModelVersion

CARD_PATH = "README.md"
CHUNK = 1 << 20
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
# Raw HTML in the card is escaped, not rendered ("html": False), and markdown-it refuses
# javascript:/data: links itself, so the result needs no further sanitising.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def model_card_html(*, version: ModelVersion) -> str | None:
    """The version's model card (README.md) rendered to HTML, without its YAML front matter;
    None when the version has no card."""
    if not any(entry["path"] == CARD_PATH for entry in version.files):
        return None
    with default_storage.open(f"{version.storage_prefix}/{CARD_PATH}", "rb") as fh:
        text = fh.read().decode("utf-8", errors="replace")
    tokens = _markdown.parse(_FRONT_MATTER.sub("", text, count=1))
    # The page has its own <h1>: the card's headings go one level down, so the outline stays one tree.
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 1)}"
    return _markdown.renderer.render(tokens, _markdown.options, {})


def archive_name(*, version: ModelVersion) -> str:
    return f"{version.id}.zip"


class _Sink(io.RawIOBase):
    """A write-only, unseekable file: zipfile then writes sizes after each member (data
    descriptors), so the archive can be sent while it is being written."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def model_version_archive(*, version: ModelVersion) -> Iterator[bytes]:
    """Every recorded file of `version`, in a folder named after the version, as zip chunks.
    Stored, not compressed: weights do not compress and deflating gigabytes would cost minutes."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in version.files:
            with (
                default_storage.open(f"{version.storage_prefix}/{entry['path']}", "rb") as src,
                archive.open(f"{version.id}/{entry['path']}", mode="w", force_zip64=True) as dst,
            ):
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    if data := sink.drain():
                        yield data
            if data := sink.drain():
                yield data
    yield sink.drain()
