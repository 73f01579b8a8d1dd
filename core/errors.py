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


class ValueOutOfRange(InvalidRequest):
    """A well-formed field over a limit this server's operator set (so the request schema cannot say it)."""

    code = "value_out_of_range"


class Conflict(TuneqError):
    """The request is valid but clashes with the current state of things."""

    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


class AuthenticationFailed(TuneqError):
    code = "invalid_api_key"


class PayloadTooLarge(TuneqError):
    code = "payload_too_large"


class QuotaExceeded(TuneqError):
    """A per-tenant limit; ``retry_after`` is when trying again may succeed, in seconds."""

    code = "quota_exceeded"

    def __init__(self, message: str, retry_after: int, param: str | None = None) -> None:
        super().__init__(message, param)
        self.retry_after = retry_after


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
