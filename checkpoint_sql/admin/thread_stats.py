"""Where a thread's bytes are (`checkpoint-sql stats THREAD`): per namespace, each
channel's stored values (every version kept, and the one the latest checkpoint
reads), the checkpoint bodies and metadata, and the pending writes per channel.

The LangGraph Agent Server answers its own ``/threads/{id}/storage`` with 501 for a
custom checkpointer; this is the same question answered from our tables. Sizes are
what `threads` and `stats` count: payload bytes as stored (on PostgreSQL after TOAST
compression), so a thread's total here is its size in `threads`.

A list stored element by element (`checkpoint_sql.saver.elements`) is its blob rows (array
header and manifest) and the parts its manifests reach, which versions share: a
channel's "all versions" counts each part once, however many of its versions reach
it, and its "latest" counts every part the latest value reaches. A part two channels
of a namespace share (the same element bytes in both) is counted once, in the
channel first by name, so that the channels add up to the namespace. Parts no
manifest reaches any more (left by a put that lost a race for its version) are
shown apart as unreferenced; the next deletion in the namespace collects them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Connection

from checkpoint_sql.admin.threads import blob_size, human_bytes
from checkpoint_sql.core.ids import key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.introspection import stored_size
from checkpoint_sql.saver import codec, elements, operations
from checkpoint_sql.saver.schema import SaverTables
from checkpoint_sql.saver.sql_saver import SQLSaver


@dataclass
class ThreadStorage:
    thread_id: str
    namespaces: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        keys = (
            "checkpoints",
            "checkpoint_bytes",
            "metadata_bytes",
            "channel_bytes",
            "write_bytes",
            "unreferenced_bytes",
            "bytes",
        )
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
    if ns["unreferenced_bytes"]:
        table.add_row(Text("(unreferenced list parts)", style="dim"), "", human_bytes(ns["unreferenced_bytes"]), "", "")
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


def of_thread(saver: SQLSaver, thread_id: str) -> ThreadStorage:
    """The storage report of one thread (that has checkpoints), in one snapshot read."""
    return saver.db.run(_measure, saver.tables, saver.db.family, thread_id_of(thread_id), intent=Intent.READ_SNAPSHOT)


def _measure(conn: Connection, tables: SaverTables, family: Family, thread_id: str) -> ThreadStorage:
    thread_key = key_of(thread_id)
    cp, bl, wr = tables.checkpoints, tables.blobs, tables.writes
    here = {"tkey": thread_key}
    per_ns = conn.execute(
        sa.select(
            cp.c.ns_key,
            sa.func.max(cp.c.checkpoint_ns).label("checkpoint_ns"),
            sa.func.count().label("checkpoints"),
            sa.func.max(cp.c.checkpoint_id).label("latest_id"),
            sa.func.coalesce(sa.func.sum(stored_size(family, cp.c.checkpoint)), 0).label("body_bytes"),
            sa.func.coalesce(sa.func.sum(stored_size(family, cp.c.metadata)), 0).label("metadata_bytes"),
        )
        .where(cp.c.thread_key == sa.bindparam("tkey"))
        .group_by(cp.c.ns_key),
        here,
    ).all()

    def per_channel(table: sa.Table, payload: sa.ColumnElement[Any]) -> list[Any]:
        """The rows and bytes of each namespace and channel in `table`, for the thread."""
        rows = conn.execute(
            sa.select(
                table.c.ns_key,
                table.c.channel,
                sa.func.count().label("rows"),
                sa.func.coalesce(sa.func.sum(payload), 0).label("bytes"),
            )
            .where(table.c.thread_key == sa.bindparam("tkey"))
            .group_by(table.c.ns_key, table.c.channel),
            here,
        )
        return list(rows)

    channels, writes = per_channel(bl, blob_size(family, bl)), per_channel(wr, stored_size(family, wr.c.blob))
    parts = _Parts.read(conn, tables, family, thread_key)
    namespaces = []
    for ns in per_ns:
        ns_key = bytes(ns.ns_key)
        ns_parts = parts.of(ns_key)
        latest = _latest_sizes(conn, tables, family, thread_key, ns_key, ns.latest_id, ns_parts)
        ns_channels = sorted(
            (
                {
                    "channel": c.channel,
                    "versions": int(c.rows),
                    "bytes": int(c.bytes) + ns_parts.channel_bytes.get(c.channel, 0),
                    "latest_bytes": latest.get(c.channel),
                }
                for c in channels
                if bytes(c.ns_key) == ns_key
            ),
            key=lambda c: (-c["bytes"], c["channel"]),
        )
        ns_writes = sorted(
            (
                {"channel": w.channel, "writes": int(w.rows), "bytes": int(w.bytes)}
                for w in writes
                if bytes(w.ns_key) == ns_key
            ),
            key=lambda w: (-w["bytes"], w["channel"]),
        )
        channel_bytes = sum(c["bytes"] for c in ns_channels)
        write_bytes = sum(w["bytes"] for w in ns_writes)
        namespaces.append(
            {
                "checkpoint_ns": ns.checkpoint_ns,
                "checkpoints": int(ns.checkpoints),
                "latest_checkpoint_id": ns.latest_id,
                "checkpoint_bytes": int(ns.body_bytes),
                "metadata_bytes": int(ns.metadata_bytes),
                "channel_bytes": channel_bytes,
                "write_bytes": write_bytes,
                "unreferenced_bytes": ns_parts.unreferenced_bytes,
                "bytes": int(ns.body_bytes) + channel_bytes + write_bytes + ns_parts.unreferenced_bytes,
                "channels": ns_channels,
                "writes": ns_writes,
            }
        )
    namespaces.sort(key=lambda ns: ns["checkpoint_ns"])
    return ThreadStorage(thread_id, namespaces)


@dataclass
class _NamespaceParts:
    """The parts of one namespace, and who they are counted for."""

    sizes: dict[bytes, int] = field(default_factory=dict)
    """Stored bytes of each part, by digest."""
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """The manifest of each split (channel, version)."""
    pages: dict[bytes, list[bytes]] = field(default_factory=dict)
    """The element digests of each page the manifests list."""
    channel_bytes: dict[str, int] = field(default_factory=dict)
    """Bytes of the parts counted for each channel (see the module docstring)."""
    unreferenced_bytes: int = 0

    def reached(self, manifest: bytes) -> set[bytes]:
        """The digests of the parts a manifest reaches: its pages, their elements, its tail."""
        pages = elements.pages_of(manifest)
        return {*pages, *(d for p in pages for d in self.pages.get(p, ())), *elements.tail_of(manifest)}

    def attribute(self) -> None:
        """Count each stored part once: for the first channel (by name) reaching it,
        else as unreferenced."""
        owner: dict[bytes, str] = {}
        for (channel, _), manifest in sorted(self.manifests.items()):
            for page in elements.pages_of(manifest):
                if page not in owner:  # else its elements have their owner already
                    owner[page] = channel
                    for d in self.pages.get(page, ()):
                        owner.setdefault(d, channel)
            for d in elements.tail_of(manifest):
                owner.setdefault(d, channel)
        for d, n in self.sizes.items():
            if d in owner:
                self.channel_bytes[owner[d]] = self.channel_bytes.get(owner[d], 0) + n
            else:
                self.unreferenced_bytes += n


@dataclass
class _Parts:
    """A thread's parts by namespace, with the manifests and pages that reach them."""

    namespaces: dict[bytes, _NamespaceParts]

    @classmethod
    def read(cls, conn: Connection, tables: SaverTables, family: Family, thread_key: bytes) -> _Parts:
        """The parts' sizes (not their bytes), the manifests, and the pages' bytes."""
        bl, pa = tables.blobs, tables.parts
        found: dict[bytes, _NamespaceParts] = {}
        size = sa.func.coalesce(stored_size(family, pa.c.data), 0).label("size")
        for part in conn.execute(sa.select(pa.c.ns_key, pa.c.digest, size).where(pa.c.thread_key == thread_key)):
            found.setdefault(bytes(part.ns_key), _NamespaceParts()).sizes[bytes(part.digest)] = int(part.size)
        manifests = sa.select(bl.c.ns_key, bl.c.channel, bl.c.version, bl.c.manifest).where(
            bl.c.thread_key == thread_key, bl.c.manifest.is_not(None)
        )
        for blob in conn.execute(manifests):
            namespace = found.setdefault(bytes(blob.ns_key), _NamespaceParts())
            namespace.manifests[(blob.channel, blob.version)] = bytes(blob.manifest)
        pages = sa.select(pa.c.digest, pa.c.data).where(
            pa.c.thread_key == thread_key,
            pa.c.ns_key == sa.bindparam("nkey"),
            pa.c.digest.in_(sa.bindparam("digests", expanding=True)),
        )
        for ns_key, ns in found.items():
            wanted = sorted({p for m in ns.manifests.values() for p in elements.pages_of(m)} & ns.sizes.keys())
            for chunk in operations.chunks(wanted):
                for page in conn.execute(pages, {"nkey": ns_key, "digests": list(chunk)}):
                    ns.pages[bytes(page.digest)] = elements.digests_in(bytes(page.data))
            ns.attribute()
        return cls(found)

    def of(self, ns_key: bytes) -> _NamespaceParts:
        return self.namespaces.get(ns_key) or _NamespaceParts()


def _latest_sizes(
    conn: Connection,
    tables: SaverTables,
    family: Family,
    thread_key: bytes,
    ns_key: bytes,
    checkpoint_id: str,
    parts: _NamespaceParts,
) -> dict[str, int]:
    """Bytes of each channel value the namespace's latest checkpoint reads: its blob
    row, and for a split list every part it reaches."""
    cp, bl = tables.checkpoints, tables.blobs
    row = conn.execute(
        sa.select(cp.c.thread_key, cp.c.ns_key, cp.c.versions).where(
            cp.c.thread_key == thread_key, cp.c.ns_key == ns_key, cp.c.checkpoint_id == checkpoint_id
        )
    ).one()
    pairs = [(channel, version) for _, _, channel, version in codec.blob_keys(row)]
    if not pairs:
        return {}
    found = conn.execute(
        sa.select(bl.c.channel, bl.c.version, blob_size(family, bl).label("size")).where(
            bl.c.thread_key == thread_key,
            bl.c.ns_key == ns_key,
            sa.tuple_(bl.c.channel, bl.c.version).in_(pairs),
        )
    )
    sizes = {}
    for blob in found:
        manifest = parts.manifests.get((blob.channel, blob.version))
        reached = () if manifest is None else parts.reached(manifest)
        sizes[blob.channel] = int(blob.size) + sum(parts.sizes.get(d, 0) for d in reached)
    return sizes
