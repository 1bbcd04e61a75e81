"""One checkpoint decoded (`checkpoint-sql show`) and two compared (`diff`).

Both read through the saver's own `get_tuple`, so what they print is exactly what
LangGraph would load. A `DeltaChannel` stores no value at most checkpoints; its
value is shown as what rebuilds it (the nearest snapshot and the writes since),
through `get_delta_channel_history`. Checkpoints may be named by a unique prefix or
suffix of their id, as the short ids `history` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.base import CheckpointTuple
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.pretty import Pretty
from rich.table import Table
from rich.text import Text
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from checkpoint_sql.admin import lineage
from checkpoint_sql.admin.values import jsonable, renderable
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.errors import InvalidArgumentError, ThreadNotFoundError, UnknownCheckpointError
from checkpoint_sql.saver.schema import SaverTables
from checkpoint_sql.saver.sql_saver import SQLSaver


def _ids(conn: Connection, tables: SaverTables, thread_key: bytes, ns_key: bytes) -> list[str]:
    cp = tables.checkpoints
    query = sa.select(cp.c.checkpoint_id).where(cp.c.thread_key == bindparam("t"), cp.c.ns_key == bindparam("n"))
    return list(conn.execute(query, {"t": thread_key, "n": ns_key}).scalars())


def resolve(saver: SQLSaver, thread_id: str, ns: str, given: str | None) -> str:
    """The full id of the checkpoint `given` names (None: the latest) in a thread and
    namespace: an exact id, else a unique prefix or suffix of one."""
    ids = saver.db.run(_ids, saver.tables, key_of(thread_id), key_of(ns), intent=Intent.ONE_STATEMENT)
    if not ids:
        where = f" in namespace {ns!r}" if ns else ""
        raise ThreadNotFoundError(f"thread {thread_id!r} has no checkpoints{where}")
    if given is None:
        return max(ids)
    if given in ids:
        return given
    found = [i for i in ids if i.startswith(given) or i.endswith(given)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownCheckpointError(f"thread {thread_id!r} has no checkpoint {given!r}")
    raise UnknownCheckpointError(f"{given!r} matches {len(found)} checkpoints of thread {thread_id!r}; give more of it")


def _config(thread_id: str, ns: str, checkpoint_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


def load(saver: SQLSaver, thread_id: str, ns: str, checkpoint_id: str) -> tuple[CheckpointTuple, dict[str, Any]]:
    """A checkpoint and the values of its delta channels (seed and writes since)."""
    found = saver.get_tuple(_config(thread_id, ns, checkpoint_id))  # type: ignore[arg-type]
    if found is None:  # deleted since it was resolved
        raise UnknownCheckpointError(f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}")
    counters = (found.metadata or {}).get("counters_since_delta_snapshot") or {}
    deltas: dict[str, Any] = {}
    if counters:
        history = saver.get_delta_channel_history(config=found.config, channels=list(counters))
        for channel, entry in history.items():
            seed = getattr(entry.get("seed"), "value", entry.get("seed"))
            deltas[channel] = {"seed": seed, "writes": [value for _, _, value in entry["writes"]]}
    return found, deltas


@dataclass
class Shown:
    found: CheckpointTuple
    deltas: dict[str, Any]
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.channel is not None and self.channel not in self._channels():
            names = ", ".join(sorted(self._channels())) or "none"
            raise InvalidArgumentError(f"checkpoint has no channel {self.channel!r}; its channels: {names}")

    def _channels(self) -> dict[str, Any]:
        return {**self.found.checkpoint["channel_values"], **self.deltas}

    def _head(self) -> dict[str, Any]:
        configurable = self.found.config["configurable"]
        parent = self.found.parent_config["configurable"]["checkpoint_id"] if self.found.parent_config else None
        return {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable["checkpoint_ns"],
            "checkpoint_id": configurable["checkpoint_id"],
            "parent_checkpoint_id": parent,
            "created": self.found.checkpoint.get("ts"),
        }

    def to_json(self) -> dict[str, Any]:
        versions = self.found.checkpoint["channel_versions"]
        if self.channel is not None:
            value = self._channels()[self.channel]
            return {
                **self._head(),
                "channel": self.channel,
                "version": versions.get(self.channel),
                "value": jsonable(value),
            }
        return {
            **self._head(),
            "metadata": jsonable(self.found.metadata),
            "channels": {
                c: {"version": versions.get(c), "value": jsonable(v)}
                for c, v in sorted(self.found.checkpoint["channel_values"].items())
            },
            "delta_channels": {c: jsonable(d) for c, d in sorted(self.deltas.items())},
            "pending_writes": [
                {"task_id": t, "channel": c, "value": jsonable(v)} for t, c, v in self.found.pending_writes or ()
            ],
        }

    def render(self) -> RenderableType:
        head = self._head()
        title = Text.assemble(("checkpoint ", "bold"), (head["checkpoint_id"], "bold cyan"))
        if self.channel is not None:
            return Panel(renderable(self._channels()[self.channel]), title=Text.assemble(title, f"  {self.channel}"))
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold")
        facts.add_column()
        for label in ("thread_id", "checkpoint_ns", "parent_checkpoint_id", "created"):
            facts.add_row(label, str(head[label] if head[label] not in ("", None) else "-"))
        facts.add_row("metadata", Pretty(jsonable(self.found.metadata)))
        channels = Table(title="channels", title_justify="left", header_style="bold", show_lines=True)
        channels.add_column("channel", style="cyan")
        channels.add_column("value", overflow="fold")
        for name, value in sorted(self.found.checkpoint["channel_values"].items()):
            if not lineage.is_trigger(name) or name == lineage.TASKS:
                channels.add_row(name, renderable(value))
        for name, delta in sorted(self.deltas.items()):
            channels.add_row(f"{name} (delta)", renderable(delta))
        parts: list[RenderableType] = [Panel(facts, title=title, title_align="left"), channels]
        if self.found.pending_writes:
            writes = Table(title="pending writes", title_justify="left", header_style="bold")
            for name in ("task", "channel", "value"):
                writes.add_column(name)
            for task_id, channel, value in self.found.pending_writes:
                writes.add_row(task_id[:8], channel, renderable(value))
            parts.append(writes)
        return Group(*parts)


# --- diff ------------------------------------------------------------------------------


def describe(before: Any, after: Any) -> dict[str, Any]:
    """How a channel's value changed: items added and removed for lists (matched by
    id for messages, else after the common prefix), keys for dicts, else both values."""
    if isinstance(before, Sequence) and isinstance(after, Sequence) and not isinstance(before, (str, bytes)):
        if _ids_of(before) is not None and _ids_of(after) is not None:
            old, new = _ids_of(before), _ids_of(after)
            assert old is not None and new is not None
            return {
                "kind": "list",
                "removed": [jsonable(v) for i, v in old.items() if i not in new],
                "added": [jsonable(v) for i, v in new.items() if i not in old],
                "changed": [
                    {"before": jsonable(v), "after": jsonable(new[i])}
                    for i, v in old.items()
                    if i in new and new[i] != v
                ],
            }
        common = 0
        while common < min(len(before), len(after)) and before[common] == after[common]:
            common += 1
        return {
            "kind": "list",
            "removed": jsonable(list(before[common:])),
            "added": jsonable(list(after[common:])),
            "changed": [],
        }
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return {
            "kind": "dict",
            "removed": {str(k): jsonable(v) for k, v in before.items() if k not in after},
            "added": {str(k): jsonable(v) for k, v in after.items() if k not in before},
            "changed": {
                str(k): {"before": jsonable(v), "after": jsonable(after[k])}
                for k, v in before.items()
                if k in after and after[k] != v
            },
        }
    return {"kind": "value", "before": jsonable(before), "after": jsonable(after)}


def _ids_of(items: Sequence[Any]) -> dict[Any, Any] | None:
    """Items by their ``id`` when every item has a distinct one (messages do)."""
    ids = [getattr(item, "id", None) for item in items]
    if not items or None in ids or len(set(ids)) != len(ids):
        return None
    return dict(zip(ids, items, strict=True))


_MISSING = object()


@dataclass
class Diff:
    before: CheckpointTuple
    after: CheckpointTuple
    deltas: tuple[dict[str, Any], dict[str, Any]]

    def changes(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Changed channels with how, and the names of unchanged ones."""
        old_versions = self.before.checkpoint["channel_versions"]
        new_versions = self.after.checkpoint["channel_versions"]
        old = {**self.before.checkpoint["channel_values"], **self._delta_lists(self.deltas[0])}
        new = {**self.after.checkpoint["channel_values"], **self._delta_lists(self.deltas[1])}
        changed: dict[str, dict[str, Any]] = {}
        unchanged = []
        for channel in sorted(set(old) | set(new)):
            a, b = old.get(channel, _MISSING), new.get(channel, _MISSING)
            if old_versions.get(channel) == new_versions.get(channel) and a is not _MISSING and b is not _MISSING:
                unchanged.append(channel)
            elif a is _MISSING:
                changed[channel] = {"status": "added", "after": jsonable(b)}
            elif b is _MISSING:
                changed[channel] = {"status": "removed", "before": jsonable(a)}
            elif a == b:
                unchanged.append(channel)
            else:
                changed[channel] = {"status": "changed", **describe(a, b)}
        return changed, unchanged

    @staticmethod
    def _delta_lists(deltas: Mapping[str, Any]) -> dict[str, list[Any]]:
        """A delta channel compared as its seed followed by its writes."""
        return {c: ([] if d["seed"] is None else [d["seed"]]) + list(d["writes"]) for c, d in deltas.items()}

    def to_json(self) -> dict[str, Any]:
        changed, unchanged = self.changes()
        a, b = self.before.config["configurable"], self.after.config["configurable"]
        return {
            "thread_id": a["thread_id"],
            "checkpoint_ns": a["checkpoint_ns"],
            "from": {"checkpoint_id": a["checkpoint_id"], **_step(self.before)},
            "to": {"checkpoint_id": b["checkpoint_id"], **_step(self.after)},
            "changed": changed,
            "unchanged": unchanged,
        }

    def render(self) -> RenderableType:
        data = self.to_json()
        title = Text.assemble(
            ("diff ", "bold"),
            (data["from"]["checkpoint_id"][-12:], "cyan"),
            f" (step {data['from']['step']}) → ",
            (data["to"]["checkpoint_id"][-12:], "cyan"),
            f" (step {data['to']['step']})",
        )
        table = Table(title=title, title_justify="left", header_style="bold", show_lines=True)
        table.add_column("channel", style="cyan")
        table.add_column("change")
        for channel, change in data["changed"].items():
            if lineage.is_trigger(channel) and channel != lineage.TASKS:
                continue
            table.add_row(channel, _change_text(change))
        hidden = [c for c in data["changed"] if lineage.is_trigger(c) and c != lineage.TASKS]
        notes = f"unchanged: {', '.join(data['unchanged']) or '-'}"
        if hidden:
            notes += f"; trigger channels changed: {', '.join(hidden)}"
        return Group(table, Text(notes, style="dim"))


def _step(found: CheckpointTuple) -> dict[str, Any]:
    metadata = found.metadata or {}
    return {"step": metadata.get("step"), "source": metadata.get("source")}


def _change_text(change: Mapping[str, Any]) -> RenderableType:
    if change["status"] == "added":
        return Group(Text("added", style="green"), renderable(change["after"]))
    if change["status"] == "removed":
        return Group(Text("removed", style="red"), renderable(change["before"]))
    if change["kind"] == "value":
        return Text.assemble((repr(change["before"]), "red"), " → ", (repr(change["after"]), "green"))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for label, style in (("removed", "red"), ("added", "green")):
        if change[label]:
            grid.add_row(Text(label, style=style), renderable(change[label]))
    changed = change["changed"]
    pairs = changed.items() if isinstance(changed, Mapping) else ((None, pair) for pair in changed)
    for key, pair in pairs:
        grid.add_row(Text("changed" if key is None else f"changed {key}", style="yellow"), renderable(pair["before"]))
        grid.add_row(Text("     to", style="yellow"), renderable(pair["after"]))
    return grid
