"""Archive downloads: a cached .tar served from disk with range support and its SHA-256 in headers."""

from __future__ import annotations

import base64

from fastapi.responses import FileResponse

from core.archives import Archive


def archive_response(archive: Archive) -> FileResponse:
    """Starlette's FileResponse streams in chunks and answers Range requests (206), so downloads can resume."""
    digest = base64.b64encode(bytes.fromhex(archive.sha256)).decode()
    return FileResponse(
        archive.path,
        media_type="application/x-tar",
        filename=archive.filename,
        headers={"X-Checksum-SHA256": archive.sha256, "Repr-Digest": f"sha-256=:{digest}:"},
    )
