"""Client-side copy of Kraken's per-key REST call counter, to wait instead of being refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ['TIERS', 'RateCounter']

#: Kraken's REST call counter per verification tier: (maximum, decay per second).
#: Source: Kraken's "Spot REST Rate Limits" page (kraken-protocol.md §5.1).
TIERS: dict[str, tuple[float, float]] = {
    'starter': (15.0, 0.33),
    'intermediate': (20.0, 0.5),
    'pro': (20.0, 1.0),
}


class RateCounter:
    """A counter that rises by each call's cost and decays every second, like Kraken's.

    :meth:`acquire` blocks until the call fits under the maximum, so calls run at
    the highest rate the tier allows. Safe to share between threads; waiting
    callers are served one at a time.

    :raises ValueError: unless the maximum and the decay are positive
    """

    def __init__(self, maximum: float, decay: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if maximum <= 0 or decay <= 0:
            raise ValueError(f'a rate tier needs a positive maximum and decay, '
                             f'not {maximum!r} and {decay!r}')
        self.maximum = maximum
        self.decay = decay
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._stamp = clock()
        self._lock = threading.Lock()

    @classmethod
    def for_tier(cls, tier: str | tuple[float, float]) -> RateCounter:
        """Build the counter of a named tier, or of a ``(maximum, decay)`` pair.

        :raises ValueError: for an unknown tier name or a non-positive value
        """
        if isinstance(tier, str):
            if tier not in TIERS:
                raise ValueError(f'unknown rate tier {tier!r}: use one of '
                                 f'{", ".join(TIERS)} or a (maximum, decay) pair')
            return cls(*TIERS[tier])
        maximum, decay = tier
        return cls(float(maximum), float(decay))

    def level(self) -> float:
        """The counter's value now."""
        with self._lock:
            return self._decayed()

    def _decayed(self) -> float:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._stamp) * self.decay)
        self._stamp = now
        return self._level

    def acquire(self, cost: float) -> float:
        """Wait until ``cost`` fits under the maximum, then add it.

        :returns: the time the call was counted, to pass to :meth:`settle`
        """
        if cost <= 0:
            return self._clock()
        with self._lock:
            while (over := self._decayed() + cost - self.maximum) > 0:
                self._sleep(over / self.decay)
            self._level += cost
            return self._stamp

    def settle(self, cost: float, counted_at: float) -> None:
        """Move a call's cost to the moment its reply arrived.

        Kraken counts the call when the request reaches it, which is after
        :meth:`acquire` counted it here; without this the two counters would
        drift apart by the latency of every call.
        """
        if cost <= 0:
            return
        with self._lock:
            self._decayed()
            self._level += min(cost, (self._stamp - counted_at) * self.decay)

    @contextmanager
    def counting(self, cost: float) -> Iterator[None]:
        """Wait for room for a call of ``cost``, run it, then settle its cost."""
        counted_at = self.acquire(cost)
        try:
            yield
        finally:
            self.settle(cost, counted_at)
