"""The Unified WebSocket's public data: the futures sandbox's market in Spot v2's shapes.

Instruments, books, tickers, trades and candles of the contracts of
:mod:`krakenex.sandbox.futures.market`, read under the futures exchange's lock,
so the Unified WebSocket shows the same market as Kraken Futures' REST paths of
the same sandbox. Numbers go out as wire text at each contract's precisions.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from .feed import Levels, Raw
from .futures.exchange import FuturesExchange
from .futures.market import BY_SYMBOL, INSTRUMENTS, Instrument
from .market import places
from .replies import iso

__all__ = ['UnifiedMarket', 'price_precision', 'OHLC_RESOLUTIONS', 'TICK_TYPES']

#: ``ohlc`` intervals in minutes and the futures charts' resolution of each (Spot v2's
#: 21600 has no chart resolution, so it is refused).
OHLC_RESOLUTIONS = {1: '1m', 5: '5m', 15: '15m', 30: '30m', 60: '1h', 240: '4h',
                    1440: '1d', 10080: '1w'}
#: ``ohlc``'s ``tick_type`` values (the futures charts' tick types); ``trade`` by default.
TICK_TYPES = ('trade', 'mark', 'spot')
#: Candles an ``ohlc`` snapshot carries.
OHLC_SNAPSHOT = 10


T = TypeVar('T')


def price_precision(instrument: Instrument) -> int:
    """Decimals of a contract's price: those of its tick size."""
    return max(0, -int(instrument.tick.normalize().as_tuple().exponent))


def _text(value: Decimal, decimals: int) -> Raw:
    return Raw(places(Decimal(value), decimals))


class UnifiedMarket:
    """The futures market of one sandbox, as the Unified WebSocket's channels carry it."""

    def __init__(self, exchange: FuturesExchange) -> None:
        self.exchange = exchange
        #: What was last made of each (kind, contract, ...), with the market state it was
        #: made from: every subscriber of the same data shares one making of it.
        self._made: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}

    def _once(self, key: tuple[Any, ...], instrument: Instrument, timed: bool,
              make: Callable[[], T]) -> T:
        """``make()``, made again only when the contract's mark, tape or resting orders have
        changed (or, if ``timed``, a second has passed: tickers and candles follow the clock)."""
        with self.exchange.lock:
            market = self.exchange.market
            state = (market.marks[instrument.symbol], market.last_trade_id[instrument.symbol],
                     tuple(market.resting(instrument.symbol)),
                     int(self.exchange.clock()) if timed else 0)
        made = self._made.get(key)
        if made is None or made[0] != state:
            made = self._made[key] = (state, make())
        return made[1]

    @staticmethod
    def find(symbol: Any) -> Instrument | None:
        """The contract a symbol names exactly (``PF_XBTUSD``), or None."""
        return BY_SYMBOL.get(symbol) if isinstance(symbol, str) else None

    @staticmethod
    def instrument() -> dict[str, Any]:
        """The ``instrument`` snapshot: every contract as a Spot v2 pair."""
        assets = sorted({'USD'} | {i.base for i in INSTRUMENTS})
        pairs = []
        for i in INSTRUMENTS:
            step = Decimal(1).scaleb(-i.precision)
            pairs.append({
                'symbol': i.symbol, 'base': i.base, 'quote': 'USD', 'status': 'online',
                'price_precision': price_precision(i), 'qty_precision': i.precision,
                'price_increment': _text(i.tick, price_precision(i)),
                'qty_increment': _text(step, i.precision), 'qty_min': _text(step, i.precision),
                'marginable': True, 'has_index': True, 'contract_type': i.tag})
        return {'assets': [{'id': a, 'status': 'enabled', 'margin_rate': None}
                           for a in assets], 'pairs': pairs}

    def levels(self, instrument: Instrument, depth: int) -> Levels:
        """The top ``depth`` levels of the futures REST ``orderbook`` as wire text."""
        return self._once(('book', instrument.symbol, depth), instrument, False,
                          lambda: self._levels(instrument, depth))

    def _levels(self, instrument: Instrument, depth: int) -> Levels:
        with self.exchange.lock:
            book = self.exchange.market.orderbook({'symbol': instrument.symbol})['orderBook']
        pp, qp = price_precision(instrument), instrument.precision
        return {side: [(places(price, pp), places(size, qp)) for price, size in book[side][:depth]]
                for side in ('bids', 'asks')}

    def ticker(self, instrument: Instrument) -> dict[str, Any]:
        """Spot v2's ticker fields, with the mark and index prices, funding and open interest."""
        return self._once(('ticker', instrument.symbol), instrument, True,
                          lambda: self._ticker(instrument))

    def _ticker(self, instrument: Instrument) -> dict[str, Any]:
        with self.exchange.lock:
            t = self.exchange.market.ticker(instrument)
        pp, qp = price_precision(instrument), instrument.precision
        volume = Decimal(t['vol24h'])
        vwap = Decimal(t['volumeQuote']) / volume if volume else Decimal(t['last'])
        change = Decimal(t['last']) - Decimal(t['open24h'])
        return {'symbol': instrument.symbol, 'bid': _text(t['bid'], pp),
                'bid_qty': _text(t['bidSize'], qp), 'ask': _text(t['ask'], pp),
                'ask_qty': _text(t['askSize'], qp), 'last': _text(t['last'], pp),
                'volume': _text(volume, qp), 'vwap': _text(vwap, pp),
                'low': _text(t['low24h'], pp), 'high': _text(t['high24h'], pp),
                'change': _text(change, pp), 'change_pct': _text(
                    change / Decimal(t['open24h']) * 100, 2),
                'mark_price': _text(t['markPrice'], pp), 'index_price': _text(t['indexPrice'], pp),
                'funding_rate': t.get('fundingRate'), 'open_interest': _text(t['openInterest'], qp)}

    def trades(self, instrument: Instrument, after: int | None = None,
               count: int = 50) -> list[dict[str, Any]]:
        """The newest ``count`` trades, or with ``after`` every trade after that trade id."""
        with self.exchange.lock:
            if after is not None and after >= self.exchange.market.last_trade_id[
                    instrument.symbol]:
                return []
            tape = list(self.exchange.market.trades[instrument.symbol])
        rows = tape[-count:] if after is None else [t for t in tape if t['trade_id'] > after]
        pp, qp = price_precision(instrument), instrument.precision
        return [{'symbol': instrument.symbol, 'side': t['side'], 'price': _text(t['price'], pp),
                 'qty': _text(t['size'], qp), 'ord_type': 'limit', 'trade_id': t['trade_id'],
                 'timestamp': t['time']} for t in rows]

    def last_trade_id(self, instrument: Instrument) -> int:
        with self.exchange.lock:
            return self.exchange.market.last_trade_id[instrument.symbol]

    def candles(self, instrument: Instrument, interval: int,
                tick_type: str) -> list[dict[str, Any]]:
        """The newest candles of the futures charts of ``tick_type``, as Spot v2's ``ohlc``."""
        return self._once(('ohlc', instrument.symbol, interval, tick_type), instrument, True,
                          lambda: self._candles(instrument, interval, tick_type))

    def _candles(self, instrument: Instrument, interval: int,
                 tick_type: str) -> list[dict[str, Any]]:
        path = f'{tick_type}/{instrument.symbol}/{OHLC_RESOLUTIONS[interval]}'
        with self.exchange.lock:
            rows = self.exchange.market.charts(path, {'count': str(OHLC_SNAPSHOT)})['candles']
        out = []
        for row in rows:  # the charts' prices as they write them
            high, low, close = (Decimal(row[k]) for k in ('high', 'low', 'close'))
            typical = ((high + low + close) / 3).quantize(Decimal(row['close']))
            out.append({'symbol': instrument.symbol, 'open': Raw(row['open']),
                        'high': Raw(row['high']), 'low': Raw(row['low']),
                        'close': Raw(row['close']), 'vwap': Raw(str(typical)),
                        'volume': _text(Decimal(row['volume']), instrument.precision),
                        'trades': 0, 'interval': interval, 'tick_type': tick_type,
                        'interval_begin': iso(row['time'] / 1000)})
        return out
