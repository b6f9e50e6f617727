"""An order answered with an error that does not say whether it was placed is an unknown outcome.

Kraken documents ``EService:Unavailable`` ("the matching engine or API is
offline") and ``EService:Deadline elapsed`` as not carried out, but nothing it
publishes says that of ``EService:Timeout``, ``EService:Busy`` or
``EGeneral:Internal error``: the order may have been placed, so it is an
:class:`~krakenex.OutcomeUnknownAPIError` (exit 4), never a refusal that is safe
to resend (exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from krakenex import (
    API,
    AsyncAPI,
    KrakenAPIError,
    OutcomeUnknownAPIError,
    OutcomeUnknownError,
    ServiceUnavailableError,
)
from krakenex.futures import AsyncFuturesAPI, FuturesAPI
from krakenex.sandbox import Reply, Sandbox

AMBIGUOUS = ['EService:Timeout', 'EService:Busy', 'EGeneral:Internal error',
             'EGeneral:Internal error:12', 'EDatabase:Internal error']
REFUSALS = ['EService:Unavailable', 'EService:Deadline elapsed',
            'EService:Market in cancel_only mode', 'EOrder:Insufficient funds',
            'EAPI:Rate limit exceeded', 'EGeneral:Invalid arguments:volume']
ORDER = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '20000',
         'volume': '0.01', 'userref': 11}


def answering(sandbox: Sandbox, path: str, answer: dict[str, Any]) -> list[str]:
    """Make the sandbox answer ``path`` with ``answer``; the requests, as they come."""
    asked: list[str] = []

    def route(request: Any) -> Reply:
        asked.append(request.path)
        return Reply(200, json.dumps(answer).encode())

    sandbox.add_route(path, route)
    return asked


@pytest.mark.parametrize('raise_errors', [False, True])
@pytest.mark.parametrize('error', AMBIGUOUS)
def test_addorder_answered_ambiguously_is_an_unknown_outcome_sent_once(
        sandbox: Sandbox, error: str, raise_errors: bool) -> None:
    asked = answering(sandbox, '/0/private/AddOrder', {'error': [error]})
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=raise_errors) as api, \
            pytest.raises(OutcomeUnknownAPIError) as caught:
        api.query_private('AddOrder', ORDER)
    unknown = caught.value
    assert not isinstance(unknown, KrakenAPIError)  # `except KrakenAPIError: resend` misses it
    assert unknown.errors == [error] and unknown.userref == '11' and unknown.nonce
    assert f'Kraken answered {error}, which does not say whether it took effect' in str(unknown)
    assert 'API.reconcile' in str(unknown)
    assert len(asked) == 1


@pytest.mark.parametrize('error', REFUSALS)
def test_addorder_answered_with_a_documented_refusal_stays_a_refusal(
        sandbox: Sandbox, error: str) -> None:
    asked = answering(sandbox, '/0/private/AddOrder', {'error': [error]})
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True) as api, \
            pytest.raises(KrakenAPIError) as caught:
        api.query_private('AddOrder', ORDER)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert len(asked) == 1


def test_a_read_only_call_answered_internal_error_is_retried_as_before(
        sandbox: Sandbox) -> None:
    asked = answering(sandbox, '/0/private/Balance', {'error': ['EGeneral:Internal error']})
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, retries=2, backoff=0.01) as api:
        assert api.query_private('Balance') == {'error': ['EGeneral:Internal error']}
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, retries=2, backoff=0.01,
             raise_errors=True) as api, pytest.raises(ServiceUnavailableError):
        api.query_private('Balance')
    assert len(asked) == 6  # three tries each


def test_async_addorder_answered_service_timeout_is_an_unknown_outcome(
        sandbox: Sandbox) -> None:
    asked = answering(sandbox, '/0/private/AddOrder', {'error': ['EService:Timeout']})

    async def place() -> BaseException:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
            (outcome,) = await asyncio.gather(api.query_private('AddOrder', ORDER),
                                              return_exceptions=True)
        return outcome

    outcome = asyncio.run(place())
    assert isinstance(outcome, OutcomeUnknownAPIError) and outcome.userref == '11'
    assert len(asked) == 1


FUTURES_ORDER = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': '1',
                 'limitPrice': '1000', 'cliOrdId': 'amb-1'}


@pytest.mark.parametrize('answer', [{'result': 'error', 'error': 'Server Error'},
                                    {'result': 'error'}], ids=['server-error', 'no-code'])
def test_futures_sendorder_answered_without_saying_is_an_unknown_outcome(
        sandbox: Sandbox, answer: dict[str, Any]) -> None:
    asked = answering(sandbox, '/derivatives/api/v3/sendorder', answer)
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                    uri=sandbox.futures_url) as futures, \
            pytest.raises(OutcomeUnknownAPIError) as caught:
        futures.query_private('sendorder', FUTURES_ORDER)
    assert caught.value.cl_ord_id == 'amb-1' and 'FuturesAPI.reconcile' in str(caught.value)

    async def place() -> BaseException:
        async with AsyncFuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                                   uri=sandbox.futures_url) as futures:
            (outcome,) = await asyncio.gather(futures.query_private('sendorder', FUTURES_ORDER),
                                              return_exceptions=True)
        return outcome

    assert isinstance(asyncio.run(place()), OutcomeUnknownAPIError)
    assert len(asked) == 2


def test_futures_sendorder_answered_unavailable_stays_a_refusal(sandbox: Sandbox) -> None:
    answering(sandbox, '/derivatives/api/v3/sendorder', {'result': 'error',
                                                          'error': 'Unavailable'})
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    raise_errors=True) as futures, pytest.raises(ServiceUnavailableError):
        futures.query_private('sendorder', FUTURES_ORDER)


# ------------------------------------------------------------------------ the command

def run(tmp_path: Path, sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'HOME': str(tmp_path), 'KRAKEN_API_KEY': sandbox.key,
           'KRAKEN_API_SECRET': sandbox.secret}
    return subprocess.run([sys.executable, '-m', 'krakenex', *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(('error', 'code'), [('EService:Timeout', 4),
                                             ('EGeneral:Internal error', 4),
                                             ('EService:Unavailable', 1)])
def test_krakenex_addorder_exits_4_on_an_ambiguous_answer_and_1_on_a_refusal(
        sandbox: Sandbox, tmp_path: Path, error: str, code: int) -> None:
    answering(sandbox, '/0/private/AddOrder', {'error': [error]})
    result = run(tmp_path, sandbox, '--uri', sandbox.url, 'AddOrder',
                 *(f'{k}={v}' for k, v in ORDER.items()))
    assert result.returncode == code
    (line,) = result.stderr.splitlines()
    assert error in line
    assert ('krakenex OpenOrders userref=11' in line) == (code == 4)


def test_krakenex_futures_sendorder_exits_4_on_a_server_error(
        sandbox: Sandbox, tmp_path: Path) -> None:
    answering(sandbox, '/derivatives/api/v3/sendorder', {'result': 'error',
                                                         'error': 'Server Error'})
    key_file = tmp_path / 'futures.key'
    key_file.write_text(f'{sandbox.futures.key}\n{sandbox.futures.secret}\n')
    key_file.chmod(0o600)
    result = run(tmp_path, sandbox, '--futures', '--uri', sandbox.futures_url, '--key-file',
                 str(key_file), 'sendorder', *(f'{k}={v}' for k, v in FUTURES_ORDER.items()))
    assert result.returncode == 4
    assert 'Server Error' in result.stderr and 'cliOrdId amb-1' in result.stderr


class Answering:
    """A WebSocket server on 127.0.0.1 that answers every order request with one error."""

    def __init__(self, error: str) -> None:
        from websockets.sync.server import serve

        self.error = error
        self.server = serve(self._handle, '127.0.0.1', 0)
        self.url = f'ws://127.0.0.1:{self.server.socket.getsockname()[1]}/v2'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, connection: Any) -> None:
        with contextlib.suppress(Exception):
            for frame in connection:
                request = json.loads(frame)
                connection.send(json.dumps({
                    'method': request.get('method'), 'req_id': request.get('req_id'),
                    'success': False, 'error': self.error, 'time_in': '2026-01-01T00:00:00Z',
                    'time_out': '2026-01-01T00:00:00Z'}))

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.mark.parametrize(('error', 'code'), [('EService:Timeout', 4),
                                             ('EGeneral:Internal error', 4),
                                             ('EOrder:Insufficient funds', 1)])
def test_krakenex_ws_add_order_exits_4_on_an_ambiguous_answer_and_1_on_a_refusal(
        sandbox: Sandbox, tmp_path: Path, error: str, code: int) -> None:
    server = Answering(error)
    key_file = tmp_path / 'kraken.key'
    key_file.write_text(f'{sandbox.key}\n{sandbox.secret}\n')
    key_file.chmod(0o600)
    try:
        result = run(tmp_path, sandbox, 'ws', '--uri', sandbox.url, '--key-file', str(key_file),
                     '--ws-auth-uri', server.url, '--timeout', '10', 'add_order',
                     'symbol=BTC/USD', 'side=buy', 'order_type=limit', 'limit_price=40000',
                     'order_qty=0.01', 'cl_ord_id=amb-ws')
    finally:
        server.stop()
    assert result.returncode == code, result.stderr
    (line,) = result.stderr.splitlines()
    assert error in line
    assert ('krakenex OpenOrders cl_ord_id=amb-ws' in line) == (code == 4)


@pytest.mark.parametrize(('error', 'unknown'), [('EService:Timeout', True),
                                                ('EGeneral:Internal error', True),
                                                ('EOrder:Insufficient funds', False)])
def test_ws_add_order_answered_ambiguously_is_an_unknown_outcome_in_the_library_too(
        sandbox: Sandbox, error: str, unknown: bool) -> None:
    from krakenex import API, KrakenAPIError
    from krakenex.errors import OutcomeUnknownAPIError
    from krakenex.ws import WS

    server = Answering(error)
    try:
        with WS(API(sandbox.key, sandbox.secret, uri=sandbox.url),
                auth_url=server.url, timeout=10) as ws:
            expected = OutcomeUnknownAPIError if unknown else KrakenAPIError
            with pytest.raises(expected) as caught:
                ws.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                           limit_price=40000, order_qty=0.01, cl_ord_id='amb-lib')
    finally:
        server.stop()
    assert isinstance(caught.value, KrakenAPIError) is not unknown  # never taken as a refusal
    assert caught.value.errors == [error]
    if unknown:
        assert caught.value.cl_ord_id == 'amb-lib' and 'API.reconcile' in str(caught.value)
