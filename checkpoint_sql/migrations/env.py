"""Alembic environment for checkpoint_sql: runs on the connection `migrate.upgrade`
hands over (Alembic's documented "shared connection" recipe), under our own version
table, passing the table prefix and schema to every revision."""

from alembic import context

connection = context.config.attributes["connection"]
tables = context.config.attributes["tables"]

context.configure(
    connection=connection,
    version_table=tables.version_table,
    version_table_schema=tables.schema,
    target_metadata=tables.metadata,
)
with context.begin_transaction():
    context.run_migrations(prefix=tables.prefix, schema=tables.schema)
