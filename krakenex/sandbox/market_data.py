"""Kraken's market data, as the sandbox answers it: the public methods and Level3.

Prices, books and trades come from the exchange's seeded market
(:class:`~krakenex.sandbox.market.Market`); each handler reads its parameters
with :mod:`krakenex.sandbox.params`.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import re
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from .exchange import (
    Account,
    Exchange,
    PrivateHandler,
    PublicHandler,
)
from .level3 import placed, resting_orders
from .market import (
    ASSETS,
    BOOK_LEVELS,
    FEES_MAKER,
    FEES_TAKER,
    LOT_DECIMALS,
    OHLC_INTERVALS,
    PAIRS,
    PairSpec,
    find_asset,
    find_pair,
    places,
    since_ns,
)
from .params import (
    ApiError,
    Params,
    id_list,
    integer,
    invalid,
    requested_pair,
    requested_pairs,
    text,
)
from .replies import iso, iso_ns

D = Decimal

__all__ = ['MarketData']


class MarketData:
    """Kraken's public market data, and Level3 (a private view of the book)."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: Public handlers by Kraken method name.
        self.public: dict[str, PublicHandler] = {
            'Time': self.server_time,
            'SystemStatus': self.system_status,
            'Assets': self.assets,
            'AssetPairs': self.asset_pairs,
            'Ticker': self.ticker,
            'OHLC': self.ohlc,
            'Depth': self.depth,
            'Trades': self.trades,
            'Spread': self.spread,
            'GroupedBook': self.grouped_book,
            'PreTrade': self.pre_trade,
            'PostTrade': self.post_trade,
            'MaintenanceSchedule': self.maintenance_schedule,
        }
        #: Private handlers by Kraken method name.
        self.private: dict[str, PrivateHandler] = {
            'Level3': self.level3,
        }

    def server_time(self, params: Params) -> object:
        now = time.time()  # Kraken's rfc1123 has a two-digit year
        return {'unixtime': int(now),
                'rfc1123': time.strftime('%a, %d %b %y %H:%M:%S +0000', time.gmtime(now))}

    def system_status(self, params: Params) -> object:
        return {'status': self.exchange.status, 'timestamp': iso(time.time())}

    def assets(self, params: Params) -> object:
        names = id_list(params.get('asset'), 'asset') or list(ASSETS)
        found = [find_asset(name) for name in names]
        if any(spec is None for spec in found):
            raise ApiError('EQuery:Unknown asset')
        return {a.name: {'aclass': 'currency', 'altname': a.altname, 'decimals': a.decimals,
                         'display_decimals': a.display_decimals, 'status': 'enabled'}
                for a in found if a is not None}

    def asset_pairs(self, params: Params) -> object:
        info = text(params, 'info', 'info')
        if info not in ('info', 'leverage', 'fees', 'margin'):
            raise invalid('info')
        result = {}
        for p in requested_pairs(params, required=False):
            full: dict[str, Any] = {
                'altname': p.altname, 'wsname': p.wsname, 'aclass_base': 'currency',
                'base': p.base, 'aclass_quote': 'currency', 'quote': p.quote, 'lot': 'unit',
                'cost_decimals': p.cost_decimals, 'pair_decimals': p.pair_decimals,
                'lot_decimals': LOT_DECIMALS, 'lot_multiplier': 1, 'leverage_buy': [],
                'leverage_sell': [], 'fees': FEES_TAKER, 'fees_maker': FEES_MAKER,
                'fee_volume_currency': 'ZUSD', 'margin_call': 80, 'margin_stop': 40,
                'ordermin': str(p.ordermin), 'costmin': str(p.costmin),
                'tick_size': str(p.tick_size), 'status': 'online'}
            keys = {'leverage': ('leverage_buy', 'leverage_sell'),
                    'fees': ('fees', 'fees_maker', 'fee_volume_currency'),
                    'margin': ('margin_call', 'margin_stop')}.get(info or 'info', tuple(full))
            result[p.name] = {k: full[k] for k in keys}
        return result

    def ticker(self, params: Params) -> object:
        pairs = requested_pairs(params, required=False)
        return {p.name: self.exchange.market.ticker(p) for p in pairs}

    def ohlc(self, params: Params) -> object:
        pair = requested_pair(params)
        interval = integer(params, 'interval', 1, -2**31, 2**31)
        if interval not in OHLC_INTERVALS:
            raise invalid()
        since = integer(params, 'since', -1, 0, 2**63)
        rows, last = self.exchange.market.ohlc(pair, interval, None if since < 0 else since)
        return {pair.name: rows, 'last': last}

    def depth(self, params: Params) -> object:
        pair = requested_pair(params)
        return {pair.name: self.exchange.market.depth(pair, integer(params, 'count', 100, 1, 500))}

    def trades(self, params: Params) -> object:
        pair = requested_pair(params)
        since = text(params, 'since') or None
        try:
            since_ns(since or '0')
        except (ArithmeticError, ValueError):
            raise invalid('since') from None
        count = integer(params, 'count', 1000, 1, 1000)
        rows, last = self.exchange.market.trades(pair, since, count)
        return {pair.name: rows, 'last': last}

    def spread(self, params: Params) -> object:
        pair = requested_pair(params)
        since = integer(params, 'since', -1, 0, 2**63)
        rows, last = self.exchange.market.spread(pair, None if since < 0 else since)
        return {pair.name: rows, 'last': last}

    def grouped_book(self, params: Params) -> object:
        pair = requested_pair(params)
        depth = integer(params, 'depth', 10, 0, 1000)
        grouping = integer(params, 'grouping', 1, 0, 1000)
        if depth not in (10, 25, 100, 250, 1000):
            raise invalid('depth')
        if grouping not in (1, 5, 10, 25, 50, 100, 250, 500, 1000):
            raise invalid('grouping')
        step = pair.tick_size * grouping
        book: dict[str, Any] = {'pair': pair.wsname, 'grouping': grouping}
        for side, key in (('b', 'bids'), ('a', 'asks')):
            levels: dict[Decimal, Decimal] = {}
            for price, volume in self.exchange.market.levels(pair, side):
                rounding = ROUND_CEILING if side == 'a' else ROUND_FLOOR
                level = (price / step).to_integral_value(rounding) * step
                if level not in levels and len(levels) == depth:
                    break
                levels[level] = levels.get(level, D(0)) + volume
            book[key] = [{'price': places(p, pair.pair_decimals), 'qty': places(v, LOT_DECIMALS)}
                         for p, v in levels.items()]
        return book

    def level3(self, account: Account, params: Params) -> object:
        pair = requested_pair(params)
        depth = integer(params, 'depth', 100, 0, 1000)
        if depth not in (0, 10, 25, 100, 250, 1000):
            raise invalid('depth')
        market = self.exchange.market
        book = resting_orders(market, pair, depth or BOOK_LEVELS)
        result: dict[str, Any] = {'pair': pair.wsname}
        for side in ('bids', 'asks'):
            result[side] = [{'price': price, 'qty': qty, 'order_id': order_id,
                             'timestamp': placed(market, position)}
                            for price, orders in book[side]
                            for position, (order_id, qty) in enumerate(orders)]
        return result

    def _symbol(self, params: Params, name: str, *, needed: bool) -> PairSpec | None:
        value = text(params, name)
        if not value:
            if needed:
                raise invalid(name)
            return None
        found = find_pair(value)
        if found is None:
            raise ApiError('EQuery:Unknown asset pair')
        return found

    def pre_trade(self, params: Params) -> object:
        pair = self._symbol(params, 'symbol', needed=True)
        assert pair is not None
        now = iso_ns(time.time_ns())
        result: dict[str, Any] = _transparency(pair)
        for side, key, word in (('b', 'bids', 'BUY'), ('a', 'asks', 'SELL')):
            levels: list[dict[str, Any]] = []
            for price, volume in self.exchange.market.levels(pair, side):
                if len(levels) == 10:
                    break
                levels.append({'side': word, 'price': places(price, pair.pair_decimals),
                               'qty': places(volume, LOT_DECIMALS), 'count': 1,
                               'submission_ts': now, 'publication_ts': now})
            result[key] = levels
        return result

    def post_trade(self, params: Params) -> object:
        pair = self._symbol(params, 'symbol', needed=False)
        start, end = _iso_param(params, 'from_ts'), _iso_param(params, 'to_ts')
        count = integer(params, 'count', 1000, 1, 1000)
        pairs = [pair] if pair else list(PAIRS.values())
        trades = []
        for spec in pairs:
            for trade in self.exchange.market.pair(spec).trades[-count:]:
                if (start is None or trade.time_ns > start) and (end is None
                                                                  or trade.time_ns <= end):
                    trades.append((trade.time_ns, spec, trade))
        trades.sort(key=lambda row: row[0])
        trades = trades[-count:]
        rows = [{'trade_id': _public_trade_id(spec, trade.trade_id),
                 'price': places(trade.price, spec.pair_decimals),
                 'quantity': places(trade.volume, LOT_DECIMALS), **_transparency(spec),
                 'trade_venue': 'PGSL', 'trade_ts': iso_ns(ns), 'publication_venue': 'PGSL',
                 'publication_ts': iso_ns(ns)} for ns, spec, trade in trades]
        for row in rows:
            row.pop('venue'), row.pop('system')
        last = iso_ns(trades[-1][0]) if trades else None
        return {'last_ts': last, 'count': len(rows), 'trades': rows}

    def maintenance_schedule(self, params: Params) -> object:
        return {'maintenances': []}  # the sandbox plans none


def _public_name(asset: str) -> str:
    return 'BTC' if asset == 'XBT' else asset


def _transparency(pair: PairSpec) -> dict[str, Any]:
    """The instrument fields of Kraken's PreTrade and PostTrade rows."""
    base, quote = (_public_name(ASSETS[a].altname) for a in (pair.base, pair.quote))
    return {'symbol': f'{base}/{quote}', 'description': f'{base} / {quote}',
            'base_asset': base, 'base_notation': 'UNIT', 'quote_asset': quote,
            'quote_notation': 'MONE', 'venue': 'PGSL', 'system': 'CLOB'}


def _iso_param(params: Params, name: str) -> int | None:
    """An ISO 8601 UTC time parameter (``2024-05-30T12:34:56.123Z``) in nanoseconds."""
    value = text(params, name)
    if not value:
        return None
    match = re.fullmatch(r'([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})'
                         r'(?:\.([0-9]{1,9}))?Z', value)
    if match is None:
        raise invalid(name)
    try:
        seconds = calendar.timegm(time.strptime(match.group(1), '%Y-%m-%dT%H:%M:%S'))
    except ValueError:
        raise invalid(name) from None
    return seconds * 10**9 + int((match.group(2) or '0').ljust(9, '0'))


def _public_trade_id(pair: PairSpec, trade_id: int) -> str:
    raw = base64.b32encode(hashlib.sha256(f'{pair.name}/{trade_id}'.encode()).digest()).decode()
    return f'T{raw[:5]}-{raw[5:10]}-{raw[10:16]}'
