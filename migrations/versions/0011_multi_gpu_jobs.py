"""A job may train on several GPUs of one host: its GPU count, and the GPUs each running job holds

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpus", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.create_table(
        "gpu_reservations",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("host", "gpu_index"),
    )
    op.create_index("ix_gpu_reservations_job", "gpu_reservations", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_gpu_reservations_job", table_name="gpu_reservations")
    op.drop_table("gpu_reservations")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("gpus")
