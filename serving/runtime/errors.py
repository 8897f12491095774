"""Errors the serving layer maps to HTTP responses; each names what was wrong and where."""

from __future__ import annotations


class RuntimeServingError(Exception):
    """Base class: `code` is a stable machine-readable reason."""

    code = "serving_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class ArtifactError(RuntimeServingError):
    """The folder is not a model this runtime can serve (missing files, unknown task, unresolvable base)."""

    code = "invalid_artifact"


class InputTooLong(RuntimeServingError):
    """An input is longer than the model accepts and the caller asked to refuse rather than truncate."""

    code = "input_too_long"

    def __init__(self, *, index: int, tokens: int, max_tokens: int) -> None:
        super().__init__(
            f"input {index} has {tokens} tokens, more than the model's maximum of {max_tokens} "
            "(send truncation='truncate' to cut it instead)"
        )
        self.index, self.tokens, self.max_tokens = index, tokens, max_tokens


class InvalidRequest(RuntimeServingError):
    """A parameter is out of range or does not apply to this model."""

    code = "invalid_request"
