"""A thread's lineage as a tree: checkpoints under their parents, forks as branches.

Built from a graph's `StateSnapshot`s (which know the next nodes) or from a saver's
`CheckpointTuple`s (which do not), rendered with rich, so the demo and the admin
command draw the same picture.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.types import StateSnapshot
from rich.text import Text
from rich.tree import Tree

INTERRUPT = "__interrupt__"
_SOURCE_STYLE = {"input": "green", "loop": "white", "update": "magenta", "fork": "magenta"}


@dataclass
class Entry:
    """What the tree shows of one checkpoint."""

    checkpoint_id: str
    parent_id: str | None
    step: object
    source: str
    next: tuple[str, ...] | None
    interrupted: bool
    pending_writes: int
    children: list[Entry] = field(default_factory=list)

    @classmethod
    def of_snapshot(cls, s: StateSnapshot) -> Entry:
        meta = s.metadata or {}
        return cls(
            checkpoint_id=s.config["configurable"]["checkpoint_id"],
            parent_id=s.parent_config["configurable"]["checkpoint_id"] if s.parent_config else None,
            step=meta.get("step", "?"),
            source=str(meta.get("source", "?")),
            next=tuple(s.next),
            interrupted=any(t.interrupts for t in s.tasks),
            pending_writes=0,  # a snapshot's `next` already says what is pending
        )

    @classmethod
    def of_tuple(cls, t: CheckpointTuple) -> Entry:
        meta = t.metadata or {}
        writes = t.pending_writes or []
        return cls(
            checkpoint_id=t.config["configurable"]["checkpoint_id"],
            parent_id=t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None,
            step=meta.get("step", "?"),
            source=str(meta.get("source", "?")),
            next=None,
            interrupted=any(channel == INTERRUPT for _, channel, _ in writes),
            pending_writes=len(writes),
        )

    def label(self) -> Text:
        text = Text()
        text.append(self.checkpoint_id[-12:], style="bold cyan")
        text.append(f"  step {self.step!s:>2}  ", style="dim")
        text.append(f"{self.source:<6}", style=_SOURCE_STYLE.get(self.source, ""))
        if self.next is not None:
            text.append(f"  next: {', '.join(self.next) or '(end)'}")
        if self.interrupted:
            text.append("  ⏸ interrupted", style="bold yellow")
        elif self.pending_writes:
            text.append(f"  {self.pending_writes} pending writes", style="dim")
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
