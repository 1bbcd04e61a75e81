"""The portable export format: threads out of one database and into another.

An export is a stream of msgpack maps, so it can be written and read a record at a
time, piped, or compressed by whatever the operator prefers:

* a header ``{"format": "checkpoint-sql-export", "version": 2, "created": ...,
  "source": <engine>}``;
* per thread, ``{"kind": "thread", "thread_id": ...}``, then its ``checkpoint``,
  ``part``, ``blob`` and ``write`` records (the table rows, namespaces by their text);
* a trailer ``{"kind": "end", ...counts}``, whose absence means the file was cut
  short.

Rows are carried as stored: the serialized checkpoint bodies, channel values and
writes byte for byte (their serializer type tags included), metadata as its JSON
text, the timestamp as its integer. Keys are not carried: an import recomputes them
from the ids, so the format does not depend on how a table keys a thread. What
`get_tuple` returns after the move is therefore exactly what it returned before, on
any engine, as long as the target saver uses a serializer that reads those type tags
(the same one, or the same encryption key). A reader refuses a newer major version
and ignores keys it does not know, so later versions may add fields.

Version 2 carries lists stored element by element (`checkpoint_sql.saver.elements`) in
that form, so that an export of a long conversation holds each message once rather
than once per checkpoint:

* ``{"kind": "part", "ns": ..., "digest": <16 bytes>, "data": <bytes>}``: a row of
  the parts table, an element or a page of digests, once per (thread, namespace);
  only the parts some exported manifest reaches are written;
* a ``blob`` record has a ``manifest`` (bytes, or None for a value stored whole), and
  for a split value ``blob`` holds the msgpack array header;
* the trailer also counts ``parts``.

An import checks a thread's records before its transaction: each part's digest must
be that of its data (the saver trusts a stored digest when it later leaves a part out
of a put), and each manifest must be well formed and reach only parts the file holds
for its namespace; otherwise the thread is refused with `InvalidArgumentError` and
nothing of it is stored. Values stored whole, from a version 1 file (which has no
parts and no manifests) or from rows written before lists were split, are split on
the way in as a `put` would split them now (`elements.split`, which is exact), so an
imported long thread takes the small form too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

import msgpack
import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from checkpoint_sql.admin.bulk import Inserts, ThreadRows, insert_thread
from checkpoint_sql.core.calls import Call, Job, Progress, drive
from checkpoint_sql.core.ids import checkpoint_id_of, key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.dialects.columns import canonical_json
from checkpoint_sql.errors import InvalidArgumentError, MissingPartsError, ThreadNotFoundError
from checkpoint_sql.saver import codec, elements
from checkpoint_sql.saver.schema import SaverTables
from checkpoint_sql.saver.sql_saver import SQLSaver
from checkpoint_sql.saver.statements import SaverStatements

FORMAT = "checkpoint-sql-export"
VERSION = 2
"""The version written; a reader reads this one and every older one."""


@dataclass
class Counts:
    threads: int = 0
    checkpoints: int = 0
    blobs: int = 0
    parts: int = 0
    writes: int = 0
    skipped: int = 0
    """Blobs, writes and parts of a namespace without any checkpoint (left by an
    interrupted put, unreadable through the saver), and parts no manifest reaches,
    which an export leaves out."""
    thread_ids: list[str] = field(default_factory=list)

    def add(self, rows: ThreadRows) -> None:
        self.threads += 1
        self.thread_ids.append(rows.thread_id)
        self.checkpoints += len(rows.checkpoints)
        self.blobs += len(rows.blobs)
        self.parts += len(rows.parts)
        self.writes += len(rows.writes)

    def to_json(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "checkpoints": self.checkpoints,
            "blobs": self.blobs,
            "parts": self.parts,
            "writes": self.writes,
            "skipped": self.skipped,
            "thread_ids": self.thread_ids,
        }


class ExportStatements:
    """One thread's rows, table by table, without the thread key (an import
    recomputes it)."""

    def __init__(self, tables: SaverTables) -> None:
        cp, bl, wr, pa = tables.checkpoints, tables.blobs, tables.writes, tables.parts
        here: sa.BindParameter[bytes] = bindparam("tkey")
        self.checkpoints = (
            sa.select(*(c for c in cp.c if c.name != "thread_key"))
            .where(cp.c.thread_key == here)
            .order_by(cp.c.ns_key, cp.c.checkpoint_id)
        )
        self.blobs = sa.select(*(c for c in bl.c if c.name != "thread_key")).where(bl.c.thread_key == here)
        self.writes = sa.select(*(c for c in wr.c if c.name != "thread_key")).where(wr.c.thread_key == here)
        self.parts = sa.select(pa.c.ns_key, pa.c.digest, pa.c.data).where(pa.c.thread_key == here)
        self.all_threads = sa.select(cp.c.thread_id).distinct().order_by(cp.c.thread_id)
        self.existing = (
            sa.select(cp.c.thread_key).where(cp.c.thread_key.in_(bindparam("keys", expanding=True))).distinct()
        )


# --- export ---------------------------------------------------------------------------


def export_threads(
    saver: SQLSaver, thread_ids: Sequence[str] | None, out: IO[bytes], progress: Progress | None = None
) -> Counts:
    """Write `thread_ids` (None: every thread) to `out`, one snapshot read per
    thread. Unknown threads are refused before anything is written."""
    return drive(saver.db, _export(saver, thread_ids, out, progress))


def _export(
    saver: SQLSaver, thread_ids: Sequence[str] | None, out: IO[bytes], progress: Progress | None
) -> Job[Counts]:
    es = ExportStatements(saver.tables)
    if thread_ids is None:
        thread_ids = yield Call(_all_threads, (es,), intent=Intent.ONE_STATEMENT)
    else:
        thread_ids = list(dict.fromkeys(thread_id_of(t) for t in thread_ids))
        keys = [key_of(t) for t in thread_ids]
        found = yield Call(_existing, (es, keys), intent=Intent.ONE_STATEMENT)
        missing = [t for t, k in zip(thread_ids, keys, strict=True) if k not in found]
        if missing:
            raise ThreadNotFoundError(f"no such thread: {', '.join(repr(t) for t in missing)}")
    packer = msgpack.Packer(use_bin_type=True)
    header = {"format": FORMAT, "version": VERSION, "created": datetime.now(timezone.utc).isoformat()}
    out.write(packer.pack({**header, "source": saver.db.family}))
    counts = Counts()
    for done, thread_id in enumerate(thread_ids, start=1):
        rows, skipped = yield Call(_read_thread, (es, thread_id), intent=Intent.READ_SNAPSHOT)
        counts.add(rows)
        counts.skipped += skipped
        for record in _records(rows):
            out.write(packer.pack(record))
        if progress is not None:
            progress(done, len(thread_ids))
    out.write(packer.pack({"kind": "end", **{k: v for k, v in counts.to_json().items() if k != "thread_ids"}}))
    out.flush()
    return counts


def _all_threads(conn: Connection, es: ExportStatements) -> list[str]:
    return list(conn.execute(es.all_threads).scalars())


def _existing(conn: Connection, es: ExportStatements, thread_keys: Sequence[bytes]) -> set[bytes]:
    return {bytes(k) for k in conn.execute(es.existing, {"keys": list(thread_keys)}).scalars()}


def _read_thread(conn: Connection, es: ExportStatements, thread_id: str) -> tuple[ThreadRows, int]:
    """One thread's rows, with the parts its blobs' manifests reach (and no others), and
    the number of rows left out (see `Counts.skipped`)."""
    params = {"tkey": key_of(thread_id)}
    rows = ThreadRows(thread_id)
    namespaces: dict[bytes, str] = {}
    for row in conn.execute(es.checkpoints, params).mappings():
        namespaces[bytes(row["ns_key"])] = row["checkpoint_ns"]
        rows.checkpoints.append(dict(row))
    skipped = 0
    for table, into in ((es.blobs, rows.blobs), (es.writes, rows.writes)):
        for row in conn.execute(table.execution_options(yield_per=500), params).mappings():
            ns = namespaces.get(bytes(row["ns_key"]))
            if ns is None:
                skipped += 1
            else:
                into.append({**row, "checkpoint_ns": ns})
    stored: dict[bytes, dict[bytes, bytes]] = {}
    read = 0
    for part in conn.execute(es.parts.execution_options(yield_per=500), params):
        stored.setdefault(bytes(part.ns_key), {})[bytes(part.digest)] = bytes(part.data)
        read += 1
    for ns_key, blobs in _split_blobs(rows.blobs).items():
        have = stored.get(ns_key, {})
        reach = _Reach(have)
        for blob in blobs:
            _, missing = reach.check(bytes(blob["manifest"]))
            if missing:
                raise MissingPartsError(
                    f"thread {thread_id!r}: channel {blob['channel']!r} version {blob['version']!r} of namespace "
                    f"{namespaces[ns_key]!r} lists {len(missing)} list element(s) missing from the parts table; "
                    "its value cannot be read, so it cannot be exported"
                )
        rows.parts.extend(
            {"ns_key": ns_key, "checkpoint_ns": namespaces[ns_key], "digest": d, "data": have[d]}
            for d in sorted(reach.found)
        )
    return rows, skipped + read - len(rows.parts)


def _split_blobs(blobs: Sequence[Mapping[str, Any]]) -> dict[bytes, list[Mapping[str, Any]]]:
    """The blob rows stored element by element (with a manifest), by namespace key."""
    found: dict[bytes, list[Mapping[str, Any]]] = {}
    for blob in blobs:
        if blob["manifest"] is not None:
            found.setdefault(bytes(blob["ns_key"]), []).append(blob)
    return found


class _Reach:
    """What the manifests of one namespace reach among its `parts`.

    Each page is expanded once, so checking every version of a long list costs its
    pages and tails rather than its length times its versions.
    """

    def __init__(self, parts: Mapping[bytes, bytes]) -> None:
        self.parts = parts
        self.found: set[bytes] = set()
        """The digests of the parts some checked manifest reaches."""
        self._pages: dict[bytes, tuple[int, set[bytes]]] = {}
        """Per page held: its number of elements, and those of them not held."""

    def check(self, manifest: bytes) -> tuple[int, set[bytes]]:
        """The number of elements `manifest` lists, and the digests it reaches that
        `parts` lacks (the elements of a missing page are not known: only the page
        counts as missing). What it reaches and `parts` holds goes into `found`."""
        count, missing = 0, set()
        for page in elements.pages_of(manifest):
            if page not in self.parts:
                missing.add(page)
                continue
            if page not in self._pages:
                listed = elements.digests_in(self.parts[page])
                held = {d for d in listed if d in self.parts}
                self.found.add(page)
                self.found.update(held)
                self._pages[page] = (len(listed), set(listed) - held)
            n, lacking = self._pages[page]
            count += n
            missing |= lacking
        tail = elements.tail_of(manifest)
        for d in tail:
            (self.found if d in self.parts else missing).add(d)
        return count + len(tail), missing


def _records(rows: ThreadRows) -> Iterator[dict[str, Any]]:
    yield {"kind": "thread", "thread_id": rows.thread_id}
    for c in rows.checkpoints:
        yield {
            "kind": "checkpoint",
            "ns": c["checkpoint_ns"],
            "id": c["checkpoint_id"],
            "parent": c["parent_checkpoint_id"],
            "type": c["type"],
            "checkpoint": bytes(c["checkpoint"]),
            "metadata": canonical_json(codec.load_json(c["metadata"])),
            "versions": codec.load_json(c["versions"]),
            "run_id": c["run_id"],
            "created_us": int(c["created_us"]),
        }
    for p in rows.parts:  # before the blobs that list them, as the tables are filled
        yield {"kind": "part", "ns": p["checkpoint_ns"], "digest": p["digest"], "data": p["data"]}
    for b in rows.blobs:
        yield {
            "kind": "blob",
            "ns": b["checkpoint_ns"],
            "channel": b["channel"],
            "version": b["version"],
            "type": b["type"],
            "blob": None if b["blob"] is None else bytes(b["blob"]),
            "manifest": None if b["manifest"] is None else bytes(b["manifest"]),
        }
    for w in rows.writes:
        yield {
            "kind": "write",
            "ns": w["checkpoint_ns"],
            "checkpoint_id": w["checkpoint_id"],
            "task_id": w["task_id"],
            "idx": int(w["idx"]),
            "channel": w["channel"],
            "task_path": w["task_path"],
            "type": w["type"],
            "blob": None if w["blob"] is None else bytes(w["blob"]),
        }


# --- import ---------------------------------------------------------------------------


def import_threads(
    saver: SQLSaver, source: IO[bytes], *, replace: bool = False, progress: Progress | None = None
) -> Counts:
    """Read an export from `source` into `saver`'s tables, a thread per transaction.

    A thread that already exists is refused (`ThreadExistsError`) unless `replace`.
    Each thread's records are checked before its transaction (see the module
    docstring), so a refused thread stores nothing. Threads before a damaged record,
    a refused thread or a missing trailer stay imported; the error says where the
    file went wrong.
    """
    return drive(saver.db, _import(saver, _Reader(source), replace, progress))


def _import(saver: SQLSaver, records: _Reader, replace: bool, progress: Progress | None) -> Job[Counts]:
    inserts = Inserts(SaverStatements(saver.tables, saver.db.family))
    counts = Counts()
    for rows in records.threads():
        # A replaced thread's parts are deleted: the saver must not go on skipping them in puts.
        forget = elements.forgetting([rows.thread_key])
        yield Call(insert_thread, (inserts, rows, replace), forget, intent=Intent.WRITE)
        counts.add(rows)
        if progress is not None:
            progress(counts.threads, 0)
    return counts


class _Reader:
    """The records of an export, checked as they are read."""

    def __init__(self, source: IO[bytes]) -> None:
        self._unpacker = msgpack.Unpacker(source, raw=False, strict_map_key=True, max_buffer_size=2**31 - 1)
        self._position = 0
        header = self._next()
        if not isinstance(header, Mapping) or header.get("format") != FORMAT:
            raise InvalidArgumentError("not a checkpoint-sql export (no header)")
        version = header.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise InvalidArgumentError(
                f"export format version {version!r} is newer than this checkpoint-sql reads ({VERSION}); upgrade it"
            )
        self.version = version
        kinds = ("checkpoint", "part", "blob", "write") if version >= 2 else ("checkpoint", "blob", "write")
        self._kinds = frozenset(kinds)
        self._seen = {"threads": 0, **{kind + "s": 0 for kind in kinds}}
        self._parts: dict[bytes, dict[bytes, bytes]] = {}
        """The current thread's part records: namespace key to digest to data."""
        self._namespaces: dict[bytes, str] = {}

    def _next(self) -> Any:
        try:
            record = next(self._unpacker)
        except StopIteration:
            raise InvalidArgumentError(
                f"export file ends after record {self._position} without its trailer: it was cut short"
            ) from None
        except (msgpack.UnpackException, ValueError) as exc:
            raise InvalidArgumentError(f"export file is damaged at record {self._position + 1}: {exc}") from None
        self._position += 1
        return record

    def threads(self) -> Iterator[ThreadRows]:
        current: ThreadRows | None = None
        while True:
            record = self._next()
            kind = record.get("kind") if isinstance(record, Mapping) else None
            if kind == "end":
                if current is not None:
                    yield self._finish(current)
                self._check_trailer(record)
                return
            if kind == "thread":
                if current is not None:
                    yield self._finish(current)
                current = ThreadRows(thread_id_of(self._field(record, "thread_id")))
                self._seen["threads"] += 1
            elif current is None or kind not in self._kinds:
                raise InvalidArgumentError(f"export file: unexpected record {kind!r} at position {self._position}")
            else:
                self._add(current, kind, record)
                self._seen[kind + "s"] += 1

    def _check_trailer(self, trailer: Mapping[str, Any]) -> None:
        expected = {k: trailer.get(k) for k in self._seen}
        if expected != self._seen:
            raise InvalidArgumentError(f"export file: the trailer counts {expected} but the file holds {self._seen}")

    def _field(self, record: Mapping[str, Any], name: str) -> Any:
        if name not in record:
            raise InvalidArgumentError(f"export file: record {self._position} has no {name!r}")
        return record[name]

    def _add(self, rows: ThreadRows, kind: str, record: Mapping[str, Any]) -> None:
        f = self._field
        ns = f(record, "ns")
        keys = {"thread_key": rows.thread_key, "ns_key": key_of(ns)}
        self._namespaces[keys["ns_key"]] = ns
        if kind == "checkpoint":
            metadata = f(record, "metadata")
            rows.checkpoints.append(
                {
                    **keys,
                    "checkpoint_id": checkpoint_id_of(f(record, "id")),
                    "thread_id": rows.thread_id,
                    "checkpoint_ns": ns,
                    "parent_checkpoint_id": checkpoint_id_of(f(record, "parent")),
                    "type": f(record, "type"),
                    "checkpoint": f(record, "checkpoint"),
                    "metadata": metadata,
                    "versions": canonical_json(f(record, "versions")),
                    "run_id": f(record, "run_id"),
                    "created_us": f(record, "created_us"),
                }
            )
        elif kind == "part":
            digest, data = f(record, "digest"), f(record, "data")
            if not isinstance(data, bytes) or digest != elements.digest_of(data):
                raise InvalidArgumentError(
                    f"export file: record {self._position} is a list part whose digest is not that of its data: "
                    "the file is damaged"
                )
            self._parts.setdefault(keys["ns_key"], {})[digest] = data
        elif kind == "blob":
            manifest = f(record, "manifest") if self.version >= 2 else None
            blob = f(record, "blob")
            if manifest is not None and not (isinstance(manifest, bytes) and isinstance(blob, bytes)):
                raise InvalidArgumentError(
                    f"export file: record {self._position} is a blob whose manifest or array header is not bytes"
                )
            rows.blobs.append(
                {
                    **keys,
                    "channel": f(record, "channel"),
                    "version": f(record, "version"),
                    "type": f(record, "type"),
                    "blob": blob,
                    "manifest": manifest,
                }
            )
        else:
            rows.writes.append(
                {
                    **keys,
                    "checkpoint_id": checkpoint_id_of(f(record, "checkpoint_id")),
                    "task_id": f(record, "task_id"),
                    "idx": f(record, "idx"),
                    "channel": f(record, "channel"),
                    "task_path": f(record, "task_path"),
                    "type": f(record, "type"),
                    "blob": f(record, "blob"),
                }
            )

    def _finish(self, rows: ThreadRows) -> ThreadRows:
        """The thread's rows once all its records are in: values stored whole split as a
        put would split them, every manifest checked against the thread's part records,
        and the parts some manifest reaches (no others) as rows to insert."""
        parts, self._parts = self._parts, {}
        namespaces, self._namespaces = self._namespaces, {}
        reach = {ns_key: _Reach(have) for ns_key, have in parts.items()}
        carried = [blob for blob in rows.blobs if blob["manifest"] is not None]
        for blob in rows.blobs:  # first, so that the checks below see every part there will be
            split = None if blob["manifest"] is not None else elements.split(blob["type"], blob["blob"])
            if split is not None:
                blob["blob"], blob["manifest"] = split.header, split.manifest
                parts.setdefault(blob["ns_key"], {}).update(split.parts)
                reach.setdefault(blob["ns_key"], _Reach(parts[blob["ns_key"]])).found.update(split.parts)
        for blob in carried:
            ns_key = blob["ns_key"]
            found = reach.setdefault(ns_key, _Reach(parts.setdefault(ns_key, {})))
            problem = _unjoinable(blob["blob"], blob["manifest"], found)
            if problem is not None:
                raise InvalidArgumentError(
                    f"export file: thread {rows.thread_id!r}, namespace {namespaces[ns_key]!r}: the value of channel "
                    f"{blob['channel']!r} version {blob['version']!r} {problem}; the file is damaged or incomplete, "
                    "and nothing of this thread was imported"
                )
        rows.parts = [
            {"thread_key": rows.thread_key, "ns_key": ns_key, "digest": d, "data": parts[ns_key][d]}
            for ns_key, found in reach.items()
            for d in sorted(found.found)
        ]
        return rows


def _unjoinable(header: bytes, manifest: bytes, reach: _Reach) -> str | None:
    """Why a split value's array header, manifest and the parts of its namespace do
    not join into exactly one msgpack array (`elements.join`), or None if they do."""
    size = len(manifest) - _COUNT_BYTES
    if size < 0 or size % elements.DIGEST or int.from_bytes(manifest[:_COUNT_BYTES], "little") * elements.DIGEST > size:
        return "has a malformed manifest (not a page count and whole digests)"
    listed, missing = reach.check(manifest)
    if missing:
        first = min(missing).hex() + (", ..." if len(missing) > 1 else "")
        return f"lists {len(missing)} list part(s) the file does not hold for that namespace (digest {first})"
    try:
        unpacker = msgpack.Unpacker()
        unpacker.feed(header)
        count = unpacker.read_array_header()
    except (msgpack.UnpackException, ValueError):
        count = None
    if count is None or unpacker.tell() != len(header):
        return "has no msgpack array header"
    if count != listed:
        return f"has an array header of {count} elements but a manifest of {listed}"
    return None


_COUNT_BYTES = 4
"""The page count that opens a manifest (`elements.pages_of`)."""
