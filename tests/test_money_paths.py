"""The lines money depends on, each shown over real HTTP against the sandbox.

Every test here fails if the one rule it names is broken: an order looked up
only among open orders, a key loaded after a call still signed with the old
secret, history calls paced on the wrong budget, a permanent refusal retried
as if it were transient, a time window sent the wrong way round.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from krakenex import API, AsyncAPI, OutcomeUnknownError
from krakenex.futures import AsyncFuturesAPI, FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.sandbox.replies import Reply
from krakenex.sandbox.server import Request


def market_buy(userref: int) -> dict[str, Any]:
    return {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'market', 'volume': '0.01',
            'userref': userref}


def sent(sandbox: Sandbox, method: str) -> int:
    return [m for m, _ in sandbox.requests_log].count(method)


# ------------------------------------------- a filled order whose reply was lost

def test_reconcile_finds_a_filled_market_order_whose_reply_was_lost(sandbox: Sandbox) -> None:
    sandbox.inject('reply_lost', method='AddOrder')
    with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
        with pytest.raises(OutcomeUnknownError) as caught:
            api.query_private('AddOrder', market_buy(41))
        found = api.reconcile(caught.value)
    assert [(o['status'], o['userref']) for o in found.values()] == [('closed', 41)]
    assert sent(sandbox, 'AddOrder') == 1


def test_async_reconcile_finds_a_filled_market_order_whose_reply_was_lost(
        sandbox: Sandbox) -> None:
    sandbox.inject('reply_lost', method='AddOrder')

    async def place_and_look() -> dict[str, Any]:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
            try:
                await api.query_private('AddOrder', market_buy(42))
            except OutcomeUnknownError as exc:
                return await api.reconcile(exc)
        raise AssertionError('the lost reply was not an unknown outcome')

    found = asyncio.run(place_and_look())
    assert [(o['status'], o['userref']) for o in found.values()] == [('closed', 42)]
    assert sent(sandbox, 'AddOrder') == 1


# ------------------------------------------------- a key loaded after a call

def key_file(path: Path, key: str, secret: str) -> Path:
    path.write_text(f'{key}\n{secret}\n')
    path.chmod(0o600)
    return path


def test_a_key_loaded_after_a_call_signs_the_next_call_with_its_own_secret(
        sandbox: Sandbox, tmp_path: Path) -> None:
    other = sandbox.add_account({'ZUSD': '123'})
    with API(uri=sandbox.url, raise_errors=True) as api:
        api.load_key(key_file(tmp_path / 'first', sandbox.key, sandbox.secret))
        assert 'ZUSD' in api.query_private('Balance')['result']
        api.load_key(key_file(tmp_path / 'second', other.key, other.secret))
        assert Decimal(api.query_private('Balance')['result']['ZUSD']) == 123


def test_async_a_key_loaded_after_a_call_signs_the_next_call_with_its_own_secret(
        sandbox: Sandbox, tmp_path: Path) -> None:
    other = sandbox.add_account({'ZUSD': '123'})

    async def balances() -> list[Any]:
        async with AsyncAPI(uri=sandbox.url, raise_errors=True) as api:
            api.load_key(key_file(tmp_path / 'first', sandbox.key, sandbox.secret))
            first = await api.query_private('Balance')
            api.load_key(key_file(tmp_path / 'second', other.key, other.secret))
            return [first, await api.query_private('Balance')]

    first, second = asyncio.run(balances())
    assert 'ZUSD' in first['result'] and Decimal(second['result']['ZUSD']) == 123


def test_futures_a_key_loaded_after_a_call_signs_the_next_call_with_its_own_secret(
        sandbox: Sandbox, tmp_path: Path) -> None:
    other = sandbox.futures.add_account({'USD': '123'})
    with FuturesAPI(uri=sandbox.futures_url, raise_errors=True) as futures:
        futures.load_key(key_file(tmp_path / 'first', sandbox.futures.key,
                                  sandbox.futures.secret))
        assert futures.query_private('accounts')['result'] == 'success'
        futures.load_key(key_file(tmp_path / 'second', other.key, other.secret))
        flex = futures.query_private('accounts')['accounts']['flex']
    assert Decimal(str(flex['currencies']['USD']['quantity'])) == 123


# ------------------------------------------------- Kraken Futures' history pool

def test_paced_history_calls_wait_for_the_history_pool_and_are_never_refused(
        sandbox: Sandbox, tmp_path: Path) -> None:
    # The pool holds 100 tokens and refills one every 6 s; a call each takes one.
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    pace=True, retries=0, raise_errors=True, share=tmp_path) as futures:
        for _ in range(100):
            futures.query_history('orders', {'count': 1})
        started = time.monotonic()
        assert 'elements' in futures.query_history('orders', {'count': 1})
        waited = time.monotonic() - started
    assert waited < 12  # one token back: 6 s at most
    assert [m for m, _ in sandbox.futures.requests_log].count('history/orders') == 101


def test_async_paced_history_calls_wait_for_the_history_pool_and_are_never_refused(
        sandbox: Sandbox, tmp_path: Path) -> None:
    async def calls() -> float:
        async with AsyncFuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                                   uri=sandbox.futures_url, pace=True, retries=0,
                                   raise_errors=True, share=tmp_path) as futures:
            for _ in range(100):
                await futures.query_history('orders', {'count': 1})
            started = time.monotonic()
            assert 'elements' in await futures.query_history('orders', {'count': 1})
            return time.monotonic() - started

    assert asyncio.run(calls()) < 12  # one token back: 6 s at most
    assert [m for m, _ in sandbox.futures.requests_log].count('history/orders') == 101


# ---------------------------------------- errors that say to try again, or not

MIXED = {'result': 'error', 'error': 'Unavailable', 'errors': ['Unavailable', 'marketSuspended']}


@pytest.fixture
def mixed_instruments(sandbox: Sandbox) -> Iterator[list[str]]:
    """``instruments`` answers an error naming a transient and a permanent code."""
    seen: list[str] = []

    def route(request: Request) -> Reply:
        seen.append(request.path)
        return Reply(200, json.dumps(MIXED).encode())

    sandbox.add_route('/derivatives/api/v3/instruments', route)
    yield seen


def test_a_futures_reply_naming_a_permanent_error_beside_a_transient_one_is_not_retried(
        sandbox: Sandbox, mixed_instruments: list[str]) -> None:
    with FuturesAPI(uri=sandbox.futures_url, backoff=0.01) as futures:
        assert futures.query_public('instruments') == MIXED
    assert len(mixed_instruments) == 1


def test_async_futures_reply_naming_a_permanent_error_beside_a_transient_one_is_not_retried(
        sandbox: Sandbox, mixed_instruments: list[str]) -> None:
    async def call() -> Any:
        async with AsyncFuturesAPI(uri=sandbox.futures_url, backoff=0.01) as futures:
            return await futures.query_public('instruments')

    assert asyncio.run(call()) == MIXED
    assert len(mixed_instruments) == 1
