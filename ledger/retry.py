"""The one retry helper: call again after transient failures, with capped exponential backoff.

    result = call_with_retry(fetch, backoff=Backoff(attempts=5), transient=is_transient)

`Backoff` says how long to wait between attempts (doubling from `initial` up to `cap`) and
when to stop (after `attempts` calls, or once `deadline` seconds have passed since the first).
The caller says which failures are worth another attempt; any other failure propagates at
once. Polling loops use the same helper: the polled function raises `NotYet` until it has
something to return.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a polled function: nothing to return yet, ask again after the next delay.

    Control flow between a poll and `call_with_retry`, never meant to reach a caller: give
    `call_with_retry` a `give_up` that says what running out of time means.
    """


@dataclass(frozen=True)
class Backoff:
    """The delays between attempts, and when to stop.

    Attributes:
        initial: seconds before the second attempt; each later delay doubles. Every delay is
            at most `cap`.
        cap: the longest delay.
        attempts: calls in all (the first included); None: as many as `deadline` allows.
        deadline: seconds from the first call after which no new attempt starts (a delay is
            cut short so that one last attempt runs at the deadline); None: no time limit.
    """

    initial: float = 0.05
    cap: float = 2.0
    attempts: int | None = 5
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.attempts is None and self.deadline is None:
            raise ValueError("a backoff needs attempts or a deadline, or it never gives up")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.initial < 0 or self.cap < 0:
            raise ValueError(f"delays cannot be negative, got {self.initial} and {self.cap}")

    def delays(self) -> Iterator[float]:
        """The waits between attempts: `attempts - 1` of them (endless without `attempts`)."""
        delay = min(self.initial, self.cap)
        count = 0
        while self.attempts is None or count < self.attempts - 1:
            yield delay
            count += 1
            delay = min(delay * 2, self.cap)


def is_not_yet(exc: BaseException) -> bool:
    """The `transient` predicate of a plain poll: only `NotYet` is worth waiting for."""
    return isinstance(exc, NotYet)


def call_with_retry(
    fn: Callable[[], T],
    *,
    backoff: Backoff,
    transient: Callable[[Exception], bool],
    give_up: Callable[[Exception, int], BaseException] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`fn()`, called again after each failure that `transient` accepts, until it returns.

    Args:
        fn: the operation; each call is one attempt.
        backoff: the delays between attempts and when to stop.
        transient: whether a failure is worth another attempt.
        give_up: builds what to raise once attempts or time run out, from the last failure
            and the number of attempts made (raised `from` that failure); None: re-raise the
            last failure itself.
        sleep, clock: the waiting and the time, for tests.

    Raises:
        Whatever `fn` raised that `transient` refuses, at once; once `backoff` is spent, what
        `give_up` builds, or else the last transient failure.
    """
    started = clock()
    delays = backoff.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not transient(exc):
                raise
            delay = next(delays, None)
            if backoff.deadline is not None and delay is not None:
                left = backoff.deadline - (clock() - started)
                delay = None if left <= 0 else min(delay, left)
            if delay is None:
                if give_up is None:
                    raise
                raise give_up(exc, attempt) from exc
        # Outside the handler: the failure is not kept alive (with its frames) while we sleep.
        sleep(delay)
