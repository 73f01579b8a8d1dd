"""A page of a newest-first, cursor-paginated list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Connection, Integer, Row, Select, and_, bindparam, or_
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_more: bool


def _after(model: Any, created: Any, ident: Any) -> ColumnElement[bool]:
    return or_(model.created_at < created, and_(model.created_at == created, model.id < ident))


def _newest_first(query: Select[Any], model: Any) -> Select[Any]:
    return query.order_by(model.created_at.desc(), model.id.desc())


def newest_first_query(query: Select[Any], model: Any, cursor: object | None, limit: int) -> Select[Any]:
    """``query`` narrowed to the ``limit`` + 1 rows of ``model`` (with ``created_at`` and ``id``) after ``cursor``,
    the last row of the previous page; the extra row tells whether there are more.

    Keyset pagination: each page is one indexed range scan, however deep.
    """
    if cursor is not None:
        created, ident = getattr(cursor, "created_at"), getattr(cursor, "id")  # noqa: B009
        query = query.where(_after(model, created, ident))
    return _newest_first(query, model).limit(limit + 1)


@dataclass(frozen=True)
class PageStatements:
    """``newest_first_query`` built once, with bound parameters: for a list read so often that building the
    statement, its cache key and its result's metadata per request cost more than the database's work."""

    first: Select[Any]
    after: Select[Any]

    @classmethod
    def of(cls, query: Select[Any], model: Any) -> PageStatements:
        limit = bindparam("limit", type_=Integer)
        after = query.where(_after(model, bindparam("after_created"), bindparam("after_id")))
        return cls(_newest_first(query, model).limit(limit), _newest_first(after, model).limit(limit))

    def run(self, connection: Connection, params: dict[str, Any], cursor: object | None, limit: int) -> Page[Row[Any]]:
        """The page after ``cursor`` (the last row of the previous one), ``params`` binding the query's own."""
        if cursor is None:
            rows = connection.execute(self.first, {**params, "limit": limit + 1}).all()
        else:
            created, ident = getattr(cursor, "created_at"), getattr(cursor, "id")  # noqa: B009
            keyset = {"after_created": created, "after_id": ident, "limit": limit + 1}
            rows = connection.execute(self.after, {**params, **keyset}).all()
        return page_of(rows, limit)


def page_of(rows: Sequence[T], limit: int) -> Page[T]:
    """The page of a ``newest_first_query``'s rows."""
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def newest_first(session: Session, query: Select[Any], model: Any, cursor: T | None, limit: int) -> Page[T]:
    """Entities of ``model`` after ``cursor``, newest first (``newest_first_query``)."""
    return page_of(session.scalars(newest_first_query(query, model, cursor, limit)).all(), limit)
