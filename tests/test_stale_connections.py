"""No stale pooled connection carries an order: one idle too long is not used for a state change.

The sandbox here forgets a keep-alive connection idle for more than a second,
as a load balancer in front of Kraken does after its own idle timeout: the next
request on it is dropped unanswered. An order sent that way has an unknown
outcome. krakenex opens a fresh connection instead, for API, AsyncAPI and the
futures clients, and keeps using fresh pooled connections for everything else.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import krakenex
from krakenex.futures import AsyncFuturesAPI, FuturesAPI
from krakenex.sandbox import Sandbox

#: The sandbox forgets connections idle this long; krakenex's bound is below it. A test
#: waits IDLE to be sure a connection is forgotten, and less than BOUND to be sure it is not.
DROP = 1.0
BOUND = 0.5
IDLE = 2.5
RESTING = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
           'price': '1000'}
FUTURES_ORDER = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01,
                 'limitPrice': 50000}


@pytest.fixture
def forgetful() -> Iterator[Sandbox]:
    with Sandbox(tier=None, idle_drop=DROP) as running:
        yield running


def spot(sandbox: Sandbox, stale_after: float) -> krakenex.API:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True)
    api.stale_after = stale_after
    return api


def orders_sent(sandbox: Sandbox, method: str = 'AddOrder') -> int:
    return sum(name == method for name, _ in sandbox.requests_log)


def local_ports(api: krakenex.API) -> set[int]:
    """The local ports of the connections the client's calls go on from now: one per
    connection, a new one each time a connection is opened afresh."""
    ports: set[int] = set()

    def seen(response: Any, **_: Any) -> None:
        ports.add(response.raw.connection.sock.getsockname()[1])

    api.session.hooks['response'].append(seen)
    return ports


def test_an_order_after_the_idle_period_is_placed_once_on_a_fresh_connection(
        forgetful: Sandbox) -> None:
    api = spot(forgetful, BOUND)
    api.query_private('Balance')
    time.sleep(IDLE)
    result = api.query_private('AddOrder', RESTING)  # no OutcomeUnknownError, no reconcile
    assert len(result['result']['txid']) == 1
    assert orders_sent(forgetful) == 1
    assert len(api.query_private('OpenOrders')['result']['open']) == 1


def test_without_the_bound_the_same_order_is_an_unknown_outcome(forgetful: Sandbox) -> None:
    api = spot(forgetful, 3600.0)
    api.query_private('Balance')
    time.sleep(IDLE)
    with pytest.raises(krakenex.OutcomeUnknownError):
        api.query_private('AddOrder', RESTING)


def test_fresh_connections_keep_being_used_for_reads_and_orders(forgetful: Sandbox) -> None:
    api = spot(forgetful, BOUND)
    ports = local_ports(api)
    api.query_public('Time')
    for _ in range(3):
        api.query_private('Balance')
        api.query_private('AddOrder', RESTING)
    assert len(ports) == 1


def test_a_read_after_the_idle_period_keeps_the_pool(forgetful: Sandbox) -> None:
    api = spot(forgetful, 0.05)
    ports = local_ports(api)
    api.query_public('Time')
    time.sleep(0.3)  # well past krakenex's bound, well within the server's
    api.query_public('Time')
    assert len(ports) == 1


def test_an_order_is_placed_once_while_another_thread_keeps_a_fresh_connection_busy(
        forgetful: Sandbox) -> None:
    # A market-data thread always has a read in flight on the freshest connection, so an
    # order from another thread is handed the older pooled one, idle past the server's drop.
    api = spot(forgetful, BOUND)
    stop = threading.Event()
    reads: list[float] = []

    def ticker() -> None:
        while not stop.is_set():
            forgetful.inject('delay', method='Time', seconds=0.3)
            api.query_public('Time')
            reads.append(time.monotonic())

    forgetful.inject('delay', method='Time', seconds=0.3)
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.1)
        api.query_private('Balance')  # on a second connection, while Time is in flight
        time.sleep(IDLE)  # that one is forgotten by now; the ticker's keeps being used
        result = api.query_private('AddOrder', RESTING)  # no OutcomeUnknownError
    finally:
        stop.set()
        thread.join()
    assert len(result['result']['txid']) == 1
    assert orders_sent(forgetful) == 1
    assert len(reads) >= 5  # the reads went on all along


def test_async_an_order_after_the_idle_period_is_placed_once(forgetful: Sandbox) -> None:
    async def run() -> Any:
        async with krakenex.AsyncAPI(forgetful.key, forgetful.secret, uri=forgetful.url,
                                     raise_errors=True) as api:
            api.stale_after = BOUND
            await api.query_private('Balance')
            await asyncio.sleep(IDLE)
            return await api.query_private('AddOrder', RESTING)

    assert len(asyncio.run(run())['result']['txid']) == 1
    assert orders_sent(forgetful) == 1


def test_async_stale_after_is_set_before_the_session_opens_or_after_it_closes(
        forgetful: Sandbox) -> None:
    async def run() -> None:
        api = krakenex.AsyncAPI(forgetful.key, forgetful.secret, uri=forgetful.url,
                                raise_errors=True)
        api.stale_after = 30.0
        await api.query_public('Time')
        with pytest.raises(krakenex.KrakenUsageError, match='before the first call'):
            api.stale_after = BOUND  # the open session's connections keep their timeout
        api.stale_after = 30.0  # the same value is no change
        await api.aclose()
        api.stale_after = BOUND  # taken by the next session
        await api.query_private('Balance')
        await asyncio.sleep(IDLE)
        assert len((await api.query_private('AddOrder', RESTING))['result']['txid']) == 1
        await api.aclose()

    asyncio.run(run())
    assert orders_sent(forgetful) == 1


def test_futures_an_order_after_the_idle_period_is_placed_once(forgetful: Sandbox) -> None:
    with FuturesAPI(forgetful.futures.key, forgetful.futures.secret, uri=forgetful.futures_url,
                    raise_errors=True) as futures:
        futures.stale_after = BOUND
        futures.query_private('accounts')
        time.sleep(IDLE)
        assert futures.query_private('sendorder', FUTURES_ORDER)['sendStatus']['status'] == 'placed'
        assert len(futures.query_private('openorders')['openOrders']) == 1


def test_async_futures_an_order_after_the_idle_period_is_placed_once(
        forgetful: Sandbox) -> None:
    async def run() -> Any:
        async with AsyncFuturesAPI(forgetful.futures.key, forgetful.futures.secret,
                                   uri=forgetful.futures_url, raise_errors=True) as futures:
            futures.stale_after = BOUND
            await futures.query_private('accounts')
            await asyncio.sleep(IDLE)
            return await futures.query_private('sendorder', FUTURES_ORDER)

    assert asyncio.run(run())['sendStatus']['status'] == 'placed'
