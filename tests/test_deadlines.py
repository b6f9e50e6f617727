"""Every REST call is over by its deadline, however slowly the server sends the reply.

The sandbox's ``trickle`` fault sends a reply's body a byte every ``seconds``.
With ``timeout=(0.3, 0.5)`` each byte comes well within the read timeout,
so a client that only bounds each read would wait for the whole body (about
half a minute here) and return it; a client with a deadline gives up at 0.8 s. The tests
assert what the caller gets, not how long it took. A :class:`HeadTrickle` in
front of the sandbox sends the status line and headers a byte at a time: there
a client that bounds only each read would be held half a minute before it even
saw a status, so those tests also assert that the call ended near its deadline.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from krakenex import API, AsyncAPI, KrakenTimeout, OutcomeUnknownError, OutcomeUnknownTimeout
from krakenex.futures import AsyncFuturesAPI, FuturesAPI
from krakenex.sandbox import Sandbox

#: A byte every 0.2 s: each read waits far less than the read timeout, and the whole
#: reply takes many times the deadline of 0.3 + 0.5 s.
TRICKLE = 0.2
TIMEOUT = (0.3, 0.5)
ORDER = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '20000',
         'volume': '0.01', 'userref': 7}
FUTURES_ORDER = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': '0.01',
                 'limitPrice': '1000', 'cliOrdId': 'slow-1'}


def test_the_trickle_fault_sends_the_whole_reply_a_byte_at_a_time(sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='Time', seconds=0.001)
    host, port = sandbox.url.removeprefix('http://').split(':')
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b'GET /0/public/Time HTTP/1.1\r\nHost: x\r\n\r\n')
        reply = b''
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b'\r\n\r\n')
    assert f'Content-Length: {len(body)}'.encode() in head
    assert json.loads(body)['result']['unixtime'] > 0


def test_a_trickled_reply_to_api_ends_at_the_deadline(sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='Time', seconds=TRICKLE, times=4)
    with API(uri=sandbox.url, timeout=TIMEOUT, retries=0) as api, \
            pytest.raises(KrakenTimeout) as caught:
        api.query_public('Time')
    assert 'did not arrive whole within 0.8 s' in str(caught.value)


def test_a_trickled_reply_to_addorder_is_an_unknown_outcome_and_is_not_resent(
        sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='AddOrder', seconds=TRICKLE)
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=TIMEOUT) as api, \
            pytest.raises(OutcomeUnknownTimeout) as caught:
        api.query_private('AddOrder', ORDER)
    assert caught.value.userref == '7'
    assert [m for m, _ in sandbox.requests_log].count('AddOrder') == 1
    assert [o['userref'] for o in sandbox.orders()] == [7]


def test_a_trickled_reply_is_retried_for_a_read_only_call(sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='Balance', seconds=TRICKLE)
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=TIMEOUT,
             backoff=0.01) as api:
        assert api.query_private('Balance')['error'] == []
    assert [m for m, _ in sandbox.requests_log].count('Balance') == 2


def test_a_trickled_reply_to_async_api_ends_at_the_deadline(sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='Time', seconds=TRICKLE)
    sandbox.inject('trickle', method='AddOrder', seconds=TRICKLE)

    async def calls() -> tuple[BaseException, BaseException]:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=TIMEOUT,
                            retries=0) as api:
            public = await asyncio.gather(api.query_public('Time'), return_exceptions=True)
            order = await asyncio.gather(api.query_private('AddOrder', ORDER),
                                         return_exceptions=True)
        return public[0], order[0]

    public, order = asyncio.run(calls())
    assert isinstance(public, KrakenTimeout) and 'within 0.8 s' in str(public)
    assert isinstance(order, OutcomeUnknownTimeout) and order.userref == '7'
    assert [m for m, _ in sandbox.requests_log].count('AddOrder') == 1


def test_a_trickled_reply_to_futures_api_ends_at_the_deadline(sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='tickers', seconds=TRICKLE)
    sandbox.inject('trickle', method='sendorder', seconds=TRICKLE)
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    timeout=TIMEOUT, retries=0) as futures:
        with pytest.raises(KrakenTimeout):
            futures.query_public('tickers')
        with pytest.raises(OutcomeUnknownTimeout) as caught:
            futures.query_private('sendorder', FUTURES_ORDER)
    assert caught.value.cl_ord_id == 'slow-1'
    assert [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)] == ['slow-1']


def test_a_trickled_reply_to_async_futures_api_ends_at_the_deadline(sandbox: Sandbox) -> None:
    sandbox.inject('trickle', method='tickers', seconds=TRICKLE)
    sandbox.inject('trickle', method='sendorder', seconds=TRICKLE)

    async def calls() -> list[BaseException]:
        async with AsyncFuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                                   uri=sandbox.futures_url, timeout=TIMEOUT,
                                   retries=0) as futures:
            public = await asyncio.gather(futures.query_public('tickers'),
                                          return_exceptions=True)
            order = await asyncio.gather(futures.query_private('sendorder', FUTURES_ORDER),
                                         return_exceptions=True)
        return [public[0], order[0]]

    public, order = asyncio.run(calls())
    assert isinstance(public, KrakenTimeout) and not isinstance(public, OutcomeUnknownError)
    assert isinstance(order, OutcomeUnknownTimeout) and order.cl_ord_id == 'slow-1'


def test_krakenex_addorder_with_a_trickled_reply_exits_4_naming_the_order(
        sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.inject('trickle', method='AddOrder', seconds=TRICKLE)
    env = {**os.environ, 'HOME': str(tmp_path), 'KRAKEN_API_KEY': sandbox.key,
           'KRAKEN_API_SECRET': sandbox.secret}
    result = subprocess.run(
        [sys.executable, '-m', 'krakenex', '--uri', sandbox.url, '--timeout', '0.4', 'AddOrder',
         *(f'{k}={v}' for k, v in ORDER.items())], env=env, capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 4
    assert 'did not arrive whole within 0.8 s' in result.stderr and 'userref=7' in result.stderr
    assert result.stdout == ''


# ------------------------------------------- a status line and headers that trickle

#: How long after its deadline of 0.8 s a call whose reply's head trickles may end, on a
#: busy machine; without the deadline such a call lasts about half a minute.
SLACK = 1.5


class HeadTrickle(ThreadingHTTPServer):
    """A relay to the sandbox that sends the first :attr:`slow` replies' status line and
    headers a byte every :data:`TRICKLE` seconds; the others go through at once.

    The request reaches the sandbox whole and is processed there: only the reply is slow.
    """

    daemon_threads = True

    def __init__(self, target: str, slow: int) -> None:
        super().__init__(('127.0.0.1', 0), _Relay)
        self.target = target.removeprefix('http://')
        self.slow = slow
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.url = f'http://127.0.0.1:{self.server_address[1]}'

    def take_slow(self) -> bool:
        with self._lock:
            self.slow -= 1
            return self.slow >= 0


class _Relay(BaseHTTPRequestHandler):
    server: HeadTrickle
    protocol_version = 'HTTP/1.1'

    def relay(self) -> None:
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        upstream = http.client.HTTPConnection(self.server.target, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != 'host'}
        upstream.request(self.command, self.path, body or None, headers)
        reply = upstream.getresponse()
        content = reply.read()
        upstream.close()
        head = f'HTTP/1.1 {reply.status} {reply.reason}\r\n'.encode() + b''.join(
            f'{k}: {v}\r\n'.encode() for k, v in reply.getheaders()
            if k.lower() not in ('connection', 'content-length'))
        head += f'Content-Length: {len(content)}\r\nConnection: close\r\n\r\n'.encode()
        self.close_connection = True
        try:
            if self.server.take_slow():
                for i in range(len(head)):
                    if self.server.stopping.wait(TRICKLE):
                        return
                    self.wfile.write(head[i:i + 1])
                    self.wfile.flush()
            else:
                self.wfile.write(head)
            self.wfile.write(content)
        except OSError:  # the client gave up
            pass

    do_GET = do_POST = do_PUT = do_DELETE = relay

    def log_message(self, format: str, *args: object) -> None:
        pass


def head_trickle(target: str, slow: int = 1) -> Iterator[HeadTrickle]:
    relay = HeadTrickle(target, slow)
    thread = threading.Thread(target=relay.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.stopping.set()
        relay.shutdown()
        relay.server_close()
        thread.join(5)


@pytest.fixture
def slow_head(sandbox: Sandbox) -> Iterator[HeadTrickle]:
    yield from head_trickle(sandbox.url)


def test_the_relay_passes_the_sandboxs_replies_on(
        sandbox: Sandbox) -> None:
    for relay in head_trickle(sandbox.url, slow=0):
        with API(uri=relay.url) as api:
            assert api.query_public('Time')['result']['unixtime'] > 0


def test_a_reply_whose_status_line_and_headers_trickle_ends_at_the_deadline(
        slow_head: HeadTrickle) -> None:
    started = time.monotonic()
    with API(uri=slow_head.url, timeout=TIMEOUT, retries=0) as api, \
            pytest.raises(KrakenTimeout) as caught:
        api.query_public('Time')
    assert time.monotonic() - started < 0.8 + SLACK
    assert 'did not arrive whole within 0.8 s' in str(caught.value)
    assert not isinstance(caught.value, OutcomeUnknownError)


def test_a_read_whose_reply_head_trickles_is_retried_and_answered(
        sandbox: Sandbox, slow_head: HeadTrickle) -> None:
    started = time.monotonic()
    with API(sandbox.key, sandbox.secret, uri=slow_head.url, timeout=TIMEOUT,
             backoff=0.01) as api:
        assert api.query_private('Balance')['error'] == []
    assert time.monotonic() - started < 0.8 + SLACK
    assert [m for m, _ in sandbox.requests_log].count('Balance') == 2


def test_an_order_whose_reply_head_trickles_is_an_unknown_outcome_placed_once(
        sandbox: Sandbox, slow_head: HeadTrickle) -> None:
    started = time.monotonic()
    with API(sandbox.key, sandbox.secret, uri=slow_head.url, timeout=TIMEOUT) as api, \
            pytest.raises(OutcomeUnknownTimeout) as caught:
        api.query_private('AddOrder', ORDER)
    assert time.monotonic() - started < 0.8 + SLACK
    assert caught.value.userref == '7' and 'did not arrive whole' in str(caught.value)
    assert [m for m, _ in sandbox.requests_log].count('AddOrder') == 1
    assert [o['userref'] for o in sandbox.orders()] == [7]


def test_a_futures_order_whose_reply_head_trickles_is_an_unknown_outcome_placed_once(
        sandbox: Sandbox) -> None:
    for relay in head_trickle(sandbox.futures_url, slow=2):
        with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=relay.url,
                        timeout=TIMEOUT, retries=0) as futures:
            started = time.monotonic()
            with pytest.raises(KrakenTimeout) as public:
                futures.query_public('tickers')
            assert not isinstance(public.value, OutcomeUnknownError)
            with pytest.raises(OutcomeUnknownTimeout) as caught:
                futures.query_private('sendorder', FUTURES_ORDER)
            assert time.monotonic() - started < 2 * (0.8 + SLACK)
    assert caught.value.cl_ord_id == 'slow-1'
    assert [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)] == ['slow-1']


def test_async_calls_whose_reply_head_trickles_end_at_the_deadline(sandbox: Sandbox) -> None:
    async def calls(url: str) -> tuple[float, list[BaseException]]:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=url, timeout=TIMEOUT,
                            retries=0) as api, \
                AsyncFuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=url,
                                timeout=TIMEOUT, retries=0) as futures:
            started = time.monotonic()
            both = await asyncio.gather(api.query_private('AddOrder', ORDER),
                                        futures.query_private('sendorder', FUTURES_ORDER),
                                        return_exceptions=True)
            return time.monotonic() - started, both

    for relay in head_trickle(sandbox.url, slow=2):
        took, (order, futures_order) = asyncio.run(calls(relay.url))
        assert took < 0.8 + SLACK
    assert isinstance(order, OutcomeUnknownTimeout) and order.userref == '7'
    assert isinstance(futures_order, OutcomeUnknownTimeout)
    assert futures_order.cl_ord_id == 'slow-1'
    assert [o['userref'] for o in sandbox.orders()] == [7]
    assert [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)] == ['slow-1']
