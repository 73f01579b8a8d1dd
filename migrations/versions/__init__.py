# Makes the revisions package data of the wheel; Alembic itself skips this file.
