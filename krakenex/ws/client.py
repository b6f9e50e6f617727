"""AsyncWS: Kraken's WebSocket v2 on asyncio, with verified books and visible reconnects.

It holds what the transport needs: up to two connections (public and
authenticated), their reconnect loops, and the stream of messages for the
user. Kraken's rules come from :mod:`krakenex.ws.protocol` and
:mod:`krakenex.ws.book`. Nothing here calls :func:`asyncio.run`: it runs in
whatever loop awaits it, a notebook's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

try:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.frames import Frame
    from websockets.protocol import State
    from websockets.version import version as websockets_version
except ImportError:  # pragma: no cover - the message is the point
    from .._extras import needs

    raise ImportError(needs('krakenex.ws', 'ws')) from None

from ..core import server
from ..errors import (
    AuthenticationError,
    KrakenAPIError,
    KrakenConnectionError,
    KrakenConnectTimeout,
    KrakenError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    ambiguous,
    unwrap,
)
from .book import Book, BookView
from .errors import BookUnavailableError, answer_unknown, outcome_unknown
from .protocol import (
    AUTH,
    KRAKEN_TIMEOUT_METHODS,
    LEVEL3,
    MAX_MESSAGE,
    ORDER_METHODS,
    PRIVATE_CHANNELS,
    PUBLIC,
    URL_VARIABLES,
    Backoff,
    ResyncBackoff,
    SequenceCheck,
    Subscriptions,
    answers,
    check_depth,
    check_interval,
    check_timeout,
    check_url,
    decode,
    encode,
    endpoint,
    notice,
    reply_error,
    split_subscription,
    token_refused,
)

if TYPE_CHECKING:
    from ..api import API

__all__ = ['AsyncWS', 'DEFAULT_TIMEOUT', 'DEFAULT_SILENCE', 'MAX_MESSAGE', 'endpoint_urls',
           'Token']

#: A WebSocket token as a user gives it: the text, or a function returning a fresh one.
Token = str | Callable[[], str]

#: websockets logs every frame at DEBUG, tokens included; its logger for krakenex's
#: connections stops at INFO so that turning on debug logging never writes a token, and
#: a private connection's frames are logged without their payload even below that.
FRAMES_LOG = logging.getLogger('krakenex.ws.frames')
FRAMES_LOG.setLevel(logging.INFO)


class _PayloadHidden(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' frame log for a connection that carries a token: each frame shows its
    type and length, never its payload (websockets shows the start and the end of a long
    one, which is where a request's token goes)."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            shown = tuple(f'{a.opcode.name} [{len(a.data)} bytes, not shown: this connection '
                          f'carries a token]' if isinstance(a, Frame) else a for a in args)
            kwargs.setdefault('stacklevel', 2)  # the line in websockets, not this one
            self.logger.log(level, msg, *shown, **kwargs)


PRIVATE_FRAMES_LOG = _PayloadHidden(FRAMES_LOG, {})

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

#: What one of krakenex's own notices counts against ``max_queue_bytes``.
NOTICE_SIZE = 256

#: The close code websockets sends for a message over ``max_size`` (RFC 6455).
MESSAGE_TOO_BIG = 1009


#: Seconds a request nobody waits for any more (it timed out, was cancelled, or krakenex
#: sent it for itself) keeps its ``req_id``, so that its late reply settles nothing else.
LATE_REPLY_WAIT = 600.0

#: Characters of a message krakenex could not read that a ``bad_message`` notice quotes, and
#: of the reason it gives.
BAD_TEXT = 200
BAD_REASON = 500


#: What a JSON value that is not an object is called, for a ``bad_message``'s reason.
_JSON_NAMES = {list: 'an array', str: 'a string', int: 'a number', Decimal: 'a number',
               bool: 'true or false', type(None): 'null'}


class _Closed(Exception):
    """The stream has ended: the client was closed or gave up."""


class _BadBook(ValueError):
    """A book message krakenex could not apply; ``symbols`` are the books it may have touched."""

    def __init__(self, reason: str, symbols: set[str]) -> None:
        super().__init__(reason)
        self.symbols = symbols


def _precision(value: Any) -> int:
    """A pair's precision from the ``instrument`` channel: a whole number of decimals."""
    whole = isinstance(value, int) or (isinstance(value, Decimal) and value.is_finite()
                                       and value == value.to_integral_value())
    if isinstance(value, bool) or not whole or not 0 <= value <= 30:
        raise ValueError(f'not a precision: {value!r}')
    return int(value)


class _Stream:
    """Messages for the user, in order: filled on the loop, read from the loop or a thread.

    It keeps at most ``maxlen`` messages and ``max_bytes`` bytes (each message counted at
    its size on the wire); past either, the oldest are dropped, and the newest is always
    kept. A reader on another thread waits on a :class:`queue.SimpleQueue`, never on a lock
    the loop also takes: Ctrl-C in the middle of a ``threading.Condition`` wait can leave
    its lock held or released twice, and then the loop thread blocks for good. The deque's
    ``append`` and ``popleft`` are atomic, so nothing else is locked. Only the loop counts
    bytes: each message is kept with the count of bytes put before it, so the bytes kept
    are the count now less the oldest message's; ``_head``, the oldest's as last seen, can
    only lag behind, which at worst makes the loop look again.
    """

    def __init__(self, maxlen: int, max_bytes: int) -> None:
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.closed = False
        self._items: deque[tuple[Any, int]] = deque()  # (message, bytes put before it)
        self._total = 0  # bytes put so far
        self._head = 0  # bytes put before the oldest message kept, as last seen
        self._dropped = 0  # about: a reader taking the count while the loop adds may lose one
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._event = asyncio.Event()

    def put(self, message: Any, size: int) -> None:
        start = self._total
        self._total = total = start + size
        if total - self._head > self.max_bytes or len(self._items) >= self.maxlen:
            self._make_room(start)
        self._items.append((message, start))
        if self._wake.empty():  # one waiting token is enough: readers look again after it
            self._wake.put(None)
        self._event.set()

    def _make_room(self, start: int) -> None:
        """Drop the oldest messages until the one starting at ``start`` fits."""
        items = self._items
        while True:
            try:
                self._head = items[0][1]
            except IndexError:  # nothing kept (a reader may have just taken the last one)
                self._head = start
                return
            if self._total - self._head <= self.max_bytes and len(items) < self.maxlen:
                return
            with contextlib.suppress(IndexError):  # a reader may have taken it meanwhile
                items.popleft()
                self._dropped += 1

    def close(self) -> None:
        self.closed = True
        self._wake.put(None)
        self._event.set()

    def _take(self) -> tuple[bool, Any]:
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return True, notice('overflow', dropped=dropped)
        with contextlib.suppress(IndexError):
            return True, self._items.popleft()[0]
        if self.closed:
            if self._wake.empty():
                self._wake.put(None)  # for the next reader waiting
            raise _Closed
        return False, None

    def get(self, timeout: float | None) -> Any:
        """Wait for a message on any thread (the sync client's reader)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found, message = self._take()
            if found:
                if self._items and self._wake.empty():
                    self._wake.put(None)  # the token is passed on to another thread waiting
                return message
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f'no message within {timeout} s')
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=left)

    async def aget(self, timeout: float | None) -> Any:
        """Wait for a message on the loop that fills the stream."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            found, message = self._take()
            if found:
                return message
            self._event.clear()
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError(f'no message within {timeout} s')
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), left)


class _Pending:
    """A request sent and not fully answered (a subscribe waits for one ack per symbol).

    It keeps its ``req_id`` until its replies come, even once nobody waits for them
    (``abandoned``, the loop's time since then), for at most :data:`LATE_REPLY_WAIT`.
    """

    def __init__(self, method: str, params: Mapping[str, Any], expected: int, internal: bool):
        self.method, self.params, self.expected, self.internal = method, params, expected, internal
        self.req_id = 0
        self.replies: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self.abandoned = loop.time() if internal else None

    def reply(self, message: dict[str, Any]) -> bool:
        """Take one reply; True once every reply has come."""
        self.replies.append(message)
        whole = message.get('success') is False and not _symbol_of(message)
        done = len(self.replies) >= self.expected or whole
        if done and not self.future.done():
            self.future.set_result(self.replies)
        return done

    def abandon(self) -> None:
        """Nobody waits for the reply any more; it may still come."""
        if self.abandoned is None:
            self.abandoned = asyncio.get_running_loop().time()

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()  # retrieved: no "never retrieved" warning if nobody waits


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


def _symbol_of(message: Mapping[str, Any]) -> Any:
    result = message.get('result')
    return message.get('symbol') or (result.get('symbol') if isinstance(result, dict) else None)


class _Connection:
    """One endpoint (public, authenticated or level3): connect, resubscribe, read, watch,
    reconnect. Every endpoint but the public one gets a fresh token for each connection."""

    def __init__(self, client: AsyncWS, endpoint: str) -> None:
        self.client = client
        self.endpoint = endpoint
        self.private = endpoint != PUBLIC
        self.url = client.urls[endpoint]
        self.subs = Subscriptions()
        self.sequences = SequenceCheck()
        self.backoff = client.backoff_factory()
        self.resync_backoff = client.resync_backoff_factory()
        self.resyncs: dict[str, tuple[float, asyncio.Task[None]]] = {}  # symbol: (due, task)
        self.ws: ClientConnection | None = None
        self.ready = asyncio.Event()
        self.pending: dict[int, _Pending] = {}  # by req_id; a new socket clears it
        self.books: set[str] = set()
        self.instrument = False  # krakenex subscribed to instrument for precisions
        self.gave_up: KrakenConnectionError | None = None
        self.refused: KrakenAPIError | None = None  # Kraken's own no to the token, if that was why
        self.failure = ''  # why the last try to connect failed, for the user who waited
        self.task: asyncio.Task[None] | None = None
        self.last_seen = 0.0
        self.drop_reason: str | None = None
        self._token: str | None = None

    def __repr__(self) -> str:
        state = 'open' if self.ready.is_set() else 'not open'
        return f'<connection {self.url} {state}, {len(self.subs)} subscriptions>'

    # -- connecting ---------------------------------------------------------------------

    async def wait_ready(self, timeout: float | None) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())
        ready = asyncio.get_running_loop().create_task(self.ready.wait())
        try:  # until it is open, or krakenex gives up (the run ends), or the time is up
            await asyncio.wait({ready, self.task}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self.ready.is_set():
            return
        if self.gave_up is not None:
            raise self.refused or self.gave_up
        why = f' (the last try {self.failure})' if self.failure else ''
        raise KrakenConnectTimeout(f'no connection to {self.url} within {timeout} s{why}; '
                                   f'nothing was sent')

    async def run(self) -> None:
        """Keep the connection up until the client closes or gives up; never end silently."""
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a fault of krakenex's own: say so and end the stream
            if self.gave_up is None:
                self.give_up(f'krakenex stopped on {type(exc).__name__}: {exc}')

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        was_open, throttled, reason = False, False, ''
        first = True
        while not self.client.closed:
            if not first:
                delay = self.backoff.delay(loop.time(), throttled=throttled)
                if delay is None:
                    self.give_up(reason)
                    return
                await asyncio.sleep(delay)
            first = False
            self.backoff.attempted(loop.time())
            try:
                ws = await self.open()
            except InvalidStatus as exc:
                status = exc.response.status_code
                throttled, reason = status == 429, f'the handshake was refused with HTTP {status}'
                self.failure = reason
                self.backoff.failed()
                continue
            except AuthenticationError as exc:  # Kraken's answer: trying again cannot help
                self.refused = exc
                self.give_up(f'the token could not be fetched: {exc}')
                return
            except (OSError, TimeoutError, InvalidHandshake, KrakenError) as exc:
                throttled, reason = False, f'could not connect: {exc or type(exc).__name__}'
                self.failure = reason
                self.backoff.failed()
                continue
            throttled = False
            self.backoff.connected(loop.time())
            reason = await self.serve(ws, reconnect=was_open, why=reason)
            was_open = True
            self.backoff.dropped(loop.time())

    async def open(self) -> ClientConnection:
        if self.private:
            self._token = await self.fetch_token()
        return await connect(self.url, open_timeout=self.client.timeout, max_size=MAX_MESSAGE,
                             close_timeout=1,
                             logger=PRIVATE_FRAMES_LOG if self.private else FRAMES_LOG,
                             user_agent_header=f'krakenex websockets/{websockets_version}')

    async def fetch_token(self) -> str:
        given, api = self.client.token, self.client.api
        if given is not None:  # the user's own: from a file, the environment or a function
            return given() if callable(given) else given
        if api is None:
            raise KrakenUsageError('private channels and trading need an API with a key, '
                                   'WS(api=krakenex.API(key, secret)), or a token from '
                                   'GetWebSocketsToken, WS(token=...)')
        loop = asyncio.get_running_loop()
        envelope = await loop.run_in_executor(None, api.query_private, 'GetWebSocketsToken')
        token = unwrap(envelope, 'GetWebSocketsToken')['token']
        return str(token)

    async def refresh_token(self, why: str) -> None:
        self._token = await self.fetch_token()
        self.client.emit(notice('token_refreshed', url=self.url, reason=why))

    def hide_token(self, text: str) -> str:
        """``text`` without this connection's token, if it holds it."""
        token = self._token
        return text.replace(token, '[token]') if token and token in text else text

    async def shutdown(self) -> None:
        """Close the socket (its reader then ends and so does :meth:`run`); stop it if not."""
        self.cancel_resyncs()
        ws, task = self.ws, self.task
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)
            ws.transport.abort()
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=1)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=1)

    def give_up(self, reason: str) -> None:
        self.gave_up = KrakenConnectionError(
            f'krakenex gave up connecting to {self.url} after {self.backoff.failures} failed '
            f'attempts: {reason}')
        self.client.emit(notice('gave_up', url=self.url, reason=reason,
                                attempts=self.backoff.failures))
        self.fail_pending(self.gave_up)
        self.client.connection_ended(self)

    # -- one connection's life ----------------------------------------------------------

    async def serve(self, ws: ClientConnection, reconnect: bool, why: str) -> str:
        loop = asyncio.get_running_loop()
        self.ws, self.last_seen, self.drop_reason = ws, loop.time(), None
        self.sequences.reset()
        if reconnect:
            self.client.emit(notice('reconnected', url=self.url, reason=why))
        reader = loop.create_task(self.read(ws))
        watchdog = loop.create_task(self.watch(ws))
        try:
            if reconnect:
                try:
                    await self.resubscribe()
                except KrakenError as exc:  # this connection was lost too: the next one tries
                    self.drop_reason = self.drop_reason or f'resubscribing failed: {exc}'
                    return self.drop_reason
            self.ready.set()
            return await reader
        finally:
            self.ready.clear()
            watchdog.cancel()
            reader.cancel()
            self.ws = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)
            self.cancel_resyncs()  # the next connection subscribes every book again
            for symbol in self.books:
                self.client.books[symbol].reset()
            self.instrument = False
            why = self.drop_reason or 'the connection ended'
            self.fail_pending(KrakenConnectionError(f'the connection to {self.url} ended: {why}'))

    async def read(self, ws: ClientConnection) -> str:
        loop = asyncio.get_running_loop()
        try:
            async for raw in ws:
                self.last_seen = loop.time()
                try:
                    message = decode(raw)
                except Exception as exc:  # not JSON, not UTF-8, or beyond krakenex's bounds
                    self.client.bad_message(self, raw, exc, books=self.books)
                    continue
                try:
                    self.client.dispatch(self, message, len(raw))
                except _BadBook as exc:
                    self.client.bad_message(self, raw, exc, books=exc.symbols)
                except Exception as exc:
                    self.client.bad_message(self, raw, exc)
        except ConnectionClosed:
            pass
        if self.drop_reason is None:
            received, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
            if received is None and sent is not None and sent.code == MESSAGE_TOO_BIG:
                self.drop_reason = (f'a message was larger than {MAX_MESSAGE} bytes, the most '
                                    f'krakenex accepts')
            elif received is None:
                self.drop_reason = 'the connection dropped without a close frame'
            else:
                code, text = received.code, received.reason
                self.drop_reason = (f'the server closed the connection (code {code}'
                                    + (f', {text})' if text else ')'))
        return self.drop_reason

    async def watch(self, ws: ClientConnection) -> None:
        """Replace a connection that has gone quiet (no heartbeat, no reply) for too long."""
        loop = asyncio.get_running_loop()
        silence = self.client.silence
        pinged = 0.0
        while True:
            await asyncio.sleep(silence / 4)
            quiet = loop.time() - self.last_seen
            if quiet >= silence:
                self.drop_reason = f'nothing received for {quiet:.1f} s (no heartbeat)'
                ws.transport.abort()
                return
            if quiet >= silence / 2 and pinged < self.last_seen:
                pinged = loop.time()
                with contextlib.suppress(Exception):
                    await self.send('ping', {}, internal=True)

    def fail_pending(self, error: KrakenError) -> None:
        pending, self.pending = self.pending, {}
        for request in pending.values():
            request.fail(self.lost(request, error))

    @staticmethod
    def lost(request: _Pending, error: KrakenError) -> KrakenError:
        """The error for a request that may have reached Kraken and got no reply."""
        if request.method in ORDER_METHODS and not request.internal:
            return outcome_unknown(request.method, request.req_id, request.params,
                                   f'{error}; no reply came')
        if request.method in ('subscribe', 'unsubscribe'):
            keep = ' krakenex keeps the subscription and sends it again on reconnecting.'
            return KrakenConnectionError(f'{request.method} got no acknowledgement: {error}.'
                                         + (keep if request.method == 'subscribe' else ''))
        return KrakenConnectionError(f'{request.method} got no reply: {error}')

    @staticmethod
    def raise_cancelled(request: _Pending) -> None:
        """Raise an unknown outcome for an order request whose task was cancelled after it
        was sent: it may have reached Kraken, and it is never sent again. Anything else
        stays a plain cancellation (the caller re-raises it)."""
        if request.method in ORDER_METHODS and not request.internal:
            raise outcome_unknown(request.method, request.req_id, request.params,
                                  'the task was cancelled before its reply came') from None

    # -- requests -----------------------------------------------------------------------

    def message(self, method: str, params: Mapping[str, Any], req_id: int) -> dict[str, Any]:
        body: dict[str, Any] = {'method': method, 'req_id': req_id}
        params = dict(params)
        if self.private and method != 'ping' and self._token is not None:
            params['token'] = self._token
        if params:
            body['params'] = params
        return body

    async def send(self, method: str, params: Mapping[str, Any], *, internal: bool,
                   expected: int = 1, req_id: int | None = None) -> _Pending:
        """Send one request; its replies resolve the returned :class:`_Pending`.

        ``req_id`` is the caller's, or the next number no request without its reply has.
        """
        now = asyncio.get_running_loop().time()
        for stale in [k for k, r in self.pending.items()
                      if r.abandoned is not None and now - r.abandoned > LATE_REPLY_WAIT]:
            del self.pending[stale]
        if req_id is None:
            req_id = next(self.client.ids)
            while req_id in self.pending:
                req_id = next(self.client.ids)
        elif req_id in self.pending:
            raise KrakenUsageError(f'{method} was not sent: req_id {req_id} is taken by a '
                                   f'{self.pending[req_id].method} whose reply has not come')
        request = _Pending(method, params, expected, internal)
        request.req_id = req_id
        ws = self.ws
        if ws is None or ws.protocol.state is not State.OPEN:
            # websockets writes nothing on a connection that is not open
            raise NotSentError(f'{method} was not sent: not connected to {self.url}; '
                               f'nothing reached Kraken')
        text = encode(self.message(method, params, req_id))
        self.pending[req_id] = request
        if not internal and method in ORDER_METHODS:
            self.client.orders_sent += 1  # counted before the frame is written, never after
        try:
            # websockets writes the frame before its first await (waiting for the socket to
            # drain), so a cancellation delivered here comes after the frame left
            await ws.send(text)
        except asyncio.CancelledError:
            request.abandon()  # the frame left: its reply may still come
            self.raise_cancelled(request)
            raise
        except ConnectionClosed as exc:
            # The frame went to the socket before websockets waited for it to drain:
            # it may have reached Kraken, so this is never "not sent".
            self.pending.pop(req_id, None)
            why = KrakenConnectionError(f'the connection to {self.url} was lost while the '
                                        f'request was being written ({exc})')
            raise self.lost(request, why) from None
        return request

    async def call(self, method: str, params: Mapping[str, Any], timeout: float | None, *,
                   internal: bool = False, expected: int = 1,
                   retry_token: bool = True, req_id: int | None = None) -> list[dict[str, Any]]:
        """Send a request and wait for its replies; fetch a token once more if Kraken refuses it."""
        request = await self.send(method, params, internal=internal, expected=expected,
                                  req_id=req_id)
        req_id = request.req_id
        try:
            replies = await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except asyncio.CancelledError:
            request.abandon()
            self.raise_cancelled(request)
            raise
        except TimeoutError:
            request.abandon()
            if method in ORDER_METHODS:
                raise outcome_unknown(method, req_id, params,
                                      f'no reply came within {timeout} s', timeout=True) from None
            raise KrakenTimeout(f'no reply to {method} from {self.url} within {timeout} s',
                                method=method) from None
        refused = [r.get('error') for r in replies if token_refused(r.get('error'))]
        if self.private and refused and retry_token:
            # Kraken refused the token, so the request did nothing: safe to send once more.
            await self.refresh_token(str(refused[0]))
            return await self.call(method, params, timeout, internal=internal,
                                   expected=expected, retry_token=False, req_id=req_id)
        return replies

    async def resubscribe(self) -> None:
        """Send the user's own subscribe requests again and say so in the stream.

        Kraken's acknowledgements follow in the stream; a token Kraken refuses
        is fetched once more and the refused requests are sent again.
        """
        if self.books and not self.instrument:
            await self.subscribe_instrument()
        requests = self.subs.requests()
        sent = [await self.send('subscribe', {'channel': channel, **params}, internal=False,
                                expected=len(split_subscription(params)))
                for channel, params in requests]
        self.client.emit(notice('resubscribed', url=self.url, subscriptions=[
            {'channel': channel, **params} for channel, params in requests]))
        if sent:
            await asyncio.wait([r.future for r in sent], timeout=self.client.timeout)
        for request in sent:
            request.abandon()  # its acks go to the stream whenever they come
        refused = [r for r in sent if r.future.done() and not r.future.cancelled()
                   and r.future.exception() is None
                   and any(token_refused(a.get('error')) for a in r.future.result())]
        if refused:
            await self.refresh_token(str(refused[0].replies[0].get('error')))
            for request in refused:
                again = await self.send('subscribe', request.params, internal=False,
                                        expected=request.expected)
                again.abandon()

    async def subscribe_instrument(self) -> None:
        """Subscribe for krakenex's own use: the pairs' precisions for book checksums."""
        self.instrument = True
        if 'instrument' not in self.subs.channels():
            await self.send('subscribe', {'channel': 'instrument'}, internal=True)

    def schedule_resync(self, book: Book) -> float:
        """Subscribe a book again once :attr:`resync_backoff` allows it, unless that is
        already planned; return the seconds until it is sent."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        planned = self.resyncs.get(book.symbol)
        if planned is not None and not planned[1].done():
            return max(0.0, planned[0] - now)
        wait = self.resync_backoff.delay(book.symbol, now)
        self.resyncs[book.symbol] = (now + wait, loop.create_task(self.resync(book, wait)))
        return wait

    def cancel_resyncs(self) -> None:
        for _, task in self.resyncs.values():
            task.cancel()
        self.resyncs.clear()

    async def resync(self, book: Book, wait: float = 0.0) -> None:
        """Subscribe one symbol's book again, from the user's own parameters, for a new
        snapshot, after ``wait`` seconds, unless a snapshot has verified it meanwhile."""
        if wait:
            await asyncio.sleep(wait)
        if book.verified or self.client.books.get(book.symbol) is not book:
            return  # verified by a snapshot meanwhile, or no longer subscribed
        params = self.subs.params_for('book', book.symbol) or {'symbol': [book.symbol],
                                                                'depth': book.depth}
        with contextlib.suppress(KrakenError):
            await self.send('unsubscribe', {'channel': 'book', **params}, internal=True)
            await self.send('subscribe', {'channel': 'book', **params}, internal=True)


def endpoint_urls(url: str | None, auth_url: str | None,
                  l3_url: str | None) -> tuple[str, str, str]:
    """The public, authenticated and level3 endpoints: as given, else from the environment
    (:data:`~krakenex.ws.protocol.URL_VARIABLES`), else Kraken's.

    :raises KrakenUsageError: for one that is not a ``ws://`` or ``wss://`` address
    """
    given = {PUBLIC: (url, 'url'), AUTH: (auth_url, 'auth_url'), LEVEL3: (l3_url, 'l3_url')}
    found = []
    for name, (value, parameter) in given.items():
        variable, default = URL_VARIABLES[name]
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
    """

    def __init__(self, api: API | None = None, *, url: str | None = None,
                 auth_url: str | None = None, l3_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, token: Token | None = None,
                 silence: float = DEFAULT_SILENCE, backoff: Callable[[], Backoff] = Backoff,
                 resync_backoff: Callable[[], ResyncBackoff] = ResyncBackoff,
                 max_queue: int = DEFAULT_MAX_QUEUE,
                 max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES) -> None:
        self.api = api
        if token is not None and not callable(token) and not (
                isinstance(token, str) and token.strip() and token.isprintable()):
            raise KrakenUsageError('token must be the text GetWebSocketsToken returned, or a '
                                   'function returning a fresh one')
        #: The user's own token (or a function returning one), used instead of ``api``'s.
        self.token = token.strip() if isinstance(token, str) else token
        self.url, self.auth_url, self.l3_url = endpoint_urls(url, auth_url, l3_url)
        #: Each endpoint's address, by the names of :data:`krakenex.ws.protocol.ENDPOINTS`.
        self.urls = {PUBLIC: self.url, AUTH: self.auth_url, LEVEL3: self.l3_url}
        self.timeout = check_timeout(timeout)
        if check_timeout(silence, name='silence') is None:
            raise KrakenUsageError(f'silence must be a finite number of seconds, not {silence!r}')
        self.silence = silence
        self.backoff_factory = backoff
        self.resync_backoff_factory = resync_backoff
        self.closed = False
        self.books: dict[str, Book] = {}
        self.precisions: dict[str, tuple[int, int]] = {}
        self.ids = itertools.count(1)
        #: Order requests handed to a socket so far (each may have reached Kraken).
        self.orders_sent = 0
        self._stream = _Stream(_count(max_queue, 'max_queue'),
                               _count(max_queue_bytes, 'max_queue_bytes'))
        self._connections: dict[str, _Connection] = {}

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
        except _Closed:
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
        connection = self._connection(endpoint(channel))
        await connection.wait_ready(timeout)
        new_books = set()
        entry = connection.subs.add(channel, params)
        try:
            if channel == 'book':
                for symbol in split_subscription(params):
                    if symbol is not None and symbol not in self.books:
                        self.books[symbol] = self._new_book(symbol, depth)
                        connection.books.add(symbol)
                        new_books.add(symbol)
                if not connection.instrument and not all(
                        s in self.precisions for s in split_subscription(params)):
                    await connection.subscribe_instrument()
            replies = await connection.call('subscribe', {'channel': channel, **params}, timeout,
                                            expected=len(split_subscription(params)),
                                            req_id=req_id)
        except (NotSentError, KrakenUsageError):  # nothing to send again after a reconnect
            connection.subs.withdraw(entry)
            self._forget_books(connection, new_books)
            raise
        refused = [r for r in replies if r.get('success') is False]
        if refused:
            symbols = {_symbol_of(r) for r in refused}
            whole = not all(symbols)  # a refusal naming no symbol is for the whole request
            # only this request's own entry and books: earlier ones were accepted
            connection.subs.withdraw(entry, None if whole else symbols)
            self._forget_books(connection, new_books if whole else new_books & symbols)
            raise reply_error([str(r.get('error')) for r in refused], f'subscribe {channel}')
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
        connection = self._connection(endpoint(channel))
        connection.subs.remove(channel, params)
        if channel == 'book':
            self._forget_books(connection, split_subscription(params))
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
        ``cl_ord_id`` and ``order_userref`` for :meth:`krakenex.API.reconcile`.
        The same goes for a task cancelled after an order request was handed to the
        socket; cancelled before that, it raises :class:`asyncio.CancelledError`.
        Kraken's ``Exceeded msg rate`` is a :class:`~krakenex.RateLimitError`: the
        request was refused, not carried out.

        A request that timed out or was cancelled keeps its ``req_id`` until its reply
        comes (at most :data:`LATE_REPLY_WAIT` seconds), so that the late reply settles
        no other request; it goes into the stream, like every reply.

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
        connection = self._connection(endpoint(method))
        await connection.wait_ready(timeout)
        reply = (await connection.call(method, params, timeout, req_id=req_id))[0]
        success = reply.get('success')
        if success is False:
            errors = [str(reply.get('error'))]
            if method in ORDER_METHODS and ambiguous(errors):
                raise answer_unknown(method, reply.get('req_id'), params, errors)
            raise reply_error(errors, method)
        if success is not True and method in ORDER_METHODS:  # (ping's pong carries none)
            # a reply that says neither yes nor no does not say what became of the order
            raise outcome_unknown(method, reply.get('req_id') or 0, params,
                                  f'its reply says neither success nor failure: '
                                  f'{str(reply)[:200]}')
        return reply

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message, as Kraken sent it (or one of krakenex's own notices).

        :param timeout: seconds to wait; ``None`` or infinity for ever, 0 to look once
        :raises TimeoutError: if none came within ``timeout`` seconds
        :raises KrakenConnectionError: if the client is closed or gave up, and nothing is left
        :raises KrakenUsageError: for a ``timeout`` that is NaN or not a number
        """
        try:
            message: dict[str, Any] = await self._stream.aget(check_timeout(timeout, poll=True))
        except _Closed:
            raise KrakenConnectionError('the WebSocket client is closed') from None
        return message

    def book(self, symbol: str) -> BookView:
        """The verified book of a subscribed symbol: ``.bids``, ``.asks``, ``.checksum``.

        :raises BookUnavailableError: while there is no verified book (before the
            snapshot, after a reconnect, during a resync after a checksum mismatch)
        :raises KrakenUsageError: if the symbol's book is not subscribed
        """
        book = self.books.get(symbol)
        if book is None:
            raise KrakenUsageError(f"no book subscription for {symbol}: subscribe('book', "
                                   f"symbol=[{symbol!r}]) first")
        view = book.view()
        if view is None:
            raise BookUnavailableError(f'the {symbol} book is not verified now: it waits for '
                                       f'a snapshot (after subscribing, reconnecting or a '
                                       f'checksum mismatch)')
        return view

    async def close(self) -> None:
        """Close the connections; the stream ends after the messages already received."""
        if self.closed:
            return
        self.closed = True
        for connection in list(self._connections.values()):
            await connection.shutdown()
            connection.fail_pending(KrakenConnectionError('the WebSocket client was closed'))
        self._stream.close()

    # -- for the connections ------------------------------------------------------------

    def emit(self, message: Any, size: int = NOTICE_SIZE) -> None:
        """Put a message into the stream; ``size`` is what it counts against ``max_queue_bytes``."""
        self._stream.put(message, size)

    def connection_ended(self, connection: _Connection) -> None:
        if all(c.gave_up is not None for c in self._connections.values()):
            self._stream.close()

    def bad_message(self, connection: _Connection, raw: str | bytes, error: Exception,
                    books: Iterable[str] = ()) -> None:
        """Say in the stream that a message could not be read; resync ``books`` it may touch.

        The notice quotes the start of the message and the reason, cut short and without
        the connection's token.
        """
        # a little more than is shown, so that a token across the cut is found whole
        wide = BAD_TEXT + 200
        if isinstance(raw, str):
            text, cut = raw[:wide], len(raw) > wide
        else:
            text, cut = raw[:wide * 4].decode('utf-8', 'replace'), len(raw) > wide * 4
        text = connection.hide_token(text)
        reason = connection.hide_token(f'{type(error).__name__}: {error}')
        self.emit(notice('bad_message', url=connection.url,
                         reason=reason[:BAD_REASON] + ('...' if len(reason) > BAD_REASON else ''),
                         text=text[:BAD_TEXT] + ('...' if cut or len(text) > BAD_TEXT else '')))
        for symbol in sorted(books):
            book = self.books.get(symbol)
            if book is not None:
                self._resync(connection, book, 'a message krakenex could not read')

    def _resync(self, connection: _Connection, book: Book, reason: str,
                **fields: Any) -> None:
        """Forget a book, say ``book_resync`` and subscribe it again for a new snapshot,
        paced by the connection's :class:`ResyncBackoff` (``wait``: seconds until then)."""
        book.reset()
        wait = connection.schedule_resync(book)
        self.emit(notice('book_resync', symbol=book.symbol, reason=reason, wait=wait, **fields))

    def dispatch(self, connection: _Connection, message: Any, size: int = NOTICE_SIZE) -> None:
        """Route one message from Kraken: replies to their callers, books and notices.

        ``size`` is the message's on the wire, for ``max_queue_bytes``.

        :raises ValueError: for a message that is not a JSON object (Kraken sends none)
        """
        if message.__class__ is not dict:
            raise ValueError(f'{_JSON_NAMES.get(type(message), "a value")} where Kraken always '
                             f'sends a JSON object')
        req_id = message.get('req_id')
        if req_id is not None and 'method' in message:
            # a reply: to the request with its req_id and method; one that answers nothing
            # krakenex knows of (a reply later than LATE_REPLY_WAIT) goes to the stream too
            if req_id.__class__ is not int:
                raise ValueError(f'a reply whose req_id {req_id!r:.40} is not a whole number')
            if message.get('success', False).__class__ is not bool:
                raise ValueError('a reply whose success is neither true nor false')
            request = connection.pending.get(req_id)
            if request is not None and answers(request.method, message['method']):
                if request.reply(message):
                    del connection.pending[req_id]
                if request.internal:
                    return
            self.emit(message, size)
            return
        channel = message.get('channel')
        if channel == 'book':
            self._on_book(connection, message, size)
            return
        if channel == 'instrument':
            self._on_instrument(message)
            if 'instrument' not in connection.subs.channels():
                return
        sequence = message.get('sequence')
        if channel in PRIVATE_CHANNELS and isinstance(sequence, int):
            gap = connection.sequences.check(channel, sequence)
            if gap is not None:
                self.emit(notice('gap', feed=channel, expected=gap[0], received=gap[1]))
        self.emit(message, size)

    def _on_book(self, connection: _Connection, message: dict[str, Any], size: int) -> None:
        kind = message.get('type')
        snapshot = kind == 'snapshot'
        items = message.get('data')
        if not isinstance(items, list) or not all(
                isinstance(d, dict) and isinstance(d.get('symbol'), str) for d in items):
            # which book it was for is unknown: every book of the connection starts again
            raise _BadBook('a book message without a list of data with symbols',
                           set(connection.books))
        if not snapshot and kind != 'update':
            raise _BadBook(f'a book message of type {kind!r:.40}, neither snapshot nor update',
                           {d['symbol'] for d in items})
        broken: list[Book] = []
        for data in items:
            book = self.books.get(data['symbol'])
            if book is None:
                continue
            try:
                result = book.apply(data, snapshot)
            except Exception as exc:
                # applied in part, or not at all: either way the book is not Kraken's
                raise _BadBook(f'{type(exc).__name__}: {exc} in the {book.symbol} book',
                               {d['symbol'] for d in items}) from exc
            if result == 'mismatch':
                broken.append(book)
        self.emit(message, size)
        for book in broken:
            self._resync(connection, book, 'the checksum did not match',
                         checksum=book.expected, computed=book.computed)

    def _on_instrument(self, message: dict[str, Any]) -> None:
        data = message.get('data')
        pairs = data.get('pairs') if isinstance(data, dict) else None
        bad: list[str] = []
        for pair in pairs if isinstance(pairs, list) else ():
            symbol = pair.get('symbol') if isinstance(pair, dict) else None
            if not isinstance(symbol, str):
                bad.append(repr(pair))
                continue
            precision = (pair.get('price_precision'), pair.get('qty_precision'))
            if None in precision:
                continue
            try:
                price, qty = _precision(precision[0]), _precision(precision[1])
            except ValueError:
                bad.append(f'{symbol}: price_precision {precision[0]!r}, '
                           f'qty_precision {precision[1]!r}')
                continue
            self.precisions[symbol] = (price, qty)
            book = self.books.get(symbol)
            if book is not None:
                book.set_precision(price, qty)
        if bad:
            # the pairs' books keep the precisions they had; a wrong one shows as a mismatch
            raise ValueError('instrument pairs krakenex could not read: ' + '; '.join(bad))

    def _forget_books(self, connection: _Connection, symbols: Iterable[str | None]) -> None:
        """Drop books no longer subscribed: they wait for no data."""
        for symbol in symbols:
            if symbol is not None:
                self.books.pop(symbol, None)
                connection.books.discard(symbol)

    def _timeout(self, timeout: float | None) -> float | None:
        """A call's timeout, checked, or the client's."""
        return self.timeout if timeout is None else check_timeout(timeout)

    def _new_book(self, symbol: str, depth: int) -> Book:
        price, qty = self.precisions.get(symbol, (None, None))
        return Book(symbol, depth, price_precision=price, qty_precision=qty)

    def _connection(self, endpoint: str) -> _Connection:
        if self.closed:
            raise KrakenConnectionError('the WebSocket client is closed')
        if endpoint != PUBLIC and self.api is None and self.token is None:
            raise KrakenUsageError('private channels and trading need an API with a key, '
                                   'AsyncWS(api=krakenex.API(key, secret)), or a token from '
                                   'GetWebSocketsToken, AsyncWS(token=...)')
        if endpoint not in self._connections:
            self._connections[endpoint] = _Connection(self, endpoint)
        return self._connections[endpoint]
