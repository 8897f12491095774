"""The validation report of one upload: blocking errors (at most `MAX_LISTED_ERRORS` listed, all
counted), warnings, statistics and what PII masking replaced.

Each error names the file, the physical line (1-based, the header is line 1), the data row (1-based,
not counting the header) and the field, so a user can find it in an editor or a spreadsheet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_LISTED_ERRORS = 100


class IngestFailed(Exception):
    """The upload has blocking errors; `report` says which. Nothing may be stored."""

    def __init__(self, report: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.report = report
        self.message = message


class FatalIngestError(Exception):
    """A problem that stops reading the file (not a text file, an archive, a line over the limit)."""

    def __init__(self, message: str, *, code: str, line: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.line = line
        self.field = field


@dataclass
class Report:
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    masked: dict[str, int] = field(default_factory=dict)

    def error(
        self,
        message: str,
        *,
        file: str,
        code: str,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            where = [f"line {line}"] if line is not None else []
            if field:
                where.append(f"field '{field}'")
            text = f"{', '.join(where)}: {message}" if where else message
            self.errors.append(
                {"file": file, "line": line, "row": row, "field": field, "code": code, "message": text}
            )

    def warn(
        self,
        code: str,
        message: str,
        *,
        count: int | None = None,
        params: dict[str, Any] | None = None,
        **details: Any,
    ) -> None:
        """`message` is the stored English text; `params` (with an optional "variant"), kept beside
        it, let the version page say the same in the reader's language (`dataset_ui.warning_text`)."""
        entry: dict[str, Any] = {"code": code, "message": message}
        if count is not None:
            entry["count"] = count
        if params is not None:
            entry["params"] = params
        if details:
            entry["details"] = details
        self.warnings.append(entry)

    def snapshot(self) -> tuple:
        return len(self.errors), self.error_count, len(self.warnings), dict(self.masked)

    def restore(self, snapshot: tuple) -> None:
        """Forgets what a discarded read of a file reported (it is being read again another way)."""
        errors, self.error_count, warnings, masked = snapshot
        del self.errors[errors:]
        del self.warnings[warnings:]
        self.masked.clear()
        self.masked.update(masked)

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": list(self.errors),
            "error_count": self.error_count,
            "errors_truncated": self.error_count > len(self.errors),
            "warnings": list(self.warnings),
            "stats": dict(self.stats),
            "masked": dict(self.masked),
        }

    def failure(self) -> IngestFailed:
        first = self.errors[0]
        more = self.error_count - 1
        tail = f" (and {more} more blocking error{'s' if more != 1 else ''})" if more else ""
        return IngestFailed(self.as_dict(), f"{first['file']}: {first['message']}{tail}")
