"""`RetryPolicy`: run a whole database operation again when it fails transiently.

One policy object serves the saver wrapper (`RetryingSaver`) and the companion stores
alike: anything that can be expressed as "call this function; one call is one
transaction" gets retried with ``policy.call(fn, *args)`` or ``await
policy.acall(fn, *args)``.

Why retry whole calls only: a transaction that failed was rolled back by the server (or
never reached it), so the only unit that is safe to repeat is the whole transaction.
Whether repeating it is *harmless* (it may have committed just before the connection
dropped) is for the operation to guarantee; see `RetryingSaver` for the saver's.

Backoff, stop condition and the sleep hook are tenacity's; the classification of errors
is ours (`checkpoint_sql.retry.transient`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from sqlalchemy import exc as sa_exc

from checkpoint_sql.core.engines import mask
from checkpoint_sql.errors import ConfigurationError, RetryExhaustedError
from checkpoint_sql.retry import transient

T = TypeVar("T")

LOGGER = logging.getLogger("checkpoint_sql.retry.policy")


class Backoff(tenacity.wait.wait_base):
    """``min(base * 2**n + uniform(0, jitter), cap)`` seconds before retry n (from 0).

    The jitter is inside the cap so that `max_delay` really is the longest wait; it
    spreads the retries of many clients that lost the same server at the same moment.
    """

    def __init__(self, base: float, cap: float, jitter: float) -> None:
        self.base, self.cap, self.jitter = base, cap, jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        retry = retry_state.attempt_number - 1
        exponential = self.cap if retry >= 64 else self.base * 2**retry
        return min(exponential + random.uniform(0, self.jitter), self.cap)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient database fault.

    Args:
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts).
        base_delay: seconds before the first retry; each further retry doubles it.
        max_delay: the longest wait between two attempts, jitter included.
        jitter: up to this many seconds are added at random to each wait.
        is_transient: an extra classifier, consulted in addition to the default
            `checkpoint_sql.retry.transient.is_transient`: an error is retried when either
            says so (e.g. ``lambda e: isinstance(e, MyPoolTimeout)``).
        logger: where each retry is reported at WARNING; ``checkpoint_sql.retry.policy`` by default.
        sleep, asleep: the sync and async sleep tenacity calls between attempts.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    is_transient: transient.Classifier | None = None
    logger: logging.Logger = LOGGER
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be an int >= 0, not {self.max_retries!r}")
        for name in ("base_delay", "max_delay", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, not {value!r}")

    def retries(self, exc: BaseException) -> bool:
        """Whether this policy retries `exc`."""
        return transient.is_transient(exc) or (self.is_transient is not None and self.is_transient(exc))

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, called again after each transient failure within the budget."""
        retrying = tenacity.Retrying(sleep=self.sleep, **self._settings(fn))
        try:
            return retrying(fn, *args, **kwargs)
        except tenacity.RetryError as gave_up:
            raise self._exhausted(fn, gave_up) from gave_up.last_attempt.exception()

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, awaited again after each transient failure."""
        retrying = tenacity.AsyncRetrying(sleep=self.asleep, **self._settings(fn))
        try:
            return await retrying(fn, *args, **kwargs)
        except tenacity.RetryError as gave_up:
            raise self._exhausted(fn, gave_up) from gave_up.last_attempt.exception()

    def _settings(self, fn: Callable[..., Any]) -> dict[str, Any]:
        operation = operation_name(fn)

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            self.logger.warning(
                "%s failed on attempt %d of %d with %s; retrying in %.2f s",
                operation,
                state.attempt_number,
                self.max_retries + 1,
                describe(error),
                delay,
                extra={
                    "operation": operation,
                    "attempt": state.attempt_number,
                    "delay": delay,
                    "error_class": type(error).__name__,
                },
            )

        return {
            "stop": tenacity.stop_after_attempt(self.max_retries + 1),
            "wait": Backoff(self.base_delay, self.max_delay, self.jitter),
            "retry": tenacity.retry_if_exception(self.retries),
            "before_sleep": log_retry,
        }

    def _exhausted(self, fn: Callable[..., Any], gave_up: tenacity.RetryError) -> RetryExhaustedError:
        operation = operation_name(fn)
        attempts = gave_up.last_attempt.attempt_number
        plural = "" if attempts == 1 else "s"
        return RetryExhaustedError(
            f"{operation} failed after {attempts} attempt{plural} (max_retries={self.max_retries}); "
            f"the last one with {describe(gave_up.last_attempt.exception())}",
            operation=operation,
            attempts=attempts,
        )


def operation_name(fn: Callable[..., Any]) -> str:
    """``SQLSaver.put``, ``RetryingSaver.list.fetch``: what the logs call an operation."""
    target = getattr(fn, "func", fn)  # functools.partial
    name = getattr(target, "__qualname__", None) or type(target).__name__
    return str(name).replace(".<locals>", "")


def describe(error: BaseException | None) -> str:
    """The error's class and the first line of the driver's message, never a password.

    SQLAlchemy's own text would add the statement and its parameters (checkpoint
    payloads); the driver's first line is what an operator needs.
    """
    if error is None:
        return "no error"
    detail = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig is not None else error
    lines = str(detail).strip().splitlines()
    first = mask(lines[0])[:200] if lines else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
