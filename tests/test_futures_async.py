"""AsyncFuturesAPI: the same guarantees as FuturesAPI, for asyncio, over real HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from krakenex import (
    InsufficientFundsError,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownTimeout,
)
from krakenex.futures import AsyncFuturesAPI
from krakenex.sandbox import Sandbox

Body = Callable[[AsyncFuturesAPI], Awaitable[Any]]


def run(sandbox: Sandbox, body: Body, **options: Any) -> Any:
    """Run ``body(client)`` with a fresh client of the default futures account."""
    async def main() -> Any:
        async with AsyncFuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                                   uri=sandbox.futures_url, timeout=0.5, backoff=0.01,
                                   **options) as client:
            return await body(client)
    return asyncio.run(main())


def order(cli: str, price: int = 50000, size: float = 0.01) -> dict[str, Any]:
    return {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': size,
            'limitPrice': price, 'cliOrdId': cli}


def test_public_and_private_calls(sandbox: Sandbox) -> None:
    async def body(client: AsyncFuturesAPI) -> Any:
        tickers = await client.query_public('tickers')
        placed = await client.query_private('sendorder', order('a-1'))
        opened = await client.query_private('openorders')
        candles = await client.query_charts('trade/PF_ETHUSD/1h', {'count': 3})
        return tickers, placed, opened, candles

    tickers, placed, opened, candles = run(sandbox, body)
    assert {t['symbol'] for t in tickers['tickers']} >= {'PF_XBTUSD', 'PF_ETHUSD'}
    assert placed['sendStatus']['status'] == 'placed'
    assert [o['cliOrdId'] for o in opened['openOrders']] == ['a-1']
    assert len(candles['candles']) == 3


def holds(obj: object, text: str, depth: int = 3) -> bool:
    """Whether ``text`` is an attribute of ``obj`` or of krakenex's objects inside it."""
    if depth == 0 or not hasattr(obj, '__dict__'):
        return False
    return any(value == text or (type(value).__module__.startswith('krakenex')
                                 and holds(value, text, depth - 1))
               for value in vars(obj).values())


def test_a_spot_key_in_the_environment_changes_nothing_for_futures(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('KRAKEN_API_KEY', 'spot garbage')
    monkeypatch.setenv('KRAKEN_API_SECRET', 'not base64!')
    monkeypatch.setenv('KRAKEN_API_URL', 'ftp://nowhere')

    async def body(client: AsyncFuturesAPI) -> Any:
        return [await client.query_public('tickers'), await client.query_private('accounts'),
                holds(client, 'spot garbage') or holds(client, 'not base64!')]

    tickers, accounts, held = run(sandbox, body, raise_errors=True)
    assert tickers['result'] == accounts['result'] == 'success'
    assert held is False

    async def keyless() -> None:
        async with AsyncFuturesAPI(uri=sandbox.futures_url) as client:
            assert client.key == '' and not holds(client, 'spot garbage')
            await client.query_private('accounts')

    with pytest.raises(KrakenUsageError, match='KRAKEN_FUTURES_KEY'):
        asyncio.run(keyless())


def test_nonces_reach_kraken_in_order_across_tasks(sandbox: Sandbox) -> None:
    async def body(client: AsyncFuturesAPI) -> Any:
        return await asyncio.gather(*(client.query_private('accounts') for _ in range(60)))

    replies = run(sandbox, body)
    assert [r['result'] for r in replies] == ['success'] * 60
    nonces = [int(n) for name, n in sandbox.futures.requests_log if n is not None]
    assert len(nonces) == 60 and nonces == sorted(set(nonces))


@pytest.mark.parametrize(('fault', 'processed', 'raised'), [
    ('html520', False, OutcomeUnknownHTTPError),
    ('reset', False, OutcomeUnknownConnectionError),
    ('reply_lost', True, OutcomeUnknownConnectionError),
    ('reply_delayed', True, OutcomeUnknownTimeout),
])
def test_sendorder_under_a_fault_is_sent_once_and_reconciles(
        sandbox: Sandbox, fault: str, processed: bool, raised: type[Exception]) -> None:
    sandbox.inject(fault, method='sendorder', seconds=1.0)

    async def body(client: AsyncFuturesAPI) -> Any:
        with pytest.raises(raised) as caught:
            await client.query_private('sendorder', order('u-1'))
        await asyncio.sleep(1.0 if fault == 'reply_delayed' else 0)
        return caught.value, await client.reconcile(caught.value)

    error, found = run(sandbox, body)
    assert error.cl_ord_id == 'u-1' and error.nonce is not None
    placed = [o for o in sandbox.futures.orders(sandbox.futures.key) if o.cli_ord_id == 'u-1']
    assert len(placed) == (1 if processed else 0)
    assert len(found['orders']) == (1 if processed else 0)


def test_a_task_cancelled_during_sendorder_gets_an_unknown_outcome(sandbox: Sandbox) -> None:
    sandbox.inject('delay', method='sendorder', seconds=0.5)

    async def body(client: AsyncFuturesAPI) -> Any:
        task = asyncio.create_task(client.query_private('sendorder', order('c-1')))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(OutcomeUnknownError) as caught:
            await task
        await asyncio.sleep(0.5)
        return caught.value, await client.reconcile(caught.value)

    error, found = run(sandbox, body)
    assert error.cl_ord_id == 'c-1'
    assert [o['order']['cliOrdId'] for o in found['orders']] == ['c-1']


def test_reads_retry_transient_faults(sandbox: Sandbox) -> None:
    sandbox.inject('html520', method='openpositions', times=2)
    sandbox.inject('reply_lost', method='tickers', times=2)

    async def body(client: AsyncFuturesAPI) -> Any:
        return (await client.query_private('openpositions'),
                await client.query_public('tickers'))

    positions, tickers = run(sandbox, body)
    assert positions['result'] == tickers['result'] == 'success'


def test_refused_orders_raise_with_raise_errors(sandbox: Sandbox) -> None:
    async def body(client: AsyncFuturesAPI) -> Any:
        with pytest.raises(InsufficientFundsError, match='insufficientAvailableFunds'):
            await client.query_private('sendorder', order('big', size=1000))

    run(sandbox, body, raise_errors=True)


def test_a_closed_port_is_not_sent() -> None:
    async def main() -> None:
        async with AsyncFuturesAPI('k', 'c2VjcmV0', uri='http://127.0.0.1:9',
                                   retries=0) as client:
            with pytest.raises(NotSentError):
                await client.query_private('sendorder', order('x'))

    asyncio.run(main())


def test_without_aiohttp_the_error_names_the_extra() -> None:
    code = ('import sys; sys.modules["aiohttp"] = None\n'
            'from krakenex.futures import FuturesAPI\n'
            'try:\n'
            '    from krakenex.futures import AsyncFuturesAPI\n'
            'except ImportError as exc:\n'
            '    print(exc)\n')
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.strip() == ("AsyncFuturesAPI needs aiohttp: pip install 'aiohttp<4,>=3.10' "
                                  "(or, in a checkout of krakenex: pip install '.[async]')")
