"""Numbers in a reply are bounded before they are converted: a hostile or broken server cannot
make a client or the command hang, or print hundreds of megabytes, with one number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from krakenex import API, AsyncAPI, KrakenResponseError, OutcomeUnknownResponseError
from krakenex.futures import FuturesAPI
from krakenex.protocol import UnboundedNumberError, loads
from krakenex.sandbox import Reply, Sandbox

HUGE = [
    '1e300000000',             # a float the command would print in full: 300 MB
    '1' * 1_000_000,           # an integer of a million digits
    '-0.' + '0' * 200 + '1',   # a fraction of 201 digits
    '1E-1000',                 # an exponent of four digits
    'NaN', 'Infinity', '-Infinity',  # not JSON at all
]


@pytest.mark.parametrize('number', HUGE, ids=lambda n: n[:16])
@pytest.mark.parametrize('options', [{}, {'parse_float': Decimal}, {'parse_int': Decimal}],
                         ids=['plain', 'decimal-floats', 'decimal-ints'])
def test_a_number_beyond_the_bounds_is_refused_before_it_is_converted(
        number: str, options: dict[str, Any]) -> None:
    with pytest.raises(UnboundedNumberError):
        loads(f'{{"error":[],"result":{{"unixtime":{number}}}}}'.encode(), options)


@pytest.mark.parametrize('number', ['0', '-1', '1700000000', '0.00000001', '1.5e-8', '2E+308',
                                    '9' * 100, '0.' + '0' * 99 + '1', '1e999'])
def test_numbers_within_the_bounds_decode_as_json_does(number: str) -> None:
    text = f'[{number}, "{"7" * 500}e12345", {{"note": "{"1" * 200}"}}]'
    assert loads(text.encode()) == json.loads(text)
    assert loads(text.encode(), {'parse_float': Decimal}) == json.loads(text, parse_float=Decimal)


def test_bounded_decoding_keeps_utf16_replies_bounded() -> None:
    with pytest.raises(UnboundedNumberError):
        loads('{"n": 1e300000000}'.encode('utf-16'))


# ----------------------------------------------------------------- over real HTTP

def answering(sandbox: Sandbox, path: str, body: str) -> list[str]:
    """Make the sandbox answer ``path`` with ``body``; the paths asked, as they come."""
    asked: list[str] = []

    def route(request: Any) -> Reply:
        asked.append(request.path)
        return Reply(200, body.encode())

    sandbox.add_route(path, route)
    return asked


@pytest.mark.parametrize('number', ['1e300000000', '9' * 5000], ids=['exponent', 'digits'])
def test_api_refuses_a_reply_with_a_huge_number_with_a_clear_error(
        sandbox: Sandbox, number: str) -> None:
    answering(sandbox, '/0/public/Time', f'{{"error":[],"result":{{"unixtime":{number}}}}}')
    with API(uri=sandbox.url, retries=0) as api, pytest.raises(KrakenResponseError) as caught:
        api.json_options(parse_float=Decimal).query_public('Time')
    message = str(caught.value)
    assert 'Kraken Time answered with a number krakenex does not decode' in message
    assert len(message) < 600


def test_a_huge_number_in_the_answer_to_addorder_is_an_unknown_outcome(
        sandbox: Sandbox) -> None:
    asked = answering(sandbox, '/0/private/AddOrder',
                      '{"error":[],"result":{"txid":["O1"],"descr":{"order":1e999999}}}')
    with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api, \
            pytest.raises(OutcomeUnknownResponseError) as caught:
        api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'volume': '1',
                                       'ordertype': 'market', 'userref': 3})
    assert caught.value.userref == '3' and len(asked) == 1


def test_async_and_futures_clients_refuse_huge_numbers_too(sandbox: Sandbox) -> None:
    import asyncio

    answering(sandbox, '/0/public/Time', '{"error":[],"result":{"unixtime":1e300000000}}')
    answering(sandbox, '/derivatives/api/v3/tickers', '{"result":"success","tickers":[],'
                                                      '"serverTime":' + '7' * 10000 + '}')

    async def ask() -> BaseException:
        async with AsyncAPI(uri=sandbox.url, retries=0) as api:
            (outcome,) = await asyncio.gather(api.query_public('Time'), return_exceptions=True)
        return outcome

    assert isinstance(asyncio.run(ask()), KrakenResponseError)
    with FuturesAPI(uri=sandbox.futures_url, retries=0) as futures, \
            pytest.raises(KrakenResponseError):
        futures.query_public('tickers')


# ------------------------------------------------------------------------ the command

Command = Callable[..., 'subprocess.CompletedProcess[str]']


@pytest.fixture
def command(sandbox: Sandbox, tmp_path: Path) -> Command:
    env = {**os.environ, 'HOME': str(tmp_path), 'KRAKEN_API_KEY': sandbox.key,
           'KRAKEN_API_SECRET': sandbox.secret}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, '-m', 'krakenex', '--uri', sandbox.url,
                               '--retries', '0', *args], env=env, capture_output=True,
                              text=True, timeout=60)
    return run


def test_krakenex_time_answered_with_a_huge_number_prints_one_line_and_exits_3(
        sandbox: Sandbox, command: Command) -> None:
    answering(sandbox, '/0/public/Time', '{"error":[],"result":{"unixtime":1e300000000}}')
    result = command('Time')
    assert result.returncode == 3
    assert result.stdout == ''
    (line,) = result.stderr.splitlines()
    assert line.startswith('krakenex: Kraken Time answered with a number krakenex does not '
                           'decode (1e300000000)')


def test_krakenex_all_ledgers_with_a_huge_count_stops_with_a_clear_error(
        sandbox: Sandbox, command: Command) -> None:
    page = {'error': [], 'result': {'ledger': {f'L{i}': {'time': 1.0} for i in range(50)},
                                    'count': 'COUNT'}}
    answering(sandbox, '/0/private/Ledgers', json.dumps(page).replace('"COUNT"', '1e10000000'))
    result = command('--all', 'Ledgers')
    assert result.returncode == 3
    assert 'Kraken Ledgers answered with a number krakenex does not decode' in result.stderr
    assert result.stdout == ''


@pytest.mark.parametrize('count', ['"lots"', '-5', '12.5', '1e300', 'true', '[50]'])
def test_a_ledgers_count_that_is_no_number_of_entries_stops_the_paging_clearly(
        sandbox: Sandbox, count: str) -> None:
    from krakenex.paging import fetch_all

    page = {'error': [], 'result': {'ledger': {f'L{i}': {'time': 1.0} for i in range(50)},
                                    'count': 'COUNT'}}
    answering(sandbox, '/0/private/Ledgers', json.dumps(page).replace('"COUNT"', count))
    with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api, \
            pytest.raises(KrakenResponseError, match='not a number of entries'):
        fetch_all(api, 'Ledgers', {}, pace=False)

