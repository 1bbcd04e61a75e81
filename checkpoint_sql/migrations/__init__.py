"""Alembic revisions of checkpoint_sql's tables, run by `checkpoint_sql.migrate`.

Each revision's ``upgrade(prefix, schema)`` receives the table prefix and schema it
must create its tables under, so one database can hold several prefixed table sets.
"""
