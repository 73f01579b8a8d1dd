"""One place that maps errors to HTTP: every error body is ``{"error": {message, type, param, code}}``.

Domain errors, request validation, Starlette's own 404/405 and anything
unexpected (a 500 that never shows a traceback) all leave through here.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidDataset,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    TuneqError,
    ValueOutOfRange,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[TuneqError], int, str]] = [
    (AuthenticationFailed, 401, "authentication_error"),
    (NotFound, 404, "not_found_error"),
    (Conflict, 409, "conflict_error"),
    (PayloadTooLarge, 413, "invalid_request_error"),
    (InvalidDataset, 422, "invalid_request_error"),
    (ValueOutOfRange, 422, "invalid_request_error"),
    (QuotaExceeded, 429, "rate_limit_error"),
    (InvalidRequest, 400, "invalid_request_error"),
]
TYPE_BY_STATUS = {401: "authentication_error", 404: "not_found_error", 409: "conflict_error", 429: "rate_limit_error"}
OPENAI_PREFIX = "/v1/"
AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="tuneq"'}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail


_ERROR_CONTENT = {"model": ErrorBody}
# Listed on every router so the OpenAPI document names each status a route can answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {**_ERROR_CONTENT, "description": text}
    for status, text in {
        400: "the request is invalid",
        401: "missing, unknown or revoked API key",
        404: "no such resource for this tenant",
        409: "conflicts with the resource's state, or an Idempotency-Key reused with another body",
        413: "the request body is too large",
        422: "the body or a parameter fails validation",
        429: "a tenant quota is reached; see Retry-After",
        503: "at capacity or the database is unavailable; see Retry-After",
    }.items()
}


def error_body(message: str, type_: str, code: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


def error_response(
    status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    type_ = TYPE_BY_STATUS.get(status, "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse(error_body(message, type_, code, param), status_code=status, headers=headers)


def _classify(exc: TuneqError) -> tuple[int, str]:
    return next(
        ((status, kind) for cls, status, kind in STATUS_BY_ERROR if isinstance(exc, cls)),
        (400, "invalid_request_error"),
    )


def _openai_status(request: Request, status: int) -> int:
    """OpenAI answers every invalid request with 400 (the openai client's BadRequestError); /v1 does too."""
    return 400 if status == 422 and request.url.path.startswith(OPENAI_PREFIX) else status


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TuneqError)
    status, kind = _classify(exc)
    status = _openai_status(request, status)
    extra = {"line": exc.line} if isinstance(exc, InvalidDataset) and exc.line is not None else {}
    headers: dict[str, str] = {}
    if isinstance(exc, QuotaExceeded):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, AuthenticationFailed):
        headers.update(AUTHENTICATE)
    return JSONResponse(error_body(exc.message, kind, exc.code, exc.param, **extra), status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    first = exc.errors()[0] if exc.errors() else {"loc": ()}
    status = _openai_status(request, 422)
    return error_response(status, "; ".join(problems), "validation_error", _location(tuple(first["loc"])))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message, code = f"no route {request.method} {request.url.path}; see /docs", "route_not_found"
    elif exc.status_code == 405:
        message, code = f"{request.method} is not allowed on {request.url.path}", "method_not_allowed"
    elif exc.status_code == 413:
        message, code = str(exc.detail), "payload_too_large"
    else:
        message, code = str(exc.detail), "http_error"
    return error_response(exc.status_code, message, code, headers=dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Logged in full on the server; the client gets no internals.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error; the request was logged", "internal_error")


RETRY_OVERLOADED_SECONDS = 1  # a pool wait times out in seconds; a retry soon after usually finds a connection
RETRY_DATABASE_DOWN_SECONDS = 5


DATABASE_ERRORS = (sqlalchemy.exc.TimeoutError, sqlalchemy.exc.OperationalError)


def database_error_response(exc: Exception) -> JSONResponse:
    """503 for a database that is saturated (pool timeout) or unreachable, for handlers and middleware alike."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        # Every database connection is busy: shed this request now rather than queue it behind the others.
        message = "the service is at capacity; retry after the number of seconds in Retry-After"
        return error_response(503, message, "overloaded", headers={"Retry-After": str(RETRY_OVERLOADED_SECONDS)})
    log.warning("database unavailable: %s", exc)
    message = "the database is unavailable; retry after the number of seconds in Retry-After"
    headers = {"Retry-After": str(RETRY_DATABASE_DOWN_SECONDS)}
    return error_response(503, message, "database_unavailable", headers=headers)


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    return database_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(TuneqError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
