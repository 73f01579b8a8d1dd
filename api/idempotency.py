"""``Idempotency-Key`` on POST: a retry with the same key and body gets the first response again.

The first request with a key reserves it (a row with no response yet), runs,
and stores its response; a retry with the same method, path and body replays
it with ``Idempotent-Replayed: true``. The same key with another body, or
while the first request still runs, is 409. 5xx responses are not kept, so a
retry after a server error runs again. Keys are per tenant and expire after
``idempotency_ttl_seconds``.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import timedelta
from typing import IO

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import lookup_tenant
from api.errors import DATABASE_ERRORS, database_error_response, error_response
from core.db import transaction, utcnow
from core.errors import AuthenticationFailed
from core.models import IdempotencyRecord
from core.settings import Settings

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
SPOOL_IN_MEMORY = 1 << 20
REPLAYED_HEADERS = ("content-type", "location")


class IdempotencyKeys:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.url = settings.resolved_database_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        if scope["type"] != "http" or scope["method"] != "POST" or HEADER not in headers:
            await self.app(scope, receive, send)
            return
        key = headers[HEADER].decode("latin-1")
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            response = error_response(400, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters", "invalid_key")
            await response(scope, receive, send)
            return
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            tenant = await run_in_threadpool(lookup_tenant, self.settings, authorization)
        except AuthenticationFailed:
            await self.app(scope, receive, send)  # the route answers 401
            return
        except DATABASE_ERRORS as exc:  # outside the app's handlers: answer as they would
            await database_error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant  # current_tenant takes it from here, not a second lookup
        # The body is hashed before the route runs, so it is spooled (to disk when large) and replayed to it.
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as spool:
            fingerprint = await _spool_body(scope, receive, spool)
            await self._handle(scope, receive, send, tenant, key, fingerprint, spool)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, tenant: str, key: str, fingerprint: str, spool: IO[bytes]
    ) -> None:
        try:
            verdict = await run_in_threadpool(self._reserve, tenant, key, fingerprint)
        except DATABASE_ERRORS as exc:
            await database_error_response(exc)(scope, receive, send)
            return
        if isinstance(verdict, IdempotencyRecord):
            await _replay(verdict, send)
            return
        if verdict is not None:
            await error_response(409, verdict, "idempotency_key_reused", param="Idempotency-Key")(
                scope, _empty_receive, send
            )
            return
        status: int | None = None
        response_headers: dict[str, str] = {}
        body = bytearray()
        settled = False

        async def settle() -> None:
            nonlocal settled
            if not settled:
                settled = True
                await run_in_threadpool(self._settle, tenant, key, status, response_headers, bytes(body))

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.decode("latin-1").lower() in REPLAYED_HEADERS:
                        response_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await settle()  # before the client sees the end, so its retry finds the stored response
            await send(message)

        try:
            await self.app(scope, _replaying_receive(spool, receive), capture)
        finally:
            await settle()

    def _reserve(self, tenant: str, key: str, fingerprint: str) -> IdempotencyRecord | str | None:
        """None: go ahead (key reserved). A record: replay it. A string: why this is a conflict."""
        expired = utcnow() - timedelta(seconds=self.settings.idempotency_ttl_seconds)
        try:
            with transaction(self.url) as session:
                record = session.get(IdempotencyRecord, (tenant, key))
                if record is not None and record.created_at < expired:
                    session.delete(record)
                    session.flush()
                    record = None
                if record is None:
                    session.add(IdempotencyRecord(tenant=tenant, key=key, fingerprint=fingerprint, created_at=utcnow()))
                    return None
        except IntegrityError:
            return "a request with this Idempotency-Key is still being processed; retry shortly"
        if record.fingerprint != fingerprint:
            return "this Idempotency-Key was already used with a different request; use a new key"
        if record.status_code is None:
            return "a request with this Idempotency-Key is still being processed; retry shortly"
        return record

    def _settle(self, tenant: str, key: str, status: int | None, headers: dict[str, str], body: bytes) -> None:
        with transaction(self.url) as session:
            if status is None or status >= 500:
                session.execute(
                    delete(IdempotencyRecord).where(IdempotencyRecord.tenant == tenant, IdempotencyRecord.key == key)
                )
                return
            record = session.get(IdempotencyRecord, (tenant, key))
            if record is not None:
                record.status_code, record.headers, record.body = status, headers, body


async def _spool_body(scope: Scope, receive: Receive, spool: IO[bytes]) -> str:
    while True:
        message = await receive()
        spool.write(message.get("body", b""))
        if not message.get("more_body", False):
            break
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    fingerprint = _fingerprint(f"{scope['method']} {scope['path']}", spool, _multipart_boundary(content_type))
    spool.seek(0)
    return fingerprint


def _multipart_boundary(content_type: bytes) -> bytes | None:
    _, _, boundary = content_type.partition(b"boundary=")
    return boundary.split(b";")[0].strip(b'" ') or None


def _fingerprint(target: str, spool: IO[bytes], boundary: bytes | None) -> str:
    """SHA-256 of the request; a multipart body's boundary is random per request, so it is left out."""
    digest = hashlib.sha256(f"{target}\n".encode())
    spool.seek(0)
    keep = len(boundary) - 1 if boundary else 0  # a boundary may straddle two chunks
    carry = b""
    while chunk := spool.read(SPOOL_IN_MEMORY):
        data = carry + chunk
        if boundary:
            data = data.replace(boundary, b"")
        carry = data[len(data) - keep :] if keep else b""
        digest.update(data[: len(data) - keep] if keep else data)
    digest.update(carry)
    return digest.hexdigest()


def _replaying_receive(spool: IO[bytes], original: Receive) -> Receive:
    """The spooled body, then the client's own channel (which reports a disconnect)."""
    done = False

    async def receive() -> Message:
        nonlocal done
        if done:
            return await original()
        chunk = spool.read(SPOOL_IN_MEMORY)
        done = not chunk
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    return receive


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _replay(record: IdempotencyRecord, send: Send) -> None:
    headers = [(name.encode(), value.encode()) for name, value in (record.headers or {}).items()]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": record.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": record.body or b""})
