"""Alembic migrations, shipped inside the wheel so ``tuneq migrate`` works from any directory."""
