"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, in one place.

The rest of the package writes portable SQLAlchemy Core and asks these modules for
what each engine does its own way:

- `capabilities`: the engine family of a dialect, and what each family can do or
  needs (`capabilities(family).chains_writes`, ...).
- `columns`: column types that index, compare and round-trip alike everywhere.
- `statements`: upserts, insert-ignore, typed NULLs, JSON arrays as tables, the
  server's clock.
- `json_members`: members of JSON columns, and the stores' comparisons on them;
  `metadata_filter`: the saver's metadata equality, on the same members.
- `transactions`: how a transaction begins, read-only transactions;
  `locks`: migration locks, Galera's included.
- `driver_errors`: what the drivers' errors mean (missing tables, retryable faults).
- `connections`: the supported drivers, their connect arguments, SQLite's pragmas.
- `vectors`: vector scoring in SQL; `introspection`: sizes and server settings for
  the admin command.
"""

from typing import Literal

Family = Literal["sqlite", "postgresql", "mysql"]
"""An engine family: MariaDB is "mysql"."""
MYSQL_DIALECTS = ("mysql", "mariadb")
"""The SQLAlchemy dialect names of the "mysql" family."""
