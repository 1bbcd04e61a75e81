"""The saver's operations, each a function of one sync `Connection` (the hot path's
two, `read` and `write`, of a raw DBAPI `Link`).

`Database.run` and `Database.arun` call these same functions for the sync and the
async API, inside the transaction the caller asked for (none, for an operation that
is a single statement). They read and write rows; serializing happens before
(`codec.prepare_*`) and decoding after (`codec.checkpoint_tuples`), outside any
transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from checkpoint_sql.core.compiled import CompiledStatement
from checkpoint_sql.core.ids import Address
from checkpoint_sql.core.links import Link
from checkpoint_sql.errors import MissingPartsError, ThreadExistsError, ThreadNotFoundError
from checkpoint_sql.saver import codec, elements
from checkpoint_sql.saver.codec import KeyedVersions, Loaded, Parts, StoredValue
from checkpoint_sql.saver.elements import PartCache
from checkpoint_sql.saver.rows import BlobRow, CheckpointRow, WriteRow
from checkpoint_sql.saver.statements import CHUNK, PART_BUCKETS, SaverStatements

T = TypeVar("T")

READ_ATTEMPTS = 3
"""Reads of a checkpoint whose list parts went missing in between (deleted with it by
another caller, between the read's statements) before `MissingPartsError`."""

SCAN_MIN_PARTS = 64
"""Parts a read must fetch from which one range scan of the namespace replaces the
lookups by key (`_fetch_reached`)."""

CHAIN_PAGE = 256
"""Ancestors read per recursive query when walking a parent chain (MySQL caps a
recursive CTE at 1000 iterations by default)."""


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the hot path: one statement each where the engine allows ---------------------------


def read(
    link: Link,
    st: SaverStatements,
    statement: CompiledStatement,
    params: dict[str, Any],
    cache: PartCache | None = None,
) -> Loaded:
    """Checkpoints with their blobs and writes, in one statement (`get_tuple`, a page
    of `list`), then the parts of their split lists that `cache` does not hold (one
    statement per namespace, two when a list is long enough to have pages), joined
    into `Loaded.values`.

    The statements run without a transaction between them: should a checkpoint be
    deleted after the first, its parts may be gone by the next, and the read starts
    again (and then no longer finds the checkpoint).
    """
    for _ in range(READ_ATTEMPTS):
        loaded = codec.split_union(statement.rows(link, params))
        if join_values(link, st, loaded, cache):
            return loaded
    raise MissingPartsError(
        f"a checkpoint's list elements are missing from {st.tables.parts.name} after {READ_ATTEMPTS} reads"
    )


def join_values(link: Link, st: SaverStatements, loaded: Loaded, cache: PartCache | None = None) -> bool:
    """Join the bytes of every split blob of `loaded` into ``loaded.values``, fetching
    into ``loaded.parts`` the parts `cache` does not hold, and note in
    ``loaded.reached`` what the manifests reach; False if a part is not stored.

    The version a saver stored last in a channel is joined already in its cache
    (`PartCache.latest`): reading back what it just wrote, the usual start of an
    agent's next turn, costs no part lookup at all.
    """
    pending: dict[elements.Namespace, list[tuple[BlobRow, bytes]]] = {}
    for blob in loaded.blobs.values():
        manifest = blob.manifest
        if manifest is None:
            continue
        namespace = (blob.thread_key, blob.ns_key)
        reached = loaded.reached.setdefault(namespace, elements.Reached())
        split = None if cache is None else cache.latest(namespace, blob.channel, bytes(manifest))
        if split is None:
            pending.setdefault(namespace, []).append((blob, bytes(manifest)))
        else:
            loaded.values[codec.blob_key(blob)] = split.header + split.body
            reached.digests.update(split.digests, split.pages)
            reached.latest.add(blob.channel)
    for namespace, waiting in pending.items():
        have, reached = loaded.parts.setdefault(namespace, {}), loaded.reached[namespace]
        orders = _fetch_reached(link, st, namespace, [manifest for _, manifest in waiting], have, cache)
        if orders is None:
            return False
        for (blob, manifest), order in zip(waiting, orders, strict=True):
            loaded.values[codec.blob_key(blob)] = elements.join_in_order(codec.split_header(blob), order, have)
            reached.digests.update(order, elements.pages_of(manifest))
    return True


def fetch_parts(
    link: Link, st: SaverStatements, blobs: Iterable[StoredValue], into: Parts, cache: PartCache | None = None
) -> bool:
    """Fetch into `into` every part the manifests of `blobs` reach, those `cache`
    holds from memory; False if one is not stored."""
    manifests: dict[elements.Namespace, list[bytes]] = {}
    for blob in blobs:
        if blob.manifest is not None:
            manifests.setdefault((blob.thread_key, blob.ns_key), []).append(bytes(blob.manifest))
    return all(
        _fetch_reached(link, st, namespace, found, into.setdefault(namespace, {}), cache) is not None
        for namespace, found in manifests.items()
    )


def _fetch_reached(
    link: Link,
    st: SaverStatements,
    namespace: elements.Namespace,
    manifests: Sequence[bytes],
    have: dict[bytes, bytes],
    cache: PartCache | None,
) -> list[list[bytes]] | None:
    """Fetch into `have` the pages, then the elements, that `manifests` reach: each
    manifest's element digests in order, or None if a part is not stored.

    Parts the cache does not hold are looked up by key, unless there are at least
    `SCAN_MIN_PARTS` of them (a long conversation read by a process that did not
    write it): then one range scan of the namespace takes them all at once, bounded
    at twice what is needed, so that a namespace holding far more (an edited or
    trimmed list keeps its old elements for older checkpoints) costs no more than
    that; the lookups by key then fetch whatever the scan did not bring."""
    pages = {p for m in manifests for p in elements.pages_of(m)}
    tails = {d for m in manifests for d in elements.tail_of(m)}
    if cache is not None:
        cache.recall(namespace, (pages | tails) - have.keys(), have)
    needed = len(pages - have.keys()) * (elements.PAGE + 1) + len(tails - have.keys())
    if needed >= SCAN_MIN_PARTS:
        params = {"tkey": namespace[0], "nkey": namespace[1], "limit": 2 * needed}
        have.update(_parts(st.parts_of_namespace.rows(link, params)))
    if not _fetch(link, st, namespace, pages, have, cache):
        return None
    orders = [elements.elements_of(m, have) for m in manifests]
    if not _fetch(link, st, namespace, {d for order in orders for d in order}, have, cache):
        return None
    return orders


def write(link: Link, plan: Sequence[tuple[CompiledStatement, dict[str, Any]]]) -> None:
    """Run the statements of a `SaverStatements.put_plan`."""
    for statement, params in plan:
        statement.execute(link, params)


# --- whole threads ---------------------------------------------------------------------


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


def delete_checkpoints(
    conn: Connection,
    st: SaverStatements,
    thread_key: bytes,
    ns_key: bytes,
    doomed: Sequence[str],
    kept: Iterable[KeyedVersions],
) -> None:
    """Delete the checkpoints `doomed` of one namespace, their writes, and the blobs no
    checkpoint in `kept` (the namespace's survivors) still points at.

    Writes are deleted by checkpoint id, never "all but the kept": LangGraph may commit
    a step's writes before its checkpoint, and those must survive. Survivors whose
    parent is deleted become roots, so no parent id dangles. Then the namespace's list
    parts that no remaining blob reaches go too (`collect_parts`).
    """
    here = {"tkey": thread_key, "nkey": ns_key}
    referenced = {(channel, version) for row in kept for _, _, channel, version in codec.blob_keys(row)}
    stored = [(blob.channel, blob.version) for blob in conn.execute(st.blob_keys_of_namespace, here)]
    garbage = [pair for pair in stored if pair not in referenced]
    for part in chunks(doomed):
        ids = {**here, "ids": list(part)}
        conn.execute(st.delete_writes_of, ids)
        conn.execute(st.delete_checkpoints_of, ids)
        conn.execute(st.orphan_children, ids)
    for pairs in chunks(garbage):
        conn.execute(st.delete_blobs, {**here, "pairs": list(pairs)})
    if garbage:
        collect_parts(conn, st, thread_key, ns_key)


def _fetch(
    link: Link,
    st: SaverStatements,
    namespace: elements.Namespace,
    wanted: set[bytes],
    have: dict[bytes, bytes],
    cache: PartCache | None,
) -> bool:
    """Fetch the parts of `wanted` not in `have` into it; False if one is not stored."""
    if cache is not None:
        cache.recall(namespace, wanted - have.keys(), have)
    missing = sorted(wanted - have.keys())
    size = PART_BUCKETS[-1]
    for start in range(0, len(missing), size):
        statement, params = st.parts_params(*namespace, missing[start : start + size])
        have.update(_parts(statement.rows(link, params)))
    return have.keys() >= wanted


def _parts(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[bytes, bytes]]:
    """(digest, bytes) of each `PartRow`, as bytes whatever buffer the driver returns."""
    return ((bytes(digest), bytes(data)) for digest, data in rows)


def collect_parts(conn: Connection, st: SaverStatements, thread_key: bytes, ns_key: bytes) -> None:
    """Delete the parts of a namespace that no manifest of its blobs reaches any more."""
    here = {"tkey": thread_key, "nkey": ns_key}
    stored = {bytes(d) for d in conn.execute(st.part_digests_of_namespace, here).scalars()}
    if not stored:
        return
    manifests = [bytes(m) for m in conn.execute(st.manifests_of_namespace, here).scalars()]
    live = reached_parts(conn, st, thread_key, ns_key, manifests, stored)
    for part in chunks(sorted(stored - live)):
        conn.execute(st.delete_parts, {**here, "digests": list(part)})


def reached_parts(
    conn: Connection,
    st: SaverStatements,
    thread_key: bytes,
    ns_key: bytes,
    manifests: Iterable[bytes],
    stored: Collection[bytes],
) -> set[bytes]:
    """The parts of a namespace that `manifests` reach: their pages among `stored`,
    the elements those pages list, and their tails. What `collect_parts` keeps, and
    what retention's estimate counts as staying."""
    manifests = list(manifests)
    pages = sorted({p for m in manifests for p in elements.pages_of(m)} & set(stored))
    live = set(pages).union(*(elements.tail_of(m) for m in manifests))
    for part in chunks(pages):
        for page in conn.execute(st.parts_by_digest, {"tkey": thread_key, "nkey": ns_key, "digests": list(part)}):
            live.update(elements.digests_in(bytes(page.data)))
    return live


def _rows(
    conn: Connection, st: SaverStatements, thread_key: bytes, ns_key: bytes, ids: Sequence[str]
) -> list[CheckpointRow]:
    here = {"tkey": thread_key, "nkey": ns_key}
    return [
        CheckpointRow._make(r) for part in chunks(ids) for r in conn.execute(st.rows_by_id, {**here, "ids": list(part)})
    ]


def delete_for_runs(conn: Connection, st: SaverStatements, run_ids: Sequence[str]) -> None:
    """Every checkpoint whose metadata run_id is in `run_ids` (any thread, any namespace)."""
    doomed: dict[tuple[bytes, bytes], set[str]] = {}
    for part in chunks(run_ids):
        for row in map(CheckpointRow._make, conn.execute(st.rows_by_run, {"run_ids": list(part)})):
            doomed.setdefault((row.thread_key, row.ns_key), set()).add(row.checkpoint_id)
    for (thread_key, ns_key), ids in doomed.items():
        rest = [
            i for i in conn.execute(st.checkpoint_ids, {"tkey": thread_key, "nkey": ns_key}).scalars() if i not in ids
        ]
        delete_checkpoints(conn, st, thread_key, ns_key, sorted(ids), _rows(conn, st, thread_key, ns_key, rest))


def prune_keep_latest(conn: Connection, st: SaverStatements, thread_key: bytes) -> None:
    """Keep each namespace's latest checkpoint and delete the rest of one thread.

    A latest checkpoint whose metadata counts updates since a delta snapshot
    (``counters_since_delta_snapshot``) also keeps its ancestors back to the one that
    stores each such channel's value, with their writes: `get_delta_channel_history`
    rebuilds those channels from exactly that chain, and cutting it would silently
    empty them.
    """
    for latest in conn.execute(st.latest_per_namespace, {"tkey": thread_key}).all():
        ns_key, head_id = latest.ns_key, latest.checkpoint_id
        here = {"tkey": thread_key, "nkey": ns_key}
        head = CheckpointRow._make(conn.execute(st.exact_row, {**here, "checkpoint_id": head_id}).one())
        keep = {head_id}
        delta_channels = list((codec.load_json(head.metadata) or {}).get("counters_since_delta_snapshot") or {})
        if delta_channels:
            walk = walk_chain(conn, st, thread_key, ns_key, head_id, delta_channels)
            keep.update(walk.path[: max(walk.reach.values(), default=0)])
        doomed = [i for i in conn.execute(st.checkpoint_ids, here).scalars() if i not in keep]
        if doomed:
            delete_checkpoints(conn, st, thread_key, ns_key, doomed, _rows(conn, st, thread_key, ns_key, sorted(keep)))


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
    seeds: dict[str, BlobRow] = field(default_factory=dict)


def walk_chain(
    conn: Connection,
    st: SaverStatements,
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
        params = {**here, "start_id": cursor, "max_depth": CHAIN_PAGE}
        rows = [CheckpointRow._make(r) for r in conn.execute(st.chain_page, params)]
        cursor = rows[-1].parent_checkpoint_id if len(rows) == CHAIN_PAGE + 1 else None
        if first_page:
            rows, first_page = rows[1:], False  # the start itself: its writes are not history
        versions = [codec.channel_versions(r) for r in rows]
        wanted = sorted({(ch, str(v)) for vs in versions for ch, v in vs.items() if ch in remaining})
        stored: dict[tuple[str, str], BlobRow] = {}
        for part in chunks(wanted):
            for found in map(BlobRow._make, conn.execute(st.blobs_by_pair, {**here, "pairs": list(part)})):
                stored[(found.channel, found.version)] = found
        for row, row_versions in zip(rows, versions, strict=True):
            walk.path.append(row.checkpoint_id)
            for ch in [c for c in remaining if c in row_versions]:
                blob = stored.get((ch, str(row_versions[ch])))
                if blob is not None and blob.type != codec.EMPTY:
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

    writes: dict[str, list[WriteRow]]
    seeds: dict[str, BlobRow]
    parts: Parts = field(default_factory=dict)


def delta_history(conn: Connection, st: SaverStatements, address: Address, channels: Sequence[str]) -> DeltaRows:
    """`get_delta_channel_history` in SQL: the chain by recursive query, then the
    seeds' blobs and the chain's writes for these channels, in bulk."""
    thread_key, ns_key = address.thread_key, address.ns_key
    assert ns_key is not None, "a delta history is always asked of one namespace"
    here = {"tkey": thread_key, "nkey": ns_key}
    target = address.checkpoint_id
    if target is None:
        latest = codec.split_union(st.read_latest.rows(Link.of(conn), here)).checkpoints  # its id is all we need
        if not latest:
            return DeltaRows({ch: [] for ch in channels}, {})
        target = latest[0].checkpoint_id
    walk = walk_chain(conn, st, thread_key, ns_key, target, channels)
    needed = walk.path[: max(walk.reach.values(), default=0)]
    by_checkpoint: dict[str, list[WriteRow]] = {}
    for part in chunks(needed):
        params = {**here, "channels": list(channels), "ids": list(part)}
        for w in map(WriteRow._make, conn.execute(st.writes_of_channels, params)):
            by_checkpoint.setdefault(w.checkpoint_id, []).append(w)
    writes = {}
    for ch in channels:
        on_path = reversed(walk.path[: walk.reach[ch]])
        writes[ch] = [w for cid in on_path for w in codec.sorted_writes(by_checkpoint.get(cid, ())) if w.channel == ch]
    rows = DeltaRows(writes, walk.seeds)
    if not fetch_parts(Link.of(conn), st, walk.seeds.values(), rows.parts):
        raise MissingPartsError(f"a delta channel's seed value has list elements missing from {st.tables.parts.name}")
    return rows
