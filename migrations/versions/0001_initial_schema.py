"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:09:54.744554
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("files",
    sa.Column("id", sa.String(length=64), nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("filename", sa.String(length=255), nullable=False),
    sa.Column("purpose", sa.String(length=32), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Column("sha256", sa.String(length=64), nullable=False),
    sa.Column("format", sa.String(length=32), nullable=False),
    sa.Column("line_count", sa.Integer(), nullable=False),
    sa.Column("example_count", sa.Integer(), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_files_tenant"), ["tenant"], unique=False)

    op.create_table("jobs",
    sa.Column("id", sa.String(length=64), nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("base_model", sa.Text(), nullable=False),
    sa.Column("training_file", sa.Text(), nullable=False),
    sa.Column("training_path", sa.Text(), nullable=False),
    sa.Column("validation_file", sa.Text(), nullable=True),
    sa.Column("validation_path", sa.Text(), nullable=True),
    sa.Column("hyperparameters", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
    sa.Column("webhook_url", sa.Text(), nullable=True),
    sa.Column("metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("worker_id", sa.String(length=128), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("step", sa.Integer(), nullable=False),
    sa.Column("total_steps", sa.Integer(), nullable=True),
    sa.Column("epoch", sa.Float(), nullable=True),
    sa.Column("trained_tokens", sa.BigInteger(), nullable=False),
    sa.Column("gpu_seconds", sa.Float(), nullable=False),
    sa.Column("cost_usd", sa.Float(), nullable=False),
    sa.Column("device", sa.String(length=32), nullable=True),
    sa.Column("device_name", sa.String(length=128), nullable=True),
    sa.Column("dtype", sa.String(length=16), nullable=True),
    sa.Column("quantization", sa.String(length=16), nullable=True),
    sa.Column("error_code", sa.String(length=64), nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("adapter_path", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_status", ["status"], unique=False)
        batch_op.create_index("ix_jobs_tenant_created", ["tenant", "created_at", "id"], unique=False)

    op.create_table("job_events",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("job_id", sa.String(length=64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("level", sa.String(length=16), nullable=False),
    sa.Column("type", sa.String(length=32), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
    sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index("ix_job_events_job_id", ["job_id", "id"], unique=False)

    op.create_table("job_metrics",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("job_id", sa.String(length=64), nullable=False),
    sa.Column("step", sa.Integer(), nullable=False),
    sa.Column("epoch", sa.Float(), nullable=True),
    sa.Column("loss", sa.Float(), nullable=True),
    sa.Column("eval_loss", sa.Float(), nullable=True),
    sa.Column("learning_rate", sa.Float(), nullable=True),
    sa.Column("grad_norm", sa.Float(), nullable=True),
    sa.Column("tokens_per_second", sa.Float(), nullable=True),
    sa.Column("trained_tokens", sa.BigInteger(), nullable=True),
    sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("job_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_job_metrics_job_step", ["job_id", "step"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("job_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_job_metrics_job_step")

    op.drop_table("job_metrics")
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index("ix_job_events_job_id")

    op.drop_table("job_events")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_created")
        batch_op.drop_index("ix_jobs_status")

    op.drop_table("jobs")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_tenant"))

    op.drop_table("files")
