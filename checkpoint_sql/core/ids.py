"""Thread, namespace and checkpoint ids: what is accepted, and the keys they map to.

Every public method turns its config into an `Address` here first, so a bad id is
refused with a message naming it before any SQL runs.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from checkpoint_sql.core.bounds import check_string
from checkpoint_sql.errors import CheckpointSQLError, InvalidConfigError

CHECKPOINT_ID_MAX = 64
"""Longest checkpoint id accepted; LangGraph\'s are 36-character uuid6 strings."""

TEXT_ID_MAX = 65_536
"""Longest thread id or namespace accepted, in characters. They are keyed by hash, so
the limit only bounds row size; 10,000-character ids work on every engine."""


def key_of(text: str) -> bytes:
    """The 16-byte key of a thread id or namespace (BLAKE2b-128 of its UTF-8)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _preview(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:40] + "...")


def check_text(
    value: str,
    what: str,
    *,
    allow_empty: bool = False,
    max_length: int = TEXT_ID_MAX,
    error: type[CheckpointSQLError] = InvalidConfigError,
) -> str:
    """A caller-chosen id or name that every engine can store and key: not empty
    (unless `allow_empty`), bounded, no NUL (PostgreSQL cannot store it), valid Unicode.
    Refused with `error`, naming `what`."""
    if not value and not allow_empty:
        raise error(f"{what} must not be empty")
    if len(value) > max_length:
        raise error(f"{what} {_preview(value)} is {len(value)} characters long; at most {max_length} are accepted")
    return check_string(value, what, error=error)


def thread_id_of(value: Any, what: str = "thread_id") -> str:
    """A thread id as stored: strings as they are, ints and UUIDs as their text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        raise InvalidConfigError(f"{what} must be a str, int or UUID, not {type(value).__name__} ({value!r:.60})")
    return check_text(str(value), what)


def checkpoint_id_of(value: Any, what: str = "checkpoint_id") -> str | None:
    """A checkpoint id, or None for "the latest" (LangGraph passes None or "")."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidConfigError(f"{what} must be a str, not {type(value).__name__} ({value!r:.60})")
    if len(value) > CHECKPOINT_ID_MAX or not value.isascii() or not value.isprintable():
        raise InvalidConfigError(
            f"{what} {_preview(value)} is not a checkpoint id (printable ASCII, at most "
            f"{CHECKPOINT_ID_MAX} characters; LangGraph's are uuid6 strings)"
        )
    return value


@dataclass(frozen=True, slots=True)
class Address:
    """Where a config points: a thread, a namespace (None = every namespace), and a
    checkpoint (None = the latest)."""

    thread_id: str
    checkpoint_ns: str | None
    checkpoint_id: str | None
    thread_key: bytes
    ns_key: bytes | None

    @property
    def ns(self) -> str:
        return self.checkpoint_ns or ""

    def config(self, checkpoint_id: str | None = None) -> RunnableConfig:
        """The config LangGraph expects back for checkpoint `checkpoint_id` here."""
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.ns,
                "checkpoint_id": checkpoint_id or self.checkpoint_id,
            }
        }


def address_of(config: Any, *, operation: str, default_ns: bool = True) -> Address:
    """Parse and validate `config["configurable"]`.

    `default_ns`: a config without ``checkpoint_ns`` means the root namespace
    (`get_tuple`, `put`), or every namespace when False (`list`).
    """
    if not isinstance(config, Mapping):
        raise InvalidConfigError(f"{operation}: config must be a mapping, not {type(config).__name__}")
    configurable = config.get("configurable")
    if not isinstance(configurable, Mapping):
        raise InvalidConfigError(
            f"{operation}: config has no 'configurable' mapping; pass {{'configurable': {{'thread_id': ...}}}}"
        )
    if configurable.get("thread_id") is None:
        raise InvalidConfigError(
            f"{operation}: config['configurable'] has no 'thread_id'; a checkpointer needs "
            "one to know which conversation to save or load"
        )
    thread_id = thread_id_of(configurable["thread_id"])
    ns = configurable.get("checkpoint_ns")
    if ns is None and default_ns:
        ns = ""
    if ns is not None:
        if not isinstance(ns, str):
            raise InvalidConfigError(f"{operation}: checkpoint_ns must be a str, not {type(ns).__name__}")
        check_text(ns, "checkpoint_ns", allow_empty=True)
    return Address(
        thread_id=thread_id,
        checkpoint_ns=ns,
        checkpoint_id=checkpoint_id_of(configurable.get("checkpoint_id")),
        thread_key=key_of(thread_id),
        ns_key=None if ns is None else key_of(ns),
    )
