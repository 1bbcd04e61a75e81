"""A thread's lineage as a tree: checkpoints under their parents, forks as branches.

`checkpoint-sql history` and the demo draw the same picture from what the database
holds, without the graph that wrote it. What a checkpoint would run next is inferred
the way LangGraph itself decides it (`next_nodes`): a node runs when its trigger
channel (``branch:to:<node>``, or ``__start__`` for the input) holds a value at a
version newer than the one the node last saw (the checkpoint's ``versions_seen``),
and every pending `Send` (the ``__pregel_tasks`` channel) is a task of its own. The
pending writes say which of those tasks already ran, stopped on an interrupt, or
failed; their task path names the node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.text import Text
from rich.tree import Tree

from checkpoint_sql.admin.values import jsonable

START = "__start__"
TASKS = "__pregel_tasks"
BRANCH = "branch:to:"
INTERRUPT = "__interrupt__"
ERROR = "__error__"
RESUME = "__resume__"
RESUMED = "(resume)"
"""The node name given to the graph-level resume value, which belongs to no task."""
_PULL, _PUSH = "~__pregel_pull", "~__pregel_push"
_SOURCE_STYLE = {"input": "green", "loop": "white", "update": "magenta", "fork": "magenta"}
_STATUS_MARK = {"done": ("✓", "green"), "interrupted": ("⏸", "bold yellow"), "error": ("✗", "bold red")}


def is_trigger(channel: str) -> bool:
    """Whether `channel` decides which nodes run next (see the module docstring)."""
    return channel in (START, TASKS) or channel.startswith(BRANCH)


def next_nodes(
    versions: Mapping[str, Any], versions_seen: Mapping[str, Mapping[str, Any]], triggers: Mapping[str, Any]
) -> tuple[str, ...]:
    """The nodes a checkpoint runs next: each pending Send's node, in order, then the
    nodes whose trigger channel has news for them, sorted.

    `triggers` maps each trigger channel that holds a value at this checkpoint to
    that value (only ``__pregel_tasks``'s is looked at: its list of Sends).
    """
    pushed = [str(getattr(send, "node", "?")) for send in triggers.get(TASKS) or ()]
    pulled = []
    for channel, version in versions.items():
        node = START if channel == START else channel[len(BRANCH) :] if channel.startswith(BRANCH) else None
        if node is not None and channel in triggers and _newer(version, versions_seen.get(node, {}).get(channel)):
            pulled.append(node)
    return (*pushed, *sorted(pulled))


def _newer(version: Any, seen: Any) -> bool:
    if seen is None:
        return True
    if isinstance(version, type(seen)) or isinstance(seen, type(version)):
        return bool(version > seen)
    return str(version) > str(seen)


def task_node(task_path: str, sends: Sequence[Any]) -> str:
    """The node a pending write's task ran: named in a pull task's path, found through
    the Send a push task's path points at. The only write without a path is the
    graph-level resume value of ``Command(resume=...)``."""
    parts = [p.strip() for p in task_path.split(",")]
    if parts[0] == _PULL and len(parts) > 1:
        return parts[1]
    if parts[0] == _PUSH and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(sends):
        return str(getattr(sends[int(parts[1])], "node", "send"))
    return task_path if task_path else RESUMED


@dataclass
class Task:
    """A task with pending writes at a checkpoint: which node, what it wrote, and
    whether it finished, stopped on an interrupt or failed."""

    task_id: str
    node: str
    channels: list[str]

    @property
    def status(self) -> str:
        """error, done (it wrote, possibly after being resumed), interrupted (waiting
        for a resume), or resumed (only a resume value: the graph-level answer)."""
        if ERROR in self.channels:
            return "error"
        if any(c not in (RESUME, INTERRUPT) for c in self.channels):
            return "done"
        return "interrupted" if INTERRUPT in self.channels else "resumed"

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "node": self.node, "status": self.status, "channels": self.channels}


@dataclass
class Entry:
    """What the tree shows of one checkpoint."""

    checkpoint_id: str
    parent_id: str | None
    checkpoint_ns: str
    step: object
    source: str
    created: datetime | None
    next: tuple[str, ...]
    tasks: list[Task] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)
    """The values passed to `interrupt()` by tasks stopped at this checkpoint."""
    children: list[Entry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint_id": self.checkpoint_id,
            "parent_checkpoint_id": self.parent_id,
            "step": self.step,
            "source": self.source,
            "created": None if self.created is None else self.created.isoformat(),
            "next": list(self.next),
            "tasks": [t.to_json() for t in self.tasks],
            "interrupts": [jsonable(v) for v in self.interrupts],
            "children": [c.checkpoint_id for c in self.children],
        }

    def label(self) -> Text:
        text = Text()
        text.append(self.checkpoint_id[-12:], style="bold cyan")
        text.append(f"  step {self.step!s:>2}  ", style="dim")
        text.append(f"{self.source:<6}", style=_SOURCE_STYLE.get(self.source, ""))
        if self.created is not None:
            text.append(f"  {self.created:%m-%d %H:%M:%S}", style="dim")
        text.append(f"  next: {', '.join(self.next) or '(end)'}")
        for task in self.tasks:
            if task.node == RESUMED:
                continue  # the answer shows as the interrupted task's own status
            mark, style = _STATUS_MARK.get(task.status, ("↺", "dim"))
            text.append(f"  {task.node} ", style="dim")
            text.append(mark, style=style)
        waiting = any(task.status == "interrupted" for task in self.tasks)
        for value in self.interrupts:
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            text.append(f"  ⏸ {shown}" if waiting else f"  asked {shown}", style="bold yellow" if waiting else "dim")
        return text


def build(entries: Iterable[Entry]) -> list[Entry]:
    """Link `entries` (one namespace of one thread) into trees; returns the roots.
    A checkpoint whose parent is not among them (pruned) is shown as a root."""
    by_id = {e.checkpoint_id: e for e in entries}
    roots = []
    for entry in sorted(by_id.values(), key=lambda e: e.checkpoint_id):
        if entry.parent_id in by_id:
            by_id[entry.parent_id].children.append(entry)
        else:
            roots.append(entry)
    return roots


def render(roots: list[Entry], title: str) -> Tree:
    """A rich Tree: a straight run of checkpoints stays at one indent; a checkpoint
    with several children opens one branch per child, so a fork is visible."""
    tree = Tree(Text(title, style="bold"))
    for root in roots:
        _attach(tree, root)
    return tree


def _attach(parent: Tree, entry: Entry) -> None:
    while True:
        parent.add(entry.label())
        if len(entry.children) != 1:
            break
        entry = entry.children[0]
    for i, child in enumerate(entry.children, start=1):
        _attach(parent.add(Text(f"branch {i}", style="magenta")), child)
