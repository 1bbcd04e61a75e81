"""Every public method of the saver, the retrying saver, the stores, the sweepers and
`Storage` has an async twin (``aname`` for ``name``, as LangGraph's own ``aget_tuple``
and ``abatch``) that takes the same parameters: names, kinds, defaults and
annotations. Only the result differs, and only as sync and async differ: an
``Iterator`` is an ``AsyncIterator``, the future of a thread is an asyncio ``Task``.
A method without a twin is listed in `NO_TWIN` with the reason."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from checkpoint_sql import RetentionSweeper, RetryingSaver, SessionStore, ShortMemoryStore, SQLSaver, SQLStore
from checkpoint_sql.core.periodic import Periodic
from checkpoint_sql.storage import Storage

CLASSES: list[type[Any]] = [
    SQLSaver,
    RetryingSaver,
    SQLStore,
    SessionStore,
    ShortMemoryStore,
    RetentionSweeper,
    Periodic,
    Storage,
]

NO_TWIN = {
    "from_conn_string": "builds the object, which serves sync and async callers alike; nothing runs until first use",
    "get_next_version": "LangGraph's channel version arithmetic: no I/O, and BaseCheckpointSaver has no async twin",
    "with_allowlist": "LangGraph's copy of the saver with a serde allowlist: no I/O",
}

CONTEXT_MANAGER_TWINS = [("__enter__", "__aenter__"), ("__exit__", "__aexit__")]

ASYNC_SHAPE: dict[Any, Any] = {Iterator: AsyncIterator, concurrent.futures.Future: asyncio.Task}
"""What a sync result is, returned by the async twin."""


def public_methods(cls: type[Any]) -> set[str]:
    return {
        name
        for name in dir(cls)
        if not name.startswith("_")
        and callable(getattr(cls, name))
        and not isinstance(inspect.getattr_static(cls, name), type)
    }


def twins(cls: type[Any]) -> list[tuple[str, str]]:
    names = public_methods(cls)
    pairs = [(name, f"a{name}") for name in sorted(names) if f"a{name}" in names]
    return pairs + [pair for pair in CONTEXT_MANAGER_TWINS if hasattr(cls, pair[0])]


def as_async(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    return ASYNC_SHAPE[origin][typing.get_args(annotation)] if origin in ASYNC_SHAPE else annotation


def is_async(method: Any) -> bool:
    returns = inspect.signature(method, eval_str=True).return_annotation
    return (
        inspect.iscoroutinefunction(method)
        or inspect.isasyncgenfunction(method)
        or typing.get_origin(returns) is AsyncIterator
    )


def parameters(method: Any) -> list[tuple[str, Any, Any, Any]]:
    signature = inspect.signature(method, eval_str=True)
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


PAIRS = [(cls, sync, asynchronous) for cls in CLASSES for sync, asynchronous in twins(cls)]


@pytest.mark.parametrize(("cls", "sync", "asynchronous"), PAIRS, ids=[f"{c.__name__}.{s}" for c, s, _ in PAIRS])
def test_the_async_twin_takes_the_same_parameters_and_returns_the_same_thing(
    cls: type[Any], sync: str, asynchronous: str
) -> None:
    method, twin = getattr(cls, sync), getattr(cls, asynchronous)
    assert not is_async(method) and is_async(twin)
    assert parameters(twin) == parameters(method)
    returns = inspect.signature(method, eval_str=True).return_annotation
    assert inspect.signature(twin, eval_str=True).return_annotation == as_async(returns)


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_every_public_method_has_an_async_twin_or_a_reason_not_to(cls: type[Any]) -> None:
    names = public_methods(cls)
    twinned = {name for pair in twins(cls) for name in pair}
    alone = sorted(names - twinned - set(NO_TWIN))
    assert alone == [], f"no async twin (or no sync one): {alone}"
    assert all(not is_async(getattr(cls, name)) for name in names & set(NO_TWIN)), "a twinless method is sync"


def test_every_reason_is_for_a_method_that_exists() -> None:
    assert set(NO_TWIN) <= {name for cls in CLASSES for name in public_methods(cls)}
