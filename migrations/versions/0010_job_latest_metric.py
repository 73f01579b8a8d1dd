"""Each job points at its newest training-loss metric, so a status read or a list page is one query

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latest_metric_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
    op.execute(
        "UPDATE jobs SET latest_metric_id = (SELECT max(m.id) FROM job_metrics m "
        "WHERE m.job_id = jobs.id AND m.loss IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("latest_metric_id")
