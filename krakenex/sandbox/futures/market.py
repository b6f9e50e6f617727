"""The futures sandbox's market: contracts, mark prices, the book, trades and candles.

Seeded, so a sandbox with the same seed shows the same market. Standard library only.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from ..market import TAPE_TRADES, TRIM_BATCH
from .params import Refusal, integer, iso, need, number, only, parse_time

__all__ = ['Instrument', 'INSTRUMENTS', 'BY_SYMBOL', 'RESOLUTIONS', 'TICK_TYPES', 'FuturesMarket']

D = Decimal


@dataclass(frozen=True)
class Instrument:
    """One futures contract."""

    symbol: str
    base: str
    tick: Decimal
    precision: int  # contractValueTradePrecision: decimals of a size
    price: Decimal  # the mark price it starts at
    tag: str = 'perpetual'
    last_trading: str | None = None

    def to_kraken(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            'symbol': self.symbol, 'pair': f'{self.base}:USD', 'base': self.base, 'quote': 'USD',
            'type': 'flexible_futures', 'tradeable': True, 'tickSize': self.tick,
            'contractSize': 1, 'contractValueTradePrecision': self.precision,
            'impactMidSize': 1, 'maxPositionSize': 1000000, 'postOnly': False,
            'openingDate': '2022-01-01T00:00:00.000Z', 'category': 'Layer 1', 'tags': [],
            'tradfi': False, 'mtf': False, 'marginLevels': [
                {'numNonContractUnits': 0, 'initialMargin': 0.02, 'maintenanceMargin': 0.01}],
            'retailMarginLevels': [
                {'numNonContractUnits': 0, 'initialMargin': 0.02, 'maintenanceMargin': 0.01}],
        }
        if self.tag == 'perpetual':
            spec.update(fundingRateCoefficient=8, maxRelativeFundingRate=0.001)
        else:
            spec['lastTradingTime'] = self.last_trading
        return spec


INSTRUMENTS = (
    Instrument('PF_XBTUSD', 'XBT', D(1), 4, D(60000)),
    Instrument('PF_ETHUSD', 'ETH', D('0.1'), 3, D(3000)),
    Instrument('FF_XBTUSD_261225', 'XBT', D(1), 4, D(60500), 'month',
               '2026-12-25T16:00:00.000Z'),
)
BY_SYMBOL = {i.symbol: i for i in INSTRUMENTS}
DAY = 86400

#: The most candles one charts request answers with: a longer range gets the first 2,000
#: and ``more_candles`` (measured at Kraken; its docs say 5,000).
MAX_CANDLES = 2000
#: The latest time a chart's ``from`` or ``to`` may name: the end of the year 9999.
LATEST = 253402300799
RESOLUTIONS = {'1m': 60, '5m': 300, '15m': 900, '30m': 1800, '1h': 3600, '4h': 14400,
               '12h': 43200, '1d': 86400, '1w': 604800}
TICK_TYPES = ('spot', 'mark', 'trade')


class FuturesMarket:
    """Mark prices, suspended markets and public trades of every contract.

    :param seed: makes trades and candles reproducible
    :param clock: the time source (seconds since the epoch)
    """

    def __init__(self, *, seed: int, clock: Callable[[], float]) -> None:
        self.seed = seed
        self.clock = clock
        self.rng = random.Random(f'futures-market:{seed}')
        #: The mark price of each contract.
        self.marks = {i.symbol: i.price for i in INSTRUMENTS}
        #: Contracts whose market is suspended.
        self.suspended: set[str] = set()
        #: Public trades of each contract, oldest first: the newest ``TAPE_TRADES`` (as the
        #: spot tape keeps them) plus up to a ``TRIM_BATCH`` not yet folded away.
        self.trades: dict[str, list[dict[str, Any]]] = {s: [] for s in BY_SYMBOL}
        #: Trades that left the tape, by contract and minute: [open, high, low, size, cost],
        #: kept 24 hours for the ticker.
        self.folded: dict[str, dict[int, list[Decimal]]] = {s: {} for s in BY_SYMBOL}
        self.last_trade_id = {s: 0 for s in BY_SYMBOL}
        #: The resting limit orders of a contract, as ``(side, price, size)``: the exchange
        #: that holds the orders sets it, so the book shows them.
        self.resting: Callable[[str], list[tuple[str, Decimal, Decimal]]] = lambda symbol: []
        self._seed_trades()

    def _uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def instrument(self, symbol: str | None) -> Instrument:
        instrument = BY_SYMBOL.get((symbol or '').upper())
        if instrument is None:
            raise Refusal('invalidArgument')
        return instrument

    def quote(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        """Best bid and ask: one basis point either side of the mark, on the tick."""
        mark, tick = self.marks[instrument.symbol], instrument.tick
        spread = max(tick, mark / 10000)
        bid = ((mark - spread) / tick).to_integral_value(ROUND_DOWN) * tick
        ask = ((mark + spread) / tick).to_integral_value(ROUND_UP) * tick
        return bid, ask

    def _seed_trades(self) -> None:
        now = self.clock()
        for instrument in INSTRUMENTS:
            for i in range(150, 0, -1):
                price = instrument.price * (1 + D(self.rng.uniform(-0.002, 0.002)))
                price = (price / instrument.tick).to_integral_value() * instrument.tick
                size = D(self.rng.randint(1, 5000)) / D(10) ** instrument.precision
                self.trade(instrument, self.rng.choice(('buy', 'sell')), size, price,
                            now - i * 30)

    def trade(self, instrument: Instrument, side: str, size: Decimal, price: Decimal,
               when: float | None = None) -> None:
        symbol = instrument.symbol
        trades = self.trades[symbol]
        self.last_trade_id[symbol] += 1
        trades.append({'time': iso(self.clock() if when is None else when),
                       'trade_id': self.last_trade_id[symbol], 'price': price, 'size': size,
                       'side': side, 'type': 'fill', 'uid': self._uid()})
        if len(trades) >= TAPE_TRADES + TRIM_BATCH:
            self._fold(symbol, len(trades) - TAPE_TRADES)

    def _fold(self, symbol: str, count: int) -> None:
        """Move the ``count`` oldest trades off the tape into minutes the ticker still sums."""
        trades, minutes = self.trades[symbol], self.folded[symbol]
        for trade in trades[:count]:
            price, size = trade['price'], trade['size']
            row = minutes.setdefault(int(parse_time(trade['time']) // 60),
                                     [price, price, price, D(0), D(0)])
            row[1], row[2] = max(row[1], price), min(row[2], price)
            row[3] += size
            row[4] += size * price
        del trades[:count]
        oldest = int((self.clock() - DAY) // 60)
        for minute in [m for m in minutes if m < oldest]:
            del minutes[minute]

    def known(self, symbol: str) -> Instrument:
        instrument = BY_SYMBOL.get(symbol.upper())
        if instrument is None:
            raise Refusal('notFound', 404)
        return instrument

    def instruments(self, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'contractType'})
        return {'instruments': [i.to_kraken() for i in INSTRUMENTS]}

    def instruments_status(self, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'contractType'})
        return {'instrumentStatus': [
            {'tradeable': i.symbol, 'experiencingDislocation': False,
             'priceDislocationDirection': None, 'experiencingExtremeVolatility': False,
             'extremeVolatilityInitialMarginMultiplier': 1} for i in INSTRUMENTS]}

    def ticker(self, instrument: Instrument) -> dict[str, Any]:
        bid, ask = self.quote(instrument)
        trades = self.trades[instrument.symbol]
        since = self.clock() - DAY
        day = [t for t in trades if parse_time(t['time']) > since] or trades
        # trades folded off the tape count by the minute: the 24 hours start at a whole one
        folded = [row for minute, row in sorted(self.folded[instrument.symbol].items())
                  if minute >= since // 60]
        prices = [t['price'] for t in day]
        opening = folded[0][0] if folded else prices[0]
        mark = self.marks[instrument.symbol]
        ticker: dict[str, Any] = {
            'symbol': instrument.symbol, 'tag': instrument.tag, 'pair': f'{instrument.base}:USD',
            'markPrice': mark, 'bid': bid, 'bidSize': D(2), 'ask': ask, 'askSize': D(2),
            'vol24h': sum((t['size'] for t in day), sum((r[3] for r in folded), D(0))),
            'volumeQuote': sum((t['size'] * t['price'] for t in day),
                               sum((r[4] for r in folded), D(0))),
            'openInterest': D(1000), 'open24h': opening,
            'high24h': max(prices + [r[1] for r in folded]),
            'low24h': min(prices + [r[2] for r in folded]), 'indexPrice': mark,
            'last': trades[-1]['price'],
            'lastTime': trades[-1]['time'], 'lastSize': trades[-1]['size'],
            'suspended': instrument.symbol in self.suspended, 'postOnly': False,
            'change24h': float((trades[-1]['price'] - opening) / opening * 100)}
        if instrument.tag == 'perpetual':
            ticker.update(fundingRate=D('0.0000001'), fundingRatePrediction=D('0.0000001'))
        return ticker

    def tickers(self, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'contractType'})
        return {'tickers': [self.ticker(i) for i in INSTRUMENTS]}

    def orderbook(self, params: dict[str, str]) -> dict[str, Any]:
        """20 seeded levels a side around the mark, with the resting orders added in."""
        only(params, {'symbol'})
        instrument = self.instrument(need(params, 'symbol'))
        bid, ask = self.quote(instrument)
        rng = random.Random(f'{self.seed}:{instrument.symbol}:{self.marks[instrument.symbol]}')
        unit = D(1) / D(10) ** instrument.precision

        def size() -> Decimal:
            return D(rng.randint(1000, 50000)) * unit

        levels = {'bids': {bid - i * instrument.tick: size() for i in range(20)},
                  'asks': {ask + i * instrument.tick: size() for i in range(20)}}
        for side, price, open_size in self.resting(instrument.symbol):
            book = levels['bids' if side == 'buy' else 'asks']
            book[price] = book.get(price, D(0)) + open_size
        return {'orderBook': {
            side: [[price, book[price]] for price in sorted(book, reverse=side == 'bids')]
            for side, book in levels.items()}}

    def history(self, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'symbol', 'lastTime'})
        instrument = self.instrument(need(params, 'symbol'))
        trades = self.trades[instrument.symbol]
        if 'lastTime' in params:
            before = parse_time(params['lastTime'])
            trades = [t for t in trades if parse_time(t['time']) < before]
        return {'history': list(reversed(trades[-100:]))}

    def fee_schedules(self, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        return {'feeSchedules': [{'uid': '7fc4d7c0-464f-4029-a9bb-55856d0c5247',
                                  'name': 'PGTMainFees', 'tiers': [
                                      {'makerFee': 0.02, 'takerFee': 0.05, 'usdVolume': 0.0}]}]}

    def charts(self, rest: str, params: dict[str, str]) -> Any:
        parts = [p for p in rest.split('/') if p]
        if not parts:
            return list(TICK_TYPES)
        if parts[0] not in TICK_TYPES or len(parts) > 3:
            raise Refusal('notFound', 404)
        if len(parts) == 1:
            return [i.symbol for i in INSTRUMENTS]
        instrument = self.known(parts[1])
        if len(parts) == 2:
            return list(RESOLUTIONS)
        step = RESOLUTIONS.get(parts[2])
        if step is None:
            raise Refusal('notFound', 404)
        try:
            only(params, {'from', 'to', 'count'})
        except Refusal:
            raise Refusal('invalidArgument', 400) from None
        now = int(self.clock())
        count = integer(params, 'count', 0, status=400)
        if count < 0:
            raise Refusal('invalidArgument', 400)
        count = min(count or MAX_CANDLES, MAX_CANDLES)
        end = min(_epoch(params, 'to', now), now) // step * step  # no candle of the future
        start = _epoch(params, 'from', max(0, end - step * (count - 1))) // step * step
        if start > end:
            raise Refusal('invalidArgument', 400)
        total = (end - start) // step + 1  # counted, never listed: from=0 is 29 million
        times = [start + i * step for i in range(min(total, count))]
        candles = []
        for t in times:
            rng = random.Random(f'{self.seed}:{instrument.symbol}:{parts[0]}:{step}:{t}')
            base = float(self.marks[instrument.symbol]) * (1 + 0.01 * math.sin(t / step / 24))
            high, low = base * (1 + rng.uniform(0, 0.002)), base * (1 - rng.uniform(0, 0.002))
            open_, close = rng.uniform(low, high), rng.uniform(low, high)
            candles.append({'time': t * 1000, 'open': f'{open_:.1f}', 'high': f'{high:.1f}',
                            'low': f'{low:.1f}', 'close': f'{close:.1f}',
                            'volume': rng.randint(0, 500)})
        return {'candles': candles, 'more_candles': len(times) < total}


def _epoch(params: dict[str, str], name: str, default: int) -> int:
    """A chart's ``from`` or ``to``: seconds since 1970, from 0 to :data:`LATEST`.

    :raises Refusal: ``invalidArgument`` (HTTP 400) for anything else, such as -3e9
    """
    if name not in params:
        return default
    value = number(params[name], status=400)
    if not 0 <= value <= LATEST:
        raise Refusal('invalidArgument', 400)
    return int(value)
