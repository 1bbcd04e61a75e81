"""Reading a session as people do: events grouped by turn, and a Markdown transcript."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from checkpoint_sql.stores.session_models import Session, SessionEvent, SessionSummary, Turn, TurnUsage


def group_by_turn(events: Sequence[SessionEvent]) -> list[Turn]:
    """Events grouped by turn id, turns in the order they began, events in log order.
    Events without a turn id form one group (turn_id None) placed where the first of
    them occurs."""
    groups: dict[str | None, list[SessionEvent]] = {}
    for event in events:
        groups.setdefault(event.turn_id, []).append(event)
    return [Turn(turn_id, grouped) for turn_id, grouped in groups.items()]


def _text(content: Any) -> str:
    if content is None:
        return "_(no content)_"
    if isinstance(content, str):
        return content
    return "```json\n" + json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True) + "\n```"


def _event(event: SessionEvent) -> list[str]:
    when = event.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC") if event.timestamp else ""
    kind = "" if event.type == "message" else f" · {event.type}"
    lines = [f"**{event.author}**{kind} · #{event.seq} · {when}", "", _text(event.content)]
    if event.state_delta:
        lines += ["", "_state changed: " + ", ".join(f"`{k}`" for k in sorted(event.state_delta)) + "_"]
    return [*lines, ""]


def markdown(session: Session, usage: Sequence[TurnUsage], summaries: Sequence[SessionSummary]) -> str:
    """A readable transcript: header, summaries, then each turn with its events and
    the tokens it used."""
    by_turn = {u.turn_id: u for u in usage}
    lines = [
        f"# Session {session.id}",
        "",
        f"- app: {session.app_name}",
        f"- user: {session.user_id}",
        f"- created: {session.created_at:%Y-%m-%d %H:%M:%S} UTC, updated: {session.updated_at:%Y-%m-%d %H:%M:%S} UTC",
        f"- events: {session.last_seq} appended, {len(session.events)} kept",
    ]
    if usage:
        inputs = sum(u.input_tokens for u in usage)
        outputs = sum(u.output_tokens for u in usage)
        lines.append(f"- tokens: {inputs} in, {outputs} out")
    lines.append("")
    for summary in summaries:
        title = "Summary" if not summary.filter_key else f"Summary ({summary.filter_key})"
        lines += [f"## {title}", "", summary.summary, ""]
    for turn in group_by_turn(session.events):
        lines += ["## " + ("Outside any turn" if turn.turn_id is None else f"Turn {turn.turn_id}"), ""]
        used = by_turn.get(turn.turn_id) if turn.turn_id is not None else None
        if used is not None:
            model = f" ({used.model})" if used.model else ""
            lines += [f"_tokens{model}: {used.input_tokens} in, {used.output_tokens} out_", ""]
        for event in turn.events:
            lines += _event(event)
    return "\n".join(lines).rstrip() + "\n"
