"""The one error type the engine raises for bad input, so callers can show the user which field to fix."""

from __future__ import annotations


class SpecError(ValueError):
    """A job spec that cannot run. Raised before any compute starts.

    ``field`` is a dotted path into the spec (``"hyperparameters.learning_rate"``), ``code`` a stable
    machine-readable reason (the platform maps it to an API error), ``message`` the human sentence.
    """

    def __init__(self, field: str, message: str, code: str = "invalid") -> None:
        self.field = field
        self.code = code
        self.message = message
        super().__init__(f"{field}: {message}")

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}
