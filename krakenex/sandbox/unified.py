"""The sandbox's Unified WebSocket: Kraken's derivatives over Spot WebSocket v2's messages.

Served on the sandbox's port next to WebSocket v2 (the ``ws`` extra):
:attr:`Sandbox.unified_url <krakenex.sandbox.Sandbox.unified_url>`
(``ws://127.0.0.1:PORT/uws/v2/public``, Kraken's ``wss://uws.kraken.com/v2/public``)
and :attr:`Sandbox.unified_auth_url <krakenex.sandbox.Sandbox.unified_auth_url>`
(``.../uws/v2/private``). A connection is a WebSocket v2 connection of
:mod:`.feed` (the same links, bounds, idle timeout, faults, status, heartbeats,
pings and message rate) whose channels and methods are the futures sandbox's:
the public data of :mod:`.unified_market`, the private channels of
:mod:`.unified_account` and the methods of :mod:`.unified_trading`, with tokens
from spot REST ``GetWebSocketsToken``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .feed import BOOK_DEPTHS, NOT_SUBSCRIBED, Feed, Levels, Session, level_changes, unsupported
from .futures.accounts import FuturesAccount
from .futures.exchange import FuturesExchange
from .futures.market import Instrument
from .links import Link
from .replies import iso
from .unified_account import PrivateChannels
from .unified_market import OHLC_RESOLUTIONS, TICK_TYPES, UnifiedMarket
from .unified_rules import asset_class_error
from .unified_trading import METHODS

if TYPE_CHECKING:
    from .replies import Reply
    from .server import Route

__all__ = ['Unified', 'UnifiedSession', 'attach', 'PUBLIC_PATH', 'PRIVATE_PATH']

PUBLIC_PATH = '/uws/v2/public'
PRIVATE_PATH = '/uws/v2/private'

#: The parameters each public channel takes; others are refused naming the field.
CHANNEL_FIELDS = {
    'book': {'channel', 'symbol', 'depth', 'snapshot', 'asset_class'},
    'ticker': {'channel', 'symbol', 'event_trigger', 'snapshot', 'asset_class'},
    'ohlc': {'channel', 'symbol', 'interval', 'snapshot', 'tick_type', 'asset_class'},
    'trade': {'channel', 'symbol', 'snapshot', 'asset_class'},
    'instrument': {'channel', 'snapshot', 'asset_class'},
}
PUBLIC_CHANNELS = tuple(CHANNEL_FIELDS)


class Host(Protocol):
    """What the Unified WebSocket needs of a sandbox."""

    key: str
    futures: FuturesExchange

    def add_route(self, prefix: str, route: Route, *,
                  unavailable: Callable[[], Reply] | None = None) -> None: ...


def attach(sandbox: Host, feed: Feed) -> Unified:
    """Serve the Unified WebSocket on ``sandbox``'s port through ``feed``'s connections."""
    unified = Unified(sandbox, feed)
    sandbox.add_route(PUBLIC_PATH, lambda request: feed.route(
        request, private=False, session=unified.session))
    sandbox.add_route(PRIVATE_PATH, lambda request: feed.route(
        request, private=True, session=unified.session))
    return unified


class Unified:
    """The Unified WebSocket of one sandbox: its market, and the futures account of each key.

    The spot account behind a token trades derivatives in a futures account of the
    same sandbox: the default spot key in the default futures account
    (:attr:`Sandbox.futures <krakenex.sandbox.Sandbox.futures>`'s ``key``), any other
    spot key in a futures account made for it when first used.
    """

    def __init__(self, sandbox: Host, feed: Feed) -> None:
        self.sandbox, self.feed = sandbox, feed
        self.exchange = sandbox.futures
        self.market = UnifiedMarket(sandbox.futures)
        self._linked = {sandbox.key: sandbox.futures.key}

    @staticmethod
    def endpoint(base: str, *, private: bool) -> str:
        """The Unified WebSocket's URL on a sandbox served at ``base``."""
        path = PRIVATE_PATH if private else PUBLIC_PATH
        return base.replace('http://', 'ws://', 1) + path if base else ''

    def account(self, key: str) -> FuturesAccount:
        """The futures account of the spot key ``key`` (made on first use), its dead
        man's switch run if it is due."""
        with self.exchange.lock:
            futures_key = self._linked.get(key)
            if futures_key is None:
                futures_key = self._linked[key] = self.exchange.add_account().key
            account = self.exchange.accounts[futures_key]
            self.exchange.expire(account)
            return account

    def session(self, feed: Feed, link: Link, private: bool) -> UnifiedSession:
        return UnifiedSession(feed, link, private, self)


class UnifiedSession(Session):
    """One Unified WebSocket connection: v2's envelope, the futures sandbox's channels."""

    def __init__(self, feed: Feed, link: Link, private: bool, unified: Unified) -> None:
        super().__init__(feed, link, private)
        self.unified = unified
        self.methods = {name: functools.partial(_carry_out, run, unified)
                        for name, run in METHODS.items()}
        # What each subscription of a contract was last sent (the spot tables of the
        # connection, keyed by pair, stay empty).
        self.contracts: dict[str, tuple[Instrument, int, Levels]] = {}  # book: depth, levels
        self.tickers_u: dict[str, tuple[Instrument, dict[str, Any]]] = {}  # the ticker
        self.trades_u: dict[str, tuple[Instrument, int]] = {}  # the last trade id
        #: (symbol, interval, tick_type) -> the contract and the last candle sent
        self.candles: dict[tuple[str, int, str], tuple[Instrument, dict[str, Any]]] = {}
        self.account_channels = PrivateChannels(self)

    def listening(self) -> bool:
        return bool(self.contracts or self.tickers_u or self.trades_u or self.candles
                    or self.account_channels.listening())

    def stamp(self) -> dict[str, str]:
        now = iso(time.time())
        return {'time_in': now, 'time_out': now}

    def refuse(self, head: dict[str, Any], error: str, **extra: Any) -> None:
        self.send({**head, 'success': False, 'error': error, **extra, **self.stamp()})

    def subscription(self, method: str, params: dict[str, Any], head: dict[str, Any],
                     stamp: dict[str, str]) -> None:
        channel = params.get('channel')
        if channel == 'status':
            super().subscription(method, params, head, stamp)
            return
        if self.account_channels.handles(channel):
            self.account_channels.subscription(method, str(channel), params, head)
            return
        if channel not in PUBLIC_CHANNELS:
            self.refuse(head, f'Channel {channel} not found')
            return
        unknown = sorted(set(params) - CHANNEL_FIELDS[str(channel)])
        if unknown:
            self.refuse(head, unsupported(unknown[0], method))
            return
        error = asset_class_error(params)
        if error:
            self.refuse(head, error)
            return
        if not isinstance(params.get('snapshot', True), bool):
            self.refuse(head, 'Snapshot field must be a boolean')
            return
        if channel == 'instrument':
            if method == 'unsubscribe' and not self.instrument:
                self.refuse({**head, 'method': 'subscribe'}, NOT_SUBSCRIBED)
                return
            self.instrument = method == 'subscribe'
            self.send({**head, 'success': True, 'result': {'channel': channel}, **stamp})
            if method == 'subscribe' and params.get('snapshot', True):
                self.send({'channel': 'instrument', 'type': 'snapshot',
                           'data': self.unified.market.instrument()})
            return
        symbols = params.get('symbol')
        if not isinstance(symbols, list) or not symbols:
            self.refuse(head, 'Symbol field must be an array')
            return
        for symbol in symbols:
            instrument = self.unified.market.find(symbol)
            if instrument is None:
                self.refuse(head, f'Currency pair not supported {symbol}', symbol=symbol)
                continue
            error = self.public(method, str(channel), instrument, params, head)
            if error:
                self.refuse({**head, **({'method': 'subscribe'} if error == NOT_SUBSCRIBED
                                        else {})}, error, symbol=symbol)

    def public(self, method: str, channel: str, instrument: Instrument,
               params: dict[str, Any], head: dict[str, Any]) -> str | None:
        """Subscribe or unsubscribe one contract of a public channel; an error text or None."""
        symbol, market = instrument.symbol, self.unified.market
        result: dict[str, Any] = {'channel': channel, 'symbol': symbol}
        snapshot = params.get('snapshot', True)
        if channel == 'book':
            depth = params.get('depth', 10)
            if type(depth) is not int or depth not in BOOK_DEPTHS:
                return f'Invalid depth {depth}'
            result['depth'] = depth
            if method == 'unsubscribe':
                return self.drop(self.contracts, symbol, head, result)
            book = market.levels(instrument, depth)
            self.contracts[symbol] = (instrument, depth, book)
            self.ack(head, {**result, 'snapshot': snapshot})
            if snapshot:
                self.link.send(self.book_text(symbol, 'snapshot', book, book,
                                              bad=self.feed.take('bad_checksum')))
        elif channel == 'ohlc':
            interval, tick_type = params.get('interval', 1), params.get('tick_type', 'trade')
            if type(interval) is not int or interval not in OHLC_RESOLUTIONS:
                return f'Invalid interval {interval}'
            if not isinstance(tick_type, str) or tick_type not in TICK_TYPES:
                return f'Invalid tick_type {tick_type}'
            result.update(interval=interval, tick_type=tick_type)
            if method == 'unsubscribe':
                return self.drop(self.candles, (symbol, interval, tick_type), head, result)
            candles = market.candles(instrument, interval, tick_type)
            self.candles[(symbol, interval, tick_type)] = (instrument, candles[-1])
            self.ack(head, {**result, 'snapshot': snapshot})
            if snapshot:
                self.send({'channel': 'ohlc', 'type': 'snapshot', 'timestamp': iso(time.time()),
                           'data': candles})
        elif channel == 'ticker':
            if params.get('event_trigger', 'trades') not in ('bbo', 'trades'):
                return f'Invalid event_trigger {params["event_trigger"]}'
            if method == 'unsubscribe':
                return self.drop(self.tickers_u, symbol, head, result)
            ticker = market.ticker(instrument)
            self.tickers_u[symbol] = (instrument, ticker)
            self.ack(head, {**result, 'snapshot': snapshot})
            if snapshot:
                self.send({'channel': 'ticker', 'type': 'snapshot', 'data': [ticker]})
        else:  # trade
            if method == 'unsubscribe':
                return self.drop(self.trades_u, symbol, head, result)
            self.trades_u[symbol] = (instrument, market.last_trade_id(instrument))
            self.ack(head, {**result, 'snapshot': snapshot})
            if snapshot:
                self.send({'channel': 'trade', 'type': 'snapshot',
                           'data': market.trades(instrument)})
        return None

    def ack(self, head: dict[str, Any], result: dict[str, Any]) -> None:
        self.send({**head, 'success': True, 'result': result, **self.stamp()})

    def drop(self, table: dict[Any, Any], key: Any, head: dict[str, Any],
             result: dict[str, Any]) -> str | None:
        """Unsubscribe ``key`` from ``table``; NOT_SUBSCRIBED if it was not there."""
        if table.pop(key, None) is None:
            return NOT_SUBSCRIBED
        self.ack(head, result)
        return None

    # -- changes -------------------------------------------------------------------------

    def look(self) -> None:
        """Send what changed since the last look, and a heartbeat when it is due."""
        if self.fault == 'stall':
            return
        market = self.unified.market
        for symbol, (instrument, depth, sent) in list(self.contracts.items()):
            book = market.levels(instrument, depth)
            if book != sent:
                self.contracts[symbol] = (instrument, depth, book)
                self.link.send(self.book_text(symbol, 'update', book, level_changes(sent, book),
                                              bad=self.feed.take('bad_checksum')))
        for symbol, (instrument, sent_ticker) in list(self.tickers_u.items()):
            ticker = market.ticker(instrument)
            if ticker != sent_ticker:
                self.tickers_u[symbol] = (instrument, ticker)
                self.send({'channel': 'ticker', 'type': 'update', 'data': [ticker]})
        for symbol, (instrument, last_id) in list(self.trades_u.items()):
            fresh = market.trades(instrument, after=last_id)
            if fresh:
                self.trades_u[symbol] = (instrument, fresh[-1]['trade_id'])
                self.send({'channel': 'trade', 'type': 'update', 'data': fresh})
        for key, (instrument, sent_candle) in list(self.candles.items()):
            _, interval, tick_type = key
            candle = market.candles(instrument, interval, tick_type)[-1]
            if candle != sent_candle:
                self.candles[key] = (instrument, candle)
                self.send({'channel': 'ohlc', 'type': 'update', 'timestamp': iso(time.time()),
                           'data': [candle]})
        self.account_channels.look()
        if self.listening() and time.monotonic() - self.last_beat >= self.feed.heartbeat:
            self.last_beat = time.monotonic()
            self.send({'channel': 'heartbeat'})


def _carry_out(run: Callable[[Unified, str, dict[str, Any]], Any], unified: Unified,
               feed: Feed, key: str, params: dict[str, Any]) -> Any:
    """A trading method of :mod:`.unified_trading`, called as the feed calls its own."""
    return run(unified, key, params)

