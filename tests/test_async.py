"""AsyncAPI keeps API's guarantees under asyncio, over real HTTP against the sandbox."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from test_reliability import FAULTS, SLOW, TIMEOUT, free_port, limit_buy, orders_with, settle

from krakenex import (
    API,
    AsyncAPI,
    KrakenConnectTimeout,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    RateLimitError,
)
from krakenex.sandbox import Sandbox

T = TypeVar('T')


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine in a loop of its own, as a script's ``asyncio.run`` would."""
    async def main() -> T:
        return await make()
    return asyncio.run(main())


def client(sandbox: Sandbox, **options: Any) -> AsyncAPI:
    settings: dict[str, Any] = {'uri': sandbox.url, 'timeout': TIMEOUT, 'backoff': 0.01}
    return AsyncAPI(sandbox.key, sandbox.secret, **{**settings, **options})


# ------------------------------------------------------------------- basics

def test_public_and_private_calls_return_krakens_envelope(sandbox: Sandbox) -> None:
    async def calls() -> tuple[Any, Any]:
        async with client(sandbox) as api:
            return (await api.query_public('Ticker', {'pair': 'XBTUSD'}),
                    await api.query_private('Balance'))
    ticker, balance = run(calls)
    assert ticker['error'] == [] and list(ticker['result']) == ['XXBTZUSD']
    assert balance['error'] == [] and 'ZUSD' in balance['result']


def test_it_is_exported_from_the_package_with_apis_options() -> None:
    import inspect

    assert inspect.signature(AsyncAPI.__init__) == inspect.signature(API.__init__)


def test_aclose_closes_the_session(sandbox: Sandbox) -> None:
    async def calls() -> bool:
        api = client(sandbox)
        await api.query_public('Time')
        session = api.session
        await api.aclose()
        return session is not None and session.closed and api.session is None
    assert run(calls)


def test_load_key_and_raise_errors(sandbox: Sandbox, tmp_path: Any) -> None:
    path = tmp_path / 'kraken.key'
    path.write_text(f'{sandbox.key}\n{sandbox.secret}\n')
    path.chmod(0o600)

    async def calls() -> None:
        async with AsyncAPI(uri=sandbox.url, raise_errors=True) as api:
            api.load_key(path)
            assert (await api.query_private('Balance'))['error'] == []
            with pytest.raises(KrakenError, match='EQuery:Unknown asset pair'):
                await api.query_public('Ticker', {'pair': 'NOPE'})
    run(calls)


# ------------------------------------------------------------------- nonces

@pytest.mark.unlimited  # 500 calls at once: about the nonces, not the rate limits
def test_500_calls_gathered_at_once_get_no_invalid_nonce_and_arrive_in_issue_order(
        sandbox: Sandbox) -> None:
    index: contextvars.ContextVar[int] = contextvars.ContextVar('index')
    issued: list[tuple[int, int]] = []

    class Recording(AsyncAPI):
        def _nonce(self) -> int:
            nonce = super()._nonce()
            issued.append((index.get(), nonce))
            return nonce

    async def calls() -> list[Any]:
        async with Recording(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=30) as api:
            async def one(i: int) -> Any:
                index.set(i)
                return await api.query_private('Balance')
            return await asyncio.gather(*(one(i) for i in range(500)))

    replies = run(calls)
    assert [r['error'] for r in replies if r['error']] == []
    arrived = [int(n) for method, n in sandbox.requests_log if method == 'Balance' and n]
    assert len(arrived) == 500
    assert all(a < b for a, b in itertools.pairwise(arrived)), 'nonces arrived out of order'
    assert [i for i, _ in issued] == list(range(500)), 'calls were not sent in issue order'


# ---------------------------------------------------------- exception classes

@pytest.mark.parametrize(('fault', 'raised'), [('html520', KrakenHTTPError),
                                               ('not_json', KrakenResponseError),
                                               ('reply_delayed', KrakenTimeout)])
def test_faults_raise_the_same_classes_as_api(sandbox: Sandbox, fault: str,
                                              raised: type[KrakenError]) -> None:
    sandbox.inject(fault, method='Ticker', seconds=SLOW)

    async def call() -> Any:
        async with client(sandbox, retries=0) as api:
            return await api.query_public('Ticker', {'pair': 'XBTUSD'})
    with pytest.raises(raised):
        run(call)


def test_a_closed_port_is_not_sent_and_a_bad_uri_is_a_usage_error() -> None:
    async def call(uri: str) -> Any:
        async with AsyncAPI(uri=uri, retries=0) as api:
            return await api.query_public('Time')
    with pytest.raises(NotSentError, match='nothing was sent'):
        run(lambda: call(f'http://127.0.0.1:{free_port()}'))
    with pytest.raises(KrakenUsageError, match='not a server address'):
        run(lambda: call('api.kraken.com'))


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers; closed after the test."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_server_that_never_answers_raises_a_timeout(silent_server: int) -> None:
    async def call() -> Any:
        async with AsyncAPI(uri=f'http://127.0.0.1:{silent_server}', timeout=0.3,
                            retries=0) as api:
            return await api.query_public('Time')
    started = time.monotonic()
    with pytest.raises(KrakenTimeout):
        run(call)
    assert time.monotonic() - started < 5


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port on 127.0.0.1 whose listen queue is full, so a new connection is never opened."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    time.sleep(0.1)
    yield server.getsockname()[1]
    for filler in fillers:
        filler.close()
    server.close()


def test_a_connect_timeout_is_not_sent(full_backlog: int) -> None:
    async def call() -> Any:
        async with AsyncAPI(uri=f'http://127.0.0.1:{full_backlog}', timeout=(0.3, 1),
                            retries=0) as api:
            return await api.query_public('Time')
    with pytest.raises(KrakenConnectTimeout, match='nothing was sent'):
        run(call)


# -------------------------------------------------------------- at most once

@pytest.mark.parametrize(('kind', 'processed', 'raised'), FAULTS)
def test_addorder_under_each_fault_is_placed_at_most_once(
        sandbox: Sandbox, kind: str, processed: bool, raised: type[KrakenError] | None) -> None:
    sandbox.inject(kind, method='AddOrder', seconds=SLOW)
    userref = 2000 + FAULTS.index((kind, processed, raised))

    async def place() -> tuple[Any, dict[str, Any]]:
        async with client(sandbox) as api:
            try:
                return await api.query_private('AddOrder', limit_buy(userref)), {}
            except OutcomeUnknownError as exc:
                await asyncio.sleep(SLOW + 0.3 if kind in ('delay', 'reply_delayed') else 0)
                return exc, await api.reconcile(exc)

    outcome, found = run(place)
    if raised is None:
        assert outcome['error'] == ['EService:Unavailable']
    else:
        assert isinstance(outcome, raised)
        assert (outcome.method, outcome.userref, outcome.nonce is not None) == (
            'AddOrder', str(userref), True)
    settle(kind)
    placed = orders_with(sandbox, userref)
    assert len(placed) == (1 if processed else 0)
    assert len([m for m, _ in sandbox.requests_log if m == 'AddOrder']) == len(placed)
    if raised is not None and kind != 'delay':
        assert set(found) == {o['txid'] for o in placed}


@pytest.mark.parametrize('method', ['Balance', 'Ticker'])
def test_reads_are_retried_after_a_transient_fault(
        sandbox: Sandbox, caplog: pytest.LogCaptureFixture, method: str) -> None:
    sandbox.inject('reply_lost', method=method)

    async def call() -> Any:
        async with client(sandbox) as api:
            if method == 'Balance':
                return await api.query_private('Balance')
            return await api.query_public('Ticker', {'pair': 'XBTUSD'})
    with caplog.at_level(logging.WARNING, logger='krakenex'):
        assert run(call)['error'] == []
    assert len([r for r in caplog.records if 'retry' in r.getMessage()]) == 1


# ----------------------------------------------------------------- cancelling

def test_a_cancelled_read_leaves_the_object_usable(sandbox: Sandbox) -> None:
    sandbox.inject('delay', method='Balance', seconds=SLOW)

    async def calls() -> Any:
        async with client(sandbox, timeout=5) as api:
            task = asyncio.ensure_future(api.query_private('Balance'))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await asyncio.wait_for(api.query_private('Balance'), 5)
    assert run(calls)['error'] == []


def test_a_cancelled_addorder_is_an_unknown_outcome_and_never_resent(sandbox: Sandbox) -> None:
    sandbox.inject('delay', method='AddOrder', seconds=SLOW)

    async def calls() -> tuple[BaseException | None, Any]:
        async with client(sandbox, timeout=5) as api:
            task = asyncio.ensure_future(api.query_private('AddOrder', limit_buy(31)))
            await asyncio.sleep(0.2)
            task.cancel()
            error = None
            try:
                await task
            except BaseException as exc:  # the test looks at what it was
                error = exc
            await asyncio.sleep(SLOW + 0.3)
            return error, await asyncio.wait_for(api.query_private('Balance'), 5)

    error, balance = run(calls)
    assert isinstance(error, OutcomeUnknownConnectionError), error
    assert error.userref == '31' and 'cancelled' in str(error)
    assert balance['error'] == []
    assert len(orders_with(sandbox, 31)) == 1
    assert len([m for m, _ in sandbox.requests_log if m == 'AddOrder']) == 1


# -------------------------------------------------------------------- pacing

@pytest.mark.slow
def test_paced_calls_are_never_refused_for_the_rate(sandbox: Sandbox) -> None:
    with Sandbox(tier=(4, 4)) as strict:
        async def calls() -> list[Any]:
            async with AsyncAPI(strict.key, strict.secret, uri=strict.url, tier=(4, 4),
                                retries=0) as api:
                return await asyncio.gather(*(api.query_private('Ledgers') for _ in range(12)))
        started = time.monotonic()
        replies = run(calls)
        elapsed = time.monotonic() - started
    assert [r['error'] for r in replies if r['error']] == []
    assert elapsed >= (12 * 2 - 4) / 4 * 0.9  # the counter's decay sets the pace


def test_a_cost_above_the_tier_is_refused_at_once(sandbox: Sandbox) -> None:
    async def call() -> Any:
        async with client(sandbox, tier=(1, 1)) as api:
            return await asyncio.wait_for(api.query_private('Ledgers'), 2)
    with pytest.raises(KrakenUsageError, match='can never fit'):
        run(call)


def test_an_unpaced_burst_is_refused_by_the_sandbox_so_the_pacing_test_can_fail() -> None:
    with Sandbox(tier=(4, 4)) as strict:
        async def calls() -> list[Any]:
            async with AsyncAPI(strict.key, strict.secret, uri=strict.url, retries=0) as api:
                return await asyncio.gather(*(api.query_private('Ledgers') for _ in range(12)),
                                            return_exceptions=True)
        replies = run(calls)
    assert any(isinstance(r, RateLimitError) or (isinstance(r, dict) and r['error'])
               for r in replies)


# ------------------------------------------------------------------ jupyter

def test_it_runs_inside_an_event_loop_that_is_already_running(sandbox: Sandbox) -> None:
    async def notebook_cell() -> Any:
        # As in Jupyter: the loop runs already, and the cell awaits directly.
        api = client(sandbox)
        try:
            return await api.query_public('Time')
        finally:
            await api.aclose()
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(notebook_cell())['error'] == []
    finally:
        loop.close()


def test_the_library_never_starts_an_event_loop_itself() -> None:
    import krakenex.aio as aio

    with open(aio.__file__, encoding='utf-8') as f:
        source = f.read()
    assert 'asyncio.run(' not in source and 'run_until_complete' not in source
