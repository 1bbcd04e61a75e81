"""Retention: which checkpoints to keep, and deleting the rest without breaking a thread.

A `RetentionPolicy` says what may go: checkpoints beyond the newest `keep_last` of
their thread and namespace, and/or checkpoints older than `older_than` (by the
checkpoint's own timestamp, ``created_us``). When both are given a checkpoint must
meet both to go, so ``keep_last=1, older_than=30d`` trims month-old history but
never empties a thread, while ``older_than=30d`` alone also removes threads idle for
a month. Whatever the policy, a kept checkpoint keeps the ancestors its
`DeltaChannel` values are rebuilt from (back to the nearest stored snapshot), even
when they are old: deleting them would silently empty those channels.

Per thread, an `Override` callback may choose another policy, or exempt the thread,
from the metadata of its latest checkpoint (``{"plan": "enterprise"}`` keeps a
year, ``{"pinned": True}`` keeps everything), and a `Veto` callback sees what would
be deleted from a thread before it is, and may refuse. Both run between
transactions, never inside one, so a slow callback holds no lock; the deleting
transaction then re-reads the thread and deletes only what was both approved and is
still beyond the policy. With an override every thread is visited, since any of
them may have a policy of its own.

Deleting goes through `operations.delete_checkpoints`, the saver's own rule: a deleted
checkpoint takes its pending writes with it, the blobs no survivor points at are
garbage-collected, and survivors whose parent went become roots. Each thread is one
transaction (a `calls.Job`), so a sweep over a large database never holds locks for long.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from checkpoint_sql.core import bounds
from checkpoint_sql.core.calls import Call, Job, Progress
from checkpoint_sql.core.ids import key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.errors import InvalidArgumentError
from checkpoint_sql.saver import codec, operations
from checkpoint_sql.saver.schema import SaverTables
from checkpoint_sql.saver.statements import SaverStatements

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(?:(\d+)([smhdw]))+?")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` or sums like ``1d12h``.

    A bare number is refused: "30" could mean seconds or days, and guessing wrong
    deletes data.
    """
    cleaned = text.strip().lower()
    if not cleaned or _DURATION.fullmatch(cleaned) is None:
        raise InvalidArgumentError(f"malformed duration {text!r}: use a number and a unit, e.g. 90s, 15m, 12h, 30d, 2w")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(cleaned))
    if seconds <= 0:
        raise InvalidArgumentError(f"duration {text!r} must be longer than zero")
    return timedelta(seconds=bounds.check_seconds(seconds, f"duration {text!r:.60}"))


@dataclass(frozen=True)
class RetentionPolicy:
    """What may be deleted; see the module docstring for how the two limits combine."""

    keep_last: int | None = None
    """Newest checkpoints kept per thread and namespace (at least 1)."""
    older_than: timedelta | None = None
    """Only checkpoints older than this (by their own timestamp) may go."""

    def __post_init__(self) -> None:
        if self.keep_last is None and self.older_than is None:
            raise InvalidArgumentError("a retention policy needs keep_last, older_than or both")
        if self.keep_last is not None and (
            isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int) or self.keep_last < 1
        ):
            raise InvalidArgumentError(
                f"keep_last must be an int >= 1, not {self.keep_last!r} (to remove whole threads, delete them)"
            )
        if self.keep_last is not None:
            bounds.check_int(self.keep_last, "keep_last")
        if self.older_than is not None and (
            not isinstance(self.older_than, timedelta) or self.older_than <= timedelta(0)
        ):
            raise InvalidArgumentError(f"older_than must be a positive timedelta, not {self.older_than!r}")
        if self.older_than is not None:
            bounds.check_seconds(self.older_than, "older_than")

    @classmethod
    def of(cls, keep_last: int | None = None, older_than: timedelta | str | None = None) -> RetentionPolicy:
        """A policy from friendlier arguments: `older_than` may be a duration string."""
        if isinstance(older_than, str):
            older_than = parse_duration(older_than)
        return cls(keep_last, older_than)

    def cutoff(self, now: datetime) -> datetime | None:
        return None if self.older_than is None else now - self.older_than

    def to_json(self) -> dict[str, Any]:
        return {
            "keep_last": self.keep_last,
            "older_than_seconds": None if self.older_than is None else int(self.older_than.total_seconds()),
        }


class Exempt:
    """The type of `EXEMPT`."""

    def __repr__(self) -> str:
        return "EXEMPT"


EXEMPT: Final = Exempt()
"""What an `Override` returns for a thread retention must leave alone."""

Override = Callable[[str, Mapping[str, Any]], "RetentionPolicy | Exempt | None"]
"""``override(thread_id, latest_metadata)``: the thread's own policy, `EXEMPT`, or
None for the sweep's policy. `latest_metadata` is the metadata of the thread's
latest checkpoint (of the root graph, when it has one)."""

Veto = Callable[[str, "Sequence[NamespaceOutcome]"], bool]
"""``veto(thread_id, planned)``: called before a thread's checkpoints are deleted,
with what would go per namespace (`NamespaceOutcome.deleted_ids`); True keeps the
thread untouched this time."""


@dataclass
class NamespaceOutcome:
    """What retention did (or, in a dry run, would do) to one namespace of a thread."""

    thread_id: str
    checkpoint_ns: str
    checkpoints: int
    """Checkpoints in the namespace before."""
    deleted_ids: list[str]
    kept_for_delta: int
    """Checkpoints the policy would have deleted but a DeltaChannel chain needs."""
    writes: int
    blobs: int
    bytes: int
    """Payload bytes freed: checkpoint bodies, blobs and writes."""

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "checkpoint_ns": self.checkpoint_ns,
            "checkpoints": self.checkpoints,
            "deleted": len(self.deleted_ids),
            "kept": self.checkpoints - len(self.deleted_ids),
            "kept_for_delta": self.kept_for_delta,
            "writes_deleted": self.writes,
            "blobs_deleted": self.blobs,
            "bytes_freed": self.bytes,
            "deleted_ids": self.deleted_ids,
        }


@dataclass
class RetentionReport:
    """The outcome of one retention run, namespace by namespace (only those it touched)."""

    policy: RetentionPolicy
    dry_run: bool
    cutoff: datetime | None
    threads_examined: int = 0
    namespaces: list[NamespaceOutcome] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)
    """Threads an override exempted."""
    vetoed: list[str] = field(default_factory=list)
    """Threads the veto hook kept."""
    overridden: list[str] = field(default_factory=list)
    """Threads swept by a policy of their own."""

    @property
    def checkpoints_deleted(self) -> int:
        return sum(len(n.deleted_ids) for n in self.namespaces)

    @property
    def threads_emptied(self) -> list[str]:
        """Threads left with no checkpoint at all."""
        by_thread: dict[str, bool] = {}
        for n in self.namespaces:
            emptied = len(n.deleted_ids) == n.checkpoints
            by_thread[n.thread_id] = by_thread.get(n.thread_id, True) and emptied
        return [t for t, emptied in by_thread.items() if emptied]

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "policy": self.policy.to_json(),
            "cutoff": None if self.cutoff is None else self.cutoff.isoformat(),
            "threads_examined": self.threads_examined,
            "totals": {
                "threads": len({n.thread_id for n in self.namespaces}),
                "threads_emptied": len(self.threads_emptied),
                "checkpoints_deleted": self.checkpoints_deleted,
                "kept_for_delta": sum(n.kept_for_delta for n in self.namespaces),
                "writes_deleted": sum(n.writes for n in self.namespaces),
                "blobs_deleted": sum(n.blobs for n in self.namespaces),
                "bytes_freed": sum(n.bytes for n in self.namespaces),
            },
            "namespaces": [n.to_json() for n in self.namespaces],
            "exempt": self.exempt,
            "vetoed": self.vetoed,
            "overridden": self.overridden,
        }


class RetentionStatements:
    """The statements retention adds to the saver's own (portable Core)."""

    def __init__(self, tables: SaverTables) -> None:
        cp, bl, wr = tables.checkpoints, tables.blobs, tables.writes
        self.threads_older_than = sa.select(cp.c.thread_key).where(cp.c.created_us < bindparam("cutoff")).distinct()
        crowded = (
            sa.select(cp.c.thread_key)
            .group_by(cp.c.thread_key, cp.c.ns_key)
            .having(sa.func.count() > bindparam("keep_last"))
            .subquery("cpsql_crowded")
        )
        self.threads_over = sa.select(crowded.c.thread_key).distinct()
        self.thread_index: sa.Select[Any] = sa.select(
            cp.c.thread_key,
            cp.c.ns_key,
            cp.c.checkpoint_id,
            cp.c.thread_id,
            cp.c.checkpoint_ns,
            cp.c.parent_checkpoint_id,
            cp.c.created_us,
            cp.c.metadata,
            cp.c.versions,
            sa.func.length(cp.c.checkpoint).label("size"),
        ).where(cp.c.thread_key == bindparam("tkey"))
        self.every_thread = sa.select(cp.c.thread_key).distinct()
        root = sa.case((cp.c.ns_key == key_of(""), 1), else_=0)
        self.latest_metadata = (
            sa.select(cp.c.thread_id, cp.c.metadata)
            .where(cp.c.thread_key == bindparam("tkey"))
            .order_by(root.desc(), cp.c.checkpoint_id.desc())
            .limit(1)
        )
        self.write_sizes = (
            sa.select(
                sa.func.count().label("writes"),
                sa.func.coalesce(sa.func.sum(sa.func.length(wr.c.blob)), 0).label("size"),
            )
            .where(
                wr.c.thread_key == bindparam("tkey"),
                wr.c.ns_key == bindparam("nkey"),
                wr.c.checkpoint_id.in_(bindparam("ids", expanding=True)),
            )
            .group_by(wr.c.checkpoint_id)
        )
        blob_size = sa.func.coalesce(sa.func.length(bl.c.blob), 0) + sa.func.coalesce(sa.func.length(bl.c.manifest), 0)
        self.blob_sizes = sa.select(bl.c.channel, bl.c.version, blob_size.label("size"), bl.c.manifest).where(
            bl.c.thread_key == bindparam("tkey"), bl.c.ns_key == bindparam("nkey")
        )
        pa = tables.parts
        parts_here = sa.and_(pa.c.thread_key == bindparam("tkey"), pa.c.ns_key == bindparam("nkey"))
        self.part_sizes = sa.select(pa.c.digest, sa.func.length(pa.c.data).label("size")).where(parts_here)


def job(
    st: SaverStatements,
    policy: RetentionPolicy,
    threads: Sequence[Any] | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
    override: Override | None = None,
    veto: Veto | None = None,
) -> Job[RetentionReport]:
    """Apply `policy` to `threads` (None: every thread that may have something to
    delete), one transaction per thread; in a dry run, only report. `override` and
    `veto` are called between transactions (see the module docstring)."""
    rs = RetentionStatements(st.tables)
    clock = now or datetime.now(timezone.utc)
    cutoff = policy.cutoff(clock)
    report = RetentionReport(policy, dry_run, cutoff)
    if threads is not None:
        keys = list(dict.fromkeys(key_of(thread_id_of(t)) for t in threads))
    elif override is not None:
        keys = yield Call(_every_thread, (rs,), intent=Intent.ONE_STATEMENT)
    else:
        keys = yield Call(_candidates, (rs, policy, _us(cutoff)), intent=Intent.ONE_STATEMENT)
    for done, thread_key in enumerate(sorted(keys), start=1):
        chosen: RetentionPolicy | Exempt | None = policy
        if override is not None:
            latest = yield Call(_latest_metadata, (rs, thread_key), intent=Intent.ONE_STATEMENT)
            chosen = None if latest is None else _checked(override(*latest), latest[0]) or policy
            if isinstance(chosen, Exempt):
                report.exempt.append(latest[0])
            elif chosen is not policy and latest is not None:
                report.overridden.append(latest[0])
        if isinstance(chosen, RetentionPolicy):
            limits = (chosen.keep_last, _us(chosen.cutoff(clock)))
            approved: set[str] | None = None
            if veto is not None:
                planned = yield Call(_retain_thread, (st, rs, thread_key, *limits, True, None))  # a dry run
                if planned and veto(planned[0].thread_id, planned):
                    report.vetoed.append(planned[0].thread_id)
                    planned = []
                approved = {i for n in planned for i in n.deleted_ids}
            if approved is None or approved:
                outcomes = yield Call(
                    _retain_thread,
                    (st, rs, thread_key, *limits, dry_run, approved),
                    intent=Intent.READ if dry_run else Intent.SNAPSHOT_WRITE,
                )
                report.namespaces.extend(outcomes)
        report.threads_examined = done
        if progress is not None:
            progress(done, len(keys))
    return report


def _checked(chosen: Any, thread_id: str) -> RetentionPolicy | Exempt | None:
    if chosen is None or isinstance(chosen, RetentionPolicy | Exempt):
        return chosen
    raise InvalidArgumentError(
        f"retention override returned {chosen!r:.60} for thread {thread_id!r}; "
        "return a RetentionPolicy, checkpoint_sql.EXEMPT, or None for the sweep's policy"
    )


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000)


def _candidates(
    conn: Connection, rs: RetentionStatements, policy: RetentionPolicy, cutoff_us: int | None
) -> list[bytes]:
    """Threads that may have something to delete: with a checkpoint older than the
    cutoff (an index range), else with a namespace holding more than `keep_last`."""
    if cutoff_us is not None:
        return [bytes(k) for k in conn.execute(rs.threads_older_than, {"cutoff": cutoff_us}).scalars()]
    return [bytes(k) for k in conn.execute(rs.threads_over, {"keep_last": policy.keep_last}).scalars()]


def _every_thread(conn: Connection, rs: RetentionStatements) -> list[bytes]:
    return [bytes(k) for k in conn.execute(rs.every_thread).scalars()]


def _latest_metadata(conn: Connection, rs: RetentionStatements, thread_key: bytes) -> tuple[str, dict[str, Any]] | None:
    """The thread's id and the metadata of its latest checkpoint (root graph first);
    None if the thread has gone meanwhile."""
    row = conn.execute(rs.latest_metadata, {"tkey": thread_key}).first()
    return None if row is None else (row.thread_id, codec.load_json(row.metadata) or {})


def _retain_thread(
    conn: Connection,
    st: SaverStatements,
    rs: RetentionStatements,
    thread_key: bytes,
    keep_last: int | None,
    cutoff_us: int | None,
    dry_run: bool,
    approved: set[str] | None,
) -> list[NamespaceOutcome]:
    """Retain one thread; with `approved`, delete only checkpoints in it."""
    by_namespace: dict[bytes, list[sa.Row[Any]]] = {}
    for row in conn.execute(rs.thread_index, {"tkey": thread_key}):
        by_namespace.setdefault(bytes(row.ns_key), []).append(row)
    outcomes = []
    for ns_key, rows in by_namespace.items():
        newest_first = sorted(rows, key=lambda r: r.checkpoint_id, reverse=True)
        doomed = {
            r.checkpoint_id
            for rank, r in enumerate(newest_first)
            if (keep_last is None or rank >= keep_last) and (cutoff_us is None or r.created_us < cutoff_us)
        }
        if not doomed:
            continue
        chain = _delta_chains(conn, st, thread_key, ns_key, newest_first, doomed)
        doomed -= chain
        if approved is not None:
            doomed &= approved
        if not doomed:
            continue
        kept = [r for r in rows if r.checkpoint_id not in doomed]
        outcome = _measure(conn, st, rs, thread_key, ns_key, rows, doomed, kept)
        outcome.kept_for_delta = len(chain)
        outcomes.append(outcome)
        if not dry_run:
            operations.delete_checkpoints(conn, st, thread_key, ns_key, sorted(doomed), kept)
    return outcomes


def _delta_chains(
    conn: Connection,
    st: SaverStatements,
    thread_key: bytes,
    ns_key: bytes,
    rows: Sequence[sa.Row[Any]],
    doomed: set[str],
) -> set[str]:
    """The doomed checkpoints that a kept one's DeltaChannel values are rebuilt from.

    Only kept checkpoints whose parent is not kept need a walk: one whose parent
    stays is covered by the parent's own walk (or the parent stores the value).
    """
    kept = {r.checkpoint_id for r in rows} - doomed
    rescued: set[str] = set()
    for row in rows:
        if row.checkpoint_id not in kept or row.parent_checkpoint_id in kept:
            continue
        counters = (codec.load_json(row.metadata) or {}).get("counters_since_delta_snapshot") or {}
        if not counters:
            continue
        walk = operations.walk_chain(conn, st, thread_key, ns_key, row.checkpoint_id, list(counters))
        needed = set(walk.path[: max(walk.reach.values(), default=0)])
        rescued |= needed & doomed
        kept |= needed
    return rescued


def _measure(
    conn: Connection,
    st: SaverStatements,
    rs: RetentionStatements,
    thread_key: bytes,
    ns_key: bytes,
    rows: Sequence[sa.Row[Any]],
    doomed: set[str],
    kept: Sequence[sa.Row[Any]],
) -> NamespaceOutcome:
    """Count what deleting `doomed` frees: their bodies and writes, the blobs no kept
    checkpoint points at (the rule `operations.delete_checkpoints` deletes by), and the list
    parts no remaining blob then reaches (which `operations.collect_parts` deletes
    after them)."""
    here = {"tkey": thread_key, "nkey": ns_key}
    writes = freed = 0
    for part in operations.chunks(sorted(doomed)):
        for found in conn.execute(rs.write_sizes, {**here, "ids": list(part)}):
            writes, freed = writes + int(found.writes), freed + int(found.size)
    freed += sum(int(r.size or 0) for r in rows if r.checkpoint_id in doomed)
    referenced = {(channel, version) for row in kept for _, _, channel, version in codec.blob_keys(row)}
    blobs = 0
    remaining: list[bytes] = []
    for blob in conn.execute(rs.blob_sizes, here):
        if (blob.channel, blob.version) not in referenced:
            blobs, freed = blobs + 1, freed + int(blob.size)
        elif blob.manifest is not None:
            remaining.append(bytes(blob.manifest))
    if blobs:  # parts are collected only when blobs go
        freed += _unreached_part_bytes(conn, st, rs, thread_key, ns_key, remaining)
    first = rows[0]
    return NamespaceOutcome(
        thread_id=first.thread_id,
        checkpoint_ns=first.checkpoint_ns,
        checkpoints=len(rows),
        deleted_ids=sorted(doomed),
        kept_for_delta=0,
        writes=writes,
        blobs=blobs,
        bytes=freed,
    )


def _unreached_part_bytes(
    conn: Connection,
    st: SaverStatements,
    rs: RetentionStatements,
    thread_key: bytes,
    ns_key: bytes,
    manifests: Sequence[bytes],
) -> int:
    """Bytes of the namespace's parts that none of `manifests` reaches: what
    `operations.collect_parts` deletes once the other blobs are gone."""
    stored = {
        bytes(part.digest): int(part.size or 0)
        for part in conn.execute(rs.part_sizes, {"tkey": thread_key, "nkey": ns_key})
    }
    if not stored:
        return 0
    live = operations.reached_parts(conn, st, thread_key, ns_key, manifests, stored.keys())
    return sum(n for d, n in stored.items() if d not in live)
