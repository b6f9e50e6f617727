"""Every REST call is over by its deadline, however slowly the server sends the reply.

The sandbox's ``trickle`` fault sends a reply's body a byte every ``seconds``.
With ``timeout=(0.3, 0.5)`` each byte comes well within the read timeout,
so a client that only bounds each read would wait for the whole body (about
half a minute here) and return it; a client with a deadline gives up at 0.8 s. The tests
assert what the caller gets, not how long it took.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
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
