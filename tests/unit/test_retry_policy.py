"""`RetryPolicy.call`: a plain first try, then tenacity's attempts and waits, as configured."""

from __future__ import annotations

import time

import pytest

from commerce_core import RetryPolicy, TransientStoreError


class Flaky:
    def __init__(self, failures: int, error: type[Exception] = TransientStoreError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"try {self.calls} failed")
        return "done"


def _policy(sleeps: list[float], attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, initial=0.01, maximum=0.04, jitter=0,
                       sleep=sleeps.append)


def test_a_first_try_that_works_neither_sleeps_nor_tries_again() -> None:
    sleeps: list[float] = []
    fn = Flaky(0)
    assert _policy(sleeps).call(fn, retry_on=(TransientStoreError,)) == "done"
    assert (fn.calls, sleeps) == (1, [])


def test_failed_tries_wait_exponentially_and_the_last_try_counts() -> None:
    sleeps: list[float] = []
    fn = Flaky(3)
    assert _policy(sleeps).call(fn, retry_on=(TransientStoreError,)) == "done"
    # four tries in all: the first plain, three more after waits of 0.01, 0.02, 0.04
    assert fn.calls == 4
    assert sleeps == pytest.approx([0.01, 0.02, 0.04])


def test_when_the_attempts_run_out_the_last_error_is_raised() -> None:
    sleeps: list[float] = []
    fn = Flaky(10)
    with pytest.raises(TransientStoreError, match="try 4 failed"):
        _policy(sleeps).call(fn, retry_on=(TransientStoreError,))
    assert fn.calls == 4 and len(sleeps) == 3


def test_one_attempt_means_no_retry() -> None:
    sleeps: list[float] = []
    fn = Flaky(1)
    with pytest.raises(TransientStoreError, match="try 1 failed"):
        _policy(sleeps, attempts=1).call(fn, retry_on=(TransientStoreError,))
    assert fn.calls == 1 and sleeps == []


def test_an_error_not_named_is_raised_at_once() -> None:
    sleeps: list[float] = []
    fn = Flaky(1, ValueError)
    with pytest.raises(ValueError, match="try 1 failed"):
        _policy(sleeps).call(fn, retry_on=(TransientStoreError,))
    assert fn.calls == 1 and sleeps == []


def test_the_total_time_counts_from_the_first_try() -> None:
    # a first try that used up the policy's total leaves no time for another
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, initial=0, maximum=0, jitter=0, total=0.05,
                         sleep=sleeps.append)
    calls = 0

    def slow_then_failing() -> None:
        nonlocal calls
        calls += 1
        time.sleep(0.06)
        raise TransientStoreError("slow")

    with pytest.raises(TransientStoreError):
        policy.call(slow_then_failing, retry_on=(TransientStoreError,))
    assert calls == 1
