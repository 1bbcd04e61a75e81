"""LangGraph objects to table rows and back.

Everything here is pure: serialization happens before a transaction opens (so a value
that cannot be serialized leaves the database untouched) and decoding after it closes
(so transactions stay short). Channel values, writes and the checkpoint body go
through the saver's `serde` as ``(type, bytes)`` and are stored as such, whatever the
serializer is; `EncryptedSerializer` therefore works unchanged. Metadata and channel
versions are plain JSON, because SQL filters and joins on them.

Rows written are dicts of driver-ready values (JSON already as text), since the hot
path binds them on the DBAPI cursor directly (`core/compiled.py`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_sql.core import bounds
from checkpoint_sql.core.ids import Address, checkpoint_id_of
from checkpoint_sql.dialects.columns import canonical_json
from checkpoint_sql.errors import InvalidArgumentError, SerializationError
from checkpoint_sql.saver import elements
from checkpoint_sql.saver.rows import BLOBS, CHECKPOINTS, WRITES, BlobRow, CheckpointRow, WriteRow
from checkpoint_sql.saver.schema import NAME_MAX, TYPE_MAX, VERSION_MAX
from checkpoint_sql.saver.statements import list_order

EMPTY = "empty"
"""Type tag of a channel that has a version but no value at this checkpoint."""


# What the decoders below read of a row, by name. Protocols rather than the
# `rows.py` classes, because retention and the admin readers pass the SQLAlchemy
# rows of their own selects, which name the same columns alike among others.


class Versioned(Protocol):
    """A row holding a checkpoint's channel versions."""

    @property
    def versions(self) -> Any: ...


class KeyedVersions(Versioned, Protocol):
    """A `Versioned` row that names its thread and namespace, to key its blobs by."""

    @property
    def thread_key(self) -> bytes: ...
    @property
    def ns_key(self) -> bytes: ...


class StoredValue(Protocol):
    """A blob row as far as its bytes go: whole in `blob`, or split by `manifest`."""

    @property
    def thread_key(self) -> bytes: ...
    @property
    def ns_key(self) -> bytes: ...
    @property
    def type(self) -> str: ...
    @property
    def blob(self) -> bytes | None: ...
    @property
    def manifest(self) -> bytes | None: ...


class StoredWrite(Protocol):
    """A write row as far as its order and value go."""

    @property
    def task_id(self) -> str: ...
    @property
    def task_path(self) -> str: ...
    @property
    def idx(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def blob(self) -> bytes | None: ...


W = TypeVar("W", bound=StoredWrite)

BlobKey = tuple[bytes, bytes, str, str]
"""(thread key, namespace key, channel, version): what identifies a stored value."""
CheckpointKey = tuple[bytes, bytes, str]
Parts = dict[elements.Namespace, dict[bytes, bytes]]
"""Per (thread key, namespace key): the parts fetched for split values, by digest."""


def dump(serde: SerializerProtocol, value: Any, what: str) -> tuple[str, bytes]:
    """`serde.dumps_typed`, with failures turned into a `SerializationError` naming `what`."""
    try:
        type_, data = serde.dumps_typed(value)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {what} (a {type(value).__name__}): {type(exc).__name__}: {exc}"
        ) from exc
    if len(type_) > TYPE_MAX:
        raise SerializationError(f"serializer type tag {type_!r:.80} for {what} is longer than {TYPE_MAX}")
    return type_, data


def load(serde: SerializerProtocol, type_: str, data: bytes | None) -> Any:
    return serde.loads_typed((type_, b"" if data is None else bytes(data)))


def load_json(value: Any) -> Any:
    """A JSON column's value: drivers hand PostgreSQL's JSONB back decoded, text as is."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def version_text(version: Any, channel: str) -> str:
    """A channel version as stored: the blob row's key, and the text the checkpoint
    row's JSON list holds for it (`versions_json`). LangGraph uses ints or strings;
    floats are accepted too. ``str`` of the version read back (`channel_versions`)
    gives this text again, exactly."""
    if isinstance(version, bool) or not isinstance(version, (str, int, float)):
        raise InvalidArgumentError(
            f"version of channel {channel!r} must be a str, int or float, not {type(version).__name__}"
        )
    if isinstance(version, int) and version.bit_length() > _VERSION_BITS:
        raise InvalidArgumentError(f"version of channel {channel!r} is an int of more than {VERSION_MAX} digits")
    if isinstance(version, float) and not math.isfinite(version):
        raise InvalidArgumentError(f"version of channel {channel!r} is {version!r}; a version must be finite")
    text = str(version)
    if not text or len(text) > VERSION_MAX or not text.isascii() or not text.isprintable():
        raise InvalidArgumentError(
            f"version {text!r:.80} of channel {channel!r} is not a short printable ASCII string "
            f"(at most {VERSION_MAX} characters)"
        )
    return text


_VERSION_BITS = int(VERSION_MAX * math.log2(10)) - 4
"""Bits of the largest int version whose decimal text surely fits `VERSION_MAX`."""

_NUMBER_KINDS: dict[str, type[int] | type[float]] = {"int": int, "float": float}


def versions_json(versions: Mapping[str, Any]) -> str:
    """A checkpoint's channel versions as stored: ``[[channel, text], ...]``, with the
    version always as its `version_text` string, so that every engine's JSON functions
    render it exactly as the blob row's key (a JSON number would come out as
    ``1.1805916207174113e+21`` from SQLite for ``2**70``); a third element tells a
    number's type, so it reads back as the int or float that was put."""
    return "[" + ",".join([version_entry(channel, version)[1] for channel, version in versions.items()]) + "]"


def version_entry(channel: Any, version: Any) -> tuple[str, str]:
    """A checked channel name and version: the version's `version_text` and the pair's
    member of `versions_json`.

    Every put checks every channel's version, and most are the ones the previous
    checkpoint had, so the answers for exact ``str`` channels and ``str`` or ``int``
    versions (LangGraph's) are remembered, by type too (``typed``: ``1`` and ``"1"``
    stay apart); floats are checked afresh, since ``0.0 == -0.0`` but their texts
    differ, as is anything else, and a refusal is never remembered."""
    if type(channel) is str and type(version) in _CACHEABLE_VERSIONS:
        return _remembered_entry(channel, version)
    return _entry(channel, version)


def _entry(channel: Any, version: Any) -> tuple[str, str]:
    text = version_text(version, check_name(channel, "channel name"))
    pair = [channel, text] if isinstance(version, str) else [channel, text, type(version).__name__]
    return text, canonical_json(pair)


_CACHEABLE_VERSIONS = frozenset((str, int))
_remembered_entry = functools.lru_cache(maxsize=4096, typed=True)(_entry)


def _version_pairs(row: Versioned) -> list[tuple[str, Any]]:
    """(channel, version) as put, from a row's ``versions``. Rows written before
    versions were stored as strings hold the JSON value itself."""
    return [
        (pair[0], _NUMBER_KINDS[pair[2]](pair[1]) if len(pair) == 3 else pair[1]) for pair in load_json(row.versions)
    ]


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        raise InvalidArgumentError(f"{what} must be a non-empty str of at most {NAME_MAX} characters, not {name!r:.80}")
    return bounds.check_string(name, what)


def metadata_json(config: RunnableConfig, metadata: CheckpointMetadata) -> tuple[str, dict[str, Any]]:
    """The metadata as stored (LangGraph's merge of config metadata) and its JSON text.

    Refused with `SerializationError` unless every engine stores it exactly (see
    `bounds.check_json`): a NUL, a lone surrogate, a non-string key... is named, not
    stripped or converted. It is checked before LangGraph's merge, which would strip
    NUL from top-level strings; what the merge adds from the config is checked too."""
    if not isinstance(metadata, Mapping):
        raise SerializationError(f"metadata must be a dict, not {type(metadata).__name__}")
    bounds.check_json(metadata, "metadata", error=SerializationError)
    document: dict[str, Any] = dict(get_serializable_checkpoint_metadata(config, metadata))
    for key in document.keys() - metadata.keys():
        bounds.check_json(document[key], f"metadata[{key!r}] (from the config)", error=SerializationError)
    return canonical_json(document), document


def created_us(checkpoint: Checkpoint) -> int:
    """The checkpoint's own timestamp in microseconds since the epoch, the retention clock."""
    try:
        ts = datetime.fromisoformat(str(checkpoint["ts"]))
    except (KeyError, ValueError):
        ts = datetime.now(timezone.utc)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int(ts.timestamp() * 1_000_000)


# --- writing -------------------------------------------------------------------------


@dataclass(slots=True)
class PreparedWrites:
    """Pending-write rows, split by how a repeated write is treated.

    A task's writes get their position as index, except the special channels (error,
    interrupt, ...) which have fixed negative indexes. When every write of a task is
    special, retrying the task overwrites them (`overwrite`); otherwise the first
    attempt wins (`keep_first`), so a retried task cannot duplicate or reorder writes.
    A key repeated within one call follows the same rule (first or last kept), since
    one statement may not touch a row twice.
    """

    keep_first: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    overwrite: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class PreparedPut:
    """Everything one `put`/`put_full` writes, serialized and validated."""

    checkpoint: dict[str, Any]
    blobs: list[dict[str, Any]]
    parts: dict[bytes, bytes] = field(default_factory=dict)
    """Digest to bytes of the parts the split blobs add (`elements.split`)."""
    splits: dict[str, elements.Split] = field(default_factory=dict)
    """The split values, by channel."""
    writes: PreparedWrites = field(default_factory=PreparedWrites)


def prepare_put(
    serde: SerializerProtocol,
    address: Address,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: Mapping[str, Any],
    config: RunnableConfig,
    view: elements.View | None = None,
) -> PreparedPut:
    """Rows for a checkpoint and the blobs of the channels in `new_versions`.

    Only changed channels get a blob; the others keep pointing at the row written when
    their version last moved. A channel in `new_versions` without a value gets no row
    at all: a version without a blob reads as no value, exactly as an `EMPTY` row
    (which older releases wrote, and the official savers write) does. A value the
    serializer wrote as a msgpack array is split into parts (`elements.split`, with
    what `view` knows); the caller decides which of `PreparedPut.parts` still need
    storing.
    """
    if not isinstance(checkpoint, Mapping) or "channel_values" not in checkpoint:
        raise InvalidArgumentError("put: checkpoint must be a Checkpoint dict with 'id' and 'channel_values'")
    checkpoint_id = checkpoint_id_of(checkpoint.get("id"), "checkpoint['id']")
    if checkpoint_id is None:
        raise InvalidArgumentError("put: checkpoint['id'] is missing")
    if not isinstance(new_versions, Mapping):
        raise InvalidArgumentError(f"put: new_versions must be a mapping, not {type(new_versions).__name__}")
    values = checkpoint["channel_values"]
    where = f"checkpoint {checkpoint_id} of thread {address.thread_id!r}"
    blobs = []
    parts: dict[bytes, bytes] = {}
    splits: dict[str, elements.Split] = {}
    view = view or elements.View(elements.digest_of, {})
    for channel, version in new_versions.items():
        version_key = version_entry(channel, version)[0]
        if channel not in values:
            continue
        data: bytes | None
        type_, data = dump(serde, values[channel], f"channel {channel!r} of {where}")
        manifest = None
        if (split := elements.split(type_, data, view.digest, view.latest.get(channel))) is not None:
            data, manifest = split.header, split.manifest
            parts.update(split.parts)
            splits[channel] = split
        blobs.append(
            {
                "thread_key": address.thread_key,
                "ns_key": address.ns_key,
                "channel": channel,
                "version": version_key,
                "type": type_,
                "blob": data,
                "manifest": manifest,
            }
        )
    versions = checkpoint.get("channel_versions", {})
    if not isinstance(versions, Mapping):
        raise InvalidArgumentError(
            f"put: checkpoint['channel_versions'] must be a mapping, not {type(versions).__name__}"
        )
    versions_text = versions_json(versions)
    body = {k: v for k, v in checkpoint.items() if k not in ("channel_values", "channel_versions")}
    body_type, body_data = dump(serde, body, where)
    metadata_text, document = metadata_json(config, metadata)
    run_id = document.get("run_id")
    row = {
        "thread_key": address.thread_key,
        "ns_key": address.ns_key,
        "checkpoint_id": checkpoint_id,
        "thread_id": address.thread_id,
        "checkpoint_ns": address.ns,
        "parent_checkpoint_id": address.checkpoint_id,
        "type": body_type,
        "checkpoint": body_data,
        "metadata": metadata_text,
        "versions": versions_text,
        "run_id": None if run_id is None else check_name(str(run_id), "metadata['run_id']"),
        "created_us": created_us(checkpoint),
    }
    return PreparedPut(row, blobs, parts, splits)


def add_task_writes(
    serde: SerializerProtocol,
    address: Address,
    checkpoint_id: str,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    into: PreparedWrites,
) -> None:
    """Serialize one task's writes into `into` (see `PreparedWrites` for the rule)."""
    check_name(task_id, "task_id")
    if not isinstance(task_path, str):
        raise InvalidArgumentError(f"task_path must be a str, not {type(task_path).__name__}")
    rows = []
    for position, item in enumerate(writes):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidArgumentError(f"each write must be a (channel, value) pair, not {item!r:.80}")
        channel, value = item
        check_name(channel, "write channel")
        type_, data = dump(serde, value, f"write to {channel!r} by task {task_id!r} on thread {address.thread_id!r}")
        rows.append(
            {
                "thread_key": address.thread_key,
                "ns_key": address.ns_key,
                "checkpoint_id": checkpoint_id,
                "task_id": task_id,
                "idx": WRITES_IDX_MAP.get(channel, position),
                "channel": channel,
                "task_path": task_path,
                "type": type_,
                "blob": data,
            }
        )
    special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
    for row in rows:
        key = (row["checkpoint_id"], row["task_id"], row["idx"])
        if special:
            into.overwrite[key] = row
        else:
            into.keep_first.setdefault(key, row)


def add_full_put_writes(
    serde: SerializerProtocol,
    address: Address,
    checkpoint_id: str,
    writes: Sequence[Sequence[Any]],
    into: PreparedWrites,
) -> None:
    """`put_full`'s writes, grouped by task in first-seen order.

    Each item is ``(task_id, channel, value)`` or ``(task_id, channel, value, task_path)``;
    a write's position counts within its own task, as if each task had called
    `put_writes` itself.
    """
    by_task: dict[str, tuple[str, list[tuple[str, Any]]]] = {}
    for item in writes:
        if not isinstance(item, (tuple, list)) or len(item) not in (3, 4):
            raise InvalidArgumentError(
                f"put_full: each write must be (task_id, channel, value[, task_path]), not {item!r:.80}"
            )
        task_id, channel, value = item[0], item[1], item[2]
        task_path = item[3] if len(item) == 4 else ""
        path, items = by_task.setdefault(task_id, (task_path, []))
        if path != task_path:
            raise InvalidArgumentError(f"put_full: task {task_id!r} has writes with two task paths")
        items.append((channel, value))
    for task_id, (path, items) in by_task.items():
        add_task_writes(serde, address, checkpoint_id, items, task_id, path, into)


# --- reading -------------------------------------------------------------------------


@dataclass(slots=True)
class Loaded:
    """Checkpoint rows (newest first) with the blobs and writes they need."""

    checkpoints: list[CheckpointRow] = field(default_factory=list)
    blobs: dict[BlobKey, BlobRow] = field(default_factory=dict)
    writes: dict[CheckpointKey, list[WriteRow]] = field(default_factory=dict)
    parts: Parts = field(default_factory=dict)
    """The parts fetched for the split blobs (`operations.join_values`)."""
    values: dict[BlobKey, bytes] = field(default_factory=dict)
    """The split blobs' values, joined (`operations.join_values`)."""
    reached: dict[elements.Namespace, elements.Reached] = field(default_factory=dict)
    """What the split blobs' manifests reach, per namespace (`operations.join_values`)."""


def split_union(rows: Iterable[Sequence[Any]]) -> Loaded:
    """Sort the rows of a read (`SaverStatements._with_children`) into a `Loaded`."""
    loaded = Loaded()
    for row in rows:
        part = row[0]
        if part == CHECKPOINTS.tag:
            loaded.checkpoints.append(CHECKPOINTS.decode(row))
        elif part == BLOBS.tag:
            blob = BLOBS.decode(row)
            loaded.blobs[blob_key(blob)] = blob
        else:
            write = WRITES.decode(row)
            loaded.writes.setdefault((write.thread_key, write.ns_key, write.checkpoint_id), []).append(write)
    loaded.checkpoints.sort(key=list_order, reverse=True)
    return loaded


def blob_key(blob: BlobRow) -> BlobKey:
    return (blob.thread_key, blob.ns_key, blob.channel, blob.version)


def blob_bytes(blob: StoredValue, parts: Parts) -> bytes | None:
    """A blob row's value as the serializer wrote it, joined from its parts if split."""
    if blob.manifest is None:
        return blob.blob
    return elements.join(split_header(blob), bytes(blob.manifest), parts[(blob.thread_key, blob.ns_key)])


def split_header(blob: StoredValue) -> bytes:
    """The msgpack array header that a split value's row holds in place of the value."""
    assert blob.blob is not None, "a split value's row holds its header"
    return bytes(blob.blob)


def channel_versions(row: Versioned) -> dict[str, Any]:
    return dict(_version_pairs(row))


def blob_keys(row: KeyedVersions) -> list[BlobKey]:
    """The blob keys a checkpoint's channel versions point at."""
    return [(row.thread_key, row.ns_key, c, str(v)) for c, v in _version_pairs(row)]


def sorted_writes(rows: Iterable[W]) -> list[W]:
    """Write rows in `writes_sort_key` order, the order LangGraph applies them in."""
    return sorted(rows, key=lambda r: writes_sort_key(r.task_path, r.task_id, r.idx))


def pending_writes(serde: SerializerProtocol, rows: Iterable[StoredWrite]) -> list[PendingWrite]:
    return [(r.task_id, r.channel, load(serde, r.type, r.blob)) for r in sorted_writes(rows)]


def checkpoint_tuples(serde: SerializerProtocol, loaded: Loaded) -> list[CheckpointTuple]:
    return [checkpoint_tuple(serde, row, loaded) for row in loaded.checkpoints]


def checkpoint_tuple(serde: SerializerProtocol, row: CheckpointRow, loaded: Loaded) -> CheckpointTuple:
    """Assemble the `CheckpointTuple` LangGraph expects from a row and its children."""
    versions = channel_versions(row)
    values = {}
    for channel, version in versions.items():
        key = (row.thread_key, row.ns_key, channel, str(version))
        blob = loaded.blobs.get(key)
        if blob is not None and blob.type != EMPTY:
            data = blob.blob if blob.manifest is None else loaded.values[key]
            values[channel] = load(serde, blob.type, data)
    body = load(serde, row.type, row.checkpoint)
    configurable = {"thread_id": row.thread_id, "checkpoint_ns": row.checkpoint_ns}
    parent = row.parent_checkpoint_id
    return CheckpointTuple(
        config={"configurable": {**configurable, "checkpoint_id": row.checkpoint_id}},
        checkpoint=cast(Checkpoint, {**body, "channel_versions": versions, "channel_values": values}),
        metadata=load_json(row.metadata),
        parent_config={"configurable": {**configurable, "checkpoint_id": parent}} if parent else None,
        pending_writes=pending_writes(serde, loaded.writes.get((row.thread_key, row.ns_key, row.checkpoint_id), ())),
    )


def delta_histories(
    serde: SerializerProtocol,
    writes: Mapping[str, Sequence[StoredWrite]],
    seeds: Mapping[str, StoredValue],
    parts: Parts,
) -> dict[str, DeltaChannelHistory]:
    """Decode `operations.delta_history`'s rows into LangGraph's per-channel shape; a
    channel whose walk reached the root has no ``seed`` ("start empty")."""
    result: dict[str, DeltaChannelHistory] = {}
    for channel, rows in writes.items():
        entry: DeltaChannelHistory = {"writes": [(r.task_id, r.channel, load(serde, r.type, r.blob)) for r in rows]}
        if channel in seeds:
            entry["seed"] = load(serde, seeds[channel].type, blob_bytes(seeds[channel], parts))
        result[channel] = entry
    return result
