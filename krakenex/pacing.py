"""Client-side copy of Kraken's per-key REST call counter, to wait instead of being refused."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ['TIERS', 'RateCounter', 'Joint', 'parse_tier', 'decayed', 'wait_for']

#: Kraken's REST call counter per verification tier: (maximum, decay per second).
#: Source: https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits
TIERS: dict[str, tuple[float, float]] = {
    'starter': (15.0, 0.33),
    'intermediate': (20.0, 0.5),
    'pro': (20.0, 1.0),
}


def parse_tier(tier: str | Sequence[float | str],
               tiers: dict[str, tuple[float, float]] | None = None, *,
               what: str = 'rate tier', limit: str = 'maximum',
               example: str = '15,0.33') -> tuple[float, float]:
    """Read a tier as ``(maximum, decay per second)``: the one parser for every caller.

    :param tier: a tier name (``'starter'``, ``'intermediate'``, ``'pro'``), a
        ``'MAX,DECAY'`` string such as ``'15,0.33'``, or a ``(maximum, decay)`` pair
    :param tiers: the named tiers; Kraken's REST call counter's (:data:`TIERS`) if not given
    :param what: what a tier is called in errors; ``limit``: what its maximum is called;
        ``example``: a pair to show
    :raises ValueError: for an unknown name, or a maximum or decay that is not a
        finite number above zero
    """
    tiers = TIERS if tiers is None else tiers
    if isinstance(tier, str):
        if tier in tiers:
            return tiers[tier]
        parts: Sequence[float | str] = tier.split(',')
    else:
        parts = tier
    try:
        maximum, decay = (float(part) for part in parts)
    except (TypeError, ValueError):
        raise ValueError(f'{tier!r} is not a {what}: use {", ".join(tiers)} or a '
                         f'({limit}, decay) pair such as {example}') from None
    if not all(math.isfinite(v) and v > 0 for v in (maximum, decay)):
        raise ValueError(f'a {what} needs a finite {limit} and decay above 0, '
                         f'not {maximum!r} and {decay!r}')
    return maximum, decay


def decayed(level: float, stamp: float, now: float, decay: float) -> float:
    """A counter's level at ``now`` from its ``level`` at ``stamp``, falling ``decay`` a second.

    A clock that went back (``now`` before ``stamp``) decays nothing.
    """
    return max(0.0, level - max(0.0, now - stamp) * decay)


def wait_for(level: float, cost: float, maximum: float, decay: float) -> float:
    """Seconds until a call of ``cost`` fits under ``maximum`` at ``level``; 0 if it fits now."""
    over = level + cost - maximum
    return over / decay if over > 0 else 0.0


def check_cost(cost: float, maximum: float) -> None:
    """Refuse a cost that could never fit under ``maximum``.

    :raises ValueError: for a cost above the maximum, or not a number
    """
    if not cost <= maximum:
        raise ValueError(f'a call costing {cost!r} can never fit under a rate counter whose '
                         f'maximum is {maximum!r}: lower its cost or raise the tier')


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
        if not (math.isfinite(maximum) and math.isfinite(decay) and maximum > 0 and decay > 0):
            raise ValueError(f'a rate tier needs a finite maximum and decay above 0, '
                             f'not {maximum!r} and {decay!r}')
        self.maximum = maximum
        self.decay = decay
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._stamp = clock()
        self._lock = threading.Lock()

    @classmethod
    def for_tier(cls, tier: str | Sequence[float | str]) -> RateCounter:
        """Build the counter of a tier as :func:`parse_tier` reads it.

        :raises ValueError: for an unknown tier name or a value that is not finite and positive
        """
        return cls(*parse_tier(tier))

    def level(self) -> float:
        """The counter's value now."""
        with self._lock:
            return self._decayed()

    def _decayed(self) -> float:
        now = self._clock()
        self._level = decayed(self._level, self._stamp, now, self.decay)
        self._stamp = now
        return self._level

    def acquire(self, cost: float) -> float:
        """Wait until ``cost`` fits under the maximum, then add it.

        :returns: the time the call was counted, to pass to :meth:`settle`
        :raises ValueError: for a cost above the maximum (it could never fit) or not a number
        """
        while (wait := self.try_acquire(cost)) > 0:
            self._sleep(wait)
        return self._clock()

    def try_acquire(self, cost: float) -> float:
        """Add ``cost`` if it fits now and return 0, or return the seconds until it will fit.

        For callers that wait in their own way (``await asyncio.sleep``).

        :raises ValueError: for a cost above the maximum (it could never fit) or not a number
        """
        check_cost(cost, self.maximum)
        if cost <= 0:
            return 0.0
        with self._lock:
            wait = wait_for(self._decayed(), cost, self.maximum, self.decay)
            if not wait:
                self._level += cost
            return wait

    def settle(self, cost: float, counted_at: float) -> None:
        """Move a call's cost to the moment its reply arrived.

        Kraken counts the call when the request reaches it, which is after
        :meth:`acquire` counted it here; without this the two counters would
        drift apart by the latency of every call.
        """
        if cost > 0:
            self.add(min(cost, (self._clock() - counted_at) * self.decay))

    def add(self, amount: float) -> None:
        """Raise the counter by ``amount`` now, whatever its level."""
        with self._lock:
            self._level = self._decayed() + amount

    def unsent(self, cost: float) -> None:
        """Hear that a call counted here was never sent; this counter keeps it counted."""

    @contextmanager
    def counting(self, cost: float) -> Iterator[None]:
        """Wait for room for a call of ``cost``, run it, then settle its cost."""
        counted_at = self.acquire(cost)
        try:
            yield
        finally:
            self.settle(cost, counted_at)


class Joint(RateCounter):
    """Several counters one call is paced on, each with its own cost: Kraken's REST counter
    and the trading engine's counter of a pair.

    Room is taken on all of them at one moment, or on none: a part taken before
    one that must wait is given back, so no counter's cost decays here while
    the call waits on another and the moment :meth:`acquire` returns is when each
    was counted. Made for one call.

    :param parts: ``(counter, cost)`` pairs; the cost passed to the methods is ignored
    """

    def __init__(self, parts: Sequence[tuple[RateCounter, float]]) -> None:
        super().__init__(max(c.maximum for c, _ in parts), 1.0)
        self.parts = list(parts)
        self._taken = 0
        self._unsent = False

    def try_acquire(self, cost: float) -> float:
        while self._taken < len(self.parts):
            counter, own = self.parts[self._taken]
            wait = counter.try_acquire(own)
            if wait > 0:
                self._give_back()
                return wait
            self._taken += 1
        return 0.0

    def _give_back(self) -> None:
        """Take back what the parts taken so far added."""
        for counter, own in self.parts[:self._taken]:
            counter.add(-own)
        self._taken = 0

    def unsent(self, cost: float) -> None:
        """Take back what a call that was never sent added: Kraken never counted it."""
        self._give_back()
        self._unsent = True

    def settle(self, cost: float, counted_at: float) -> None:
        unsent, self._unsent, self._taken = self._unsent, False, 0  # a retry counts again
        if not unsent:
            for counter, own in self.parts:
                counter.settle(own, counted_at)
