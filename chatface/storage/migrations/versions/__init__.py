"""chatface's Alembic revisions, one module per schema change (Alembic loads them by path)."""
