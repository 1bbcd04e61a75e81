"""Where a thread's bytes are (`checkpoint-sql stats THREAD`): per namespace, each
channel's stored values (every version kept, and the one the latest checkpoint
reads), the checkpoint bodies and metadata, and the pending writes per channel.

The LangGraph Agent Server answers its own ``/threads/{id}/storage`` with 501 for a
custom checkpointer; this is the same question answered from our tables. Sizes are
what `threads` and `stats` count: payload bytes as stored (on PostgreSQL after TOAST
compression), so a thread's total here is its size in `threads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Connection

from checkpoint_sql import codec, dialects
from checkpoint_sql.admin.threads import human_bytes
from checkpoint_sql.ids import key_of
from checkpoint_sql.schema import SaverTables


@dataclass
class ThreadStorage:
    thread_id: str
    namespaces: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        keys = ("checkpoints", "checkpoint_bytes", "metadata_bytes", "channel_bytes", "write_bytes", "bytes")
        totals = {k: sum(ns[k] for ns in self.namespaces) for k in keys}
        return {"thread_id": self.thread_id, "totals": totals, "namespaces": self.namespaces}

    def render(self) -> RenderableType:
        totals = self.to_json()["totals"]
        parts: list[RenderableType] = [
            Text.assemble(
                ("thread ", "bold"),
                (self.thread_id, "bold cyan"),
                f": {totals['checkpoints']} checkpoints in {len(self.namespaces)} namespace(s), "
                f"{human_bytes(totals['bytes'])} stored",
            )
        ]
        for ns in self.namespaces:
            parts.extend((Text(""), _namespace_table(ns)))
            if ns["writes"]:
                parts.append(_writes_table(ns))
        return Group(*parts)


def _namespace_table(ns: dict[str, Any]) -> Table:
    title = f"{ns['checkpoint_ns'] or '(root)'}: {ns['checkpoints']} checkpoints, {human_bytes(ns['bytes'])}"
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("channel")
    for name in ("versions", "all versions", "latest", "share"):
        table.add_column(name, justify="right")
    for ch in ns["channels"]:
        latest = "-" if ch["latest_bytes"] is None else human_bytes(ch["latest_bytes"])
        table.add_row(
            Text(ch["channel"], style="cyan"), str(ch["versions"]), human_bytes(ch["bytes"]), latest, _share(ch, ns)
        )
    table.add_row(Text("(checkpoint bodies)", style="dim"), "", human_bytes(ns["checkpoint_bytes"]), "", "")
    table.add_row(Text("(pending writes)", style="dim"), "", human_bytes(ns["write_bytes"]), "", "")
    table.caption = f"metadata (JSON, not counted above): {human_bytes(ns['metadata_bytes'])}"
    table.caption_justify = "left"
    return table


def _writes_table(ns: dict[str, Any]) -> Table:
    table = Table(title="pending writes", title_justify="left", header_style="bold")
    table.add_column("channel")
    table.add_column("writes", justify="right")
    table.add_column("bytes", justify="right")
    for w in ns["writes"]:
        table.add_row(Text(w["channel"], style="cyan"), str(w["writes"]), human_bytes(w["bytes"]))
    return table


def _share(channel: dict[str, Any], ns: dict[str, Any]) -> str:
    return f"{100 * channel['bytes'] / ns['bytes']:.0f} %" if ns["bytes"] else ""


def measure(conn: Connection, tables: SaverTables, family: dialects.Family, thread_id: str) -> ThreadStorage:
    """The storage report of one thread (that has checkpoints), in one snapshot read."""
    thread_key = key_of(thread_id)
    cp, bl, wr = tables.checkpoints, tables.blobs, tables.writes
    size = dialects.stored_size
    here = {"tkey": thread_key}
    per_ns = conn.execute(
        sa.select(
            cp.c.ns_key,
            sa.func.max(cp.c.checkpoint_ns),
            sa.func.count(),
            sa.func.max(cp.c.checkpoint_id),
            sa.func.coalesce(sa.func.sum(size(family, cp.c.checkpoint)), 0),
            sa.func.coalesce(sa.func.sum(size(family, cp.c.metadata)), 0),
        )
        .where(cp.c.thread_key == sa.bindparam("tkey"))
        .group_by(cp.c.ns_key),
        here,
    ).all()

    def per_channel(table: sa.Table) -> list[Any]:
        """(namespace key, channel, rows, bytes) of the thread's rows in `table`."""
        blob_bytes = sa.func.coalesce(sa.func.sum(size(family, table.c.blob)), 0)
        rows = conn.execute(
            sa.select(table.c.ns_key, table.c.channel, sa.func.count(), blob_bytes)
            .where(table.c.thread_key == sa.bindparam("tkey"))
            .group_by(table.c.ns_key, table.c.channel),
            here,
        )
        return list(rows)

    channels, writes = per_channel(bl), per_channel(wr)
    namespaces = []
    for ns_key, checkpoint_ns, n, latest_id, body_bytes, metadata_bytes in per_ns:
        latest = _latest_sizes(conn, tables, family, thread_key, bytes(ns_key), latest_id)
        ns_channels = sorted(
            (
                {"channel": ch, "versions": int(v), "bytes": int(b), "latest_bytes": latest.get(ch)}
                for k, ch, v, b in channels
                if bytes(k) == bytes(ns_key)
            ),
            key=lambda c: (-c["bytes"], c["channel"]),
        )
        ns_writes = sorted(
            ({"channel": ch, "writes": int(c), "bytes": int(b)} for k, ch, c, b in writes if bytes(k) == bytes(ns_key)),
            key=lambda w: (-w["bytes"], w["channel"]),
        )
        channel_bytes = sum(c["bytes"] for c in ns_channels)
        write_bytes = sum(w["bytes"] for w in ns_writes)
        namespaces.append(
            {
                "checkpoint_ns": checkpoint_ns,
                "checkpoints": int(n),
                "latest_checkpoint_id": latest_id,
                "checkpoint_bytes": int(body_bytes),
                "metadata_bytes": int(metadata_bytes),
                "channel_bytes": channel_bytes,
                "write_bytes": write_bytes,
                "bytes": int(body_bytes) + channel_bytes + write_bytes,
                "channels": ns_channels,
                "writes": ns_writes,
            }
        )
    namespaces.sort(key=lambda ns: ns["checkpoint_ns"])
    return ThreadStorage(thread_id, namespaces)


def _latest_sizes(
    conn: Connection, tables: SaverTables, family: dialects.Family, thread_key: bytes, ns_key: bytes, checkpoint_id: str
) -> dict[str, int]:
    """Bytes of each channel value the namespace's latest checkpoint reads."""
    cp, bl = tables.checkpoints, tables.blobs
    row = (
        conn.execute(
            sa.select(cp.c.thread_key, cp.c.ns_key, cp.c.versions).where(
                cp.c.thread_key == thread_key, cp.c.ns_key == ns_key, cp.c.checkpoint_id == checkpoint_id
            )
        )
        .mappings()
        .one()
    )
    pairs = [(channel, version) for _, _, channel, version in codec.blob_keys(row)]
    if not pairs:
        return {}
    found = conn.execute(
        sa.select(bl.c.channel, sa.func.coalesce(dialects.stored_size(family, bl.c.blob), 0)).where(
            bl.c.thread_key == thread_key,
            bl.c.ns_key == ns_key,
            sa.tuple_(bl.c.channel, bl.c.version).in_(pairs),
        )
    )
    return {channel: int(n) for channel, n in found}
