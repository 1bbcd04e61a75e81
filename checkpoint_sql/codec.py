"""LangGraph objects to table rows and back.

Everything here is pure: serialization happens before a transaction opens (so a value
that cannot be serialized leaves the database untouched) and decoding after it closes
(so transactions stay short). Values go through the saver's `serde` as
``(type, bytes)`` and are stored as such, whatever the serializer is;
`EncryptedSerializer` therefore works unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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

from checkpoint_sql.dialects import canonical_json
from checkpoint_sql.errors import InvalidArgumentError, SerializationError
from checkpoint_sql.ids import Address, checkpoint_id_of
from checkpoint_sql.schema import NAME_MAX, TYPE_MAX, VERSION_MAX

EMPTY = "empty"
"""Type tag of a channel that has a version but no value at this checkpoint."""

Row = Mapping[Any, Any]
"""A result row (SQLAlchemy `RowMapping`) by column name."""


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


def version_text(version: Any, channel: str) -> str:
    """A channel version as stored in a key; LangGraph uses ints or strings."""
    if isinstance(version, bool) or not isinstance(version, (str, int, float)):
        raise InvalidArgumentError(
            f"version of channel {channel!r} must be a str, int or float, not {type(version).__name__}"
        )
    text = str(version)
    if len(text) > VERSION_MAX or not text.isascii():
        raise InvalidArgumentError(f"version {text!r:.80} of channel {channel!r} is not a short ASCII string")
    return text


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        raise InvalidArgumentError(f"{what} must be a non-empty str of at most {NAME_MAX} characters, not {name!r:.80}")
    return name


def _strip_nul(value: Any) -> Any:
    """NUL removed from every string, as LangGraph does for top-level metadata, since
    PostgreSQL's JSONB cannot hold it."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strip_nul(v) for v in value]
    return value


def metadata_document(config: RunnableConfig, metadata: CheckpointMetadata) -> dict[str, Any]:
    """The metadata as stored: LangGraph's merge of config metadata, as plain JSON."""
    document: dict[str, Any] = _strip_nul(dict(get_serializable_checkpoint_metadata(config, metadata)))
    for key, value in document.items():
        try:
            canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"metadata[{key!r}] is not JSON ({type(value).__name__}: {exc}); checkpoint "
                "metadata is stored as JSON so that list(filter=...) can query it"
            ) from None
    return document


def created_at(checkpoint: Checkpoint) -> datetime:
    """The checkpoint's own timestamp as naive UTC, the retention clock."""
    try:
        ts = datetime.fromisoformat(str(checkpoint["ts"]))
    except (KeyError, ValueError):
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


@dataclass(slots=True)
class PreparedWrites:
    """Pending-write rows, split by how a repeated write is treated.

    A task's writes get their position as index, except the special channels (error,
    interrupt, ...) which have fixed negative indexes. When every write of a task is
    special, retrying the task overwrites them (`overwrite`); otherwise the first
    attempt wins (`keep_first`), so a retried task cannot duplicate or reorder writes.
    """

    keep_first: list[dict[str, Any]] = field(default_factory=list)
    overwrite: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class PreparedPut:
    """Everything one `put`/`put_full` writes, serialized and validated."""

    checkpoint: dict[str, Any]
    blobs: list[dict[str, Any]]
    writes: PreparedWrites = field(default_factory=PreparedWrites)


def prepare_put(
    serde: SerializerProtocol,
    address: Address,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: Mapping[str, Any],
    config: RunnableConfig,
) -> PreparedPut:
    """Rows for a checkpoint and the blobs of the channels in `new_versions`.

    Only changed channels get a blob; the others keep pointing at the row written when
    their version last moved. A channel in `new_versions` without a value is stored as
    `EMPTY` so that it is skipped on load, as in LangGraph's own savers.
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
    for channel, version in new_versions.items():
        check_name(channel, "channel name")
        if channel in values:
            type_, data = dump(serde, values[channel], f"channel {channel!r} of {where}")
        else:
            type_, data = EMPTY, None
        blobs.append(
            {
                "thread_key": address.thread_key,
                "ns_key": address.ns_key,
                "channel": channel,
                "version": version_text(version, channel),
                "type": type_,
                "blob": data,
            }
        )
    body: dict[str, Any] = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    for channel, version in body.get("channel_versions", {}).items():
        version_text(version, channel)
    body_type, body_data = dump(serde, body, where)
    document = metadata_document(config, metadata)
    run_id = document.get("run_id")
    if run_id is not None:
        run_id = check_name(str(run_id), "metadata['run_id']")
    row = {
        "thread_key": address.thread_key,
        "ns_key": address.ns_key,
        "checkpoint_id": checkpoint_id,
        "thread_id": address.thread_id,
        "checkpoint_ns": address.ns,
        "parent_checkpoint_id": address.checkpoint_id,
        "type": body_type,
        "checkpoint": body_data,
        "metadata": document,
        "run_id": run_id,
        "created_at": created_at(checkpoint),
    }
    return PreparedPut(row, blobs)


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
    (into.overwrite if special else into.keep_first).extend(rows)


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


def decode_body(serde: SerializerProtocol, row: Row) -> dict[str, Any]:
    """The checkpoint stored in a row, without its channel values."""
    body: dict[str, Any] = load(serde, row["type"], row["checkpoint"])
    return body


def blob_keys(row: Row, body: Mapping[str, Any]) -> list[tuple[bytes, bytes, str, str]]:
    """The blob keys a checkpoint's channel versions point at."""
    return [
        (row["thread_key"], row["ns_key"], channel, str(version))
        for channel, version in body.get("channel_versions", {}).items()
    ]


BlobIndex = Mapping[tuple[bytes, bytes, str, str], Row]
WriteIndex = Mapping[tuple[bytes, bytes, str], Sequence[Row]]


def index_blobs(rows: Iterable[Row]) -> dict[tuple[bytes, bytes, str, str], Row]:
    return {(r["thread_key"], r["ns_key"], r["channel"], r["version"]): r for r in rows}


def index_writes(rows: Iterable[Row]) -> dict[tuple[bytes, bytes, str], list[Row]]:
    grouped: dict[tuple[bytes, bytes, str], list[Row]] = {}
    for r in rows:
        grouped.setdefault((r["thread_key"], r["ns_key"], r["checkpoint_id"]), []).append(r)
    return grouped


def sorted_writes(rows: Iterable[Row]) -> list[Row]:
    """Write rows in `writes_sort_key` order, the order LangGraph applies them in."""
    return sorted(rows, key=lambda r: writes_sort_key(r["task_path"], r["task_id"], r["idx"]))


def pending_writes(serde: SerializerProtocol, rows: Iterable[Row]) -> list[PendingWrite]:
    return [(r["task_id"], r["channel"], load(serde, r["type"], r["blob"])) for r in sorted_writes(rows)]


def checkpoint_tuple(
    serde: SerializerProtocol, row: Row, body: Mapping[str, Any], blobs: BlobIndex, writes: WriteIndex
) -> CheckpointTuple:
    """Assemble the `CheckpointTuple` LangGraph expects from a row and its children."""
    values = {}
    for key in blob_keys(row, body):
        blob = blobs.get(key)
        if blob is not None and blob["type"] != EMPTY:
            values[key[2]] = load(serde, blob["type"], blob["blob"])
    configurable = {"thread_id": row["thread_id"], "checkpoint_ns": row["checkpoint_ns"]}
    parent = row["parent_checkpoint_id"]
    return CheckpointTuple(
        config={"configurable": {**configurable, "checkpoint_id": row["checkpoint_id"]}},
        checkpoint={**body, "channel_values": values},  # type: ignore[typeddict-item]
        metadata=row["metadata"],
        parent_config={"configurable": {**configurable, "checkpoint_id": parent}} if parent else None,
        pending_writes=pending_writes(serde, writes.get((row["thread_key"], row["ns_key"], row["checkpoint_id"]), ())),
    )


def delta_histories(
    serde: SerializerProtocol, writes: Mapping[str, Sequence[Row]], seeds: Mapping[str, Row]
) -> dict[str, DeltaChannelHistory]:
    """Decode `operations.delta_history`'s rows into LangGraph's per-channel shape; a
    channel whose walk reached the root has no ``seed`` ("start empty")."""
    result: dict[str, DeltaChannelHistory] = {}
    for channel, rows in writes.items():
        entry: DeltaChannelHistory = {
            "writes": [(r["task_id"], r["channel"], load(serde, r["type"], r["blob"])) for r in rows]
        }
        if channel in seeds:
            entry["seed"] = load(serde, seeds[channel]["type"], seeds[channel]["blob"])
        result[channel] = entry
    return result
