"""A page of a newest-first, cursor-paginated list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_more: bool


def newest_first_query(query: Select[Any], model: Any, cursor: object | None, limit: int) -> Select[Any]:
    """``query`` narrowed to the ``limit`` + 1 rows of ``model`` (with ``created_at`` and ``id``) after ``cursor``,
    the last row of the previous page; the extra row tells whether there are more.

    Keyset pagination: each page is one indexed range scan, however deep.
    """
    if cursor is not None:
        created, ident = getattr(cursor, "created_at"), getattr(cursor, "id")  # noqa: B009
        query = query.where(or_(model.created_at < created, and_(model.created_at == created, model.id < ident)))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def page_of(rows: Sequence[T], limit: int) -> Page[T]:
    """The page of a ``newest_first_query``'s rows."""
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def newest_first(session: Session, query: Select[Any], model: Any, cursor: T | None, limit: int) -> Page[T]:
    """Entities of ``model`` after ``cursor``, newest first (``newest_first_query``)."""
    return page_of(session.scalars(newest_first_query(query, model, cursor, limit)).all(), limit)
