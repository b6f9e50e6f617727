"""The sandbox's WebSocket v2 feed: Kraken's public and private channels over its market.

Served on the sandbox's own port when the ``websockets`` package is installed
(the ``ws`` extra, ``pip install '.[ws]'`` in a checkout): :attr:`Sandbox.ws_url
<krakenex.sandbox.Sandbox.ws_url>` (``ws://127.0.0.1:PORT/v2``) for ``book``,
``ticker``, ``trade``, ``ohlc``, ``instrument`` and ``status``, and
:attr:`Sandbox.ws_auth_url <krakenex.sandbox.Sandbox.ws_auth_url>`
(``.../auth/v2``) for ``executions``, ``balances``, ``level3`` and trading with
a token from ``GetWebSocketsToken``. Every connection hears of a change of the
system status (:meth:`Sandbox.set_status <krakenex.sandbox.Sandbox.set_status>`).

Numbers go out at each pair's precision (prices at ``pair_decimals``,
quantities at 8 decimals) and book checksums are computed from that text, as
Kraken does. Everything about the exchange goes through the sandbox's public
methods, its endpoint tables and the exchange lock. :meth:`Feed.inject` adds
the faults WebSocket users meet: ``drop`` (no close frame), ``close1001``,
``stall`` (no heartbeats or replies), ``bad_checksum``, ``handshake429``,
``invalid_session``, ``reply_lost`` (an order executed, its reply lost),
``reply_odd`` (an order executed, its reply carrying neither ``success`` nor a
result) and ``msg_rate`` (a request refused with ``Exceeded msg rate``, as
:attr:`Feed.msg_rate` refuses requests over a connection's message rate).

Every connection is served by one thread for all (:mod:`.links`): an idle
connection costs nothing between messages, one that listens to nothing and
stays silent for :attr:`Feed.idle_timeout` seconds is closed, and a client that
reads slowly gets fewer, fuller updates and is cut off if it stops reading,
without slowing anyone else.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from websockets.http11 import Request as Handshake
from websockets.server import ServerProtocol

from .counter import Counter
from .level3 import Level3Side, changes, placed, queues
from .links import IDLE_TIMEOUT, MAX_MESSAGE, Link, Loop
from .market import (
    ASSETS,
    LOT_DECIMALS,
    OHLC_INTERVALS,
    PAIRS,
    PairSpec,
    find_asset,
    find_pair,
    places,
)
from .order_fields import TRIGGERED, check_fields, rest_order, v2_error
from .order_fields import unsupported as unsupported  # the Unified WebSocket's modules use it
from .params import ApiError
from .permissions import CHANNELS, permit
from .replies import Reply, iso, iso_ns
from .replies import text as text_reply

if TYPE_CHECKING:
    from .endpoints import Endpoints
    from .exchange import Account, Exchange
    from .server import Request, Route

__all__ = ['Feed', 'Session', 'attach', 'FEED_FAULTS', 'PUBLIC_PATH', 'PRIVATE_PATH', 'LEVEL3_PATH']

PUBLIC_PATH = '/v2'
PRIVATE_PATH = '/auth/v2'
#: Kraken's current docs put level3 on an endpoint of its own (wss://ws-l3.kraken.com/v2),
#: its older pages on the authenticated one; the sandbox serves it on both.
LEVEL3_PATH = '/l3/v2'

#: The fault kinds :meth:`Feed.inject` accepts.
FEED_FAULTS = frozenset({'drop', 'close1001', 'stall', 'bad_checksum', 'handshake429',
                         'invalid_session', 'reply_lost', 'msg_rate', 'reply_odd'})

#: Seconds a token from GetWebSocketsToken may wait for its first use (Kraken: 15 minutes).
TOKEN_LIFETIME = 900.0
CHECKSUM_LEVELS = 10
#: The depths Kraken's ``book`` channel accepts (10 by default), and its ``level3`` channel.
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
LEVEL3_DEPTHS = (10, 100, 1000)
PRIVATE_CHANNELS = ('executions', 'balances')
PUBLIC_CHANNELS = ('book', 'ticker', 'trade', 'ohlc', 'instrument')
#: What Kraken answers a request over a connection's message rate (seen from Kraken as
#: ``{"Error": "Exceeded msg rate"}``; the rate itself is not published).
MSG_RATE_ERROR = 'Exceeded msg rate'
#: What Kraken answers an unsubscribe from what the connection is not subscribed to, in a
#: reply whose ``method`` is ``subscribe`` (as python-kraken-sdk's tests record it from Kraken).
NOT_SUBSCRIBED = 'Subscription Not Found'
#: The parameters each public channel takes (Kraken's v2 docs); Kraken refuses others,
#: as it refuses ``params`` on a ping: "Unsupported field: 'params' for the given msg type: ping".
#: What the ticker channel's ``event_trigger`` takes (Kraken's v2 docs; ``trades`` by default),
#: and the fields whose change a ``bbo`` subscriber hears of.
TICKER_TRIGGERS = ('trades', 'bbo')
BBO_FIELDS = ('bid', 'bid_qty', 'ask', 'ask_qty')
CHANNEL_FIELDS = {
    'book': {'channel', 'symbol', 'depth', 'snapshot'},
    'ticker': {'channel', 'symbol', 'event_trigger', 'snapshot'},
    'ohlc': {'channel', 'symbol', 'interval', 'snapshot'},
    'trade': {'channel', 'symbol', 'snapshot'},
    'instrument': {'channel', 'snapshot', 'include_tokenized_assets'},
}


#: A book's levels as wire text: ``{'bids': [(price, qty), ...], 'asks': [...]}``.
Levels = dict[str, list[tuple[str, str]]]


def v2_symbol(spec: PairSpec) -> str:
    """A pair's name on WebSocket v2, which says BTC where v1 and REST say XBT."""
    return spec.wsname.replace('XBT', 'BTC')


def _v2_pair(symbol: Any) -> PairSpec | None:
    """The pair v2 names ``symbol``: only BASE/QUOTE with BTC will do; Kraken refuses
    REST's ``BTCUSD`` and v1's ``XBT/USD`` ("Currency pair not supported XBT/USD")."""
    return next((p for p in PAIRS.values() if v2_symbol(p) == symbol), None)


def _crc_text(price: str, qty: str) -> str:
    return price.replace('.', '').lstrip('0') + qty.replace('.', '').lstrip('0')


class Host(Protocol):
    """What the feed needs of a sandbox: its exchange, its REST methods, its orders as
    the API shows them, and a way to serve a path."""

    exchange: Exchange
    endpoints: Endpoints

    def orders(self, key: str | None = None) -> list[dict[str, Any]]: ...

    def add_route(self, prefix: str, route: Route, *,
                  unavailable: Callable[[], Reply] | None = None) -> None: ...


def attach(sandbox: Host) -> Feed:
    """Serve the feed on ``sandbox``'s port and record the tokens it hands out."""
    feed = Feed(sandbox)
    sandbox.add_route(PUBLIC_PATH, lambda request: feed.route(request, private=False))
    sandbox.add_route(PRIVATE_PATH, lambda request: feed.route(request, private=True))
    sandbox.add_route(LEVEL3_PATH, lambda request: feed.route(request, private=True))
    issue = sandbox.endpoints.private['GetWebSocketsToken']

    def websockets_token(account: Account, params: dict[str, Any]) -> object:
        result = issue(account, params)
        if isinstance(result, dict):
            feed.tokens[str(result['token'])] = [account.key, time.time(), False]
        return result

    sandbox.endpoints.private['GetWebSocketsToken'] = websockets_token
    return feed


class Feed:
    """Kraken's WebSocket v2 over one sandbox; one thread per connection.

    :ivar heartbeat: seconds between heartbeats on a connection with a subscription
    :ivar tick: seconds between looks at the market and the accounts for changes
    :ivar idle_timeout: seconds a connection that listens to nothing may stay silent,
        and a client may leave what it is sent unread, before it is closed (Kraken
        closes idle connections after about a minute)
    :ivar msg_rate: each connection's message counter, ``(maximum, decay per second)``:
        every request adds one, and one that would pass the maximum is refused with
        ``Exceeded msg rate`` and not carried out; None (the default) keeps no limit
    """

    def __init__(self, sandbox: Host) -> None:
        self.sandbox = sandbox
        self.heartbeat = 1.0
        self.tick = 0.05
        self.idle_timeout = IDLE_TIMEOUT
        self.msg_rate: tuple[float, float] | None = None
        self.tokens: dict[str, list[Any]] = {}  # token -> [key, issued, used]
        self.handshakes = 0
        self._faults: list[str] = []
        self._guard = threading.Lock()
        #: The open connections' sessions; the loop's thread alone changes them.
        self._sessions: dict[_Session, None] = {}
        self._status_told = ''  # the system status every connection has been told
        #: The levels last seen of each (pair, depth): every subscriber whose book they are
        #: holds this very object, so that subscribers in step are known by identity.
        self._known: dict[tuple[str, int], Levels] = {}
        self._levels: dict[tuple[str, int], Levels] = {}  # this tick's
        #: The last book snapshot made of each (symbol, depth): (levels, text).
        self._snapshots: dict[tuple[str, int], tuple[Levels, str]] = {}
        #: This tick's updates, made once for every subscriber that goes from the same
        #: levels to the same levels: (kind, symbol, depth, id of the levels before) ->
        #: (levels before, levels after, what was made of them)
        self._shared: dict[tuple[str, str, int, int], tuple[object, object, Any]] = {}
        #: Every connection, served by one thread.
        self.loop = Loop(tick=lambda: self.tick, on_tick=self._on_tick,
                         idle_timeout=lambda: self.idle_timeout)

    @staticmethod
    def endpoint(base: str, *, private: bool, level3: bool = False) -> str:
        """The feed's URL on a sandbox served at ``base`` (``http://127.0.0.1:PORT``)."""
        path = LEVEL3_PATH if level3 else PRIVATE_PATH if private else PUBLIC_PATH
        return base.replace('http://', 'ws://', 1) + path if base else ''

    def inject(self, kind: str, *, times: int = 1) -> None:
        """Give the feed a fault (see the module doc); ``drop``, ``close1001`` and
        ``stall`` hit every open connection at the feed's next turn, the others the next
        occasion."""
        if kind not in FEED_FAULTS:
            raise ValueError(f'unknown fault {kind!r}; choose one of {sorted(FEED_FAULTS)}')
        if kind in ('drop', 'close1001', 'stall'):
            self.loop.call_soon(lambda: self._hit_every_connection(kind))
            return
        with self._guard:
            self._faults += [kind] * times

    def _hit_every_connection(self, kind: str) -> None:
        for session in list(self._sessions):
            session.apply_fault(kind)

    def stop(self) -> None:
        """Close every connection and join the thread that serves them (the sandbox
        stops it; the next connection starts it again)."""
        self.loop.stop()

    def take(self, kind: str) -> bool:
        """Use up one injected fault of ``kind``, if there is one."""
        with self._guard:
            if kind in self._faults:
                self._faults.remove(kind)
                return True
            return False

    def route(self, request: Request, *, private: bool,
              session: Callable[[Feed, Link, bool], _Session] | None = None) -> Reply | None:
        """The sandbox route: upgrade to WebSocket and serve the connection until it ends.

        :param session: makes the connection's handler (:class:`_Session` by default); the
            Unified WebSocket (:mod:`.unified`) serves its own channels through it
        """
        self.handshakes += 1
        if request.headers.get('upgrade', '').lower() != 'websocket':
            return text_reply(426, 'WebSocket only: connect with a WebSocket client\n')
        if self.take('handshake429'):
            return text_reply(429, 'Too Many Requests\n')
        protocol = ServerProtocol(max_size=MAX_MESSAGE)
        handler = request.handler  # the HTTP server has read the request: give it back
        head = ''.join(f'{k}: {v}\r\n' for k, v in handler.headers.items())
        protocol.receive_data(f'{handler.requestline}\r\n{head}\r\n'.encode('latin-1'))
        handshake = protocol.events_received()[0]
        assert isinstance(handshake, Handshake)
        response = protocol.accept(handshake)
        protocol.send_response(response)
        handler.connection.sendall(b''.join(protocol.data_to_send()))
        if response.status_code != 101:
            return None
        upgraded = request.take_over()
        upgraded.socket.setblocking(False)
        try:  # what the client sent after its handshake, if the HTTP reader has it already
            early = handler.rfile.read1(1 << 16) or b''
        except (OSError, ValueError):
            early = b''
        link = Link(upgraded, protocol, early)
        link.handler = (session or _Session)(self, link, private)
        self.loop.add(link)
        return None

    def _on_tick(self) -> None:
        """Before each round of looks: forget last tick's books, tell every connection
        of a new system status."""
        self._levels.clear()
        self._shared.clear()
        status = self.system_status()
        if status != self._status_told:  # a look at each connection only on a change
            self._status_told = status
            for session in list(self._sessions):
                if session.status_sent != status:
                    session.send_status()

    # -- market data, as Kraken's v2 channels carry it ----------------------------------

    def book_levels(self, spec: PairSpec, depth: int) -> dict[str, list[tuple[str, str]]]:
        """The top ``depth`` levels of both sides as wire text at the pair's precision."""
        with self.sandbox.exchange.lock:
            return self.sandbox.exchange.market.top(spec, depth)

    def current_levels(self, spec: PairSpec, depth: int) -> Levels:
        """:meth:`book_levels` now, as the very object last seen if nothing has changed."""
        key = (spec.name, depth)
        levels, known = self.book_levels(spec, depth), self._known.get(key)
        if known is not None and known == levels:
            return known
        self._known[key] = levels
        return levels

    def levels_this_tick(self, spec: PairSpec, depth: int) -> Levels:
        """:meth:`current_levels` as of this tick: every subscriber of a book shares one look."""
        key = (spec.name, depth)
        levels = self._levels.get(key)
        if levels is None:
            levels = self._levels[key] = self.current_levels(spec, depth)
        return levels

    def snapshot(self, symbol: str, depth: int, book: Levels) -> str:
        """The text of a snapshot of ``book`` (from :meth:`current_levels`), made again only
        when the book has changed."""
        made = self._snapshots.get((symbol, depth))
        if made is None or made[0] is not book:
            made = self._snapshots[(symbol, depth)] = (
                book, _Session.book_text(symbol, 'snapshot', book, book))
        return made[1]

    def shared(self, key: tuple[str, str, int], before: object, after: object,
               make: Callable[[], Any]) -> Any:
        """What ``make`` makes of going from ``before`` to ``after``, made once a tick for
        every subscriber that went from these very levels to these very levels."""
        slot = key + (id(before),)
        entry = self._shared.get(slot)
        if entry is not None and entry[0] is before and entry[1] is after:
            return entry[2]
        made = make()
        self._shared[slot] = (before, after, made)  # holds both: their ids stay theirs
        return made

    @staticmethod
    def checksum(book: dict[str, list[tuple[str, str]]]) -> int:
        """Kraken's checksum over the wire text of the ten best asks, then bids."""
        text = ''.join(_crc_text(p, q) for side in ('asks', 'bids')
                       for p, q in book[side][:CHECKSUM_LEVELS])
        return zlib.crc32(text.encode('ascii'))

    def instrument(self) -> dict[str, Any]:
        """The ``instrument`` channel's snapshot: assets and pairs with the fields of Kraken's
        v2 docs, under v2 names. Margin is not modelled: nothing is borrowable or marginable."""
        assets = [{'id': v2_asset(a.name), 'status': 'enabled', 'precision': a.decimals,
                   'precision_display': a.display_decimals, 'borrowable': False,
                   'collateral_value': Decimal(0), 'margin_rate': Decimal(0)}
                  for a in ASSETS.values()]
        pairs = [{'symbol': v2_symbol(p), 'base': v2_asset(p.base), 'quote': v2_asset(p.quote),
                  'status': 'online', 'qty_precision': LOT_DECIMALS,
                  'qty_increment': Raw(places(Decimal(1).scaleb(-LOT_DECIMALS), LOT_DECIMALS)),
                  'price_precision': p.pair_decimals, 'cost_precision': p.cost_decimals,
                  'marginable': False, 'has_index': False, 'cost_min': p.costmin,
                  'tick_size': Raw(places(p.tick_size, p.pair_decimals)),
                  'price_increment': Raw(places(p.tick_size, p.pair_decimals)),
                  'qty_min': p.ordermin} for p in PAIRS.values()]
        return {'assets': assets, 'pairs': pairs}

    def ticker(self, spec: PairSpec) -> dict[str, Any]:
        """The ``ticker`` channel's row, with Kraken's fields in Kraken's order."""
        market = self.sandbox.exchange.market
        with self.sandbox.exchange.lock:  # one look at the book and the tape
            book = market.top(spec, 1)
            numbers = ticker_numbers(spec, market.ticker(spec))
        (bid, bid_qty), (ask, ask_qty) = book['bids'][0], book['asks'][0]
        return {'symbol': v2_symbol(spec), 'bid': Raw(bid), 'bid_qty': Raw(bid_qty),
                'ask': Raw(ask), 'ask_qty': Raw(ask_qty), **numbers}

    def trades(self, spec: PairSpec, count: int = 50,
               after: int | None = None) -> list[dict[str, Any]]:
        """The newest ``count`` trades, or with ``after`` every trade after that trade id."""
        market = self.sandbox.exchange.market
        with self.sandbox.exchange.lock:
            rows = (market.trades(spec, None, count)[0] if after is None
                    else market.trades_after(spec, after))
        out = []
        for row in rows:
            price, volume, when, side, ordertype = row[:5]
            out.append({'symbol': v2_symbol(spec), 'side': 'buy' if side == 'b' else 'sell',
                        'price': Raw(price), 'qty': Raw(volume),
                        'ord_type': 'market' if ordertype == 'm' else 'limit',
                        'trade_id': row[6] if len(row) > 6 else 0,
                        'timestamp': iso(float(str(when)))})
        return out

    def candles(self, spec: PairSpec, interval: int) -> list[dict[str, Any]]:
        with self.sandbox.exchange.lock:
            rows, _ = self.sandbox.exchange.market.ohlc(spec, interval, None)
        return [{'symbol': v2_symbol(spec), 'open': Raw(o), 'high': Raw(h), 'low': Raw(lo),
                 'close': Raw(c), 'vwap': Raw(vw), 'volume': Raw(v), 'trades': n,
                 'interval_begin': iso(float(str(t))), 'interval': interval,
                 'timestamp': iso(min(float(str(t)) + interval * 60, time.time()))}
                for t, o, h, lo, c, vw, v, n in rows[-10:]]

    def last_trade_id(self, spec: PairSpec) -> int:
        """The id of the newest trade on the pair's tape: it changes on every trade."""
        with self.sandbox.exchange.lock:
            return self.sandbox.exchange.market.pair(spec).trades[-1].trade_id

    def system_status(self) -> str:
        """The trading engine's status, as REST SystemStatus shows it."""
        with self.sandbox.exchange.lock:
            return self.sandbox.exchange.status

    @staticmethod
    def level3_checksum(book: dict[str, Level3Side]) -> int:
        """Kraken's level3 checksum: every order of the ten best ask levels, then bids."""
        text = ''.join(_crc_text(price, qty) for side in ('asks', 'bids')
                       for price, orders in book[side][:CHECKSUM_LEVELS] for _, qty in orders)
        return zlib.crc32(text.encode('ascii'))

    # -- the account ---------------------------------------------------------------------

    def account_of(self, token: Any) -> str | None:
        """The key a token belongs to, if it is still good; a good token is then kept."""
        entry = self.tokens.get(token) if isinstance(token, str) else None
        if entry is None:
            return None
        key, issued, used = entry
        if not used and time.time() - issued > TOKEN_LIFETIME:
            return None
        entry[2] = True
        return str(key)

    def private_call(self, key: str, method: str, params: dict[str, Any]) -> Any:
        """Run one of the sandbox's REST handlers for ``key``'s account, under the lock."""
        exchange = self.sandbox.exchange
        with exchange.lock:
            account = exchange.accounts[key]
            exchange.permit(account, method)
            exchange.expire_timers()
            return self.sandbox.endpoints.private[method](account, params)

    def permit_channel(self, key: str, channel: str) -> str:
        """Kraken's error if ``key`` may not subscribe to ``channel``, else ''."""
        with self.sandbox.exchange.lock:
            held = self.sandbox.exchange.accounts[key].permissions
        try:
            permit(held, channel, CHANNELS)
        except ApiError as exc:
            return str(exc)
        return ''


class Ack(dict[str, Any]):
    """A subscription's acknowledgement with Kraken's key order: ``method``, ``result`` (its
    keys sorted, as Kraken sorts them), ``success``, ``time_in``, ``time_out``, ``req_id``."""

    def __init__(self, method: str, req_id: Any, result: dict[str, Any]) -> None:
        now = iso(time.time())
        super().__init__(method=method, result=dict(sorted(result.items())), success=True,
                         time_in=now, time_out=now)
        if req_id is not None:
            self['req_id'] = req_id


class _Session:
    """One WebSocket connection: its subscriptions, and what the subscriber already has."""

    #: The trading methods the connection answers, by name.
    methods: dict[str, Callable[[Feed, str, dict[str, Any]], Any]]

    def __init__(self, feed: Feed, link: Link, private: bool) -> None:
        self.feed, self.link, self.private = feed, link, private
        self.fault: str | None = None
        self.books: dict[str, tuple[PairSpec, int, dict[str, list[tuple[str, str]]]]] = {}
        #: Each ticker subscription: the pair, the row last sent, its event_trigger and the
        #: tape's last trade id then.
        self.tickers: dict[str, tuple[PairSpec, dict[str, Any], str, int]] = {}
        self.trades: dict[str, tuple[PairSpec, int]] = {}
        #: (symbol, interval) -> the pair, the last trade id and the last candle sent
        self.ohlc: dict[tuple[str, int], tuple[PairSpec, int, dict[str, Any]]] = {}
        self.level3: dict[str, tuple[PairSpec, int, dict[str, list[tuple[str, str]]],
                                     dict[str, Level3Side]]] = {}
        self.status_sent = ''
        self.instrument = False
        self.counter = Counter()  # what the connection has spent of its message rate
        self.executions: dict[str, Any] | None = None
        self.balances: dict[str, Any] | None = None
        self.key: str | None = None
        self.sequence = 0
        self.orders: dict[str, tuple[str, str]] = {}  # txid -> (status, vol_exec) last sent
        self.last_beat = time.monotonic()

    def send(self, message: dict[str, Any]) -> None:
        self.link.send(dumps(message))

    def send_status(self) -> None:
        self.status_sent = self.feed.system_status()
        self.send({'channel': 'status', 'type': 'update', 'data': [{
            'api_version': 'v2', 'connection_id': id(self), 'system': self.status_sent,
            'version': '2.0.10'}]})

    # -- the link's handler (see :class:`.links.Handler`) ----------------------------

    def opened(self) -> None:
        self.feed._sessions[self] = None
        self.send_status()

    def gone(self) -> None:
        self.feed._sessions.pop(self, None)

    def message(self, data: str | bytes) -> None:
        if self.fault != 'stall':  # a stalled connection swallows what comes
            self.answer(data)

    def listening(self) -> bool:
        return bool(self.books or self.tickers or self.trades or self.ohlc or self.level3
                    or self.executions is not None or self.balances is not None)

    def apply_fault(self, kind: str) -> None:
        """Act on a fault injected into every connection."""
        if kind == 'drop':
            self.link.reset()  # a TCP reset: no close frame
        elif kind == 'close1001':
            self.link.close(1001, 'CloudFlare WebSocket proxy restarting')
        else:
            self.fault = kind

    # -- requests ------------------------------------------------------------------------

    def answer(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw, parse_float=Decimal)
        except (ValueError, RecursionError):  # Kraken answers it with the method "error"
            self.send({'error': 'Malformed request', 'method': 'error', 'success': False,
                       'time_in': iso(time.time()), 'time_out': iso(time.time())})
            return
        if not isinstance(message, dict):
            return
        method, params = message.get('method'), message.get('params') or {}
        head = {'method': method, 'req_id': message.get('req_id')} if 'req_id' in message \
            else {'method': method}
        stamp = {'time_in': iso(time.time()), 'time_out': iso(time.time())}
        if not isinstance(params, dict):  # the wording is the sandbox's; Kraken's is unpublished
            self.send({**head, 'success': False, 'error': 'Params field must be an object',
                       **stamp})
            return
        if self.over_rate():
            self.send({**head, 'success': False, 'error': MSG_RATE_ERROR, **stamp})
            return
        if method == 'ping' and 'params' in message:
            self.send({**head, 'success': False, 'error': unsupported('params', method),
                       **stamp})
            return
        if method == 'ping':
            self.send({'method': 'pong', **({'req_id': message['req_id']}
                                            if 'req_id' in message else {}), **stamp})
            return
        if method in ('subscribe', 'unsubscribe'):
            self.subscription(method, params, head, stamp)
            return
        if method in self.methods:
            self.trade(method, params, head, stamp)
            return
        self.send({**head, 'success': False, 'error': f'Unsupported method {method}', **stamp})

    def over_rate(self) -> bool:
        """Count one request against the connection's message rate; True if it is refused."""
        if self.feed.take('msg_rate'):
            return True
        limit = self.feed.msg_rate
        if limit is None:
            return False
        maximum, decay = limit
        return not self.counter.charge(1, maximum, decay, time.monotonic())

    def check_token(self, params: dict[str, Any]) -> tuple[str | None, str]:
        """The account key for a private request, or None and the error to answer with."""
        if not self.private:
            return None, 'EGeneral:Permission denied: use the authenticated endpoint'
        key = self.feed.account_of(params.get('token'))
        if key is None or self.feed.take('invalid_session'):
            return None, 'ESession:Invalid session'
        return key, ''

    def subscription(self, method: str, params: dict[str, Any], head: dict[str, Any],
                     stamp: dict[str, str]) -> None:
        channel = params.get('channel')
        if channel == 'status':  # sent on connect and on every change; asking sends it now
            self.send({**head, 'success': True, 'result': {'channel': channel}, **stamp})
            if method == 'subscribe':
                self.send_status()
            return
        if channel == 'level3':
            key, refused = self.check_token(params)
            if key is None:
                self.send({**head, 'success': False, 'error': refused, **stamp})
                return
            self.key = key
        elif channel in PRIVATE_CHANNELS:
            key, refused = self.check_token(params)
            refused = refused or self.feed.permit_channel(str(key), str(channel))
            if key is None or refused:
                self.send({**head, 'success': False, 'error': refused, **stamp})
                return
            self.key = key
            if method == 'unsubscribe' and (self.executions if channel == 'executions'
                                            else self.balances) is None:
                self.send({**head, 'method': 'subscribe', 'success': False,
                           'error': NOT_SUBSCRIBED, **stamp})
                return
            result = {'channel': channel}
            self.send({**head, 'success': True, 'result': result, **stamp})
            if method == 'subscribe':
                self.private_snapshot(channel, params)
            elif channel == 'executions':
                self.executions = None
            else:
                self.balances = None
            return
        if channel not in PUBLIC_CHANNELS and channel != 'level3':
            self.send({**head, 'success': False, 'error': f'Channel {channel} not found', **stamp})
            return
        unknown = sorted(set(params) - CHANNEL_FIELDS.get(str(channel), set(params)))
        if unknown:
            self.send({**head, 'success': False, 'error': unsupported(unknown[0], method),
                       **stamp})
            return
        if channel == 'instrument':
            if method == 'unsubscribe' and not self.instrument:
                self.send({**head, 'method': 'subscribe', 'success': False,
                           'error': NOT_SUBSCRIBED, **stamp})
                return
            self.instrument = method == 'subscribe'
            self.send({**head, 'success': True, 'result': {'channel': channel}, **stamp})
            if method == 'subscribe':
                self.send({'channel': 'instrument', 'type': 'snapshot',
                           'data': self.feed.instrument()})
            return
        symbols = params.get('symbol')
        if not isinstance(symbols, list) or not symbols:
            self.send({**head, 'success': False, 'error': 'Symbol field must be an array',
                       **stamp})
            return
        for symbol in symbols:
            spec = _v2_pair(symbol)
            if spec is None:
                self.send({**head, 'success': False, 'symbol': symbol,
                           'error': f'Currency pair not supported {symbol}', **stamp})
                continue
            error = self.public_channel(method, channel, spec, symbol, params,
                                        head.get('req_id'))
            if error:
                self.send({**head, 'success': False, 'symbol': symbol, 'error': error, **stamp,
                           **({'method': 'subscribe'} if error == NOT_SUBSCRIBED else {})})

    def public_channel(self, method: str, channel: str, spec: PairSpec, symbol: str,
                       params: dict[str, Any], req_id: Any) -> str | None:
        """Subscribe or unsubscribe one symbol of a public channel; an error text or None."""
        result: dict[str, Any] = {'channel': channel, 'symbol': symbol}
        if method == 'subscribe' and channel != 'level3':
            result['snapshot'] = bool(params.get('snapshot', channel != 'trade'))
        if channel == 'level3':
            depth = params.get('depth', 10)
            if depth not in LEVEL3_DEPTHS:
                return f'Invalid depth {depth}'
            result['depth'] = depth
            if method == 'unsubscribe':
                if self.level3.pop(symbol, None) is None:
                    return NOT_SUBSCRIBED
                self.send(Ack(method, req_id, result))
                return None
            levels = self.feed.current_levels(spec, depth)
            book3 = queues(spec, levels)
            self.level3[symbol] = (spec, depth, levels, book3)
            self.send(Ack(method, req_id, {**result, 'snapshot': True}))
            if params.get('snapshot', True):
                market = self.feed.sandbox.exchange.market
                self.send_level3(symbol, 'snapshot', book3, {
                    side: [{'order_id': oid, 'limit_price': Raw(price), 'order_qty': Raw(qty),
                            'timestamp': iso_ns(placed(market, position))}
                           for price, orders in ladder
                           for position, (oid, qty) in enumerate(orders)]
                    for side, ladder in book3.items()})
        elif channel == 'book':
            depth = params.get('depth', 10)
            if depth not in BOOK_DEPTHS:
                return f'Invalid depth {depth}'
            result['depth'] = depth
            if method == 'unsubscribe':
                if self.books.pop(symbol, None) is None:
                    return NOT_SUBSCRIBED
                self.send(Ack(method, req_id, result))
                return None
            book = self.feed.current_levels(spec, depth)
            self.books[symbol] = (spec, depth, book)
            self.send(Ack(method, req_id, result))
            self.send_book_snapshot(symbol, depth, book)
        elif channel == 'ohlc':
            interval = params.get('interval', 1)
            if interval not in OHLC_INTERVALS:
                return f'Invalid interval {interval}'
            result['interval'] = interval
            if method == 'unsubscribe':
                if self.ohlc.pop((symbol, interval), None) is None:
                    return NOT_SUBSCRIBED
                self.send(Ack(method, req_id, result))
                return None
            last_trade = self.feed.last_trade_id(spec)
            candles = self.feed.candles(spec, interval)
            self.ohlc[(symbol, interval)] = (spec, last_trade, candles[-1])
            self.send(Ack(method, req_id, result))
            if params.get('snapshot', True):
                self.send({'channel': 'ohlc', 'type': 'snapshot', 'timestamp': iso(time.time()),
                           'data': candles})
        elif channel == 'ticker':
            if method == 'unsubscribe':
                if self.tickers.pop(symbol, None) is None:
                    return NOT_SUBSCRIBED
                self.send(Ack(method, req_id, result))
                return None
            trigger = params.get('event_trigger', 'trades')
            if trigger not in TICKER_TRIGGERS:
                return f'Invalid event_trigger {trigger}'  # the sandbox's wording
            result['event_trigger'] = trigger
            ticker = self.feed.ticker(spec)
            self.tickers[symbol] = (spec, ticker, trigger, self.feed.last_trade_id(spec))
            self.send(Ack(method, req_id, result))
            if params.get('snapshot', True):
                self.send({'channel': 'ticker', 'type': 'snapshot', 'data': [ticker]})
        else:  # trade
            if method == 'unsubscribe':
                if self.trades.pop(symbol, None) is None:
                    return NOT_SUBSCRIBED
                self.send(Ack(method, req_id, result))
                return None
            trades = self.feed.trades(spec)
            self.trades[symbol] = (spec, trades[-1]['trade_id'] if trades else 0)
            self.send(Ack(method, req_id, result))
            if params.get('snapshot', False):  # Kraken's v2 docs: "Default: false"
                self.send({'channel': 'trade', 'type': 'snapshot', 'data': trades})
        return None

    def private_snapshot(self, channel: str, params: dict[str, Any]) -> None:
        assert self.key is not None
        if channel == 'balances':
            balances = self.feed.private_call(self.key, 'Balance', {})
            self.balances = dict(balances)
            self.send({'channel': 'balances', 'type': 'snapshot',
                       'data': v2_balances(balances), 'sequence': self.next()})
            return
        self.executions = dict(params)
        orders = self.feed.sandbox.orders(self.key)
        self.orders = {o['txid']: (o['status'], o['vol_exec']) for o in orders}
        data = []
        if params.get('snap_orders', True):
            data += [_execution(o, 'new') for o in orders if o['status'] == 'open']
        if params.get('snap_trades', False):
            data += [_execution(o, 'trade') for o in orders if Decimal(o['vol_exec'])][-50:]
        self.send({'channel': 'executions', 'type': 'snapshot', 'data': data,
                   'sequence': self.next()})

    def next(self) -> int:
        self.sequence += 1
        return self.sequence

    def trade(self, method: str, params: dict[str, Any], head: dict[str, Any],
              stamp: dict[str, str]) -> None:
        key, refused = self.check_token(params)
        if key is None:
            self.send({**head, 'success': False, 'error': refused, **stamp})
            return
        try:
            result = self.methods[method](self.feed, key, params)
        except ApiError as exc:
            self.send({**head, 'success': False, 'error': str(exc), **stamp})
            return
        if self.feed.take('reply_lost'):
            self.link.reset()  # executed; the reply never leaves
            return
        if self.feed.take('reply_odd'):  # executed; the reply says neither yes nor no
            self.send({**head, **stamp})
            return
        self.send({**head, 'success': True, 'result': result, **stamp})

    # -- changes -------------------------------------------------------------------------

    def look(self) -> None:
        """Send what changed since the last look, and a heartbeat when it is due."""
        if self.fault == 'stall':  # no heartbeats, no updates
            return
        for symbol, (spec, depth, sent) in list(self.books.items()):
            book = self.feed.levels_this_tick(spec, depth)
            if book is not sent and book != sent:
                self.books[symbol] = (spec, depth, book)
                self.send_book_update(symbol, depth, sent, book)
        for symbol, (spec, sent_ticker, trigger, sent_trade) in list(self.tickers.items()):
            # Kraken: "trades" sends on each trade, "bbo" on each change of the best bid or ask
            ticker, trade = self.feed.ticker(spec), self.feed.last_trade_id(spec)
            due = (trade != sent_trade if trigger == 'trades'
                   else any(ticker[k] != sent_ticker[k] for k in BBO_FIELDS))
            if due:
                self.tickers[symbol] = (spec, ticker, trigger, trade)
                self.send({'channel': 'ticker', 'type': 'update', 'data': [ticker]})
        for (symbol, interval), (spec, last_trade, sent) in list(self.ohlc.items()):
            trade = self.feed.last_trade_id(spec)
            if trade != last_trade:  # Kraken sends the running candle on each trade
                candles = self.feed.candles(spec, interval)
                # and one that closed since the last look gets its last trades too
                fresh = [c for c in candles if c['interval_begin'] >= sent['interval_begin']
                         and c['trades'] and {**c, 'timestamp': ''} != {**sent, 'timestamp': ''}]
                self.ohlc[(symbol, interval)] = (spec, trade, candles[-1])
                if fresh:
                    self.send({'channel': 'ohlc', 'type': 'update',
                               'timestamp': iso(time.time()), 'data': fresh})
        for symbol, (spec, depth, sent_levels, sent_l3) in list(self.level3.items()):
            levels = self.feed.levels_this_tick(spec, depth)
            if levels is not sent_levels and levels != sent_levels:  # queues follow levels
                self.send_level3_update(symbol, spec, depth, (sent_levels, sent_l3), levels)
        for symbol, (spec, last_id) in list(self.trades.items()):
            fresh = self.feed.trades(spec, after=last_id)
            if fresh:
                self.trades[symbol] = (spec, fresh[-1]['trade_id'])
                self.send({'channel': 'trade', 'type': 'update', 'data': fresh})
        if self.key is not None and self.executions is not None:
            self.look_executions()
        if self.key is not None and self.balances is not None:
            balances = dict(self.feed.private_call(self.key, 'Balance', {}))
            moved = {v2_asset(a) for a, b in balances.items() if self.balances.get(a) != b}
            if moved:
                self.balances = balances
                self.send({'channel': 'balances', 'type': 'update',
                           'data': [row for row in v2_balances(balances)
                                    if row['asset'] in moved], 'sequence': self.next()})
        if self.listening() and time.monotonic() - self.last_beat >= self.feed.heartbeat:
            self.last_beat = time.monotonic()
            self.send({'channel': 'heartbeat'})

    def look_executions(self) -> None:
        assert self.key is not None
        updates = []
        for order in self.feed.sandbox.orders(self.key):
            state = (order['status'], order['vol_exec'])
            before = self.orders.get(order['txid'])
            if before == state:
                continue
            self.orders[order['txid']] = state
            if before is None:
                updates.append(_execution(order, 'new'))
            if Decimal(order['vol_exec']) > Decimal(before[1] if before else '0'):
                updates.append(_execution(order, 'trade'))
            if order['status'] in ('closed', 'canceled', 'expired'):
                kind = {'closed': 'filled', 'canceled': 'canceled', 'expired': 'expired'}
                updates.append(_execution(order, kind[order['status']]))
        for update in updates:
            self.send({'channel': 'executions', 'type': 'update', 'data': [update],
                       'sequence': self.next()})

    def send_book_snapshot(self, symbol: str, depth: int,
                           book: dict[str, list[tuple[str, str]]]) -> None:
        """A snapshot of ``book``: one text for every subscriber while the book stays."""
        if self.feed.take('bad_checksum'):
            self.link.send(self.book_text(symbol, 'snapshot', book, book, bad=True))
            return
        self.link.send(self.feed.snapshot(symbol, depth, book))

    def send_book_update(self, symbol: str, depth: int,
                         sent: dict[str, list[tuple[str, str]]],
                         book: dict[str, list[tuple[str, str]]]) -> None:
        """The update from ``sent`` to ``book``: one text for every subscriber in step."""
        if self.feed.take('bad_checksum'):
            self.link.send(self.book_text(symbol, 'update', book, level_changes(sent, book),
                                          bad=True))
            return
        self.link.send(self.feed.shared(
            ('book', symbol, depth), sent, book,
            lambda: self.book_text(symbol, 'update', book, level_changes(sent, book))))

    @staticmethod
    def book_text(symbol: str, kind: str, book: dict[str, list[tuple[str, str]]],
                  levels: dict[str, list[tuple[str, str]]], *, bad: bool = False) -> str:
        """A ``book`` message carrying ``levels``, with the checksum of ``book`` (a wrong
        one if ``bad``)."""
        checksum = Feed.checksum(book) ^ (0x5A5A5A5A if bad else 0)
        data = {'symbol': symbol,
                'bids': [{'price': Raw(p), 'qty': Raw(q)} for p, q in levels['bids']],
                'asks': [{'price': Raw(p), 'qty': Raw(q)} for p, q in levels['asks']],
                'checksum': checksum, 'timestamp': iso(time.time())}
        return dumps({'channel': 'book', 'type': kind, 'data': [data]})

    def send_level3_update(self, symbol: str, spec: PairSpec, depth: int,
                           sent: tuple[dict[str, list[tuple[str, str]]], dict[str, Level3Side]],
                           levels: dict[str, list[tuple[str, str]]]) -> None:
        """The level3 update from the ``sent`` levels and queues to those of ``levels``:
        one text for every subscriber in step."""
        sent_levels, sent_l3 = sent
        book3 = self.feed.shared(('queues', symbol, depth), levels, levels,
                                 lambda: queues(spec, levels))
        self.level3[symbol] = (spec, depth, levels, book3)
        if self.feed.take('bad_checksum'):
            self.link.send(self.level3_text(symbol, 'update', book3,
                                            _level3_changes(sent_l3, book3), bad=True))
            return
        self.link.send(self.feed.shared(
            ('level3', symbol, depth), sent_levels, levels,
            lambda: self.level3_text(symbol, 'update', book3, _level3_changes(sent_l3, book3))))

    def send_level3(self, symbol: str, kind: str, book: dict[str, Level3Side],
                    orders: dict[str, list[dict[str, Any]]]) -> None:
        self.link.send(self.level3_text(symbol, kind, book, orders,
                                        bad=self.feed.take('bad_checksum')))

    @staticmethod
    def level3_text(symbol: str, kind: str, book: dict[str, Level3Side],
                    orders: dict[str, list[dict[str, Any]]], *, bad: bool = False) -> str:
        checksum = Feed.level3_checksum(book) ^ (0x5A5A5A5A if bad else 0)
        return dumps({'channel': 'level3', 'type': kind, 'data': [{
            'symbol': symbol, 'bids': orders['bids'], 'asks': orders['asks'],
            'checksum': checksum, 'timestamp': iso(time.time())}]})


class Raw(str):
    """Wire text of a number, written into the JSON as a number (``0.10000000``)."""


_MARK = re.compile(r'"\\u0000([0-9a-f]{8}):(\d+)\\u0000"')


def dumps(message: dict[str, Any]) -> str:
    """JSON with numbers in :class:`Raw` written as themselves, trailing zeros included.

    Each :class:`Raw` goes into the JSON as a marked string, and one pass over the
    text puts the numbers in their place: the time is linear in the message's size.
    The marks carry a token drawn for the message, so no text a client sent can pass
    for one.
    """
    marks: list[str] = []
    token = secrets.token_hex(4)

    def mark(value: Any) -> Any:
        if isinstance(value, Raw) or (isinstance(value, Decimal) and value.is_finite()
                                       and not math.isfinite(float(value))):
            marks.append(str(value))  # as written; beyond a float's range too (1E+400)
            return f'\0{token}:{len(marks) - 1}\0'
        if isinstance(value, (float, Decimal)) and not math.isfinite(value):
            return None  # JSON has no NaN or Infinity
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    def number(found: re.Match[str]) -> str:
        return marks[int(found.group(2))] if found.group(1) == token else found.group(0)

    text = json.dumps(mark(message), default=_number)
    return _MARK.sub(number, text) if marks else text


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


#: REST's suffixes of earn balances (``XBT.B``), as the v2 ``wallets`` entry they are.
EARN_WALLETS = {'B': 'flex', 'F': 'flex', 'M': 'flex', 'S': 'bonded', 'P': 'bonded'}


def v2_asset(name: str) -> str:
    """A REST balance's asset (``XXBT``, ``XBT.B``) under its v2 name (``BTC``)."""
    spec = find_asset(name.split('.')[0])
    return (spec.altname if spec else name.split('.')[0]).replace('XBT', 'BTC')


def v2_balances(balances: dict[str, str]) -> list[dict[str, Any]]:
    """REST Balance's rows as the v2 ``balances`` channel's: one row an asset under its v2
    name, with ``asset_class`` and its ``wallets`` (spot ``main``; earn ``flex`` or
    ``bonded`` for REST's suffixed names), ``balance`` the wallets' sum."""
    rows: dict[str, dict[str, Any]] = {}
    for name, amount in balances.items():
        base, _, suffix = name.partition('.')
        row = rows.setdefault(v2_asset(name), {'asset': v2_asset(name), 'asset_class': 'currency',
                                               'balance': Decimal(0), 'wallets': []})
        row['balance'] += Decimal(amount)
        wallet = ('earn', EARN_WALLETS.get(suffix, 'bonded')) if suffix else ('spot', 'main')
        row['wallets'].append({'type': wallet[0], 'id': wallet[1], 'balance': Raw(amount)})
    for row in rows.values():
        row['balance'] = Raw(format(row['balance'], 'f'))
    return list(rows.values())


def ticker_numbers(spec: PairSpec, rest: dict[str, Any]) -> dict[str, Any]:
    """The ticker's figures of the tape, from REST Ticker's entry of the pair (one source for
    both): ``last`` (the last trade, paper trades included), the last 24 hours' ``volume``,
    ``vwap``, ``low``, ``high``, and ``change``/``change_pct`` from today's opening price."""
    decimals = spec.pair_decimals
    last, opening = Decimal(rest['c'][0]), Decimal(rest['o'])
    change = last - opening
    percent = (change / opening * 100).quantize(Decimal('0.01')) if opening else Decimal(0)
    return {'last': Raw(places(last, decimals)), 'volume': Raw(rest['v'][1]),
            'vwap': Raw(places(Decimal(rest['p'][1]), decimals)),
            'low': Raw(places(Decimal(rest['l'][1]), decimals)),
            'high': Raw(places(Decimal(rest['h'][1]), decimals)),
            'change': Raw(places(change, decimals)), 'change_pct': Raw(f'{percent:f}')}


def level_changes(before: dict[str, list[tuple[str, str]]],
             after: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
    """The levels a subscriber needs to go from ``before`` to ``after`` (qty 0 removes)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for side in ('bids', 'asks'):
        old, new = dict(before[side]), dict(after[side])
        out[side] = ([(p, '0.00000000') for p in old if p not in new]
                     + [(p, q) for p, q in after[side] if old.get(p) != q])
    return out


def _level3_changes(before: dict[str, Level3Side],
                    after: dict[str, Level3Side]) -> dict[str, list[dict[str, Any]]]:
    """The level3 ``update`` rows of :func:`.level3.changes`, by side."""
    return {side: [{'event': kind, 'order_id': oid, 'limit_price': Raw(price),
                    'order_qty': Raw(qty), 'timestamp': iso(time.time())}
                   for kind, oid, price, qty in events]
            for side, events in changes(before, after).items()}


def _execution(order: dict[str, Any], exec_type: str) -> dict[str, Any]:
    """One of the sandbox's orders as an ``executions`` report."""
    descr = order.get('descr', {})
    spec = find_pair(descr.get('pair', ''))
    status = {'open': 'new', 'closed': 'filled', 'canceled': 'canceled',
              'expired': 'expired', 'pending': 'pending_new'}.get(order['status'], 'new')
    if exec_type == 'trade' and order['status'] == 'open':
        status = 'partially_filled'
    report = {'order_id': order['txid'], 'exec_type': exec_type, 'order_status': status,
              'symbol': v2_symbol(spec) if spec else descr.get('pair'),
              'side': descr.get('type'), 'order_type': descr.get('ordertype'),
              'order_qty': Decimal(order['vol']), 'cum_qty': Decimal(order['vol_exec']),
              'cum_cost': Decimal(order.get('cost', '0')),
              'timestamp': iso(float(order.get('opentm', time.time())))}
    if descr.get('price') not in (None, '0'):
        report['limit_price'] = Decimal(descr['price'])
    if order.get('cl_ord_id'):
        report['cl_ord_id'] = order['cl_ord_id']
    if order.get('userref'):
        report['order_userref'] = order['userref']
    return report


# -- trading over the socket: Kraken's v2 parameters onto the sandbox's REST handlers -------

def check_required(params: dict[str, Any], *names: str) -> None:
    """Refuse a request without one of ``names``, as REST does (``EGeneral:Invalid
    arguments:volume``); v2's own wording for a missing field is not published, so this
    text is the sandbox's choice."""
    for name in names:
        if params.get(name) is None:
            raise ApiError(f'EGeneral:Invalid arguments:{name}')


def check_numbers(params: dict[str, Any], *names: str) -> None:
    """Refuse text where v2 wants a JSON number: Kraken answers a quantity sent as
    text with ``Cash_order_qty field must be a number_float`` (seen from Kraken)."""
    for name in names:
        value = params.get(name)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, float, Decimal))):
            raise ApiError(f'{name.capitalize()} field must be a number_float')


#: What Kraken answers a price it cannot use (seen from Kraken over REST and v1).
INVALID_PRICE = 'EOrder:Invalid price:Invalid price argument'
#: The largest power of ten the sandbox reads in a v2 number; beyond it the number is refused.
MAX_EXPONENT = 20


def plain_text(params: dict[str, Any], name: str) -> str | None:
    """A v2 number (checked by :func:`check_numbers`) as REST's plain text, or None if not
    given; a number no exchange can carry (not finite, or beyond 1e20) is refused."""
    value = params.get(name)
    if value is None:
        return None
    number = Decimal(str(value))
    if not number.is_finite() or number.adjusted() > MAX_EXPONENT:
        raise ApiError(f'EGeneral:Invalid arguments:{name}')
    return format(number, 'f')


def price_text(params: dict[str, Any], name: str = 'limit_price') -> str | None:
    """v2's ``limit_price`` as REST's ``price``: the price itself. REST reads a leading
    ``+``, ``-`` or ``#`` as an offset from the last trade, v2 takes a number as the
    price, so zero or a negative price is refused, never taken as an offset."""
    try:
        text = plain_text(params, name)
    except ApiError:
        raise ApiError(INVALID_PRICE) from None
    if text is not None and Decimal(text) <= 0:
        raise ApiError(INVALID_PRICE)
    return text


def _order_pair(params: dict[str, Any]) -> PairSpec:
    """The pair of a well-formed order of ``add_order`` or ``batch_add``."""
    check_required(params, 'order_type', 'side', 'order_qty', 'symbol')
    check_numbers(params, 'order_qty', 'limit_price')
    plain_text(params, 'order_qty')
    if params.get('limit_price_type', 'static') == 'static':
        price_text(params)
    spec = _v2_pair(params['symbol'])
    if spec is None:
        raise ApiError(f'Currency pair not supported {params["symbol"]}')
    return spec


def _add_order(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    spec = _order_pair(params)
    rest = {'pair': spec.name, 'type': params.get('side'), 'ordertype': params.get('order_type'),
            'volume': plain_text(params, 'order_qty'), **rest_order(params)}
    if params.get('order_type') not in TRIGGERED:  # a triggered order's limit is its price2
        price = price_text(params)
        if price is not None:
            rest['price'] = price
    for v2, v0 in (('cl_ord_id', 'cl_ord_id'), ('order_userref', 'userref'),
                   ('time_in_force', 'timeinforce')):
        if params.get(v2) is not None:
            rest[v0] = str(params[v2]).upper() if v2 == 'time_in_force' else str(params[v2])
    if params.get('validate'):
        rest['validate'] = 'true'
    try:
        result = feed.private_call(key, 'AddOrder', rest)
    except ApiError as exc:
        raise v2_error(exc, params) from None
    txids = result.get('txid') or ['']
    reply = {'order_id': txids[0]}
    for name in ('cl_ord_id', 'order_userref'):
        if params.get(name) is not None:
            reply[name] = params[name]
    return reply


def check_arrays(params: dict[str, Any], *names: str) -> None:
    """Refuse a single id where v2 wants a list, as it refuses a symbol that is not one
    ("Symbol field must be an array")."""
    for name in names:
        if params.get(name) is not None and not isinstance(params[name], list):
            raise ApiError(f'{name.capitalize()} field must be an array')


def _cancel_order(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    check_fields(params, 'cancel_order')
    check_arrays(params, 'order_id', 'cl_ord_id')
    ids = list(params.get('order_id') or []) + list(params.get('cl_ord_id') or [])
    if not ids:
        raise ApiError('EGeneral:Invalid arguments')
    for txid in ids:
        feed.private_call(key, 'CancelOrder', {'txid': str(txid)})
    return {'order_id': ids[0]} if len(ids) == 1 else {'count': len(ids)}


def _cancel_all(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    check_fields(params, 'cancel_all')
    result = feed.private_call(key, 'CancelAll', {})
    return {'count': result.get('count', 0)}


def _cancel_after(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    check_fields(params, 'cancel_all_orders_after')
    check_required(params, 'timeout')  # 0 disables the timer; nothing given is not 0
    timeout = params['timeout']
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise ApiError('Timeout field must be an integer')  # the sandbox's wording
    result = feed.private_call(key, 'CancelAllOrdersAfter', {'timeout': str(timeout)})
    return {'currentTime': result.get('currentTime'), 'triggerTime': result.get('triggerTime')}


#: How many orders one ``batch_add`` holds (Kraken's v2 docs: "minimum of 2 and maximum 15").
BATCH_SIZES = range(2, 16)


def _batch_add(feed: Feed, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    check_required(params, 'symbol', 'orders')
    check_arrays(params, 'orders')
    if len(params['orders']) not in BATCH_SIZES or not all(
            isinstance(order, dict) for order in params['orders']):
        raise ApiError('EGeneral:Invalid arguments:orders')  # REST's wording, as check_required's
    orders = [{'symbol': params['symbol'], **order} for order in params['orders']]
    for order in orders:  # a malformed order refuses the whole request, before any is placed
        _order_pair(order)
        rest_order(order, 'batch_add')
    return [_add_order(feed, key, order) for order in orders]


def _amend_order(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    check_fields(params, 'amend_order')
    check_numbers(params, 'order_qty', 'limit_price')
    rest = {name: str(params[name]) for name in ('cl_ord_id',) if params.get(name) is not None}
    for name, text in (('order_qty', plain_text(params, 'order_qty')),
                       ('limit_price', price_text(params))):
        if text is not None:
            rest[name] = text
    if params.get('order_id') is not None:
        rest['txid'] = str(params['order_id'])
    result = feed.private_call(key, 'AmendOrder', rest)
    return {'amend_id': result['amend_id'], **{k: params[k] for k in ('order_id', 'cl_ord_id')
                                                 if params.get(k) is not None}}


def _edit_order(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    check_fields(params, 'edit_order')
    check_required(params, 'order_id', 'symbol')
    check_numbers(params, 'order_qty', 'limit_price')
    spec = _v2_pair(params.get('symbol'))
    if spec is None:
        raise ApiError(f'Currency pair not supported {params.get("symbol")}')
    rest = {'txid': str(params.get('order_id')), 'pair': spec.name}
    for v0, text in (('volume', plain_text(params, 'order_qty')), ('price', price_text(params)),
                     ('userref', None if params.get('order_userref') is None
                      else str(params['order_userref']))):
        if text is not None:
            rest[v0] = text
    result = feed.private_call(key, 'EditOrder', rest)
    return {'order_id': result['txid'], 'original_order_id': result['originaltxid']}


def _batch_cancel(feed: Feed, key: str, params: dict[str, Any]) -> dict[str, Any]:
    check_fields(params, 'batch_cancel')
    check_arrays(params, 'orders')
    orders = [str(o) for o in params.get('orders') or []]
    if not orders:
        raise ApiError('EGeneral:Invalid arguments')
    for txid in orders:
        feed.private_call(key, 'CancelOrder', {'txid': txid})
    return {'count': len(orders)}


TRADING: dict[str, Callable[[Feed, str, dict[str, Any]], Any]] = {
    'add_order': _add_order, 'amend_order': _amend_order, 'edit_order': _edit_order,
    'cancel_order': _cancel_order, 'cancel_all': _cancel_all,
    'cancel_all_orders_after': _cancel_after, 'batch_add': _batch_add,
    'batch_cancel': _batch_cancel,
}


_Session.methods = TRADING
#: One WebSocket v2 connection's handler; the Unified WebSocket's extends it.
Session = _Session
