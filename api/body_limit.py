"""Cap request bodies: JSON at ``max_request_body_bytes``, uploads at the largest per-tenant upload limit.

A declared Content-Length over the cap is refused before anything is read; a
chunked body is counted as it arrives and refused at the first byte over.
(The tenant's own, possibly smaller, upload limit is applied by core.files.)
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from core.settings import Settings

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an uploaded file


def body_cap(settings: Settings, content_type: str) -> int | None:
    if not content_type.startswith("multipart/form-data"):
        return settings.max_request_body_bytes
    limits = [settings.tenant_limits, *settings.tenant_limit_overrides.values()]
    uploads = [limit.max_upload_bytes for limit in limits]
    return None if None in uploads else max(u for u in uploads if u is not None) + MULTIPART_OVERHEAD


class BodyTooLarge(HTTPException):
    def __init__(self, cap: int) -> None:
        super().__init__(413, too_large(cap))


def too_large(cap: int) -> str:
    return f"request body is larger than {cap} bytes; upload datasets as multipart files with POST /files"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cap = body_cap(self.settings, headers.get(b"content-type", b"").decode("latin-1"))
        if cap is None:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > cap:
            await error_response(413, too_large(cap), "payload_too_large")(scope, receive, send)
            return
        seen, started = 0, False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > cap:
                # An HTTPException passes FastAPI's body parsing unchanged, to the one error handler.
                raise BodyTooLarge(cap)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Raised outside a route (a middleware reading the body first): answer here instead.
            if started:
                raise
            await error_response(413, too_large(cap), "payload_too_large")(scope, receive, send)
