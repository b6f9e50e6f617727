"""The leaky counter behind every Kraken limit the sandbox keeps.

Kraken meters its users with counters that drain at a steady rate: the spot REST
call counter of a key, the trading engine's counter of a key on a pair, the
futures ``/derivatives`` budget and ``/history`` pool of a key, a WebSocket
connection's message rate, and the public calls of an address. A call adds its
cost; a call that would take the counter past the maximum is refused and adds
nothing. A token bucket of capacity ``C`` refilled at ``r`` a second is the same
counter read the other way round (tokens left = ``C`` minus the level), so
:class:`Counter` serves it too. Each user of a counter keeps its own limits,
which may change while it runs; the counter keeps only its level and when it was
last read. Standard library only.
"""

from __future__ import annotations

__all__ = ['Counter']


class Counter:
    """A level that drains at ``decay`` a second, never below zero.

    :param level: the level at ``stamp``
    :param stamp: when the level was last read, on the clock its user passes as ``now``
    """

    __slots__ = ('level', 'stamp')

    def __init__(self, level: float = 0.0, stamp: float = 0.0) -> None:
        self.level = level
        self.stamp = stamp

    def __repr__(self) -> str:
        return f'Counter(level={self.level!r}, stamp={self.stamp!r})'

    def drain(self, decay: float, now: float) -> float:
        """The level at ``now``, after draining at ``decay`` a second since it was last read."""
        self.level = max(0.0, self.level - decay * (now - self.stamp))
        self.stamp = now
        return self.level

    def charge(self, cost: float, maximum: float, decay: float, now: float, *,
               always: bool = False) -> bool:
        """Add ``cost`` if the level stays within ``maximum``; whether it was added.

        :param always: add it even past the maximum (what Kraken's engine does for
            batch cancels); the answer is still whether it fitted
        """
        level = self.drain(decay, now)
        fits = level + cost <= maximum
        if fits or always:
            self.level = level + cost
        return fits
