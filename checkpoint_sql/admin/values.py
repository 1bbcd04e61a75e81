"""Channel values made readable: a JSON form for scripts and a rich form for people.

Checkpoints hold whatever the graph's state holds: LangChain messages, pydantic
models, dataclasses, Sends, Interrupts, bytes. `jsonable` turns any of them into
plain JSON (falling back to ``repr`` for what it does not know) and `renderable`
shows a list of messages as a conversation rather than a wall of constructor calls.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.pretty import Pretty
from rich.text import Text

_ROLE_STYLE = {"human": "bold green", "ai": "bold blue", "tool": "bold magenta", "system": "bold yellow"}


def jsonable(value: Any) -> Any:
    """`value` as JSON-compatible data (dicts with string keys, lists, scalars)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, BaseMessage):
        return message_json(value)
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {str(k): jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if hasattr(value, "__slots__") and hasattr(value, "node") and hasattr(value, "arg"):  # langgraph.types.Send
        return {"node": value.node, "arg": jsonable(value.arg)}
    return repr(value)


def message_json(message: BaseMessage) -> dict[str, Any]:
    """A message with the fields people read (empty ones left out)."""
    data = {"type": message.type, "content": jsonable(message.content)}
    for name in ("name", "id", "tool_calls", "tool_call_id", "status"):
        field = getattr(message, name, None)
        if field and not (name == "status" and field == "success"):
            data[name] = jsonable(field)
    return data


def is_messages(value: Any) -> bool:
    return isinstance(value, Sequence) and bool(value) and all(isinstance(m, BaseMessage) for m in value)


def renderable(value: Any) -> RenderableType:
    """Messages (live, or in their `message_json` form) as a conversation, one per
    line; anything else pretty-printed."""
    if isinstance(value, BaseMessage):
        return message_line(message_json(value))
    if is_messages(value):
        return Group(*(message_line(message_json(m)) for m in value))
    if _is_message_json(value):
        return message_line(value)
    if isinstance(value, list) and value and all(_is_message_json(m) for m in value):
        return Group(*(message_line(m) for m in value))
    return Pretty(jsonable(value), expand_all=False)


def _is_message_json(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") in _ROLE_STYLE and "content" in value


def message_line(message: Mapping[str, Any]) -> Text:
    """One message in its `message_json` form, as ``role: content → tool(args)``."""
    text = Text()
    kind = message["type"]
    role = kind + (f"({message['name']})" if kind == "tool" and message.get("name") else "")
    text.append(f"{role}: ", style=_ROLE_STYLE.get(kind, "bold"))
    content = message["content"]
    text.append(content if isinstance(content, str) else repr(content))
    for call in message.get("tool_calls") or ():
        args = ", ".join(f"{k}={v!r}" for k, v in call.get("args", {}).items())
        text.append(f"  → {call.get('name')}({args})", style="cyan")
    return text
