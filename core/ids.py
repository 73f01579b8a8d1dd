"""Opaque, prefixed, unguessable ids (``ftjob-…``, ``file-…``)."""

from __future__ import annotations

import secrets

JOB_PREFIX = "ftjob"
FILE_PREFIX = "file"
CHECKPOINT_PREFIX = "ftckpt"


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(18).replace('_', 'x').replace('-', 'y')}"
