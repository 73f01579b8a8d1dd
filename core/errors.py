"""Domain errors; the API maps each to one HTTP status in one handler."""

from __future__ import annotations


class TuneqError(Exception):
    """Base of every error a user may see; ``param`` names the offending field."""

    code = "error"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class NotFound(TuneqError):
    code = "not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class FileNotFound(NotFound):
    code = "file_not_found"


class InvalidRequest(TuneqError):
    code = "invalid_request"


class InvalidDataset(InvalidRequest):
    code = "invalid_dataset"

    def __init__(self, message: str, line: int | None = None, param: str | None = None) -> None:
        super().__init__(message, param)
        self.line = line


class IllegalTransition(TuneqError):
    code = "illegal_transition"
