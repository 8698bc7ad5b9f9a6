"""ledger.retry: the backoff schedule, giving up, and retrying only what is transient."""

from __future__ import annotations

import pytest

from ledger.chain import RetryPolicy
from ledger.retry import Backoff, NotYet, call_with_retry, is_not_yet


class Flaky(Exception):
    """A failure the tests call transient."""


class FakeTime:
    """A clock that moves only when slept on, and the sleeps it saw."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class Failing:
    """Raises `error` on its first `times` calls, then returns `then`; `calls` counts them."""

    def __init__(self, times: int, then: object = "done", error: type[Exception] = Flaky):
        self.times = times
        self.then = then
        self.error = error
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error(f"failure {self.calls}")
        return self.then


def transient(exc: Exception) -> bool:
    return isinstance(exc, Flaky)


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.1, cap=0.5, attempts=6)
    assert list(backoff.delays()) == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert list(Backoff(attempts=1).delays()) == []
    assert list(Backoff(initial=3.0, cap=1.0, attempts=3).delays()) == [1.0, 1.0]


def test_retry_policy_is_the_public_face_of_a_backoff() -> None:
    policy = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.03)
    assert list(policy.delays()) == [0.01, 0.02, 0.03]
    assert policy.backoff == Backoff(initial=0.01, cap=0.03, attempts=4)


def test_transient_failures_are_retried_after_each_delay() -> None:
    t = FakeTime()
    fn = Failing(3)
    result = call_with_retry(
        fn,
        backoff=Backoff(initial=0.1, cap=1.0, attempts=5),
        transient=transient,
        sleep=t.sleep,
        clock=t.clock,
    )
    assert result == "done"
    assert fn.calls == 4
    assert t.sleeps == [0.1, 0.2, 0.4]


def test_it_gives_up_after_the_last_attempt() -> None:
    t = FakeTime()
    fn = Failing(10)
    with pytest.raises(Flaky, match="failure 3"):
        call_with_retry(
            fn, backoff=Backoff(initial=0.1, attempts=3), transient=transient, sleep=t.sleep
        )
    assert fn.calls == 3
    assert t.sleeps == [0.1, 0.2]


def test_giving_up_raises_what_give_up_builds_from_the_last_failure() -> None:
    seen: list[tuple[str, int]] = []

    def give_up(exc: Exception, attempts: int) -> Exception:
        seen.append((str(exc), attempts))
        return TimeoutError(f"gave up after {attempts}")

    t = FakeTime()
    with pytest.raises(TimeoutError, match="gave up after 4") as info:
        call_with_retry(
            Failing(10),
            backoff=Backoff(attempts=4),
            transient=transient,
            give_up=give_up,
            sleep=t.sleep,
        )
    assert seen == [("failure 4", 4)]
    assert isinstance(info.value.__cause__, Flaky)


def test_other_failures_are_not_retried() -> None:
    t = FakeTime()
    fn = Failing(1, error=KeyError)
    with pytest.raises(KeyError, match="failure 1"):
        call_with_retry(
            fn,
            backoff=Backoff(attempts=5),
            transient=transient,
            give_up=lambda exc, n: AssertionError("not a transient failure"),
            sleep=t.sleep,
        )
    assert fn.calls == 1
    assert t.sleeps == []


def test_a_deadline_cuts_the_last_delay_short_and_stops() -> None:
    t = FakeTime()
    fn = Failing(100, error=NotYet)
    with pytest.raises(TimeoutError):
        call_with_retry(
            fn,
            backoff=Backoff(initial=0.3, cap=0.3, attempts=None, deadline=1.0),
            transient=is_not_yet,
            give_up=lambda exc, n: TimeoutError(f"{n} attempts"),
            sleep=t.sleep,
            clock=t.clock,
        )
    assert t.sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert fn.calls == 5  # one last attempt at the deadline


def test_a_poll_returns_as_soon_as_there_is_something() -> None:
    t = FakeTime()
    result = call_with_retry(
        Failing(2, then=42, error=NotYet),
        backoff=Backoff(initial=0.01, cap=0.01, attempts=None, deadline=10.0),
        transient=is_not_yet,
        sleep=t.sleep,
        clock=t.clock,
    )
    assert result == 42
    assert t.sleeps == [0.01, 0.01]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": None, "deadline": None},  # would never give up
        {"attempts": 0},
        {"initial": -1.0},
    ],
)
def test_a_backoff_that_makes_no_sense_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]
