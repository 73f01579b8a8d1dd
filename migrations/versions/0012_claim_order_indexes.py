"""Indexes in the claim's order (priority DESC, oldest first), so a claim reads a few entries, not every queued row

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('queued', 'running')")
QUEUED = sa.text("status = 'queued'")
PRIORITY_DESC = sa.text("priority DESC")


def upgrade() -> None:
    op.drop_index("ix_jobs_queue_order", table_name="jobs")
    op.drop_index("ix_jobs_active", table_name="jobs")
    op.create_index(
        "ix_jobs_active",
        "jobs",
        ["status", "tenant", PRIORITY_DESC, "created_at", "id"],
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index(
        "ix_jobs_queued_order",
        "jobs",
        [PRIORITY_DESC, "created_at", "id"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_queued_order", table_name="jobs")
    op.drop_index("ix_jobs_active", table_name="jobs")
    op.create_index(
        "ix_jobs_active", "jobs", ["status", "tenant", "priority", "created_at"], postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index("ix_jobs_queue_order", "jobs", ["status", "priority", "created_at"])
