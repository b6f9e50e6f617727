"""AsyncAPI's timeouts, kept by one timer per object (krakenex.patrol), over real sockets.

Each test's server is a plain socket on 127.0.0.1 that misbehaves in one way:
silent after the request, slow to accept the connection, or silent halfway
through a body. The tests assert which timeout ended the call and that it was
the right one: the read timeout counts from the connection being ready, the
deadline bounds everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from krakenex import API, AsyncAPI, KrakenTimeout, KrakenUsageError, OutcomeUnknownError
from krakenex.futures import AsyncFuturesAPI, FuturesAPI
from krakenex.sandbox import Sandbox

TIME_REPLY = b'{"error":[],"result":{"unixtime":1700000000,"rfc1123":"Tue, 14 Nov 23"}}'


class Server:
    """A listening socket on 127.0.0.1 whose connections ``answer`` serves, each in a thread.

    :param answer: given the connection and the first bytes of its request
    :param backlog_full_for: seconds during which connections are not accepted
        and the listen queue is kept full, so a new connection waits for the
        system to send its SYN again (about a second later)
    """

    def __init__(self, answer: Callable[[socket.socket, bytes], None],
                 backlog_full_for: float = 0.0) -> None:
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.url = f'http://127.0.0.1:{self.port}'
        #: When each connection that sent a request was accepted (time.monotonic).
        self.requests_accepted: list[float] = []
        self._answer = answer
        self._stop = threading.Event()
        self._fillers: list[socket.socket] = []
        for _ in range(4 if backlog_full_for else 0):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(('127.0.0.1', self.port))
            self._fillers.append(filler)
        self._accepting = threading.Thread(target=self._accept, args=(backlog_full_for,),
                                           daemon=True)
        self._accepting.start()

    def _accept(self, wait: float) -> None:
        self._stop.wait(wait)
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn, time.monotonic()),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, accepted: float) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = conn.recv(65536)
            except OSError:
                return
            if not request:
                return
            self.requests_accepted.append(accepted)
            with contextlib.suppress(OSError):
                self._answer(conn, request)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join()
        for filler in self._fillers:
            filler.close()
        self.listener.close()


@contextlib.contextmanager
def serve(answer: Callable[[socket.socket, bytes], None],
          backlog_full_for: float = 0.0) -> Iterator[Server]:
    server = Server(answer, backlog_full_for)
    try:
        yield server
    finally:
        server.close()


def silent(conn: socket.socket, request: bytes) -> None:
    """Read the request and say nothing until the client gives up."""
    conn.recv(65536)


def time_reply(conn: socket.socket, request: bytes) -> None:
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                 b'Content-Length: %d\r\n\r\n%s' % (len(TIME_REPLY), TIME_REPLY))
    conn.recv(65536)


def half_a_body(conn: socket.socket, request: bytes) -> None:
    """The head and the first bytes of the body, then silence."""
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                 b'Content-Length: %d\r\n\r\n%s' % (len(TIME_REPLY), TIME_REPLY[:20]))
    conn.recv(65536)


def call_time(url: str, timeout: Any) -> tuple[float, Any]:
    """``query_public('Time')`` in a loop of its own: how long it took, and what it returned."""
    async def call() -> Any:
        async with AsyncAPI(uri=url, timeout=timeout, retries=0) as api:
            return await api.query_public('Time')
    started = time.monotonic()
    try:
        result: Any = asyncio.run(call())
    except KrakenTimeout as exc:
        result = exc
    return time.monotonic() - started, result


def test_a_server_silent_after_the_request_is_cut_at_the_read_timeout_not_the_deadline() -> None:
    with serve(silent) as server:
        took, result = call_time(server.url, (10, 0.5))
    assert isinstance(result, KrakenTimeout)
    assert 'no reply from' in str(result) and 'within the timeout' in str(result)
    assert took < 10  # the deadline would have been 10.5 s


def test_a_session_of_the_user_s_own_is_cut_at_the_read_timeout_too() -> None:
    async def call(url: str) -> Any:
        async with AsyncAPI(uri=url, timeout=(10, 0.5), retries=0) as api:
            api.session = aiohttp.ClientSession(headers={'X-Mine': '1'})
            return await api.query_public('Time')
    with serve(silent) as server, pytest.raises(KrakenTimeout, match='no reply from'):
        asyncio.run(call(server.url))


def test_a_body_that_falls_silent_is_cut_by_the_read_timeout() -> None:
    with serve(half_a_body) as server:
        took, result = call_time(server.url, (10, 0.4))
    assert isinstance(result, KrakenTimeout) and 'no reply from' in str(result)
    assert took < 10


def test_a_connection_slow_to_open_still_gets_the_whole_read_timeout_for_its_reply() -> None:
    # The listen queue is full for 0.3 s: the connection opens when the system sends its
    # SYN again, about 1 s after the call started, and the reply comes at once. That is
    # past the read timeout of 0.8 s counted from the start, within it counted from the
    # connection being ready, as a read timeout is meant.
    with serve(time_reply, backlog_full_for=0.3) as server:
        started = time.monotonic()
        took, result = call_time(server.url, (3, 0.8))
        accepted = server.requests_accepted[0] - started
    assert accepted > 0.8, f'the connection opened after {accepted:.2f} s: not slow enough'
    assert not isinstance(result, Exception), result
    assert result['result']['unixtime'] == 1700000000


def test_an_order_cut_at_the_read_timeout_is_an_unknown_outcome_sent_once() -> None:
    with serve(silent) as server:
        async def order() -> Any:
            async with AsyncAPI('key', 'c2VjcmV0', uri=server.url, timeout=(10, 0.5),
                                share=None) as api:
                return await api.query_private('AddOrder', {
                    'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '1',
                    'volume': '1', 'userref': 5})
        with pytest.raises(OutcomeUnknownError) as caught:
            asyncio.run(order())
        sent = len(server.requests_accepted)
    assert isinstance(caught.value, KrakenTimeout) and caught.value.userref == '5'
    assert sent == 1


@pytest.mark.skipif(sys.version_info < (3, 11), reason='Python 3.10 does not count cancels')
def test_a_cancel_from_elsewhere_at_the_moment_of_the_cut_reaches_the_caller() -> None:
    with serve(silent) as server:
        async def call() -> Any:
            async with AsyncAPI(uri=server.url, timeout=(10, 0.3), retries=0) as api:
                fire = api._patrol._fire
                task = asyncio.current_task()
                assert task is not None

                def fire_and_cancel(loop: asyncio.AbstractEventLoop) -> None:
                    fire(loop)  # the patrol cuts the call ...
                    task.cancel()  # ... and, in the same moment, someone cancels the task
                api._patrol._fire = fire_and_cancel  # type: ignore[method-assign]
                return await api.query_public('Time')
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(call())


class CountingLoop(asyncio.SelectorEventLoop):
    """An event loop counting the timers armed on it."""

    armed = 0

    def call_at(self, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:  # type: ignore[override]
        CountingLoop.armed += 1
        return super().call_at(*args, **kwargs)


@pytest.mark.unlimited
def test_calls_in_flight_share_one_timer_however_many(sandbox: Sandbox) -> None:
    armed = {}

    async def calls() -> list[Any]:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url, retries=0) as api:
            await api.query_public('Time')  # the connection is open
            CountingLoop.armed = 0
            replies = [await api.query_public('Time') for _ in range(100)]
            replies += [await api.query_private('Balance') for _ in range(100)]
            armed['one after another'] = CountingLoop.armed
            replies += await asyncio.gather(*(api.query_public('Time') for _ in range(100)))
            armed['at once'] = CountingLoop.armed - armed['one after another']
            return replies
    loop = CountingLoop()
    try:
        replies = loop.run_until_complete(calls())
    finally:
        loop.close()
    assert len(replies) == 300 and all(reply['error'] == [] for reply in replies)
    # aiohttp's own timeouts armed three timers a call: 600, then 300.
    assert armed['one after another'] <= 3
    # At once, aiohttp opens 99 more connections, each with its connect timeout.
    assert armed['at once'] <= 99 + 3


def test_a_timeout_of_one_number_in_a_tuple_is_refused_by_every_client(sandbox: Sandbox) -> None:
    # (5,) is neither seconds nor a (connect, read) pair; it was taken, then failed in a call.
    clients = [lambda: API(uri=sandbox.url, timeout=(5,)),
               lambda: AsyncAPI(uri=sandbox.url, timeout=(5,)),
               lambda: FuturesAPI(uri=sandbox.futures_url, timeout=(5,)),
               lambda: AsyncFuturesAPI(uri=sandbox.futures_url, timeout=(5,))]
    for make in clients:
        with pytest.raises(KrakenUsageError, match=r'\(connect, read\) pair'):
            make()

    async def call() -> Any:
        async with AsyncAPI(uri=sandbox.url) as api:
            return await api.query_public('Time', timeout=(5,))
    with pytest.raises(KrakenUsageError, match='timeout'):
        asyncio.run(call())
    assert sandbox.requests_log == []
