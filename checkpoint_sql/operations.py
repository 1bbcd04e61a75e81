"""The saver's operations, each a function of one sync `Connection` in one transaction.

`Database.run` and `Database.arun` call these same functions for the sync and the
async API. They read and write rows; serializing happens before (codec.prepare_*) and
decoding after (codec.checkpoint_tuple), outside the transaction. The one exception
is a checkpoint's own body, decoded here when an operation needs its channel versions
to know which blobs to read, keep or delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import Connection

from checkpoint_sql import codec
from checkpoint_sql.codec import Row
from checkpoint_sql.errors import ThreadExistsError, ThreadNotFoundError
from checkpoint_sql.ids import Address
from checkpoint_sql.statements import CHUNK, SaverStatements

T = TypeVar("T")

CHAIN_PAGE = 256
"""Ancestors read per recursive query when walking a parent chain (MySQL caps a
recursive CTE at 1000 iterations by default)."""


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True)
class Loaded:
    """Checkpoint rows with their decoded bodies, blobs and pending writes: all that
    `codec.checkpoint_tuple` needs, fetched in one transaction."""

    rows: list[Row] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[tuple[bytes, bytes, str, str], Row] = field(default_factory=dict)
    writes: dict[tuple[bytes, bytes, str], list[Row]] = field(default_factory=dict)


def _load_children(conn: Connection, st: SaverStatements, serde: SerializerProtocol, rows: list[Row]) -> Loaded:
    """Two queries for any number of checkpoints: their blobs, then their writes."""
    loaded = Loaded(rows=rows, bodies=[codec.decode_body(serde, r) for r in rows])
    keys: list[tuple[bytes, bytes, str, str]] = sorted(
        {k for row, body in zip(rows, loaded.bodies, strict=True) for k in codec.blob_keys(row, body)}
    )
    for blob_keys in chunks(keys):
        loaded.blobs.update(codec.index_blobs(conn.execute(st.blobs_by_key, {"keys": list(blob_keys)}).mappings()))
    checkpoints = [(r["thread_key"], r["ns_key"], r["checkpoint_id"]) for r in rows]
    for checkpoint_keys in chunks(checkpoints):
        found = conn.execute(st.writes_by_checkpoint, {"keys": list(checkpoint_keys)}).mappings()
        for key, group in codec.index_writes(found).items():
            loaded.writes.setdefault(key, []).extend(group)
    return loaded


# --- reads ---------------------------------------------------------------------------


def load_checkpoint(
    conn: Connection, st: SaverStatements, serde: SerializerProtocol, address: Address
) -> Loaded | None:
    """The checkpoint `address` names (or its namespace's latest), with its children."""
    params = {"tkey": address.thread_key, "nkey": address.ns_key}
    if address.checkpoint_id is None:
        row = conn.execute(st.latest, params).mappings().first()
    else:
        row = conn.execute(st.exact, {**params, "checkpoint_id": address.checkpoint_id}).mappings().first()
    return None if row is None else _load_children(conn, st, serde, [row])


def load_page(conn: Connection, st: SaverStatements, serde: SerializerProtocol, query: dict[str, Any]) -> Loaded:
    """One page of `list` (see `SaverStatements.list_page` for the query)."""
    rows: list[Row] = list(conn.execute(st.list_page(**query)).mappings())
    return _load_children(conn, st, serde, rows) if rows else Loaded()


# --- writes --------------------------------------------------------------------------


def put(conn: Connection, st: SaverStatements, prepared: codec.PreparedPut) -> None:
    """A checkpoint, its new blobs and (for `put_full`) its writes. Blobs are
    insert-or-ignore: a version names one value forever."""
    if prepared.blobs:
        conn.execute(st.insert_blobs, prepared.blobs)
    conn.execute(st.upsert_checkpoint, prepared.checkpoint)
    put_writes(conn, st, prepared.writes)


def put_writes(conn: Connection, st: SaverStatements, writes: codec.PreparedWrites) -> None:
    if writes.keep_first:
        conn.execute(st.insert_writes_keep_first, writes.keep_first)
    if writes.overwrite:
        conn.execute(st.insert_writes_overwrite, writes.overwrite)


def delete_threads(conn: Connection, st: SaverStatements, thread_keys: Sequence[bytes]) -> None:
    for part in chunks(thread_keys):
        for stmt in st.delete_thread:
            conn.execute(stmt, {"thread_keys": list(part)})


def copy_thread(conn: Connection, st: SaverStatements, source: Address, target: Address) -> None:
    """Every row of `source`, all namespaces, under `target`: same checkpoint ids, same
    parents, same blobs and writes, so the whole chain (and any delta channel's
    history) reads back identically. Done in SQL; nothing is decoded."""
    if conn.execute(st.thread_has_checkpoints, {"tkey": target.thread_key}).first() is not None:
        raise ThreadExistsError(
            f"copy_thread: target thread {target.thread_id!r} already has checkpoints; "
            "delete it first or copy to a new thread id"
        )
    if conn.execute(st.thread_has_checkpoints, {"tkey": source.thread_key}).first() is None:
        raise ThreadNotFoundError(f"copy_thread: source thread {source.thread_id!r} has no checkpoints")
    params = {"source_key": source.thread_key, "target_key": target.thread_key, "target_id": target.thread_id}
    for stmt in st.copy_thread:
        conn.execute(stmt, params)


# --- deleting some checkpoints of a namespace -----------------------------------------


def _forget(
    conn: Connection,
    st: SaverStatements,
    serde: SerializerProtocol,
    thread_key: bytes,
    ns_key: bytes,
    doomed: Sequence[str],
    kept: Iterable[Row],
) -> None:
    """Delete the checkpoints `doomed` of one namespace, their writes, and the blobs no
    checkpoint in `kept` (the namespace's survivors) still points at.

    Writes are deleted by checkpoint id, never "all but the kept": LangGraph may commit
    a step's writes before its checkpoint, and those must survive. Survivors whose
    parent is deleted become roots, so no parent id dangles.
    """
    here = {"tkey": thread_key, "nkey": ns_key}
    referenced = {(k[2], k[3]) for row in kept for k in codec.blob_keys(row, codec.decode_body(serde, row))}
    garbage = [tuple(p) for p in conn.execute(st.blob_keys_of_namespace, here) if tuple(p) not in referenced]
    for part in chunks(doomed):
        ids = {**here, "ids": list(part)}
        conn.execute(st.delete_writes_of, ids)
        conn.execute(st.delete_checkpoints_of, ids)
        conn.execute(st.orphan_children, ids)
    for pairs in chunks(garbage):
        conn.execute(st.delete_blobs, {**here, "pairs": list(pairs)})


def delete_for_runs(conn: Connection, st: SaverStatements, serde: SerializerProtocol, run_ids: Sequence[str]) -> None:
    """Every checkpoint whose metadata run_id is in `run_ids` (any thread, any namespace)."""
    doomed: dict[tuple[bytes, bytes], set[str]] = {}
    for part in chunks(run_ids):
        for row in conn.execute(st.rows_by_run, {"run_ids": list(part)}).mappings():
            doomed.setdefault((row["thread_key"], row["ns_key"]), set()).add(row["checkpoint_id"])
    for (thread_key, ns_key), ids in doomed.items():
        here = {"tkey": thread_key, "nkey": ns_key}
        rest = [i for i in conn.execute(st.checkpoint_ids, here).scalars() if i not in ids]
        kept = [r for part in chunks(rest) for r in conn.execute(st.rows_by_id, {**here, "ids": list(part)}).mappings()]
        _forget(conn, st, serde, thread_key, ns_key, sorted(ids), kept)


def prune_keep_latest(conn: Connection, st: SaverStatements, serde: SerializerProtocol, thread_key: bytes) -> None:
    """Keep each namespace's latest checkpoint and delete the rest of one thread.

    A latest checkpoint whose metadata counts updates since a delta snapshot
    (``counters_since_delta_snapshot``) also keeps its ancestors back to the one that
    stores each such channel's value, with their writes: `get_delta_channel_history`
    rebuilds those channels from exactly that chain, and cutting it would silently
    empty them.
    """
    for ns_key, head_id in conn.execute(st.latest_per_namespace, {"tkey": thread_key}).all():
        here = {"tkey": thread_key, "nkey": ns_key}
        head = conn.execute(st.exact, {**here, "checkpoint_id": head_id}).mappings().one()
        keep = {head_id}
        delta_channels = list((head["metadata"] or {}).get("counters_since_delta_snapshot") or {})
        if delta_channels:
            walk = walk_chain(conn, st, serde, thread_key, ns_key, head_id, delta_channels)
            keep.update(walk.path[: max(walk.reach.values(), default=0)])
        doomed = [i for i in conn.execute(st.checkpoint_ids, here).scalars() if i not in keep]
        if doomed:
            kept = list(conn.execute(st.rows_by_id, {**here, "ids": sorted(keep)}).mappings())
            _forget(conn, st, serde, thread_key, ns_key, doomed, kept)


# --- delta channels --------------------------------------------------------------------


@dataclass(slots=True)
class Walk:
    """The parent chain above a checkpoint, as far as some channels need it.

    `path` lists ancestor ids, parent first. For each channel, `reach[channel]` is how
    many entries of `path` contribute writes (up to and including the ancestor that
    stores its value), and `seeds[channel]` is that stored value's blob row, if any
    ancestor has one.
    """

    path: list[str] = field(default_factory=list)
    reach: dict[str, int] = field(default_factory=dict)
    seeds: dict[str, Row] = field(default_factory=dict)


def walk_chain(
    conn: Connection,
    st: SaverStatements,
    serde: SerializerProtocol,
    thread_key: bytes,
    ns_key: bytes,
    start_id: str,
    channels: Sequence[str],
) -> Walk:
    """Follow parent links up from `start_id` (in pages of a recursive query) until
    every channel in `channels` has met an ancestor that stores a value for it, or
    the root. Forks are handled for free: only on-path ancestors are visited."""
    walk = Walk()
    remaining = set(channels)
    here = {"tkey": thread_key, "nkey": ns_key}
    cursor: str | None = start_id
    first_page = True
    while remaining and cursor is not None:
        rows = list(conn.execute(st.chain_page, {**here, "start_id": cursor, "max_depth": CHAIN_PAGE}).mappings())
        cursor = rows[-1]["parent_checkpoint_id"] if len(rows) == CHAIN_PAGE + 1 else None
        if first_page:
            rows, first_page = rows[1:], False  # the start itself: its writes are not history
        bodies = [codec.decode_body(serde, r) for r in rows]
        wanted = sorted(
            {
                (thread_key, ns_key, ch, str(v))
                for b in bodies
                for ch, v in b.get("channel_versions", {}).items()
                if ch in remaining
            }
        )
        stored = {}
        for part in chunks(wanted):
            stored.update(codec.index_blobs(conn.execute(st.blobs_by_key, {"keys": list(part)}).mappings()))
        for row, body in zip(rows, bodies, strict=True):
            walk.path.append(row["checkpoint_id"])
            versions = body.get("channel_versions", {})
            for ch in [c for c in remaining if c in versions]:
                blob = stored.get((thread_key, ns_key, ch, str(versions[ch])))
                if blob is not None and blob["type"] != codec.EMPTY:
                    walk.seeds[ch] = blob
                    walk.reach[ch] = len(walk.path)
                    remaining.discard(ch)
            if not remaining:
                break
    for ch in remaining:
        walk.reach[ch] = len(walk.path)
    return walk


@dataclass(slots=True)
class DeltaRows:
    """Per channel: its writes along the chain (oldest checkpoint first, each
    checkpoint's in `writes_sort_key` order) and its seed blob row, if any."""

    writes: dict[str, list[Row]]
    seeds: dict[str, Row]


def delta_history(
    conn: Connection, st: SaverStatements, serde: SerializerProtocol, address: Address, channels: Sequence[str]
) -> DeltaRows:
    """`get_delta_channel_history` in SQL: the chain by recursive query, then the
    seeds' blobs and the chain's writes for these channels, in bulk."""
    empty = DeltaRows({ch: [] for ch in channels}, {})
    thread_key, ns_key = address.thread_key, address.ns_key
    assert ns_key is not None, "a delta history is always asked of one namespace"
    here = {"tkey": thread_key, "nkey": ns_key}
    target = address.checkpoint_id
    if target is None:
        row = conn.execute(st.latest, here).mappings().first()
        if row is None:
            return empty
        target = row["checkpoint_id"]
    walk = walk_chain(conn, st, serde, thread_key, ns_key, target, channels)
    needed = walk.path[: max(walk.reach.values(), default=0)]
    by_checkpoint: dict[str, list[Row]] = {}
    for part in chunks(needed):
        params = {**here, "channels": list(channels), "ids": list(part)}
        for w in conn.execute(st.writes_of_channels, params).mappings():
            by_checkpoint.setdefault(w["checkpoint_id"], []).append(w)
    writes = {}
    for ch in channels:
        on_path = reversed(walk.path[: walk.reach[ch]])
        writes[ch] = [
            w for cid in on_path for w in codec.sorted_writes(by_checkpoint.get(cid, ())) if w["channel"] == ch
        ]
    return DeltaRows(writes, walk.seeds)
