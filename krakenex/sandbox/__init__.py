"""A local Kraken-compatible spot exchange, for tests, examples and notebooks.

>>> from krakenex import API
>>> from krakenex.sandbox import Sandbox
>>> with Sandbox() as sandbox:                       # doctest: +SKIP
...     with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
...         print(api.query_private('Balance')['result']['ZUSD'])
100000.0000

It listens on 127.0.0.1 only, checks API-Key, API-Sign, nonces and the call
counter as Kraken does, serves seeded market data, fills paper orders against
a synthetic book, keeps ledgers, and can inject the faults Kraken's users meet
(Cloudflare HTML pages, resets, lost replies). Standard library only; it
writes no files. ``python -m krakenex.sandbox`` runs one from the shell.

The package, one responsibility per module:

- :mod:`~krakenex.sandbox.server`: HTTP, connections, routes, injected faults;
- :mod:`~krakenex.sandbox.exchange`: accounts, Kraken's request checks, the call
  counter and the trading engine's limits, matching (the state, behind one lock);
- :mod:`~krakenex.sandbox.endpoints`: one request in, one reply out: verb,
  authentication, call counter, parameter scope, then the method's handler;
- :mod:`~krakenex.sandbox.market_data`, :mod:`~krakenex.sandbox.account_data`,
  :mod:`~krakenex.sandbox.trading` and :mod:`~krakenex.sandbox.funding` (with earn,
  exports and subaccounts): Kraken's spot methods, each module over the exchange
  it is given, through the exchange's public methods;
- :mod:`~krakenex.sandbox.permissions`: Kraken's API key permissions and what each opens;
- :mod:`~krakenex.sandbox.params`: reading parameters as Kraken reads them;
- :mod:`~krakenex.sandbox.replies`: the replies and Kraken's formats;
- :mod:`~krakenex.sandbox.market`: the seeded market data and book;
- :mod:`~krakenex.sandbox.level3`: the resting orders behind the book's levels, for
  REST ``Level3`` and the feed's ``level3`` alike;
- :mod:`~krakenex.sandbox.motion`: the seeded random walk of prices (``motion``);
- :mod:`~krakenex.sandbox.limits`: Kraken's spot rate limits (the sandbox's own table);
- :mod:`~krakenex.sandbox.counter`: the leaky counter that keeps every limit;
- :mod:`~krakenex.sandbox.feed` and :mod:`~krakenex.sandbox.links`: the WebSocket v2
  feed and its connections (with the ``ws`` extra);
- :mod:`~krakenex.sandbox.unified`: the Unified WebSocket (derivatives) over the feed's
  connections, with its public data in :mod:`~krakenex.sandbox.unified_market`, its
  private channels in :mod:`~krakenex.sandbox.unified_account`, its methods in
  :mod:`~krakenex.sandbox.unified_trading` and its ``asset_class`` rules in
  :mod:`~krakenex.sandbox.unified_rules`;
- :mod:`~krakenex.sandbox.futures`: Kraken Futures, split the same way.

Extending it: another module (a WebSocket feed, a futures API) serves more of
Kraken from the same sandbox and the same state by registering a route:

.. code-block:: python

    def attach(sandbox: Sandbox) -> None:
        def route(request: Request) -> Reply | None:
            with sandbox.exchange.lock:
                ...                     # read or change sandbox.exchange
            return envelope({'result': 'ok'})
        sandbox.add_route('/derivatives/api/v3/', route)

A route gets every request whose path starts with its prefix (the longest
prefix wins; ``/0/public/`` and ``/0/private/`` are Kraken's spot routes),
as a :class:`~krakenex.sandbox.server.Request`, and returns a
:class:`~krakenex.sandbox.replies.Reply`, or None once it has taken the
connection over through ``request.handler`` (a WebSocket upgrade). Routes
survive a restart, injected faults apply to them (matched by the path after
the prefix), and :attr:`Sandbox.endpoints` takes more spot methods in its
``public`` and ``private`` tables.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..pacing import TIERS, parse_tier
from . import futures
from .endpoints import PRIVATE_PREFIX, PUBLIC_PREFIX, Endpoints
from .exchange import SYSTEM_STATUSES, Account, Exchange
from .limits import ENGINE_TIERS, REST_TIERS
from .market import PAIRS, find_pair
from .motion import Motion
from .params import arithmetic
from .replies import Reply, envelope
from .server import (
    FAULT_KINDS,
    MAX_CONNECTIONS,
    ODD_REPLIES,
    READ_TIMEOUT,
    Faults,
    Request,
    Route,
    Server,
)

if TYPE_CHECKING:
    from .feed import Feed
    from .unified import Unified

__all__ = ['Sandbox', 'Account', 'Request', 'Reply', 'Route', 'envelope', 'TIERS',
           'FAULT_KINDS', 'ODD_REPLIES', 'READ_TIMEOUT', 'MAX_CONNECTIONS']


class Sandbox:
    """A Kraken-compatible spot exchange on 127.0.0.1, started and stopped by you.

    :param port: TCP port (0: any free port; read :attr:`url` after :meth:`start`).
    :param seed: makes market data, keys and history reproducible.
    :param tier: the limits of a key of this Kraken tier, on by default as on a real
        key: ``'starter'`` (default), ``'intermediate'`` or ``'pro'``. Each keeps
        Kraken's REST call counter, the trading engine's rate counter per pair
        (``EOrder:Rate limit exceeded``) and its open orders per pair
        (``EOrder:Orders limit exceeded``) at that tier's figures. ``'MAX,DECAY'`` or
        ``(max_counter, decay_per_second)`` sets the REST counter alone, with the
        starter tier's engine limits. None keeps no limit at all.
    :param balances: the default account's funds, e.g. ``{'ZUSD': '1000'}`` (then it
        has no trading history); None funds it with a seeded history.
    :param nonce_window: the default key's nonce window, in nonce units.
    :param otp: the default key's 2FA password; every private call must send it.
    :param costs: per-method counter costs that override Kraken's (those of
        :func:`krakenex.sandbox.limits.call_cost`).
    :param public_rate: public calls per second per client address (None: no limit).
    :param read_timeout: seconds one read from a client may wait before its
        connection is dropped (an idle keep-alive connection, or a body that never
        arrives).
    :param idle_drop: seconds after which an idle keep-alive connection is forgotten,
        as by a load balancer in front of Kraken: its next request is dropped
        unanswered. None (the default) keeps it while ``read_timeout`` allows.
    :param max_connections: open connections at most; beyond it the connection
        idle the longest is closed to make room (HTTP 503 if none is idle).
    :param motion: seconds between two moves of the market while the sandbox runs:
        every pair's price takes a seeded random step of whole ticks, so books,
        tickers, trades and candles change on their own, and resting orders and
        stops fill as on :meth:`set_price`; each futures contract's mark follows its
        spot pair (Kraken Futures REST and the Unified WebSocket move too). None (the
        default) keeps prices still until :meth:`set_price` or :meth:`move`.

    A stopped sandbox keeps its accounts, orders and market; :meth:`start` serves
    them again on the same port, so :attr:`url` stays valid. Until then its port
    refuses connections, and its :func:`repr` says it is stopped.
    """

    #: Where the sandbox listens, such as ``http://127.0.0.1:52173``; empty until it
    #: is started. Pass it to :class:`krakenex.API` as ``uri``.
    url: str
    #: The API key of the sandbox's default account.
    key: str
    #: The API secret of the default account.
    secret: str
    #: A ``(method, nonce)`` tuple for each request the exchange handled, in order; the
    #: nonce is ``None`` for public calls. Requests stopped by an injected fault before
    #: they were carried out are not in it.
    requests_log: list[tuple[str, str | None]]
    #: The exchange state (accounts, market, matching); hold ``exchange.lock`` to use it.
    exchange: Exchange
    #: Kraken's spot methods over :attr:`exchange`, by name in ``public`` and ``private``.
    endpoints: Endpoints

    def __init__(self, port: int = 0, *, seed: int = 0,
                 tier: str | tuple[float, float] | None = 'starter',
                 balances: dict[str, str] | None = None, nonce_window: int = 0,
                 otp: str | None = None, costs: dict[str, float] | None = None,
                 public_rate: float | None = None, read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, motion: float | None = None,
                 idle_drop: float | None = None) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f'port must be between 0 and 65535, not {port}')
        if not (math.isfinite(read_timeout) and read_timeout > 0) or max_connections < 1:
            raise ValueError('read_timeout and max_connections must be positive')
        self.port = port
        self.url = ''
        engine = None if tier is None else ENGINE_TIERS.get(
            tier if isinstance(tier, str) else '', ENGINE_TIERS['starter'])
        self.exchange = Exchange(seed=seed, start=time.time(),
                                 tier=_rest_tier(tier), costs=costs,
                                 public_rate=public_rate, engine=engine)
        self.endpoints = Endpoints(self.exchange)
        self.requests_log = self.exchange.requests_log
        account = self.add_account(balances, otp=otp, nonce_window=nonce_window, master=True)
        self.key, self.secret = account.key, account.secret
        self._read_timeout, self._max_connections = read_timeout, max_connections
        self._faults = Faults()
        self._faults.idle_drop = idle_drop
        self._routes: dict[str, tuple[Route, Callable[[], Reply] | None]] = {
            PUBLIC_PREFIX: (self.endpoints.route, None),
            PRIVATE_PREFIX: (self.endpoints.route, None)}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        #: Kraken Futures on the same server, with its own accounts (:mod:`.futures`).
        self.futures = futures.attach(self, seed=seed)
        #: The market's walk (:mod:`.motion`), spot pairs and futures contracts alike; it
        #: steps on its own with ``motion``.
        self.motion = Motion(self.exchange, seed=seed, interval=motion, futures=self.futures)
        #: The WebSocket v2 feed (:mod:`krakenex.sandbox.feed`); None without the ``ws`` extra.
        self.feed = _feed(self)
        #: The Unified WebSocket (:mod:`krakenex.sandbox.unified`) over :attr:`futures`;
        #: None without the ``ws`` extra.
        self.unified = _unified(self, self.feed)

    def __repr__(self) -> str:
        if not self.url:
            return '<Sandbox not started>'
        return f'<Sandbox {self.url}{"" if self.running else " stopped"}>'

    @property
    def ws_url(self) -> str:
        """The public WebSocket v2 endpoint, such as ``ws://127.0.0.1:52173/v2``."""
        return self._ws_feed().endpoint(self.url, private=False)

    @property
    def ws_auth_url(self) -> str:
        """The authenticated WebSocket v2 endpoint, such as ``ws://127.0.0.1:52173/auth/v2``."""
        return self._ws_feed().endpoint(self.url, private=True)

    @property
    def ws_l3_url(self) -> str:
        """The level3 endpoint, such as ``ws://127.0.0.1:52173/l3/v2`` (Kraken's
        ``wss://ws-l3.kraken.com/v2``); the authenticated endpoint serves level3 too."""
        return self._ws_feed().endpoint(self.url, private=True, level3=True)

    @property
    def unified_url(self) -> str:
        """The Unified WebSocket's public endpoint, such as
        ``ws://127.0.0.1:52173/uws/v2/public`` (Kraken's ``wss://uws.kraken.com/v2/public``)."""
        self._ws_feed()
        return self.unified.endpoint(self.url, private=False) if self.unified else ''

    @property
    def unified_auth_url(self) -> str:
        """The Unified WebSocket's private endpoint, such as
        ``ws://127.0.0.1:52173/uws/v2/private`` (Kraken's ``wss://uws.kraken.com/v2/private``)."""
        self._ws_feed()
        return self.unified.endpoint(self.url, private=True) if self.unified else ''

    def _ws_feed(self) -> Feed:
        if self.feed is None:
            from .._extras import needs

            raise RuntimeError(needs('the sandbox\'s WebSocket v2 feed', 'ws'))
        return self.feed

    @property
    def futures_url(self) -> str:
        """Where Kraken Futures is served: pass it to ``FuturesAPI`` as ``uri``."""
        return self.url

    def connection(self) -> dict[str, str]:
        """What a client needs to reach this sandbox: every address it serves, and its keys.

        ``url``, ``key`` and ``secret`` (spot REST); ``ws_url``, ``ws_auth_url`` and
        ``ws_l3_url`` (WebSocket v2, on the same port), ``unified_url`` and
        ``unified_auth_url`` (the Unified WebSocket; these five left out without the
        ``ws`` extra); ``futures_url``, ``futures_key`` and ``futures_secret`` (Kraken
        Futures). What ``krakenex sandbox`` prints.
        """
        found = {'url': self.url, 'key': self.key, 'secret': self.secret}
        if self.feed is not None:
            found.update(ws_url=self.ws_url, ws_auth_url=self.ws_auth_url,
                         ws_l3_url=self.ws_l3_url, unified_url=self.unified_url,
                         unified_auth_url=self.unified_auth_url)
        found.update(futures_url=self.futures_url, futures_key=self.futures.key,
                     futures_secret=self.futures.secret)
        return found

    @property
    def running(self) -> bool:
        """Whether the sandbox is serving now."""
        return self._server is not None

    def start(self) -> Sandbox:
        """Listen and serve in background threads; returns self.

        A stopped sandbox starts again on the port it had, with its state.

        :raises RuntimeError: if it is running already
        :raises OSError: if the port is taken
        """
        if self._server is not None:
            raise RuntimeError(f'this Sandbox is running already at {self.url}')
        port = int(self.url.rsplit(':', 1)[1]) if self.url else self.port
        server = Server(('127.0.0.1', port), self._faults, read_timeout=self._read_timeout,
                        max_connections=self._max_connections)
        for prefix, (route, unavailable) in self._routes.items():
            server.add_route(prefix, route, unavailable)
        self._faults.stopping.clear()
        self._server = server
        self.url = f'http://127.0.0.1:{server.server_address[1]}'
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name='krakenex-sandbox', daemon=True)
        self._thread.start()
        self.motion.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread (safe to repeat)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.motion.stop()
        self._faults.stopping.set()
        server.shutdown()
        server.server_close()
        for worker in server.close_connections():
            worker.join(timeout=5)
        if self.feed is not None:
            self.feed.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def add_route(self, prefix: str, route: Route, *,
                  unavailable: Callable[[], Reply] | None = None) -> None:
        """Serve requests whose path starts with ``prefix`` by ``route`` (see the module doc).

        :param unavailable: what the ``unavailable`` fault answers on these paths;
            spot's ``EService:Unavailable`` if not given
        """
        if not prefix.startswith('/'):
            raise ValueError(f'a route prefix starts with /, not {prefix!r}')
        self._routes[prefix] = (route, unavailable)
        if self._server is not None:
            self._server.add_route(prefix, route, unavailable)

    def open_connections(self) -> int:
        """How many client connections are open now (0 when stopped)."""
        return 0 if self._server is None else self._server.open_connections()

    def add_account(self, balances: dict[str, str] | None = None, *, otp: str | None = None,
                    nonce_window: int = 0,
                    permissions: Iterable[str] | None = None,
                    master: bool = False) -> Account:
        """Another API key with its own funds, nonces and rate counter.

        :param permissions: the key's permissions, by the names Kraken's
            ``GetApiKeyInfo`` lists (:data:`krakenex.sandbox.permissions.PERMISSIONS`:
            ``'query-funds'``, ``'modify-trades'``, ``'websocket-access'``, ...); None
            (the default) grants them all. A private call outside them, over REST or
            WebSocket, gets Kraken's ``EGeneral:Permission denied``.
        :param master: an institutional master account, which alone may call
            ``CreateSubaccount`` and ``AccountTransfer``, as on Kraken; any other key
            gets ``EGeneral:Permission denied``. The sandbox's own key is one.
        """
        return self.exchange.add_account(balances, otp=otp, nonce_window=nonce_window,
                                         permissions=permissions, master=master)

    def inject(self, kind: str, *, times: int = 1, method: str | None = None,
               seconds: float = 1.0) -> None:
        """Give the next ``times`` requests for ``method`` (any if None) the fault ``kind``.

        Kinds: ``html520``/``html502``/``html504`` (Cloudflare page, not processed),
        ``reset`` (TCP RST, not processed), ``unavailable`` (EService:Unavailable, or Kraken
        Futures' ``Unavailable`` on its paths; not processed), ``delay`` (wait ``seconds``,
        then process), ``reply_lost`` (process, then RST), ``reply_delayed`` (process, wait,
        reply), ``not_json`` (process, reply with plain text), ``trickle`` (process, then
        send the reply's body a byte every ``seconds``), and the 2xx replies that are
        not Kraken's envelope (process, then answer HTTP 200 with it; :data:`ODD_REPLIES`):
        ``empty_object`` (``{}``), ``no_result`` (``{"error": []}``), ``error_text``
        (``{"error": "a string"}``), ``json_list`` (``[]``), ``json_null`` (``null``),
        ``json_text`` (``"ok"``), ``bare_success`` (``{"result": "success"}``, with no
        order status for Kraken Futures) and ``octet_stream`` (bytes as
        ``application/octet-stream``). Faults are used in the order they were injected.
        """
        self._faults.add(kind, method, seconds, times)

    def clear_faults(self) -> None:
        """Forget every fault not yet used."""
        self._faults.clear()

    def set_price(self, pair: str, price: str | float) -> None:
        """Trade the market of ``pair`` at ``price``; resting limit orders it reaches fill."""
        spec = find_pair(pair)
        if spec is None:
            raise ValueError(f'unknown pair {pair!r}; known: {", ".join(PAIRS)}')
        value = Decimal(str(price))
        if not value.is_finite() or value <= 0:
            raise ValueError(f'a price must be positive, not {price!r}')
        self.exchange.set_price(spec, value)

    def set_status(self, status: str) -> None:
        """Set the trading engine's status, as SystemStatus and the feed's ``status`` show it.

        Every open WebSocket connection gets a ``status`` update, as from Kraken when
        its engine changes state, and trading follows it as Kraken's does: in
        ``maintenance`` nothing is placed or canceled (``EService:Unavailable``); in
        ``cancel_only`` orders are only canceled (``EService:Market in cancel_only
        mode``); in ``post_only`` new orders must be post-only limit orders
        (``EService:Market in post_only mode``); outside ``online`` nothing fills.

        :param status: ``'online'``, ``'maintenance'``, ``'cancel_only'`` or ``'post_only'``
        :raises ValueError: for any other status
        """
        if status not in SYSTEM_STATUSES:
            raise ValueError(f'unknown status {status!r}; '
                             f'choose one of {", ".join(SYSTEM_STATUSES)}')
        with self.exchange.lock:
            self.exchange.status = status

    def move(self) -> dict[str, str]:
        """Move the market one step of its seeded walk now (what ``motion`` does on a timer).

        :returns: each pair's new price, by Kraken pair name, such as ``{'XXBTZUSD': '60004.2',
            ...}``; the same after the same steps in any sandbox with the same seed
        """
        return {name: str(price) for name, price in self.motion.step().items()}

    def orders(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every order accepted over the API for ``key`` (default account), oldest first.

        Each dict is the order as QueryOrders shows it, plus ``txid``, ``userref`` and
        ``cl_ord_id``. The made-up history of a default-funded account is left out.
        """
        with self.exchange.lock, arithmetic():
            self.exchange.expire_timers()
            account = self.exchange.accounts.get(key or self.key)
            if account is None:
                raise ValueError('no account has that key')
            return [{**o.to_kraken(True), 'txid': o.txid, 'cl_ord_id': o.cl_ord_id}
                    for o in account.orders.values() if not o.seeded]


def _rest_tier(tier: str | tuple[float, float] | None) -> tuple[float, float] | None:
    """The REST call counter of a tier by name (the sandbox's table) or ``(maximum, decay)``."""
    if tier is None:
        return None
    if isinstance(tier, str) and tier in REST_TIERS:
        return REST_TIERS[tier]
    return parse_tier(tier)


def _feed(sandbox: Sandbox) -> Feed | None:
    try:
        from .feed import attach
    except ImportError:  # no websockets: the sandbox serves REST only
        return None
    return attach(sandbox)


def _unified(sandbox: Sandbox, feed: Feed | None) -> Unified | None:
    if feed is None:
        return None
    from .unified import attach

    return attach(sandbox, feed)

