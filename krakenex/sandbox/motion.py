"""A seeded random walk of the sandbox's prices, so that its feeds move on their own.

:class:`Motion` moves every pair's price by a small step on a timer: a whole
number of ticks (at least one, up or down), drawn from a generator seeded by
the sandbox's seed, with the spread of :data:`~krakenex.sandbox.market.VOLATILITY`
over the time between steps. Each step trades the market at the new price
through :meth:`Exchange.set_price <krakenex.sandbox.exchange.Exchange.set_price>`,
under the exchange lock, so resting limit orders and stops fill exactly as on
:meth:`Sandbox.set_price <krakenex.sandbox.Sandbox.set_price>`. The futures
contracts follow: after the spot pairs, each contract's mark moves by its
underlying pair's (``PF_XBTUSD`` by ``XXBTZUSD``'s) relative step, at least one of
its own ticks the same way, through
:meth:`FuturesExchange.set_price <krakenex.sandbox.futures.exchange.FuturesExchange.set_price>`.
Two sandboxes with the same seed walk the same path, step for step. Standard
library only.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from decimal import ROUND_HALF_EVEN, Decimal

from .exchange import Exchange
from .futures.exchange import FuturesExchange
from .futures.market import INSTRUMENTS, Instrument
from .market import PAIRS, VOLATILITY, PairSpec

__all__ = ['Motion', 'underlying']

log = logging.getLogger('krakenex.sandbox')


class Motion:
    """The walk of one exchange's prices; a thread steps it every ``interval`` seconds.

    :param exchange: the exchange whose prices move
    :param seed: the seed of the walk
    :param interval: seconds between two steps; None: no thread, only :meth:`step`
    :param futures: the futures exchange whose contracts follow the spot pairs, if any
    :ivar join_timeout: seconds :meth:`stop` waits for the stepping thread to end
    """

    join_timeout = 5.0

    def __init__(self, exchange: Exchange, *, seed: int, interval: float | None,
                 futures: FuturesExchange | None = None) -> None:
        if interval is not None and not (math.isfinite(interval) and interval > 0):
            raise ValueError(f'motion must be a positive number of seconds, not {interval!r}')
        self.exchange = exchange
        self.futures = futures
        self.interval = interval
        self.steps = 0
        self._rng = random.Random(f'{seed}/motion')
        self._stop = threading.Event()  # each run has its own: one set stays set
        self._thread: threading.Thread | None = None

    def step(self) -> dict[str, Decimal]:
        """Move every pair once, then every futures contract; the new spot prices by
        Kraken pair name."""
        moved, before = {}, {}
        scale = VOLATILITY * math.sqrt(self.interval or 1.0)
        with self.exchange.lock:  # one step is seen whole, and never interleaves with another
            for spec in PAIRS.values():
                mid = before[spec.name] = self.exchange.market.mid(spec)
                draw = self._rng.gauss(0.0, 1.0)
                ticks = max(1, round(abs(draw) * scale * float(mid / spec.tick_size)))
                price = max(spec.tick_size, mid + spec.tick_size * (ticks if draw >= 0 else -ticks))
                self.exchange.set_price(spec, price)
                moved[spec.name] = self.exchange.market.mid(spec)
            self.steps += 1
        if self.futures is not None:  # under its own lock, never inside the spot one
            self._follow(self.futures, before, moved)
        return moved

    @staticmethod
    def _follow(futures: FuturesExchange, before: dict[str, Decimal],
                after: dict[str, Decimal]) -> None:
        """Move each contract's mark as its underlying spot pair just moved."""
        with futures.lock:
            for instrument in INSTRUMENTS:
                spec = underlying(instrument)
                old, new = before[spec.name], after[spec.name]
                if new == old:
                    continue
                mark, tick = futures.market.marks[instrument.symbol], instrument.tick
                price = (mark * new / old / tick).to_integral_value(ROUND_HALF_EVEN) * tick
                if price == mark:  # a spot tick can be less than a contract's: one of its own
                    price = mark + (tick if new > old else -tick)
                futures.set_price(instrument.symbol, max(tick, price))

    def start(self) -> None:
        """Step on a thread of its own until :meth:`stop` (nothing without an interval)."""
        if self.interval is None or self._thread is not None:
            return
        # a fresh event: a thread that outlived the join of a stop still sees its own set
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self.interval, self._stop),
                                        name='krakenex-sandbox-motion', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop stepping and join the thread (safe to repeat); a thread caught in a
        step longer than :attr:`join_timeout` ends after that step."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=self.join_timeout)

    def _run(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.step()
            except Exception:  # a fault of the sandbox's own: keep serving, and say so
                log.exception('the sandbox market could not move')


def underlying(instrument: Instrument) -> PairSpec:
    """The spot pair a futures contract follows: its base against USD."""
    return next(spec for spec in PAIRS.values() if spec.altname == f'{instrument.base}USD')
