"""AsyncWS: the user's calls on Kraken's WebSocket v2 from asyncio.

It holds up to three connections (public, authenticated, level3;
:mod:`krakenex.ws.connection`), each with its session of Kraken's rules
(:mod:`krakenex.ws.session`), and the stream of messages for the user
(:mod:`krakenex.ws.stream`). Nothing here calls :func:`asyncio.run`: it runs in
whatever loop awaits it, a notebook's included.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import order_ids
from ..core import server
from ..deadman import ADVISED_TIMEOUT, AsyncDeadManSwitch
from ..errors import KrakenConnectionError, KrakenUsageError, NotSentError
from .book import Book, BookView
from .connection import Connection, Token
from .errors import BookUnavailableError, ViewUnavailableError
from .protocol import (
    AUTH,
    KRAKEN_TIMEOUT_METHODS,
    LEVEL3,
    MAX_MESSAGE,
    PUBLIC,
    UNIFIED_URL_VARIABLES,
    URL_VARIABLES,
    Backoff,
    ResyncBackoff,
    check_depth,
    check_interval,
    check_timeout,
    check_url,
    endpoint,
    notice,
    reply_error,
    split_subscription,
)
from .session import NOTICE_SIZE, Precisions, Session, carried_out
from .stream import Stream, StreamClosed
from .unified import Unified

if TYPE_CHECKING:
    from ..api import API

__all__ = ['AsyncWS', 'DEFAULT_TIMEOUT', 'DEFAULT_SILENCE', 'MAX_MESSAGE', 'endpoint_urls',
           'Token']

#: Seconds to wait for a connection or a reply unless told otherwise.
DEFAULT_TIMEOUT = 10.0

#: Seconds without any message (Kraken sends a heartbeat about every second once
#: something is subscribed) after which a connection is taken for dead and replaced.
DEFAULT_SILENCE = 10.0

#: Messages kept for a reader that falls behind; past it the oldest are dropped and an
#: ``overflow`` notice says how many.
DEFAULT_MAX_QUEUE = 100_000

#: The same in bytes, as the messages came over the wire (decoded, they take from about 5
#: times as much memory for a book update to about 30 for a long list of numbers).
DEFAULT_MAX_QUEUE_BYTES = 16 << 20


def _count(value: Any, name: str) -> int:
    """A bound given by the user: a whole number above 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KrakenUsageError(f'{name} must be a whole number above 0, not {value!r}')
    return value


def _check_req_id(method: str, req_id: Any) -> None:
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, int)):
        raise KrakenUsageError(f'{method} was not sent: req_id must be a whole number, '
                               f'not {req_id!r}')


def _listed(params: dict[str, Any]) -> dict[str, Any]:
    """Subscription parameters with one ``symbol`` given as text made the list Kraken wants."""
    symbol = params.get('symbol')
    return {**params, 'symbol': [symbol]} if isinstance(symbol, str) else params


def endpoint_urls(url: str | None, auth_url: str | None, l3_url: str | None,
                  unified: bool = False) -> tuple[str, str, str]:
    """The public, authenticated and level3 endpoints: as given, else from the environment
    (:data:`~krakenex.ws.protocol.URL_VARIABLES`, or with ``unified`` the Unified
    WebSocket's :data:`~krakenex.ws.protocol.UNIFIED_URL_VARIABLES`), else Kraken's.

    :raises KrakenUsageError: for one that is not a ``ws://`` or ``wss://`` address
    """
    given = {PUBLIC: (url, 'url'), AUTH: (auth_url, 'auth_url'), LEVEL3: (l3_url, 'l3_url')}
    found = []
    for name, (value, parameter) in given.items():
        variable, default = (UNIFIED_URL_VARIABLES if unified and name in UNIFIED_URL_VARIABLES
                             else URL_VARIABLES)[name]
        found.append(check_url(value, parameter) if value is not None else
                     server(None, variable, default, check_url))
    return found[0], found[1], found[2]


class AsyncWS:
    """Kraken's WebSocket v2 from asyncio: ``async with``, ``await``, ``async for``.

    >>> async with AsyncWS() as ws:                                 # doctest: +SKIP
    ...     await ws.subscribe('book', symbol=['BTC/USD'], depth=10)
    ...     async for message in ws:
    ...         book = ws.book('BTC/USD')

    :param api: an :class:`krakenex.API` holding a key, for private channels and trading;
        the token comes from its ``GetWebSocketsToken``, fresh for every connection
    :param token: a token from ``GetWebSocketsToken`` got elsewhere, for a key that does
        not live here: the text (Kraken accepts it for a new connection within 15 minutes
        of its making, so it serves short runs), or a function returning a fresh one,
        called for every connection. It takes the place of ``api``'s
    :param url: the public endpoint; if not given, ``KRAKEN_WS_URL`` when it is set,
        else Kraken's
    :param auth_url: the authenticated endpoint: ``executions``, ``balances`` and trading;
        else ``KRAKEN_WS_AUTH_URL``, else Kraken's
    :param l3_url: the level3 endpoint (``level3``, with a token of its own per connection);
        else ``KRAKEN_WS_L3_URL``, else Kraken's
    :raises KrakenUsageError: if ``url``, ``auth_url`` or ``l3_url`` is not a ``ws://`` or
        ``wss://`` address, before anything connects
    :param unified: speak Kraken's Unified WebSocket (derivatives) instead of spot v2:
        ``url`` and ``auth_url`` default to ``KRAKEN_UWS_URL`` and ``KRAKEN_UWS_AUTH_URL``,
        else Kraken's ``/v2/public`` and ``/v2/private``, and Kraken's derivatives rules
        are checked before anything is sent (:mod:`krakenex.ws.unified`)
    :param asset_class: with ``unified``, added to every request that takes it and does not
        name its own (``'derivatives'`` unless given)
    :param timeout: seconds to wait for a connection or a reply, unless a call says otherwise
        (``None`` or infinity: for ever)
    :param silence: seconds without any message after which a connection is replaced
    :raises KrakenUsageError: also for a ``timeout`` or ``silence`` that is not a number
        of seconds above 0
    :param backoff: makes the reconnect policy for each connection (:class:`Backoff`)
    :param resync_backoff: makes the policy for subscribing failed books again, for each
        connection (:class:`ResyncBackoff`)
    :param max_queue: messages kept for a reader that falls behind
    :param max_queue_bytes: bytes kept for a reader that falls behind, each message counted
        at its size on the wire; past either bound the oldest messages are dropped and an
        ``overflow`` notice says how many
    :raises KrakenUsageError: also for a ``max_queue`` or ``max_queue_bytes`` that is not a
        whole number above 0
    :param client_order_ids: give every order of ``add_order`` and ``batch_add`` sent
        without ``cl_ord_id`` or ``order_userref`` a ``cl_ord_id`` (:mod:`krakenex.order_ids`),
        so an unknown outcome can always be looked up; ``False`` sends orders as given
    """

    def __init__(self, api: API | None = None, *, url: str | None = None,
                 auth_url: str | None = None, l3_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, token: Token | None = None,
                 silence: float = DEFAULT_SILENCE, backoff: Callable[[], Backoff] = Backoff,
                 resync_backoff: Callable[[], ResyncBackoff] = ResyncBackoff,
                 max_queue: int = DEFAULT_MAX_QUEUE,
                 max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES, unified: bool = False,
                 asset_class: str | None = None, client_order_ids: bool = True) -> None:
        self.api = api
        try:
            #: Whether an order sent without an identifier gets a ``cl_ord_id`` from krakenex.
            self.client_order_ids = order_ids.check_option(client_order_ids)
        except TypeError as exc:
            raise KrakenUsageError(str(exc)) from None
        if asset_class is not None and not unified:
            raise KrakenUsageError('asset_class is for the Unified WebSocket: '
                                   'AsyncWS(api, unified=True, asset_class=...)')
        #: The Unified WebSocket's rules, or ``None`` for spot WebSocket v2.
        self.unified = (Unified() if asset_class is None else Unified(asset_class)) \
            if unified else None
        if token is not None and not callable(token) and not (
                isinstance(token, str) and token.strip() and token.isprintable()):
            raise KrakenUsageError('token must be the text GetWebSocketsToken returned, or a '
                                   'function returning a fresh one')
        #: The user's own token (or a function returning one), used instead of ``api``'s.
        self.token = token.strip() if isinstance(token, str) else token
        self.url, self.auth_url, self.l3_url = endpoint_urls(url, auth_url, l3_url, unified)
        #: Each endpoint's address, by the names of :data:`krakenex.ws.protocol.ENDPOINTS`.
        self.urls = {PUBLIC: self.url, AUTH: self.auth_url, LEVEL3: self.l3_url}
        self.timeout = check_timeout(timeout)
        if check_timeout(silence, name='silence') is None:
            raise KrakenUsageError(f'silence must be a finite number of seconds, not {silence!r}')
        self.silence = silence
        self.backoff_factory = backoff
        self.resync_backoff_factory = resync_backoff
        self.closed = False
        #: The pairs' precisions from the ``instrument`` channel, for books subscribed later
        #: (at most :data:`~krakenex.ws.session.MAX_PRECISIONS` pairs).
        self.precisions = Precisions()
        self.ids = itertools.count(1)
        self._stream = Stream(_count(max_queue, 'max_queue'),
                              _count(max_queue_bytes, 'max_queue_bytes'))
        self._connections: dict[str, Connection] = {}

    def __repr__(self) -> str:
        connections = ', '.join(repr(c) for c in self._connections.values()) or 'not connected'
        return f'<AsyncWS {connections}>'

    async def __aenter__(self) -> AsyncWS:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __aiter__(self) -> AsyncWS:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            message: dict[str, Any] = await self._stream.aget(None)
        except StreamClosed:
            raise StopAsyncIteration from None
        return message

    # -- the user's calls -----------------------------------------------------------------

    async def subscribe(self, channel: str, *, timeout: float | None = None,
                        req_id: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """Subscribe to a channel with Kraken's parameters (``symbol=['BTC/USD']``, ``depth=10``).

        The request is kept as given and sent again after every reconnect, unless
        Kraken refused it (then only the symbols it accepted are kept; the earlier
        requests stay as they were). A ``symbol`` given as one text is sent as the
        list Kraken wants.

        :returns: Kraken's acknowledgements, one per symbol
        :raises KrakenAPIError: (a subclass) if Kraken refused it, with Kraken's error text
        :raises KrakenConnectionError: if the connection dropped before the acknowledgement
        :raises KrakenUsageError: for a book ``depth`` that is not a whole number, an
            ``ohlc`` ``interval`` that is not one of Kraken's (such as the text ``'60'``),
            or a bad ``req_id`` or ``timeout``; nothing is sent
        :raises NotSentError: if the connection was not open; nothing is sent, now or
            after a reconnect
        """
        timeout, params = self._timeout(timeout), _listed(params)
        depth = check_depth(params.get('depth', 10)) if channel == 'book' else 0
        if channel == 'ohlc' and 'interval' in params:
            check_interval(params['interval'])
        _check_req_id('subscribe', req_id)
        connection = self._connection(self._endpoint(channel))
        connection.session.check_subscription(channel, params)
        await connection.wait_ready(timeout)
        session = connection.session
        entry, new_books = session.subscribing(channel, params, depth)
        try:
            if session.needs_instrument(channel, params):
                await connection.subscribe_instrument()
            replies = await connection.call('subscribe', {'channel': channel, **params}, timeout,
                                            expected=len(split_subscription(params)),
                                            req_id=req_id)
        except (NotSentError, KrakenUsageError):  # nothing to send again after a reconnect
            session.not_subscribed(entry, new_books)
            raise
        # only this request's own entry and books: earlier ones were accepted
        refused = session.not_subscribed(entry, new_books, replies)
        if refused:
            raise reply_error(refused, f'subscribe {channel}')
        return replies

    async def unsubscribe(self, channel: str, *, timeout: float | None = None,
                          req_id: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """Unsubscribe (same parameters as the subscription); not sent again after reconnects.

        :returns: Kraken's acknowledgements, one per symbol
        :raises KrakenAPIError: (a subclass) if Kraken refused it, such as for a
            subscription it does not have
        """
        timeout, params = self._timeout(timeout), _listed(params)
        _check_req_id('unsubscribe', req_id)
        connection = self._connection(self._endpoint(channel))
        connection.session.unsubscribing(channel, params)
        await connection.wait_ready(timeout)
        replies = await connection.call('unsubscribe', {'channel': channel, **params}, timeout,
                                        expected=len(split_subscription(params)), req_id=req_id)
        refused = [r for r in replies if r.get('success') is False]
        if refused:
            raise reply_error([str(r.get('error')) for r in refused], f'unsubscribe {channel}')
        return replies

    async def connect(self, *, private: bool = False, timeout: float | None = None) -> None:
        """Open the public connection now, or with ``private`` the authenticated one.

        Otherwise the first call that needs a connection opens it. Nothing is
        sent on it, so a failure or an interruption here leaves nothing to look up.

        :raises KrakenConnectTimeout: (a :class:`~krakenex.NotSentError`) if it did not
            open within ``timeout`` seconds
        :raises AuthenticationError: if Kraken refused the key when asked for a token
            (``GetWebSocketsToken``; the key needs the WebSocket interface permission)
        :raises KrakenConnectionError: if krakenex gave up connecting otherwise
        """
        await self._connection(AUTH if private else PUBLIC).wait_ready(self._timeout(timeout))

    async def request(self, method: str, *, timeout: float | None = None,
                      req_id: int | None = None, **params: Any) -> dict[str, Any]:
        """Send a request (``add_order``, ``cancel_order``, ``ping``, ...) and return its reply.

        krakenex adds the token for trading, and ``req_id`` (Kraken's request
        identifier, echoed in the reply) unless one is given. For
        ``cancel_all_orders_after``, ``timeout`` is Kraken's own parameter (seconds
        until every order is cancelled, 0 to disarm) and the reply is awaited for
        the client's timeout. An order request
        is never sent twice: if the connection drops (even while the request is
        being written) or no reply comes in time,
        :class:`~krakenex.ws.errors.SocketOutcomeUnknownError` (an
        :class:`~krakenex.OutcomeUnknownError`) carries ``req_id``,
        ``cl_ord_id`` and ``order_userref`` for :meth:`krakenex.API.reconcile`. An order
        sent with neither gets a ``cl_ord_id`` from krakenex (unless ``client_order_ids``
        is off), which Kraken's reply echoes.
        The same goes for a task cancelled after an order request was handed to the
        socket; cancelled before that, it raises :class:`asyncio.CancelledError`.
        Kraken's ``Exceeded msg rate`` is a :class:`~krakenex.RateLimitError`: the
        request was refused, not carried out.

        A request that timed out or was cancelled keeps its ``req_id`` until its reply
        comes (at most :data:`~krakenex.ws.session.LATE_REPLY_WAIT` seconds), so that
        the late reply settles no other request; it goes into the stream, like every reply.

        :returns: Kraken's reply, matched by ``req_id`` and ``method``
        :raises KrakenAPIError: (a subclass) if Kraken answered ``success: false``
        :raises OutcomeUnknownAPIError: for an order request Kraken answered with an error
            that does not say whether it took effect, such as ``EService:Timeout``
        :raises SocketOutcomeUnknownError: for an order request whose reply did not come
            (connection lost, or the task cancelled after sending), or came without
            saying ``success`` true or false
        :raises NotSentError: if it was not sent because the connection was not open
            (safe to send again); a connection lost while the request was being written
            is an unknown outcome for an order request, never this
        :raises KrakenUsageError: for a ``req_id`` that is not a whole number, or is
            taken by a request on the same connection whose reply has not come, or a
            ``timeout`` that is not a number of seconds above 0; nothing is sent
        """
        if method in KRAKEN_TIMEOUT_METHODS and timeout is not None:
            params, timeout = {'timeout': timeout, **params}, None
        timeout = self._timeout(timeout)
        _check_req_id(method, req_id)
        if self.client_order_ids:
            params = dict(order_ids.named(method, params, order_ids.SPOT_WS))
        if self.unified is not None:
            self.unified.check_request(method, params)
        connection = self._connection(self._endpoint(method))
        await connection.wait_ready(timeout)
        reply = (await connection.call(method, params, timeout, req_id=req_id))[0]
        return carried_out(method, params, reply)

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """The subscriptions krakenex sends again after a reconnect, as the user asked for
        them: ``{'channel': ..., **params}`` without token or ``req_id``, in the order made,
        public endpoint first. An unsubscribe, or Kraken's refusal, takes its symbols out."""
        return [copy.deepcopy({'channel': channel, **params})
                for connection in self._connections.values()
                for channel, params in connection.session.subs.requests()]

    async def reconnect(self, *, timeout: float | None = None) -> None:
        """Drop the open connections and open them again, resubscribing: the stream gets the
        usual ``reconnected`` and ``resubscribed`` notices.

        An order request whose reply has not come when its connection drops raises
        :class:`~krakenex.ws.errors.SocketOutcomeUnknownError`, as on any drop: it is
        not sent again. A connection not opened yet stays closed.

        :param timeout: seconds to wait for each connection to be open again
        :raises KrakenConnectTimeout: if one did not open again in time (krakenex keeps
            trying)
        :raises KrakenConnectionError: if the client is closed, or krakenex gave up
        """
        if self.closed:
            raise KrakenConnectionError('the WebSocket client is closed')
        timeout = self._timeout(timeout)
        dropped = [connection for connection in list(self._connections.values())
                   if await connection.drop('krakenex was asked to reconnect')]
        for connection in dropped:
            await connection.wait_ready(timeout)

    def dead_man_switch(self, timeout: int = ADVISED_TIMEOUT, every: float | None = None, *,
                        disarm_on_error: bool = False) -> AsyncDeadManSwitch:
        """A keeper of Kraken's dead man's switch over this client (``cancel_all_orders_after``).

        ``async with ws.dead_man_switch(timeout=60, every=20):`` arms it, re-arms it
        from a task through reconnects, and disarms it when the block ends cleanly; an
        exception leaves it armed (:mod:`krakenex.deadman`). A failed re-arm, and the
        first success after one, is a ``{"channel": "krakenex", "type":
        "dead_man_switch", "healthy": ..., "error": ...}`` notice in the stream and a
        warning on the ``krakenex`` logger; a failed one is tried again sooner.

        :raises KrakenUsageError: for a timeout or period out of bounds
            (:func:`krakenex.deadman.check_schedule`)
        """
        async def arm(seconds: int, within: float) -> None:  # the keeper waits ``within``
            await self.request('cancel_all_orders_after', timeout=seconds)

        return AsyncDeadManSwitch(arm, timeout, every, what=f'{self.auth_url} (WebSocket)',
                                  notify=self._dead_man_notice,
                                  disarm_on_error=disarm_on_error)

    def _dead_man_notice(self, fields: dict[str, Any]) -> None:
        self._stream.put(notice('dead_man_switch', url=self.auth_url, **fields), NOTICE_SIZE)

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message, as Kraken sent it (or one of krakenex's own notices).

        :param timeout: seconds to wait; ``None`` or infinity for ever, 0 to look once
        :raises TimeoutError: if none came within ``timeout`` seconds
        :raises KrakenConnectionError: if the client is closed or gave up, and nothing is left
        :raises KrakenUsageError: for a ``timeout`` that is NaN or not a number
        """
        try:
            message: dict[str, Any] = await self._stream.aget(check_timeout(timeout, poll=True))
        except StreamClosed:
            raise KrakenConnectionError('the WebSocket client is closed') from None
        return message

    def book(self, symbol: str) -> BookView:
        """The verified book of a subscribed symbol: ``.bids``, ``.asks``, ``.checksum``.

        :raises BookUnavailableError: while there is no verified book (before the
            snapshot, after a reconnect, during a resync after a checksum mismatch)
        :raises KrakenUsageError: if the symbol's book is not subscribed
        """
        book = next((c.session.books[symbol] for c in self._connections.values()
                     if symbol in c.session.books), None)
        if book is None:
            raise KrakenUsageError(f"no book subscription for {symbol}: subscribe('book', "
                                   f"symbol=[{symbol!r}]) first")
        view = book.view()
        if view is None:
            raise BookUnavailableError(f'the {symbol} book is not verified now: it waits for '
                                       f'a snapshot (after subscribing, reconnecting or a '
                                       f'checksum mismatch)')
        return view

    def positions(self) -> dict[str, dict[str, Any]]:
        """The open positions on the Unified WebSocket, by symbol: the ``positions``
        snapshot with each update folded in, a position whose size became 0 taken out.

        :raises ViewUnavailableError: before the connection's snapshot (after subscribing,
            or after a reconnect until the new one comes)
        :raises KrakenUsageError: if ``positions`` is not subscribed
        """
        session = self._view_session('positions')
        current = session.positions.current
        if current is None:
            raise ViewUnavailableError('the positions are not current now: they wait for the '
                                       'snapshot of the connection (after subscribing or '
                                       'reconnecting; none comes with snapshot=False or '
                                       'with_margin)')
        return {symbol: dict(entry) for symbol, entry in current.items()}

    def margin(self) -> dict[str, Any]:
        """The account's margin on the Unified WebSocket: the latest ``margin`` message's
        fields over the earlier ones of the connection.

        :raises ViewUnavailableError: before the connection's first ``margin`` message
        :raises KrakenUsageError: if ``margin`` is not subscribed
        """
        current = self._view_session('margin').margin.current
        if current is None:
            raise ViewUnavailableError('the margin is not current now: it waits for the first '
                                       'margin message of the connection')
        return dict(current)

    def _view_session(self, channel: str) -> Session:
        connection = self._connections.get(AUTH)
        if self.unified is None or connection is None \
                or channel not in connection.session.subs.channels():
            raise KrakenUsageError(f"no {channel} subscription: AsyncWS(api, unified=True) and "
                                   f"subscribe('{channel}') first")
        return connection.session

    async def close(self) -> None:
        """Close the connections; the stream ends after the messages already received."""
        if self.closed:
            return
        self.closed = True
        for connection in list(self._connections.values()):
            await connection.shutdown()
            connection.fail_pending(KrakenConnectionError('the WebSocket client was closed'))
        self._stream.close()

    # -- what the connections hold ---------------------------------------------------------

    @property
    def books(self) -> dict[str, Book]:
        """The books subscribed, verified or not, by symbol."""
        return {symbol: book for connection in self._connections.values()
                for symbol, book in connection.session.books.items()}

    @property
    def orders_sent(self) -> int:
        """Order requests handed to a socket so far (each may have reached Kraken)."""
        return sum(connection.orders_sent for connection in self._connections.values())

    def _connection_ended(self) -> None:
        if all(c.gave_up is not None for c in self._connections.values()):
            self._stream.close()

    def _timeout(self, timeout: float | None) -> float | None:
        """A call's timeout, checked, or the client's."""
        return self.timeout if timeout is None else check_timeout(timeout)

    def _endpoint(self, channel_or_method: str) -> str:
        """The endpoint a channel or method goes to on the WebSocket this client speaks."""
        if self.unified is not None:
            return self.unified.endpoint(channel_or_method)
        return endpoint(channel_or_method)

    def _connection(self, endpoint: str) -> Connection:
        if self.closed:
            raise KrakenConnectionError('the WebSocket client is closed')
        if endpoint != PUBLIC and self.api is None and self.token is None:
            raise KrakenUsageError('private channels and trading need an API with a key, '
                                   'AsyncWS(api=krakenex.API(key, secret)), or a token from '
                                   'GetWebSocketsToken, AsyncWS(token=...)')
        connection = self._connections.get(endpoint)
        if connection is None:
            session = Session(self.urls[endpoint], private=endpoint != PUBLIC,
                              precisions=self.precisions,
                              resync_backoff=self.resync_backoff_factory(), ids=self.ids,
                              unified=self.unified)
            connection = self._connections[endpoint] = Connection(
                session, self._stream, timeout=self.timeout, silence=self.silence,
                backoff=self.backoff_factory(), api=self.api, token=self.token,
                ended=self._connection_ended)
        return connection
