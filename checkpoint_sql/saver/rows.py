"""The rows the saver's reads return, each kind defined once.

The hot-path reads run on the DBAPI cursor (`core/compiled.py`), whose rows are plain
tuples: nothing but position ties a value to its column. So each kind of row is a
NamedTuple whose fields name the columns; `statements.py` builds the select lists
from the fields and the readers decode with the same class, and a column added or
moved in one place cannot leave the other reading its neighbour. A NamedTuple rather
than a dict because `get_tuple` and `list` decode every row in Python: one costs a
tuple, and a field is read by attribute.

A read's checkpoints, blobs and writes come back as one UNION ALL (`UNION_COLUMNS`),
each kind a `Branch` that says which union column each of its fields travels in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

import sqlalchemy as sa


class CheckpointRow(NamedTuple):
    thread_key: bytes
    ns_key: bytes
    checkpoint_id: str
    thread_id: str
    checkpoint_ns: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: Any
    """JSON text, or the document itself where the driver decodes JSONB (`codec.load_json`)."""
    versions: Any
    """Like `metadata`: ``[[channel, version(, number type)], ...]`` (`codec.versions_json`)."""


class BlobRow(NamedTuple):
    thread_key: bytes
    ns_key: bytes
    channel: str
    version: str
    type: str
    blob: bytes | None
    manifest: bytes | None


class WriteRow(NamedTuple):
    thread_key: bytes
    ns_key: bytes
    checkpoint_id: str
    task_id: str
    channel: str
    task_path: str
    type: str
    blob: bytes | None
    idx: int


class PartRow(NamedTuple):
    digest: bytes
    data: bytes


R = TypeVar("R", bound=NamedTuple)


def columns(source: sa.FromClause, row: type[R]) -> list[sa.ColumnElement[Any]]:
    """The columns of `source` that a select decoded as `row` lists, in field order."""
    return [source.c[name] for name in row._fields]


UNION_COLUMNS = ("part", *CheckpointRow._fields, "idx", "manifest")
"""The columns of a read's UNION ALL: which kind of row (`Branch.tag`), then a
checkpoint's columns, then the two that only writes and blobs have. The other
kinds' fields travel in the checkpoint columns of the same type."""


class Branch(Generic[R]):
    """One kind of row in a read's UNION ALL, told apart by `tag` in ``part``."""

    __slots__ = ("_pick", "row", "slots", "tag")

    def __init__(self, tag: int, row: type[R], **moved: str) -> None:
        self.tag = tag
        self.row: type[R] = row
        self.slots: tuple[str, ...] = tuple(moved.get(name, name) for name in row._fields)
        """The union column each field of `row` travels in: its own name unless `moved`."""
        self._pick = itemgetter(*(UNION_COLUMNS.index(slot) for slot in self.slots))

    def selected(
        self, values: sa.ColumnCollection[str, Any], null: Mapping[str, sa.ColumnElement[Any]]
    ) -> list[sa.ColumnElement[Any]]:
        """This branch's select list: `values` by field name in their slots, and the
        `null` of each union column the branch leaves empty."""
        by_slot: dict[str, sa.ColumnElement[Any]] = {
            slot: values[name] for name, slot in zip(self.row._fields, self.slots, strict=True)
        }
        return [
            sa.literal_column(str(self.tag)).label("part"),
            *(by_slot[name] if name in by_slot else null[name] for name in UNION_COLUMNS[1:]),
        ]

    def decode(self, values: Sequence[Any]) -> R:
        """The row this branch's union row `values` holds."""
        return self.row._make(self._pick(values))


CHECKPOINTS = Branch(0, CheckpointRow)
BLOBS = Branch(1, BlobRow, channel="thread_id", version="checkpoint_ns", blob="checkpoint")
WRITES = Branch(
    2, WriteRow, task_id="thread_id", channel="checkpoint_ns", task_path="parent_checkpoint_id", blob="checkpoint"
)
