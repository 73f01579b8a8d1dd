"""Standard Webhooks signatures: ``whsec_`` secrets, and the three headers every delivery carries.

The signing itself is the ``standardwebhooks`` package's; this module only
chooses the secrets and lays out the headers. During a secret rotation a
delivery is signed with both secrets (space-separated ``v1,`` signatures, as
the spec allows), so a receiver that still has the old one keeps verifying.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


class RotatingSecret(Protocol):
    """A row that holds a signing secret and, for a while after a rotation, the one before it."""

    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def rotate(record: RotatingSecret, now: datetime, overlap: timedelta) -> str:
    """Give ``record`` a new secret; the old one keeps signing for ``overlap``. Returns the new secret."""
    record.previous_secret = record.secret
    record.previous_secret_expires_at = now + overlap
    record.secret = new_secret()
    return record.secret


def signing_secrets(record: RotatingSecret, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one while it overlaps."""
    expires = record.previous_secret_expires_at
    if record.previous_secret and expires is not None and now < expires:
        return [record.secret, record.previous_secret]
    return [record.secret]


def signed_headers(keys: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt of one event."""
    signatures = " ".join(Webhook(key).sign(msg_id, timestamp, body) for key in keys)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
