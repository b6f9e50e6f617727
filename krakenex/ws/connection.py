"""One endpoint's socket: connect with a fresh token, move frames, watch, reconnect.

What the frames mean, and what to send in return, is its :class:`~krakenex.ws.session.Session`'s
to say; a :class:`Connection` carries that out on asyncio and puts the user's messages into
the :class:`~krakenex.ws.stream.Stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
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

from ..errors import (
    AuthenticationError,
    KrakenAPIError,
    KrakenConnectionError,
    KrakenConnectTimeout,
    KrakenError,
    KrakenUsageError,
    NotSentError,
    unwrap,
)
from .protocol import MAX_MESSAGE, Backoff, notice
from .session import NOTICE_SIZE, Answered, Deliver, Request, Resync, Send, Session
from .stream import Stream

if TYPE_CHECKING:
    from ..api import API

__all__ = ['Connection', 'Token', 'FRAMES_LOG', 'MESSAGE_TOO_BIG']

#: A WebSocket token as a user gives it: the text, or a function returning a fresh one.
Token = str | Callable[[], str]

#: websockets logs every frame at DEBUG, tokens included; its logger for krakenex's
#: connections stops at INFO so that turning on debug logging never writes a token, and
#: a private connection's frames are logged without their payload even below that.
FRAMES_LOG = logging.getLogger('krakenex.ws.frames')
FRAMES_LOG.setLevel(logging.INFO)

#: The close code websockets sends for a message over ``max_size`` (RFC 6455).
MESSAGE_TOO_BIG = 1009


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


class Connection:
    """One endpoint (public, authenticated or level3): connect, resubscribe, read, watch,
    reconnect. Every endpoint but the public one gets a fresh token for each connection.

    :param session: the endpoint's rules, which outlive each socket
    :param stream: where the user's messages go
    :param timeout: seconds to wait for a socket to open, and for resubscriptions' replies
    :param silence: seconds without any message after which a socket is replaced
    :param backoff: the reconnect policy
    :param api: where a token comes from (``GetWebSocketsToken``), unless ``token`` is given
    :param token: the user's own token, or a function returning a fresh one
    :param ended: called when krakenex gives up on this endpoint
    """

    def __init__(self, session: Session, stream: Stream, *, timeout: float | None,
                 silence: float, backoff: Backoff, api: API | None = None,
                 token: Token | None = None, ended: Callable[[], None] = lambda: None) -> None:
        self.session = session
        self.stream = stream
        self.url = session.url
        self.private = session.private
        self.timeout, self.silence, self.backoff = timeout, silence, backoff
        self.api, self.token, self.ended = api, token, ended
        self.resyncs: dict[str, asyncio.Task[None]] = {}  # by symbol
        self.ws: ClientConnection | None = None
        self.ready = asyncio.Event()
        self.closing = False
        self.gave_up: KrakenConnectionError | None = None
        self.refused: KrakenAPIError | None = None  # Kraken's own no to the token, if that was why
        self.failure = ''  # why the last try to connect failed, for the user who waited
        self.task: asyncio.Task[None] | None = None
        self.last_seen = 0.0
        self.drop_reason: str | None = None
        #: Order requests handed to this socket so far (each may have reached Kraken).
        self.orders_sent = 0

    def __repr__(self) -> str:
        state = 'open' if self.ready.is_set() else 'not open'
        return f'<connection {self.url} {state}, {len(self.session.subs)} subscriptions>'

    def emit(self, message: dict[str, Any]) -> None:
        """Put one of krakenex's own notices into the stream."""
        self.stream.put(message, NOTICE_SIZE)

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
        while not self.closing:
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
            except (OSError, asyncio.TimeoutError, InvalidHandshake, KrakenError) as exc:
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
            self.session.token = await self.fetch_token()
        return await connect(self.url, open_timeout=self.timeout, max_size=MAX_MESSAGE,
                             close_timeout=1,
                             logger=PRIVATE_FRAMES_LOG if self.private else FRAMES_LOG,
                             user_agent_header=f'krakenex websockets/{websockets_version}')

    async def fetch_token(self) -> str:
        given, api = self.token, self.api
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
        self.session.token = await self.fetch_token()
        self.emit(notice('token_refreshed', url=self.url, reason=why))

    async def shutdown(self) -> None:
        """Close the socket (its reader then ends and so does :meth:`run`); stop it if not."""
        self.closing = True
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

    async def drop(self, reason: str) -> bool:
        """Close the open socket on purpose; :meth:`run` opens the next one and resubscribes,
        with the usual ``reconnected`` and ``resubscribed`` notices. Returns whether a socket
        was open (a request waiting for its reply fails as on any drop)."""
        ws = self.ws
        if ws is None or self.closing:
            return False
        self.drop_reason = reason
        self.ready.clear()  # set again once the next socket is open and resubscribed
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 1)
        ws.transport.abort()
        return True

    def give_up(self, reason: str) -> None:
        self.gave_up = KrakenConnectionError(
            f'krakenex gave up connecting to {self.url} after {self.backoff.failures} failed '
            f'attempts: {reason}')
        self.emit(notice('gave_up', url=self.url, reason=reason,
                         attempts=self.backoff.failures))
        self.fail_pending(self.gave_up)
        self.ended()

    def fail_pending(self, error: KrakenError) -> None:
        """No reply will come to any request still waiting: each caller gets its error."""
        _fail(self.session.fail(error))

    # -- one connection's life ----------------------------------------------------------

    async def serve(self, ws: ClientConnection, reconnect: bool, why: str) -> str:
        loop = asyncio.get_running_loop()
        self.ws, self.last_seen, self.drop_reason = ws, loop.time(), None
        self.session.opened()
        if reconnect:
            self.emit(notice('reconnected', url=self.url, reason=why))
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
            why = self.drop_reason or 'the connection ended'
            _fail(self.session.lost(KrakenConnectionError(
                f'the connection to {self.url} ended: {why}')))

    async def read(self, ws: ClientConnection) -> str:
        loop = asyncio.get_running_loop()
        receive, put = self.session.receive, self.stream.put
        try:
            async for raw in ws:
                self.last_seen = now = loop.time()
                for event in receive(raw, now):
                    if type(event) is Deliver:
                        put(event.message, event.size)
                    elif type(event) is Answered:
                        _settle(event.request)
                    elif type(event) is Resync:
                        self.plan_resync(event)
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
        silence = self.silence
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

    # -- requests -----------------------------------------------------------------------

    async def send(self, method: str, params: Mapping[str, Any], *, internal: bool,
                   expected: int = 1, req_id: int | None = None) -> Request:
        """Send one request; its replies settle the returned request's ``waiter``.

        ``req_id`` is the caller's, or the next number no request without its reply has.
        """
        loop = asyncio.get_running_loop()
        request = self.session.prepare(method, params, now=loop.time(), internal=internal,
                                       expected=expected, req_id=req_id)
        ws = self.ws
        if ws is None or ws.protocol.state is not State.OPEN:
            # websockets writes nothing on a connection that is not open
            raise NotSentError(f'{method} was not sent: not connected to {self.url}; '
                               f'nothing reached Kraken')
        request.waiter = loop.create_future()
        text = self.session.sending(request)
        if request.order:
            self.orders_sent += 1  # counted before the frame is written, never after
        try:
            # websockets writes the frame before its first await (waiting for the socket to
            # drain), so a cancellation delivered here comes after the frame left
            await ws.send(text)
        except asyncio.CancelledError:
            request.abandon(loop.time())  # the frame left: its reply may still come
            _raise_cancelled(request)
            raise
        except ConnectionClosed as exc:
            # The frame went to the socket before websockets waited for it to drain:
            # it may have reached Kraken, so this is never "not sent".
            self.session.forget(request)
            why = KrakenConnectionError(f'the connection to {self.url} was lost while the '
                                        f'request was being written ({exc})')
            raise request.unanswered(why) from None
        return request

    async def call(self, method: str, params: Mapping[str, Any], timeout: float | None, *,
                   internal: bool = False, expected: int = 1,
                   retry_token: bool = True, req_id: int | None = None) -> list[dict[str, Any]]:
        """Send a request and wait for its replies; fetch a token once more if Kraken refuses it."""
        request = await self.send(method, params, internal=internal, expected=expected,
                                  req_id=req_id)
        loop = asyncio.get_running_loop()
        try:
            replies: list[dict[str, Any]] = await asyncio.wait_for(
                asyncio.shield(request.waiter), timeout)
        except asyncio.CancelledError:
            request.abandon(loop.time())
            _raise_cancelled(request)
            raise
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11, not on 3.10
            request.abandon(loop.time())
            raise request.timed_out(timeout, self.url) from None
        refused = self.session.refused_token(replies)
        if refused is not None and retry_token:
            # Kraken refused the token, so the request did nothing: safe to send once more.
            await self.refresh_token(refused)
            return await self.call(method, params, timeout, internal=internal,
                                   expected=expected, retry_token=False, req_id=request.req_id)
        return replies

    async def send_all(self, sends: list[Send]) -> list[Request]:
        return [await self.send(s.method, s.params, internal=s.internal, expected=s.expected)
                for s in sends]

    async def resubscribe(self) -> None:
        """Send the user's own subscribe requests again and say so in the stream.

        Kraken's acknowledgements follow in the stream; a token Kraken refuses
        is fetched once more and the refused requests are sent again.
        """
        sends = self.session.reconnect_requests()
        sent = [r for r in await self.send_all(sends) if not r.internal]
        self.emit(notice('resubscribed', url=self.url, subscriptions=[
            dict(s.params) for s in sends if not s.internal]))
        if sent:
            await asyncio.wait([r.waiter for r in sent], timeout=self.timeout)
        now = asyncio.get_running_loop().time()
        for request in sent:
            request.abandon(now)  # its acks go to the stream whenever they come
        refused = [(r, error) for r in sent if r.waiter.done() and not r.waiter.cancelled()
                   and r.waiter.exception() is None
                   and (error := self.session.refused_token(r.waiter.result())) is not None]
        if refused:
            await self.refresh_token(refused[0][1])
            for request, _ in refused:
                again = await self.send('subscribe', request.params, internal=False,
                                        expected=request.expected)
                again.abandon(asyncio.get_running_loop().time())

    async def subscribe_instrument(self) -> None:
        """Subscribe for krakenex's own use: the pairs' precisions for book checksums."""
        send = self.session.instrument_request()
        if send is not None:
            await self.send_all([send])

    # -- resyncs ------------------------------------------------------------------------

    def plan_resync(self, resync: Resync) -> None:
        self.resyncs[resync.symbol] = asyncio.get_running_loop().create_task(
            self.resync(resync.symbol, resync.wait))

    def cancel_resyncs(self) -> None:
        for task in self.resyncs.values():
            task.cancel()
        self.resyncs.clear()

    async def resync(self, symbol: str, wait: float) -> None:
        """Subscribe one symbol's book again after ``wait`` seconds, as the session says."""
        if wait:
            await asyncio.sleep(wait)
        self.resyncs.pop(symbol, None)
        with contextlib.suppress(KrakenError):
            await self.send_all(self.session.resync_due(symbol))


def _settle(request: Request) -> None:
    waiter = request.waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(request.replies)


def _fail(failed: list[tuple[Request, KrakenError]]) -> None:
    for request, error in failed:
        waiter = request.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
            waiter.exception()  # retrieved: no "never retrieved" warning if nobody waits


def _raise_cancelled(request: Request) -> None:
    """Raise an unknown outcome for an order request whose task was cancelled after it was
    sent; anything else stays a plain cancellation (the caller re-raises it)."""
    error = request.cancelled()
    if error is not None:
        raise error from None
