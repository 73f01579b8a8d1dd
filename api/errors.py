"""One place that maps domain errors to HTTP: body ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.errors import IllegalTransition, InvalidDataset, InvalidRequest, NotFound, TuneqError

STATUS_BY_ERROR: list[tuple[type[TuneqError], int]] = [
    (NotFound, 404),
    (IllegalTransition, 409),
    (InvalidDataset, 422),
    (InvalidRequest, 400),
]


def error_body(message: str, type_: str, code: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


def _status_for(exc: TuneqError) -> int:
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(exc, kind)), 400)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TuneqError)
    extra = {"line": exc.line} if isinstance(exc, InvalidDataset) and exc.line is not None else {}
    status = _status_for(exc)
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return JSONResponse(error_body(exc.message, kind, exc.code, exc.param, **extra), status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    first = exc.errors()[0] if exc.errors() else {"loc": ()}
    body = error_body("; ".join(problems), "invalid_request_error", "validation_error", _location(tuple(first["loc"])))
    return JSONResponse(body, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TuneqError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
