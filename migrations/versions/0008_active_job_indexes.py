"""Indexes that keep hot queries on active jobs: a partial index on queued/running rows, tenant last start

Revision ID: 0008
Revises: 0005 (for this branch's testing; re-chain to 0007 when merging)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_active",
        "jobs",
        ["status", "tenant", "priority", "created_at"],
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index("ix_jobs_tenant_started", "jobs", ["tenant", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_started", table_name="jobs")
    op.drop_index("ix_jobs_active", table_name="jobs")
