"""The Kraken spot REST client for asyncio, on aiohttp: :class:`AsyncAPI` (extra ``async``).

It is :class:`krakenex.API` with ``await``: the same options, the same
exceptions, the same guarantees. Kraken's rules come from
:mod:`krakenex.protocol`; this module only sends with aiohttp, maps its
failures and sleeps with :func:`asyncio.sleep`. It never starts an event loop
of its own, so it works with top-level ``await`` in Jupyter.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on what is installed
    from ._extras import needs

    raise ImportError(needs('AsyncAPI', 'async')) from None

from . import core, protocol
from .deadman import ADVISED_TIMEOUT, AsyncDeadManSwitch, call_timeout
from .errors import (
    KrakenConnectionError,
    KrakenError,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownError,
    unwrap,
)
from .patrol import Patrol
from .protocol import Reply, Request, SendLock, Timeout
from .share import lease
from .version import __version__

__all__ = ['AsyncAPI']

log = logging.getLogger('krakenex')


class AsyncAPI(core.SpotCore):
    """:class:`krakenex.API` for asyncio: ``await api.query_private('Balance')``.

    The parameters are those of :class:`~krakenex.API`. Use it as
    ``async with AsyncAPI(...) as api`` or call :meth:`aclose` when done.

    :attr:`session` is an :class:`aiohttp.ClientSession`, opened on the first
    call inside the running loop; assign one of your own before the first
    call to set headers, cookies, a proxy or TLS settings.

    Private calls on one key are sent one at a time, each with a nonce above
    the one before, so their nonces reach Kraken in the order the calls were
    made, however many tasks, processes and re-runs use the key (``share``).
    Waiting for the key's send lock never blocks the event loop; a store
    in Redis is asked with short blocking calls. A task cancelled while a
    state-changing call is in flight releases the object at once and raises
    :class:`~krakenex.OutcomeUnknownError` instead of :class:`asyncio.CancelledError`,
    since the call may have reached Kraken; it is never sent again.

    An aiohttp session, and so this object while its session is open, belongs
    to one event loop. Used from another loop it moves there only when no call
    is in flight and its session is closed (:meth:`aclose`, as ``async with``
    does), so one object can serve one ``asyncio.run`` after another; otherwise
    the call raises :class:`~krakenex.KrakenUsageError` saying why, before
    anything is sent. Give each thread with a loop of its own its own object.
    """

    def _open(self) -> None:
        #: The :class:`aiohttp.ClientSession` every call goes through; opened on first use.
        self.session: aiohttp.ClientSession | None = None
        #: The last :class:`aiohttp.ClientResponse`, overwritten by every call.
        self.response: aiohttp.ClientResponse | None = None
        # Each task's last response: the one its error belongs to, when tasks share the object.
        self._task_response: contextvars.ContextVar[Any] = contextvars.ContextVar(
            'krakenex_response', default=None)
        self._private_lock = asyncio.Lock()
        # The last timeout a call was given: its connect and read seconds, aiohttp's timeouts.
        self._waits: tuple[Timeout | None, tuple[float, float, aiohttp.ClientTimeout] | None] = \
            (None, None)
        # The attempts in flight, and the one timer that cuts them when they are late.
        self._patrol = Patrol()
        # The loop this object's calls, lock and session belong to, and its calls in flight.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 0
        self._binding = threading.Lock()
        self._stale_after = core.KeyedCore.stale_after

    @property
    def stale_after(self) -> float:
        """:attr:`krakenex.API.stale_after`, read when the session opens: aiohttp reuses no
        connection idle longer than its keep-alive timeout, 15 seconds or this if it is shorter.

        :raises KrakenUsageError: when changed while the session is open; set it before the
            first call, or after :meth:`aclose`
        """
        return self._stale_after

    @stale_after.setter
    def stale_after(self, value: float) -> None:
        if value != self._stale_after and self.session is not None and not self.session.closed:
            raise KrakenUsageError(
                'stale_after cannot change while the session is open: it sets the keep-alive '
                'timeout of the session\'s connections. Set it before the first call, or close '
                'the session first (await aclose())')
        self._stale_after = value

    async def __aenter__(self) -> AsyncAPI:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections.

        Called in a loop other than the session's, after that loop ended, it lets
        go of the session (which can no longer be closed), so the object can move on.
        """
        if self.session is not None:
            ended = self._loop is not None and self._loop.is_closed() \
                and self._loop is not asyncio.get_running_loop()
            if not ended:
                await self.session.close()
            self.session = None
        self._patrol.close()
        self._close_store()

    async def query_public(self, method: str, data: Mapping[str, Any] | None = None,
                           timeout: Timeout | None = None) -> Any:
        """Call a public method; see :meth:`krakenex.API.query_public`."""
        call = self._spot_call(protocol.check_method(method), dict(data or {}), private=False)
        return await self._run(call, timeout)

    async def query_private(self, method: str, data: Mapping[str, Any] | None = None,
                            timeout: Timeout | None = None) -> Any:
        """Call a private method; see :meth:`krakenex.API.query_private`."""
        method = protocol.check_method(method)
        self._check_private(method)
        return await self._run(self._spot_call(method, dict(data or {}), private=True), timeout)

    async def find_order(self, *, userref: int | str | None = None,
                         cl_ord_id: str | None = None) -> dict[str, Any]:
        """Find orders by ``userref`` or ``cl_ord_id``; see :meth:`krakenex.API.find_order`."""
        field, value = core.order_filter(userref, cl_ord_id)
        found: dict[str, Any] = {}
        for method, member in core.ORDER_LISTS:
            orders = unwrap(await self.query_private(method, {field: value}), method)[member]
            found.update(core.matching_orders(orders, field, value))
        return found

    async def reconcile(self, error: OutcomeUnknownError) -> dict[str, Any]:
        """Look up the order of an unknown outcome; see :meth:`krakenex.API.reconcile`."""
        field, value = self._lookup_filter(error)
        return await self.find_order(**{field: value})

    # ---------------------------------------------------------------- sending

    def dead_man_switch(self, timeout: int = ADVISED_TIMEOUT, every: float | None = None, *,
                        disarm_on_error: bool = False) -> AsyncDeadManSwitch:
        """:meth:`krakenex.API.dead_man_switch` for asyncio: ``async with`` it."""
        async def arm(seconds: int, within: float) -> None:
            unwrap(await self.query_private('CancelAllOrdersAfter', {'timeout': seconds},
                                            timeout=call_timeout(self.timeout, within)),
                   'CancelAllOrdersAfter')

        return AsyncDeadManSwitch(arm, timeout, every, what=f'{self.uri} (REST)',
                                  disarm_on_error=disarm_on_error)

    async def run(self, call: protocol.Call, timeout: Timeout | None = None) -> Any:
        """Run a call built by a client's core; :meth:`krakenex.API.run` for asyncio.

        :class:`~krakenex.futures.AsyncFuturesAPI` sends its calls through it.
        """
        return await self._run(call, timeout)

    async def _run(self, call: protocol.Call, timeout: Timeout | None) -> Any:
        """Run a call: send it, and again after a transient fault where it may be sent again."""
        timeout = self.timeout if timeout is None else protocol.check_timeout(timeout)
        self._enter_loop(call.name)
        try:
            while True:
                try:
                    reply = await self._attempt(call, timeout)
                except KrakenError as exc:
                    if (wait := call.retry.after_error(exc)) is None:
                        raise
                    log.warning('%s failed (%s); retry %d in %.2f s',
                                call.name, exc, call.retry.attempt, wait)
                else:
                    if (wait := call.retry.after_reply(reply)) is None:
                        return call.check(reply, self._task_response.get())
                    log.warning('%s answered %s; retry %d in %.2f s',
                                call.name, reply['error'], call.retry.attempt, wait)
                await asyncio.sleep(wait)
        finally:
            with self._binding:
                self._in_flight -= 1

    def _enter_loop(self, name: str) -> None:
        """Count a call in the running loop, moving this object to it if it may move.

        :raises KrakenUsageError: if it belongs to another loop: a call is in
            flight there, or its session is open there
        """
        loop = asyncio.get_running_loop()
        with self._binding:
            if self._loop is not loop and self._loop is not None:
                if self._in_flight:
                    where = 'another thread' if self._loop.is_running() else 'another loop'
                    raise KrakenUsageError(
                        f'{name} was called from an event loop other than the one where this '
                        f'{type(self).__name__} has calls in flight ({where}): an aiohttp '
                        f'session belongs to one loop, so give each loop its own object',
                        method=name)
                if self.session is not None and not self.session.closed:
                    state = 'has ended' if self._loop.is_closed() else 'is still open'
                    raise KrakenUsageError(
                        f'{name} was called from an event loop other than the one whose session '
                        f'this {type(self).__name__} holds (that loop {state}): an aiohttp '
                        f'session belongs to one loop. Close it first (await aclose(), or '
                        f'async with) in its loop, or give each loop its own object',
                        method=name)
                self.session = None
                self._private_lock = asyncio.Lock()
                self._patrol.close()
                self._patrol = Patrol()
            self._loop = loop
            self._in_flight += 1

    async def _attempt(self, call: protocol.Call, timeout: Timeout) -> Any:
        """Send one attempt; one holding the key's send lock alone, its nonce issued in order.

        Written out rather than as context managers and nested coroutines,
        which cost CPU on every call: an unpaced call goes straight on, and a
        public call holds no lock.
        """
        counter, cost, store = call.counter, call.cost, call.store
        if counter is not None:  # wait for room on the rate counter, never blocking the loop
            while (wait := counter.try_acquire(cost)) > 0:
                await asyncio.sleep(wait)
            counted_at = time.monotonic()
        try:
            tasks = self._private_lock
            if store is not None:
                handle = await _hold(tasks, store, timeout)
            try:
                request = call.build()  # the nonce is issued here, holding the send lock
                try:
                    reply = call.read(await self._transmit(request, timeout))
                    return call.answered(reply, request, self._task_response.get())
                except KrakenError as exc:
                    unknown = call.unknown(exc, request)
                    if unknown is exc:
                        raise
                    raise unknown from exc.__cause__
                except asyncio.CancelledError:
                    # The request may have left: a state change must not look merely cancelled.
                    cancelled = KrakenConnectionError(f'the task was cancelled while {call.name} '
                                                      f'was in flight', method=call.name)
                    unknown = call.unknown(cancelled, request)
                    if unknown is cancelled:
                        raise
                    raise unknown from None
            finally:
                if store is not None:
                    store.unlock(handle)
                    tasks.release()
        except NotSentError:
            if counter is not None:  # Kraken never counted it
                counter.unsent(cost)
            raise
        finally:
            if counter is not None:
                counter.settle(cost, counted_at)

    async def _transmit(self, request: Request, timeout: Timeout) -> Reply:
        """Send ``request`` through the session: the reply as it came, or what went wrong.

        The read timeout and the deadline are kept by :attr:`_patrol`, which
        cancels the task of a late attempt; aiohttp keeps only the connect timeout.
        """
        method = request.method
        given, waits = self._waits
        if waits is None or given != timeout:
            waits = _waits(timeout)
            self._waits = (timeout, waits)
        connect, read, aiohttp_waits = waits
        url = self.uri + request.path + ('?' + request.query if request.query else '')
        started = time.perf_counter()
        loop = self._loop
        task = asyncio.current_task(loop)  # given the loop, asking costs no system call
        assert loop is not None and task is not None  # _enter_loop ran in this task
        session = self._session()
        attempt = self._patrol.start(loop, task, connect, read,
                                     told=isinstance(session.connector, _Connector))
        try:
            response = await session.request(
                request.verb, url, data=request.body, headers=request.headers,
                allow_redirects=False, timeout=aiohttp_waits)
            attempt.headed(loop.time(), response.content)
            content = await response.read()  # which closes the response if it fails
        except asyncio.CancelledError:
            if not self._patrol.was_cut(task, attempt):
                raise
            assert attempt.cut is not None
            raise protocol.transport_error(
                attempt.cut, self.uri, method,
                f'{protocol.deadline_seconds(timeout):g}') from None
        except (aiohttp.InvalidURL, ValueError) as exc:
            raise protocol.transport_error('bad_uri', self.uri, method) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise protocol.transport_error('connect_timeout', self.uri, method) from exc
        except aiohttp.ClientConnectorError as exc:
            raise protocol.transport_error('not_sent', self.uri, method,
                                           str(exc.os_error) or type(exc).__name__) from exc
        except aiohttp.ClientPayloadError as exc:
            raise protocol.transport_error('broken', self.uri, method, str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise protocol.transport_error('dropped', self.uri, method,
                                           str(exc) or type(exc).__name__) from exc
        finally:
            self._patrol.end(task)
        self.response = response
        self._task_response.set(response)
        if log.isEnabledFor(logging.DEBUG):
            log.debug('%s %s -> %d in %.1f ms', request.verb, method, response.status,
                      (time.perf_counter() - started) * 1000)
        return Reply(response.status, response.reason or '', response.headers, content, response)

    def _session(self) -> aiohttp.ClientSession:
        """The session, opened on first use inside the running loop."""
        if self.session is None or self.session.closed:
            # aiohttp never reuses a connection idle past its keep-alive timeout (15 s by
            # default): below stale_after, so no stale connection carries a state change.
            self.session = aiohttp.ClientSession(
                headers={'User-Agent': f'krakenex/{__version__}'},
                connector=_Connector(self._patrol,
                                     keepalive_timeout=min(_KEEPALIVE, self.stale_after)))
        # aiohttp quietly sends a GET, PUT or DELETE again when a reused connection
        # drops; what may be sent again is krakenex's decision (a futures PUT changes state).
        self.session._retry_connection = False
        return self.session


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, telling the patrol when an attempt's connection is ready."""

    def __init__(self, patrol: Patrol, **options: Any) -> None:
        super().__init__(**options)
        self._patrol = patrol

    async def connect(self, *args: Any, **kwargs: Any) -> aiohttp.connector.Connection:
        connection = await super().connect(*args, **kwargs)
        self._patrol.connected(self._loop, asyncio.current_task(self._loop))
        return connection


#: aiohttp's own keep-alive timeout, kept unless :attr:`AsyncAPI.stale_after` is shorter.
_KEEPALIVE = 15.0


async def _hold(tasks: asyncio.Lock, store: SendLock, timeout: Timeout) -> Any:
    """Take the key's send lock: this object's tasks one at a time, then the store's.

    :returns: the store's handle, for its ``unlock``;
        ``tasks`` is held too, until released
    """
    await tasks.acquire()
    try:
        held = lease(timeout)
        handle = store.try_lock(held)
        return handle if handle is not None else await _lock(store, held)
    except BaseException:
        tasks.release()
        raise


async def _lock(store: SendLock, lease: float) -> Any:
    """Take the store's send lock, waiting in a thread if another holds it.

    A task cancelled while it waits leaves the thread to take the lock and
    give it straight back, so the key is never held by nobody's call.
    """
    handle = store.try_lock(lease)
    if handle is not None:
        return handle
    waiting = asyncio.get_running_loop().run_in_executor(None, store.lock, lease)
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        def give_back(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                store.unlock(done.result())
        waiting.add_done_callback(give_back)
        raise


def _waits(timeout: Timeout) -> tuple[float, float, aiohttp.ClientTimeout]:
    """A call's connect and read seconds, and aiohttp's timeouts for it: the connect timeout.

    Its read timeout and deadline are the patrol's (:mod:`krakenex.patrol`).
    """
    connect, read = protocol.split_timeout(timeout)
    return connect, read, aiohttp.ClientTimeout(total=None, sock_connect=connect)
