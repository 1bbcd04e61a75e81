"""Alembic revisions, one independent history per component.

Each component (the saver, the stores) has its own script directory here and its own
version table, so setting up one never creates the other's tables. Every revision's
``upgrade(prefix, schema)`` receives the table prefix and schema to create its tables
under. `checkpoint_sql.core.migrate` runs them.
"""
