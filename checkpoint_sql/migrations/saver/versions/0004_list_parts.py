"""Lists stored element by element: a ``parts`` table and the blobs' ``manifest``.

A blob row whose ``manifest`` is NULL holds its value whole, as every row written
before this revision does; those keep reading as they always did, and new writes cut
msgpack arrays into parts (`checkpoint_sql.saver.elements`). Downgrading first joins every
split value back into its blob row, so that the code of 0003 reads it whole.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import struct

import sqlalchemy as sa
from alembic import op

from checkpoint_sql.dialects import columns as dialects
from checkpoint_sql.errors import MissingPartsError

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade(prefix: str, schema: str | None) -> None:
    # IF NOT EXISTS: MySQL's DDL is not transactional (see 0001). SQLite's is, and has
    # no ADD COLUMN IF NOT EXISTS.
    transactional = op.get_bind().dialect.name == "sqlite"
    op.add_column(
        f"{prefix}blobs",
        sa.Column("manifest", dialects.payload(), nullable=True),
        schema=schema,
        if_not_exists=None if transactional else True,
    )
    op.create_table(
        f"{prefix}parts",
        sa.Column("thread_key", dialects.key_bytes(), nullable=False),
        sa.Column("ns_key", dialects.key_bytes(), nullable=False),
        sa.Column("digest", dialects.key_bytes(), nullable=False),
        sa.Column("data", dialects.payload(), nullable=False),
        sa.PrimaryKeyConstraint("thread_key", "ns_key", "digest", name=f"{prefix}parts_pkey"),
        schema=schema,
        if_not_exists=True,
    )


def downgrade(prefix: str, schema: str | None) -> None:
    # Joined before any DDL: MySQL's DDL commits, and a value found broken must stop
    # the downgrade while the parts are still there.
    _join_split_values(prefix, schema)
    op.drop_table(f"{prefix}parts", schema=schema)
    op.drop_column(f"{prefix}blobs", "manifest", schema=schema)


_COUNT = struct.Struct("<I")
_DIGEST = 16


def _join_split_values(prefix: str, schema: str | None) -> None:
    """Write each split value back whole into its blob row: dropping the manifests and
    the parts alone would leave only the msgpack array headers.

    The manifest format is decoded here as this revision wrote it, not through
    `checkpoint_sql.saver.elements`, which a later revision may change. One namespace's
    parts are held in memory at a time.
    """
    bind = op.get_bind()
    key, data = dialects.key_bytes(), dialects.payload()
    blobs = sa.table(
        f"{prefix}blobs",
        *(sa.column(c, key) for c in ("thread_key", "ns_key")),
        sa.column("channel", sa.String()),
        sa.column("version", sa.String()),
        sa.column("blob", data),
        sa.column("manifest", data),
        schema=schema,
    )
    parts = sa.table(
        f"{prefix}parts",
        *(sa.column(c, key) for c in ("thread_key", "ns_key", "digest")),
        sa.column("data", data),
        schema=schema,
    )
    split = blobs.c.manifest.is_not(None)
    namespaces = bind.execute(sa.select(blobs.c.thread_key, blobs.c.ns_key).where(split).distinct()).all()
    for thread_key, ns_key in namespaces:
        found = {
            bytes(d): bytes(v)
            for d, v in bind.execute(
                sa.select(parts.c.digest, parts.c.data).where(
                    parts.c.thread_key == thread_key, parts.c.ns_key == ns_key
                )
            )
        }
        here = (blobs.c.thread_key == thread_key, blobs.c.ns_key == ns_key)
        rows = bind.execute(
            sa.select(blobs.c.channel, blobs.c.version, blobs.c.blob, blobs.c.manifest).where(split, *here)
        )
        for channel, version, header, manifest in rows.all():
            whole = _joined(bytes(header), bytes(manifest), found, f"channel {channel!r} version {version!r}")
            bind.execute(
                sa.update(blobs)
                .where(*here, blobs.c.channel == channel, blobs.c.version == version)
                .values(blob=whole, manifest=None)
            )


def _joined(header: bytes, manifest: bytes, parts: dict[bytes, bytes], what: str) -> bytes:
    def digests(packed: bytes) -> list[bytes]:
        return [packed[i : i + _DIGEST] for i in range(0, len(packed), _DIGEST)]

    (pages,) = _COUNT.unpack_from(manifest)
    listed = digests(manifest[_COUNT.size :])
    try:
        order = [d for page in listed[:pages] for d in digests(parts[page])] + listed[pages:]
        return header + b"".join(parts[d] for d in order)
    except KeyError:
        raise MissingPartsError(f"cannot downgrade below 0004: a list element of {what} is not stored") from None
