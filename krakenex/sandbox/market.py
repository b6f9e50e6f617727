"""Synthetic, seeded market data for :mod:`krakenex.sandbox`.

Everything here is a pure function of the seed and the sandbox's start time:
two sandboxes built with the same seed serve the same prices, volumes and ids
(times are shifted by the difference of their start times). Standard library
only. :class:`Market` is not thread-safe; the sandbox calls it under its lock.
"""

from __future__ import annotations

import bisect
import copy
import math
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from itertools import islice
from typing import NamedTuple

D = Decimal


@dataclass(frozen=True)
class AssetSpec:
    """One row of Kraken's public ``Assets`` table."""

    name: str
    altname: str
    decimals: int
    display_decimals: int


@dataclass(frozen=True)
class PairSpec:
    """One row of Kraken's public ``AssetPairs`` table, plus how the sandbox animates it."""

    name: str
    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    cost_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick_size: Decimal
    start_price: Decimal  # the mid price when the sandbox starts
    book_step: int  # ticks between two levels of the synthetic book
    lot: Decimal  # a typical trade size, in base units


# Asset names, altnames and precisions as Kraken's Assets endpoint lists them
# (the old assets carry X/Z prefixes; newer ones like SOL do not).
ASSETS: dict[str, AssetSpec] = {a.name: a for a in (
    AssetSpec('XXBT', 'XBT', 10, 5),
    AssetSpec('XETH', 'ETH', 10, 5),
    AssetSpec('SOL', 'SOL', 10, 5),
    AssetSpec('ZUSD', 'USD', 4, 2),
)}

# Pair names, precisions, minimums and tick sizes as Kraken's AssetPairs endpoint
# lists them (ordermin/costmin/tick_size values of the real pairs, rounded).
PAIRS: dict[str, PairSpec] = {p.name: p for p in (
    PairSpec('XXBTZUSD', 'XBTUSD', 'XBT/USD', 'XXBT', 'ZUSD', 1, 5,
             D('0.00005'), D('0.5'), D('0.1'), D('60000.0'), 10, D('0.5')),
    PairSpec('XETHZUSD', 'ETHUSD', 'ETH/USD', 'XETH', 'ZUSD', 2, 5,
             D('0.002'), D('0.5'), D('0.01'), D('3000.00'), 10, D('5')),
    PairSpec('XETHXXBT', 'ETHXBT', 'ETH/XBT', 'XETH', 'XXBT', 5, 10,
             D('0.002'), D('0.00002'), D('0.00001'), D('0.05000'), 1, D('5')),
    PairSpec('SOLUSD', 'SOLUSD', 'SOL/USD', 'SOL', 'ZUSD', 2, 5,
             D('0.02'), D('0.5'), D('0.01'), D('150.00'), 1, D('50')),
)}

#: Earn balances: ``<altname>.B`` is an asset's balance in yield-bearing products,
#: as Kraken's Balance shows it.
EARN_ASSETS: dict[str, AssetSpec] = {
    f'{a.altname}.B': AssetSpec(f'{a.altname}.B', f'{a.altname}.B', a.decimals,
                                a.display_decimals)
    for a in ASSETS.values() if a.name != 'ZUSD'}

LOT_DECIMALS = 8  # every Kraken spot pair quotes volumes with 8 decimals

# Kraken's spot fee schedule (percent by 30-day USD volume), as AssetPairs reports it.
FEES_TAKER: list[list[float]] = [
    [0, 0.26], [50000, 0.24], [100000, 0.22], [250000, 0.2], [500000, 0.18],
    [1000000, 0.16], [2500000, 0.14], [5000000, 0.12], [10000000, 0.1]]
FEES_MAKER: list[list[float]] = [
    [0, 0.16], [50000, 0.14], [100000, 0.12], [250000, 0.1], [500000, 0.08],
    [1000000, 0.06], [2500000, 0.04], [5000000, 0.02], [10000000, 0.0]]

# OHLC intervals in minutes that Kraken accepts; it never serves more than 720 rows.
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
OHLC_ROWS = 720
SPREAD_ROWS = 200  # Kraken keeps "the last ~200" spreads

HISTORY_TRADES = 9000  # public trades per pair before the start
#: ... spread over the last 25 hours, so that the ticker's 24 hours, the candles of
#: those hours and the Trades pages all count the same trades on the same tape
HISTORY_SECONDS = 25 * 3600
#: Most trades come in bursts: the share of trades that follow the one before within
#: a burst, and how much shorter a gap within a burst is than a quiet one.
BURST_SHARE = 0.6
BURST_GAP = 0.02
VOLATILITY = 1e-4  # price noise per square-root second (about 60 % a year)
BOOK_LEVELS = 1000  # levels on each side of the synthetic book
#: The book's shape, drawn once per seed and pair: the spread of each move (ticks
#: from the mid to the best bid and to the best ask, one to :data:`MAX_SPREAD_TICKS`),
#: repeated every :data:`SHAPE_MOVES` moves, and :data:`SIZE_VARIANTS` sizes per level,
#: a level taking the next one every few moves.
SHAPE_MOVES = 256
MAX_SPREAD_TICKS = 6
SIZE_VARIANTS = 4
#: Levels away from the mid rest thicker: a level's typical size grows by this
#: share of the first level's per level, up to :data:`THICKEST` times it.
THICKENING = 0.05
THICKEST = 6.0
#: Public trades a pair's tape keeps (ten of Kraken's 1000-trade pages); older ones are
#: folded into the candles and the ticker's windows, so a market that moves for days
#: keeps a bounded size. The tape is trimmed :data:`TRIM_BATCH` trades at a time.
TAPE_TRADES = 10_000
TRIM_BATCH = 1000


def places(d: Decimal, n: int) -> str:
    """``d`` as a fixed-point string with exactly ``n`` decimals (Kraken's number format)."""
    return f'{d.quantize(D(1).scaleb(-n), ROUND_HALF_UP):f}'


def asset_decimals(name: str) -> int:
    """The decimals of a spot or earn asset, by its Kraken name."""
    spec = ASSETS.get(name) or EARN_ASSETS[name]
    return spec.decimals


def find_pair(text: str) -> PairSpec | None:
    """The pair named by its Kraken name, altname or wsname (any case; BTC means XBT)."""
    wanted = text.strip().upper().replace('BTC', 'XBT')
    for spec in PAIRS.values():
        if wanted in (spec.name, spec.altname, spec.wsname):
            return spec
    return None


def find_asset(text: str) -> AssetSpec | None:
    """The asset named by its Kraken name or altname (any case; BTC means XBT)."""
    wanted = text.strip().upper().replace('BTC', 'XBT')
    for spec in ASSETS.values():
        if wanted in (spec.name, spec.altname):
            return spec
    return None


class Trade(NamedTuple):
    """A public trade: what the ``Trades`` endpoint lists."""

    time_ns: int
    price: Decimal
    volume: Decimal
    side: str  # 'b' or 's'
    ordertype: str  # 'm' or 'l'
    trade_id: int


class Candle(NamedTuple):
    """One OHLC row before formatting."""

    time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    vwap: Decimal
    volume: Decimal
    trades: int


def _ticks(spec: PairSpec, price: float) -> Decimal:
    """``price`` rounded to the pair's tick size (at least one tick)."""
    return spec.tick_size * max(1, round(price / float(spec.tick_size)))


def _lots(amount: float) -> Decimal:
    """``amount`` truncated to Kraken's 8 volume decimals (at least 1e-8)."""
    return D(max(1, int(amount * 1e8))).scaleb(-LOT_DECIMALS)


@lru_cache(maxsize=32)
def _trade_history(seed: int, pair: str) -> tuple[tuple[int, Decimal, Decimal, str, str], ...]:
    """Seeded trades before the start: (ns before start, price, volume, side, type), oldest first.

    The newest trade is at the pair's start price; a random walk goes backwards from it.
    """
    spec = PAIRS[pair]
    rng = random.Random(f'{seed}/{pair}/trades')
    bursts = [rng.random() < BURST_SHARE for _ in range(HISTORY_TRADES)]
    gaps = [rng.expovariate(1.0) * (BURST_GAP if burst else 1.0) for burst in bursts]
    scale = HISTORY_SECONDS * 1e9 / sum(gaps)
    rows = []
    offset, log_price = 0, math.log(float(spec.start_price))
    side = 'b'
    for gap, burst in zip(gaps, bursts, strict=True):
        offset += max(1, int(gap * scale))
        price = _ticks(spec, math.exp(log_price))
        volume = _lots(float(spec.lot) * rng.lognormvariate(-1.0, 1.0))
        if not burst:  # a burst keeps to one side: one taker sweeping, or a run of them
            side = rng.choice('bs')
        rows.append((offset, price, volume, side, rng.choice('lmll')))
        log_price -= VOLATILITY * math.sqrt(gap * scale / 1e9) * rng.gauss(0.0, 1.0)
    rows.reverse()
    return tuple(rows)


@lru_cache(maxsize=64)
def _old_candles(seed: int, pair: str, interval: int) -> tuple[Candle, ...]:
    """720 seeded candles that end where the trade history begins (times are indexes)."""
    spec = PAIRS[pair]
    rng = random.Random(f'{seed}/{pair}/ohlc/{interval}')
    close = float(_trade_history(seed, pair)[0][1])
    step = VOLATILITY * math.sqrt(interval * 60)
    candles = []
    for index in range(OHLC_ROWS - 1, -1, -1):
        open_ = close * math.exp(step * rng.gauss(0.0, 1.0))
        high = max(open_, close) * (1 + abs(rng.gauss(0.0, step / 2)))
        low = min(open_, close) * (1 - abs(rng.gauss(0.0, step / 2)))
        count = 1 + int(rng.expovariate(1.0) * interval * 60 * HISTORY_TRADES
                         / HISTORY_SECONDS)
        # the history's typical trade: a lognormal lot, whose mean is exp(-0.5) lots
        volume = _lots(float(spec.lot) * count * 0.6 * rng.uniform(0.5, 1.5))
        o, h, lo, c = (_ticks(spec, v) for v in (open_, high, low, close))
        vwap = _ticks(spec, (float(o) + float(c) + float(h) + float(lo)) / 4)
        candles.append(Candle(index, o, h, lo, c, vwap, volume, count))
        close = open_
    candles.reverse()
    return tuple(candles)


class _Shape(NamedTuple):
    """The seeded shape of one pair's book (see :data:`SHAPE_MOVES`)."""

    #: Ticks from the mid to the best (bid, ask) at each move, modulo SHAPE_MOVES.
    spreads: tuple[tuple[int, int], ...]
    #: By side (bids, asks), by level: the level's SIZE_VARIANTS sizes.
    sizes: tuple[tuple[tuple[Decimal, ...], ...], tuple[tuple[Decimal, ...], ...]]
    #: By side, by level: how many moves a level keeps one size.
    periods: tuple[tuple[int, ...], tuple[int, ...]]


def _spread_ticks(rng: random.Random) -> int:
    """Ticks from the mid to a best price: mostly one, now and then a few more."""
    return min(MAX_SPREAD_TICKS, 1 + int(rng.expovariate(1.5)))


@lru_cache(maxsize=32)
def _shape(seed: int, pair: str) -> _Shape:
    """The seeded spreads and level sizes of ``pair``'s synthetic book."""
    spec = PAIRS[pair]
    rng = random.Random(f'{seed}/{pair}/book')
    spreads = tuple((_spread_ticks(rng), _spread_ticks(rng)) for _ in range(SHAPE_MOVES))
    lot = float(spec.lot)
    sizes = []
    periods = []
    for _side in 'ba':
        levels = []
        for i in range(BOOK_LEVELS):
            typical = lot * min(THICKEST, 1 + THICKENING * i) * rng.lognormvariate(-0.3, 0.5)
            levels.append(tuple(_lots(typical * rng.uniform(0.4, 1.6))
                                for _ in range(SIZE_VARIANTS)))
        sizes.append(tuple(levels))
        periods.append(tuple(rng.randint(1, 8) for _ in range(BOOK_LEVELS)))
    return _Shape(spreads, (sizes[0], sizes[1]), (periods[0], periods[1]))


class _Bucket:
    """Trades of one candle that have left the tape, summed up (oldest first)."""

    __slots__ = ('open', 'high', 'low', 'close', 'volume', 'turnover', 'count')

    def __init__(self, trade: Trade) -> None:
        self.open = self.high = self.low = self.close = trade.price
        self.volume, self.turnover, self.count = trade.volume, trade.price * trade.volume, 1

    def add(self, trade: Trade) -> None:
        """Fold in a trade newer than the ones folded so far."""
        self.high, self.low = max(self.high, trade.price), min(self.low, trade.price)
        self.close = trade.price
        self.volume += trade.volume
        self.turnover += trade.price * trade.volume
        self.count += 1

    def merge(self, newer: _Bucket) -> None:
        """Fold in the trades of ``newer``, all newer than the ones folded so far."""
        self.high, self.low = max(self.high, newer.high), min(self.low, newer.low)
        self.close = newer.close
        self.volume += newer.volume
        self.turnover += newer.turnover
        self.count += newer.count


def _kept_seconds(interval: int) -> int:
    """How far back an interval's folded candles are kept: its 720 rows, and 24 hours."""
    seconds = interval * 60
    return max(OHLC_ROWS, 86400 // seconds + 2) * seconds


class _PairState:
    """Mid price and public trade tape of one pair.

    The tape holds the newest trades (at most :data:`TAPE_TRADES` plus a
    :data:`TRIM_BATCH`); each trade that leaves it is folded into one
    :class:`_Bucket` per OHLC interval, kept as long as a candle or the ticker's
    24 hours can show it, so candles and the ticker count every trade.
    """

    def __init__(self, spec: PairSpec, seed: int, start: float) -> None:
        self.spec = spec
        self.mid = spec.start_price
        self.mid_time = int(start)
        start_ns = int(start * 1e9)
        first_id = random.Random(f'{seed}/{spec.name}/ids').randrange(10**7, 10**8)
        self.trades = [Trade(start_ns - offset, price, volume, side, kind, first_id + i)
                       for i, (offset, price, volume, side, kind)
                       in enumerate(_trade_history(seed, spec.name))]
        self.times = [t.time_ns for t in self.trades]
        self.history_start = self.times[0]  # candles before it are seeded
        #: Trades that left the tape, by OHLC interval, then candle time (oldest first).
        self.folded: dict[int, dict[int, _Bucket]] = {i: {} for i in OHLC_INTERVALS}
        #: The close of the newest folded candle dropped, by interval.
        self.dropped_close: dict[int, Decimal] = {}
        #: The moves of the mid so far (set_price); the book's shape follows them.
        self.moves = 0
        tick = spec.tick_size
        spreads = _shape(seed, spec.name).spreads
        self.spreads = [(t.time_ns // 10**9, t.price - tick * spreads[-n][0],
                         t.price + tick * spreads[-n][1])
                        for n, t in enumerate(reversed(self.trades[-SPREAD_ROWS:]), 1)][::-1]
        self.version = 0  # bumped on every change; part of every cache key
        self.cache: dict[tuple[object, ...], object] = {}

    def remember(self, key: tuple[object, ...], value: object) -> None:
        """Cache ``value`` under ``key`` (a small cache: old entries are dropped)."""
        if len(self.cache) > 32:
            self.cache.clear()
        self.cache[key] = value

    def append(self, trade: Trade) -> None:
        """Put ``trade`` on the tape; fold the oldest trades away once it is full."""
        self.trades.append(trade)
        self.times.append(trade.time_ns)
        self.version += 1
        if len(self.trades) >= TAPE_TRADES + TRIM_BATCH:
            self.fold(len(self.trades) - TAPE_TRADES)

    def fold(self, count: int) -> None:
        """Move the ``count`` oldest trades off the tape into the folded candles."""
        leaving = self.trades[:count]
        del self.trades[:count], self.times[:count]
        minutes: dict[int, _Bucket] = {}  # every interval is whole minutes
        for trade in leaving:
            opened = trade.time_ns // 10**9 // 60 * 60
            bucket = minutes.get(opened)
            if bucket is None:
                minutes[opened] = _Bucket(trade)
            else:
                bucket.add(trade)
        now = int(time.time())
        for interval, buckets in self.folded.items():
            seconds = interval * 60
            for minute, part in minutes.items():
                opened = minute // seconds * seconds
                bucket = buckets.get(opened)
                if bucket is None:
                    buckets[opened] = copy.copy(part)
                else:
                    bucket.merge(part)
            oldest = (now - _kept_seconds(interval)) // seconds * seconds
            while buckets:
                opened = next(iter(buckets))
                if opened >= oldest:
                    break
                self.dropped_close[interval] = buckets.pop(opened).close

    def price_before(self, interval: int, ns: int) -> Decimal | None:
        """The price of the last trade before ``ns``, if the tape or ``interval``'s
        folded candles (whose times are multiples of it) still know it."""
        index = bisect.bisect_left(self.times, ns)
        if index:
            return self.trades[index - 1].price
        for opened in reversed(self.folded[interval]):
            if opened * 10**9 < ns:
                return self.folded[interval][opened].close
        return self.dropped_close.get(interval)


class Market:
    """The synthetic spot market: a seeded history, a mid price per pair, a ladder book."""

    def __init__(self, seed: int, start: float) -> None:
        self.seed = seed
        self.start = start
        self._pairs: dict[str, _PairState] = {}

    def pair(self, spec: PairSpec) -> _PairState:
        """The state of ``spec``'s market, generated on first use."""
        state = self._pairs.get(spec.name)
        if state is None:
            state = self._pairs[spec.name] = _PairState(spec, self.seed, self.start)
        return state

    def mid(self, spec: PairSpec) -> Decimal:
        """The current mid price."""
        return self.pair(spec).mid

    def last_price(self, spec: PairSpec) -> Decimal:
        """The price of the last trade on the tape."""
        return self.pair(spec).trades[-1].price

    # -- the book -----------------------------------------------------------------

    def levels(self, spec: PairSpec, side: str) -> Iterator[tuple[Decimal, Decimal]]:
        """The (price, volume) levels of the asks (``side='a'``) or bids (``'b'``), best first.

        The book is a ladder of :data:`BOOK_LEVELS` levels a side around the mid,
        whose shape (its spread, and each level's size) changes with every move of
        the mid, seeded (:func:`_shape`); levels away from the mid are thicker. It
        does not deplete, so a market order walks it from the top every time, and
        no order walks more than its depth.
        """
        state = self.pair(spec)
        shape = _shape(self.seed, spec.name)
        which = 1 if side == 'a' else 0
        sizes, periods = shape.sizes[which], shape.periods[which]
        moves = state.moves
        first = shape.spreads[moves % SHAPE_MOVES][which]
        sign = 1 if side == 'a' else -1
        for i in range(BOOK_LEVELS):
            price = state.mid + sign * spec.tick_size * (first + i * spec.book_step)
            if price <= 0:
                return
            yield price, sizes[i][(moves // periods[i] + i) % SIZE_VARIANTS]

    def best(self, spec: PairSpec) -> tuple[Decimal, Decimal]:
        """The best bid and ask now (a bid of zero where the book has no bids)."""
        bid = next(self.levels(spec, 'b'), (D(0), D(0)))[0]
        ask = next(self.levels(spec, 'a'))[0]
        return bid, ask

    def top(self, spec: PairSpec, depth: int) -> dict[str, list[tuple[str, str]]]:
        """The best ``depth`` levels of the ``bids`` and ``asks`` as Kraken writes them.

        Each level is (price, volume) text: the price at the pair's precision, the
        volume at 8 decimals. A side has fewer levels where the book runs out (a
        price near zero leaves few bids).
        """
        return {name: [(places(p, spec.pair_decimals), places(q, LOT_DECIMALS))
                       for p, q in islice(self.levels(spec, side), depth)]
                for side, name in (('b', 'bids'), ('a', 'asks'))}

    # -- changes ----------------------------------------------------------------

    def record_trade(self, spec: PairSpec, price: Decimal, volume: Decimal, side: str,
                     ordertype: str) -> int:
        """Append a public trade (a paper fill or a price move) to the tape; its trade id."""
        state = self.pair(spec)
        last = state.trades[-1]
        now_ns = max(time.time_ns(), last.time_ns + 1)
        state.append(Trade(now_ns, price, volume, side, ordertype, last.trade_id + 1))
        return last.trade_id + 1

    def set_price(self, spec: PairSpec, price: Decimal) -> Decimal:
        """Move the mid to ``price`` (rounded to the tick size) and print a trade there."""
        state = self.pair(spec)
        tick = spec.tick_size
        state.mid = max(tick, (price / tick).to_integral_value() * tick)
        state.mid_time = int(time.time())
        state.moves += 1
        side = 'b' if state.mid >= state.trades[-1].price else 's'
        self.record_trade(spec, state.mid, spec.ordermin, side, 'l')
        state.spreads.append((state.mid_time, *self.best(spec)))
        del state.spreads[:-SPREAD_ROWS]
        return state.mid

    # -- public endpoints' data -------------------------------------------------------

    def depth(self, spec: PairSpec, count: int) -> dict[str, list[list[object]]]:
        """The ``Depth`` result for one pair: ``count`` asks (ascending) and bids (descending)."""
        state = self.pair(spec)
        book: dict[str, list[list[object]]] = {}
        for side, key in (('a', 'asks'), ('b', 'bids')):
            rows: list[list[object]] = []
            for price, volume in self.levels(spec, side):
                if len(rows) == count:
                    break
                rows.append([places(price, spec.pair_decimals), places(volume, LOT_DECIMALS),
                             state.mid_time])
            book[key] = rows
        return book

    def trades(self, spec: PairSpec, since: str | None,
               count: int) -> tuple[list[list[object]], str]:
        """``Trades`` rows after ``since`` (oldest first, at most ``count``) and the next cursor.

        ``since`` is a Unix time in seconds (may have decimals) or a previous ``last``
        (nanoseconds). Without it the newest ``count`` trades are returned. A ``since``
        older than the tape starts at its oldest trade (see :data:`TAPE_TRADES`).
        """
        state = self.pair(spec)
        if since is None:
            chosen = state.trades[-count:]
        else:
            start = bisect.bisect_right(state.times, since_ns(since))
            chosen = state.trades[start:start + count]
        rows = [_trade_row(spec, t) for t in chosen]
        if chosen:
            last = str(chosen[-1].time_ns)
        else:
            last = str(state.times[-1] if since is None else since_ns(since))
        return rows, last

    def trades_after(self, spec: PairSpec, trade_id: int) -> list[list[object]]:
        """``Trades`` rows of the trades after the one with ``trade_id``, oldest first.

        Trade ids follow each other on the tape, so this is a slice; an id older than
        the tape gives every trade on it.
        """
        state = self.pair(spec)
        start = max(0, trade_id + 1 - state.trades[0].trade_id)
        return [_trade_row(spec, t) for t in state.trades[start:]]

    def spread(self, spec: PairSpec, since: int | None) -> tuple[list[list[object]], int]:
        """``Spread`` rows newer than ``since`` (seconds) and the next cursor."""
        rows = [[t, places(bid, spec.pair_decimals), places(ask, spec.pair_decimals)]
                for t, bid, ask in self.pair(spec).spreads if since is None or t > since]
        last = self.pair(spec).spreads[-1][0]
        return rows, last

    def ohlc(self, spec: PairSpec, interval: int,
             since: int | None) -> tuple[list[list[object]], int]:
        """``OHLC`` rows (at most 720) and ``last``, the time of the last committed candle.

        With ``since``, rows from the candle that contains ``since`` on are returned,
        so polling with ``since=last`` gets the last committed candle and the current one.
        """
        candles = self._candles(spec, interval)
        last = candles[-2].time
        if since is not None:
            candles = [c for c in candles if c.time + interval * 60 > since]
        d = spec.pair_decimals
        rows: list[list[object]] = [
            [c.time, places(c.open, d), places(c.high, d), places(c.low, d), places(c.close, d),
             places(c.vwap, d), places(c.volume, LOT_DECIMALS), c.trades] for c in candles]
        return rows, last

    def _candles(self, spec: PairSpec, interval: int) -> list[Candle]:
        """The 720 candles ending now: seeded before the history starts, then built from
        the trades folded off the tape and the trades on it."""
        state = self.pair(spec)
        seconds = interval * 60
        current = int(time.time()) // seconds * seconds
        key = ('ohlc', interval, current, state.version)
        cached = state.cache.get(key)
        if isinstance(cached, list):
            return cached
        first = current - (OHLC_ROWS - 1) * seconds
        history_start = state.history_start // 10**9 // seconds * seconds
        old = _old_candles(self.seed, spec.name, interval)
        folded = state.folded[interval]
        candles: list[Candle] = []
        index = bisect.bisect_left(state.times, first * 10**9)
        before = state.price_before(interval, first * 10**9)
        close = old[-1].close if before is None else before
        for opened in range(first, current + 1, seconds):
            if opened < history_start:
                candles.append(old[(opened - history_start) // seconds]._replace(time=opened))
                continue
            end = bisect.bisect_left(state.times, (opened + seconds) * 10**9, lo=index)
            chunk, index = state.trades[index:end], end
            bucket = folded.get(opened)
            if bucket is None and not chunk:
                candles.append(Candle(opened, close, close, close, close, close, D(0), 0))
                continue
            prices = [t.price for t in chunk]
            volume = sum((t.volume for t in chunk), D(0))
            turnover = sum((t.price * t.volume for t in chunk), D(0))
            count = len(chunk)
            if bucket is not None:  # its trades are older than the tape's in this candle
                prices = [bucket.open, bucket.high, bucket.low, bucket.close, *prices]
                volume, turnover = volume + bucket.volume, turnover + bucket.turnover
                count += bucket.count
            close = prices[-1]
            candles.append(Candle(opened, prices[0], max(prices), min(prices), close,
                                  turnover / volume, volume, count))
        state.remember(key, candles)
        return candles

    def ticker(self, spec: PairSpec) -> dict[str, object]:
        """The ``Ticker`` entry of one pair, in Kraken's string formats."""
        state = self.pair(spec)
        now = time.time()
        key = ('ticker', int(now), state.version)
        cached = state.cache.get(key)
        if isinstance(cached, dict):
            return cached
        midnight = int(now) // 86400 * 86400
        last = state.trades[-1]
        windows = []
        # today, and the last 24 hours from the start of the minute 24 hours ago
        for since in (midnight, (int(now) - 86400) // 60 * 60):
            chunk = state.trades[bisect.bisect_left(state.times, since * 10**9):]
            buckets = [b for opened, b in state.folded[1].items() if opened >= since]
            volume = sum((t.volume for t in chunk), D(0)) + sum((b.volume for b in buckets), D(0))
            turnover = (sum((t.price * t.volume for t in chunk), D(0))
                        + sum((b.turnover for b in buckets), D(0)))
            count = len(chunk) + sum(b.count for b in buckets)
            vwap = turnover / volume if count else last.price
            prices = ([t.price for t in chunk] + [b.low for b in buckets]
                      + [b.high for b in buckets]) or [last.price]
            windows.append((volume, vwap, count, min(prices), max(prices)))
        # today's opening price: the last trade before midnight (UTC)
        opening = state.price_before(1, midnight * 10**9)
        if opening is None:  # no trade before midnight: the oldest one known
            opening = next((b.open for b in state.folded[1].values()), state.trades[0].price)
        d = spec.pair_decimals

        def level(side: str) -> list[str]:
            best = next(self.levels(spec, side), None)
            if best is None:  # no bids below a price of one tick
                return [places(D(0), d), '0', places(D(0), 3)]
            price, volume = best
            return [places(price, d), str(max(1, int(volume))), places(volume, 3)]

        result: dict[str, object] = {
            'a': level('a'),
            'b': level('b'),
            'c': [places(last.price, d), places(last.volume, LOT_DECIMALS)],
            'v': [places(w[0], LOT_DECIMALS) for w in windows],
            'p': [places(w[1], d) for w in windows],
            't': [w[2] for w in windows],
            'l': [places(w[3], d) for w in windows],
            'h': [places(w[4], d) for w in windows],
            'o': places(opening, d),
        }
        state.remember(key, result)
        return result


def _trade_row(spec: PairSpec, trade: Trade) -> list[object]:
    """A trade as a row of Kraken's ``Trades``: price, volume, time, side, type, misc, id."""
    return [places(trade.price, spec.pair_decimals), places(trade.volume, LOT_DECIMALS),
            round(trade.time_ns / 1e9, 4), trade.side, trade.ordertype, '', trade.trade_id]


def since_ns(since: str) -> int:
    """A ``since`` cursor in nanoseconds: Unix seconds (maybe with decimals) or a ns id.

    Raises :class:`ValueError` for anything else.
    """
    if not re.fullmatch(r'[0-9]{1,20}(?:\.[0-9]{0,9})?', since):
        raise ValueError(since)
    value = D(since)
    return int(value) if value >= 10**15 else int(value * 10**9)
