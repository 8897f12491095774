"""The upload size limit, enforced twice: on the declared Content-Length before a byte is read, and
while the multipart body streams in (a client may not declare a length, or may lie about it)."""

from __future__ import annotations

import contextlib
import os

from django.conf import settings
from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    TemporaryFileUploadHandler,
)
from django.utils.translation import gettext

from common.errors import PayloadTooLarge

# Room for the form fields and multipart boundaries around the file(s) in one request.
FORM_OVERHEAD_BYTES = 64 * 1024


def max_upload_bytes() -> int:
    return int(settings.TUNEFORGE_MAX_UPLOAD_BYTES)


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} GB"


def too_large(what: str, size: int | None = None) -> PayloadTooLarge:
    limit = max_upload_bytes()
    got = f" ({human_size(size)})" if size is not None else ""
    return PayloadTooLarge(
        gettext("%(what)s%(size)s is larger than the upload limit of %(limit)s.")
        % {"what": what, "size": got, "limit": human_size(limit)},
        field="file",
        details={"limit_bytes": limit},
    )


def check_content_length(request) -> None:
    """413 before reading the body when the declared size alone is over the limit."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_upload_bytes() + FORM_OVERHEAD_BYTES:
        raise too_large(gettext("The upload"), declared)


class CleanTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Spills to a temporary file like Django's, and remembers every file it made so a refused
    request can delete them at once (Django's parser leaves them open until garbage collection)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.made: list = []

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.made.append(self.file)

    def discard(self) -> None:
        for upload in self.made:
            path = upload.temporary_file_path()
            upload.close()  # a NamedTemporaryFile deletes itself on close
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        self.made.clear()


class SizeLimitUploadHandler(FileUploadHandler):
    """First in the handler chain: counts the bytes of all files in the request (training and
    validation together) and aborts the parse as soon as they pass the limit, before the chunk that
    passes it reaches the handlers that write, deleting what they already spilled to disk."""

    def __init__(self, request=None, *, spill: CleanTemporaryFileUploadHandler | None = None):
        super().__init__(request)
        self.limit = max_upload_bytes()
        self.finished_bytes = 0
        self.spill = spill

    def receive_data_chunk(self, raw_data, start):
        if self.finished_bytes + start + len(raw_data) > self.limit:
            if self.spill is not None:
                self.spill.discard()
            raise too_large(
                gettext("The file %(name)s") % {"name": repr(self.file_name)}
                if not self.finished_bytes
                else gettext("The uploaded files")
            )
        return raw_data

    def file_complete(self, file_size):
        self.finished_bytes += file_size
        return None


def limited_upload_handlers(request) -> list[FileUploadHandler]:
    # Small files stay in memory, larger ones spill to temporary files (FILE_UPLOAD_MAX_MEMORY_SIZE).
    spill = CleanTemporaryFileUploadHandler(request)
    return [SizeLimitUploadHandler(request, spill=spill), MemoryFileUploadHandler(request), spill]
