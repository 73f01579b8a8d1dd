"""API keys: created once and shown once (``tq_…``); only a hash is stored.

A key is found by its prefix and checked by its SHA-256 in constant time.
Every request looks the key up, so a revoked key stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.errors import AuthenticationFailed, InvalidRequest, NotFound
from core.ids import new_id
from core.models import ApiKey

KEY_PREFIX = "tq_"
LOOKUP_CHARS = 12  # "tq_" + 9 random characters: unique enough to find the row, useless to guess the key
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class NewKey:
    record: ApiKey
    secret: str  # shown to the operator once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_tenant_name(tenant: str) -> str:
    if not TENANT_NAME.match(tenant):
        raise InvalidRequest(
            f"tenant {tenant!r} must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            param="tenant",
        )
    return tenant


def create_key(session: Session, tenant: str, name: str | None = None) -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id("key"),
        tenant=check_tenant_name(tenant),
        name=name,
        prefix=secret[:LOOKUP_CHARS],
        sha256=_digest(secret),
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    return NewKey(record, secret)


# Every request runs this lookup. Built once, with a bound parameter, and run on the session's connection rather
# than through the ORM: building the expression, its cache key and an ORM result cost more CPU than the query.
_KEY_BY_PREFIX = select(ApiKey.tenant, ApiKey.sha256, ApiKey.revoked_at).where(ApiKey.prefix == bindparam("prefix"))


def authenticate(session: Session, secret: str) -> str:
    """The tenant a presented key belongs to; AuthenticationFailed if it is unknown or revoked."""
    if not secret.startswith(KEY_PREFIX) or len(secret) < LOOKUP_CHARS:
        raise AuthenticationFailed("the API key is malformed; keys look like 'tq_…' (create one: tuneq keys create)")
    record = session.connection().execute(_KEY_BY_PREFIX, {"prefix": secret[:LOOKUP_CHARS]}).one_or_none()
    if record is None or not hmac.compare_digest(record.sha256, _digest(secret)):
        raise AuthenticationFailed("the API key is not valid")
    if record.revoked_at is not None:
        raise AuthenticationFailed("the API key was revoked")
    return str(record.tenant)


def list_keys(session: Session, tenant: str | None = None) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    return session.scalars(query).all()


def revoke_key(session: Session, key_id: str) -> ApiKey:
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFound(f"no API key with id {key_id!r}", param="key_id")
    if record.revoked_at is None:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        session.refresh(record)
    return record
