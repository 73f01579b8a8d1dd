"""eval/accuracy/ETA metrics and the job's result summary

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_accuracy", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("eval_token_accuracy", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("eta_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "result",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("result")
    with op.batch_alter_table("job_metrics", schema=None) as batch_op:
        batch_op.drop_column("eta_seconds")
        batch_op.drop_column("eval_token_accuracy")
        batch_op.drop_column("token_accuracy")
