"""A small client of the tuneq HTTP API: JSON calls, the error envelope, and the job stream (SSE)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# A stream sends a keepalive at least every 15 s; this long without a byte means the connection is gone.
STREAM_READ_TIMEOUT_SECONDS = 60.0
STREAM_RECONNECTS = 5
DOWNLOAD_CHUNK = 1 << 20
# A request the API shed (503 "overloaded") was refused before any work: sent again after Retry-After, up
# to this many times, so a busy service slows the CLI down instead of failing it.
OVERLOADED_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 30.0


class ApiError(Exception):
    """The API refused a request (``status`` set) or could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Download:
    bytes: int
    sha256: str  # of the bytes received
    expected_sha256: str | None  # the server's X-Checksum-SHA256

    @property
    def verified(self) -> bool:
        return self.expected_sha256 is not None and self.expected_sha256.lower() == self.sha256


@dataclass(frozen=True)
class StreamMessage:
    event: str
    data: dict[str, Any]
    id: str | None


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), str(error.get("code"))
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {response.status_code}: {response.text[:200]}", None
    raise ApiError(message, response.status_code, code)


def _shed_for(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again, if the API shed this request (503 "overloaded"); else None."""
    if response.status_code != 503:
        return None
    try:
        if response.json()["error"]["code"] != "overloaded":
            return None
        return min(float(response.headers.get("Retry-After", "1")), MAX_RETRY_AFTER_SECONDS)
    except (ValueError, KeyError, TypeError):
        return None


class ApiClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,  # between tries of a shed request
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._sleep = sleep

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.TransportError) -> ApiError:
        return ApiError(
            f"cannot reach the tuneq API at {self.base_url} ({exc}); is `tuneq api` running? "
            "Set --api-url or TUNEQ_API_URL, or run `tuneq login`."
        )

    def request(self, method: str, path: str, *, retry_when_shed: bool = True, **kwargs: Any) -> Any:
        """Call the API and return its JSON body; ApiError with the envelope's message otherwise.

        A request the API shed is sent again after its Retry-After (``OVERLOADED_RETRIES`` times at most).
        """
        for tries_left in range(OVERLOADED_RETRIES, -1, -1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            wait = _shed_for(response) if retry_when_shed else None
            if wait is None or not tries_left:
                break
            self._sleep(wait)
        _raise_for_error(response)
        return response.json()

    def upload(self, path: Path) -> dict[str, Any]:
        # Not sent again when shed: the file's bytes are gone from the handle after the first try.
        with path.open("rb") as handle:
            uploaded: dict[str, Any] = self.request(
                "POST", "/files", retry_when_shed=False, files={"file": (path.name, handle)}
            )
        return uploaded

    def download(self, path: str, target: Path) -> Download:
        """Stream ``path`` into ``target`` chunk by chunk, hashing as it goes; the server's checksum beside ours."""
        digest, size = hashlib.sha256(), 0
        try:
            with self._http.stream(
                "GET", path, timeout=httpx.Timeout(self._http.timeout.connect, read=None)
            ) as response:
                if not response.is_success:
                    response.read()
                    _raise_for_error(response)
                with target.open("wb") as out:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                expected = response.headers.get("X-Checksum-SHA256")
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return Download(size, digest.hexdigest(), expected)

    def stream(self, job_id: str, last_event_id: str | None = None) -> Iterator[StreamMessage]:
        """The job's live stream until its ``end`` message, reconnecting from the last id if the connection drops."""
        drops = 0
        while True:
            try:
                for message in self._stream_once(job_id, last_event_id):
                    yield message
                    if message.id is not None:
                        last_event_id = message.id
                    if message.event == "end":
                        return
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout) as exc:
                drops += 1
                if drops > STREAM_RECONNECTS:
                    raise ApiError(f"lost the stream of {job_id}: {exc}") from exc
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc

    def _stream_once(self, job_id: str, last_event_id: str | None) -> Iterator[StreamMessage]:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_SECONDS)
        with self._http.stream("GET", f"/finetune/{job_id}/stream", headers=headers, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                _raise_for_error(response)
            yield from parse_sse(response.iter_lines())


def parse_sse(lines: Iterator[str]) -> Iterator[StreamMessage]:
    """Server-Sent Events from text lines: ``event``, ``id`` and ``data`` fields, comments skipped."""
    event, event_id, data = "message", None, list[str]()
    for line in lines:
        if not line:
            if data:
                yield StreamMessage(event, json.loads("\n".join(data)), event_id)
            event, event_id, data = "message", None, list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
