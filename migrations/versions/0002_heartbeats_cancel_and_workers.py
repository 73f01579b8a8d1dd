"""heartbeats, cancel and workers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:23:54.851633
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("workers",
    sa.Column("id", sa.String(length=128), nullable=False),
    sa.Column("host", sa.String(length=255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("gpu_index", sa.Integer(), nullable=True),
    sa.Column("gpu_name", sa.String(length=128), nullable=True),
    sa.Column("gpu_memory_bytes", sa.BigInteger(), nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("current_job_id", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"))
        batch_op.add_column(sa.Column("max_run_seconds", sa.Integer(), nullable=True))
        batch_op.create_index("ix_jobs_queue_order", ["status", "priority", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_queue_order")
        batch_op.drop_column("max_run_seconds")
        batch_op.drop_column("max_attempts")
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("heartbeat_at")

    op.drop_table("workers")
