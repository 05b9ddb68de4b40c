"""Retry policy for transient faults (provider unavailable, optimistic conflicts), on tenacity."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import attrs
import tenacity

from commerce_core.errors import TransientStoreError

__all__ = ["RetryPolicy", "retry_transactions"]

T = TypeVar("T")
P = ParamSpec("P")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded both in attempts and in total time.

    ``sleep`` is injectable so tests run without waiting.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    initial: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    maximum: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    jitter: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    total: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def immediate(cls, attempts: int = 4) -> RetryPolicy:
        """The same number of attempts with no waiting: for tests and demos."""
        return cls(attempts=attempts, initial=0, maximum=0, jitter=0, sleep=lambda _: None)

    @classmethod
    def for_store(cls) -> RetryPolicy:
        """The default for store transactions: deadlocks and serialization failures pass in
        milliseconds, so retry soon and often (8 attempts within 5 s)."""
        return cls(attempts=8, initial=0.005, maximum=0.25, jitter=0.02, total=5.0)

    def call(self, fn: Callable[[], T], *, retry_on: tuple[type[BaseException], ...]) -> T:
        """Call ``fn``, again on one of ``retry_on`` until the policy gives up; then re-raise.

        The first try is a plain call: tenacity's machinery (a few dozen calls a try) is
        set up only once it has failed, and then replays that failure as its own first
        attempt, so the waits, the attempts and the total time are tenacity's as before."""
        started = time.monotonic()
        try:
            return fn()
        except retry_on as exc:
            if self.attempts == 1:
                raise
            failed: BaseException | None = exc

        def attempt() -> T:
            nonlocal failed
            if failed is not None:
                replayed, failed = failed, None
                raise replayed
            return fn()

        # the total counts from the first try, which tenacity did not see
        spent = time.monotonic() - started
        retrying = tenacity.Retrying(
            stop=(tenacity.stop_after_attempt(self.attempts)
                  | tenacity.stop_after_delay(max(0.0, self.total - spent))),
            # initial * 2**n capped at maximum, plus up to ``jitter`` seconds of random spread
            wait=tenacity.wait_exponential(multiplier=self.initial, max=self.maximum)
            + tenacity.wait_random(0, self.jitter),
            retry=tenacity.retry_if_exception_type(retry_on),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)


class _HasStoreRetry(Protocol):
    store_retry: RetryPolicy


S = TypeVar("S", bound=_HasStoreRetry)


def retry_transactions(
    method: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[S, P], T]:
    """Run a service method again, whole, when its transaction failed with
    `TransientStoreError` (the database rolled it back), by the instance's ``store_retry``.

    Only for methods that are one transaction, or several that are each safe to repeat:
    the method must not have had an effect outside the store before it fails.
    """

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.store_retry.call(lambda: method(self, *args, **kwargs),
                                     retry_on=(TransientStoreError,))

    return wrapper
