"""Never twice, never locked out: at-most-once state changes, safe retries, pacing.

Every test runs over real HTTP against the sandbox with injected faults.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from krakenex import (
    API,
    KrakenConnectionError,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownResponseError,
    OutcomeUnknownTimeout,
    methods,
)
from krakenex.pacing import RateCounter
from krakenex.sandbox import ODD_REPLIES, Sandbox

TIMEOUT = 1.0  # the client's read timeout in these tests
SLOW = 1.5  # how long 'delay' and 'reply_delayed' faults hold a request: past TIMEOUT

#: Each fault kind, whether the sandbox processes the request anyway, and what a
#: state-changing call then raises (None: Kraken's error envelope comes back).
FAULTS: list[tuple[str, bool, type[KrakenError] | None]] = [
    ('html520', False, OutcomeUnknownHTTPError),
    ('html502', False, OutcomeUnknownHTTPError),
    ('html504', False, OutcomeUnknownHTTPError),
    ('reset', False, OutcomeUnknownConnectionError),
    ('delay', True, OutcomeUnknownTimeout),
    ('reply_lost', True, OutcomeUnknownConnectionError),
    ('reply_delayed', True, OutcomeUnknownTimeout),
    ('not_json', True, OutcomeUnknownResponseError),
    ('unavailable', False, None),
    # 2xx replies that are JSON but not Kraken's envelope: they say nothing of what happened
    *[(kind, True, OutcomeUnknownResponseError) for kind in sorted(ODD_REPLIES)
      if kind != 'octet_stream'],
]


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[API]:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=TIMEOUT, backoff=0.01,
             retries=3) as client:
        yield client


def limit_buy(userref: int) -> dict[str, Any]:
    return {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '1000.0',
            'volume': '0.01', 'userref': userref}


def orders_with(sandbox: Sandbox, userref: int) -> list[dict[str, Any]]:
    return [o for o in sandbox.orders() if str(o.get('userref')) == str(userref)]


def settle(kind: str) -> None:
    """Let a fault that holds the request past the client's timeout finish at the server."""
    if kind in ('delay', 'reply_delayed'):
        time.sleep(SLOW + 0.3)


# ---------------------------------------------------------- classification

def test_the_state_changing_methods_are_the_ones_kraken_users_expect() -> None:
    state_changing = {
        'AddOrder', 'AddOrderBatch', 'AmendOrder', 'EditOrder', 'CancelOrder', 'CancelAll',
        'CancelAllOrdersAfter', 'CancelOrderBatch', 'Withdraw', 'WithdrawCancel',
        'WalletTransfer', 'AccountTransfer', 'CreateSubaccount', 'Earn/Allocate',
        'Earn/Deallocate', 'AddExport', 'RemoveExport'}
    assert {m.name for m in methods.METHODS.values() if m.changes_state} == state_changing
    assert methods.changes_state('DepositAddresses', {'new': True})
    assert methods.changes_state('DepositAddresses', {'new': 'true'})
    assert not methods.changes_state('DepositAddresses', {'new': 'false'})
    assert not methods.changes_state('DepositAddresses', {'asset': 'XBT'})
    assert methods.changes_state('SomethingKrakenAddsNextYear')
    assert not methods.changes_state('Balance')


# --------------------------------------------------- AddOrder under faults

@pytest.mark.parametrize(('kind', 'processed', 'raised'), FAULTS)
def test_addorder_under_each_fault_is_placed_at_most_once(
        api: API, sandbox: Sandbox, kind: str, processed: bool,
        raised: type[KrakenError] | None) -> None:
    sandbox.inject(kind, method='AddOrder', seconds=SLOW)
    userref = 1000 + FAULTS.index((kind, processed, raised))
    if raised is None:
        reply = api.query_private('AddOrder', limit_buy(userref))
        assert reply['error'] == ['EService:Unavailable']
    else:
        with pytest.raises(raised) as caught:
            api.query_private('AddOrder', limit_buy(userref))
        error = caught.value
        assert isinstance(error, OutcomeUnknownError)
        assert isinstance(error, requests.RequestException)
        assert (error.method, error.userref, error.cl_ord_id) == ('AddOrder', str(userref), None)
        assert error.nonce is not None and 'may or may not' in str(error)
    settle(kind)
    placed = orders_with(sandbox, userref)
    assert len(placed) == (1 if processed else 0)
    sent = [m for m, _ in sandbox.requests_log if m == 'AddOrder']
    assert len(sent) == len(placed), 'AddOrder was sent again'
    if raised is not None:
        assert set(api.reconcile(error)) == {o['txid'] for o in placed}


def test_addorder_with_cl_ord_id_carries_it_and_reconciles(api: API, sandbox: Sandbox) -> None:
    sandbox.inject('reply_lost', method='AddOrder')
    data = {**limit_buy(0), 'cl_ord_id': 'my-order-1'}
    del data['userref']
    with pytest.raises(OutcomeUnknownConnectionError) as caught:
        api.query_private('AddOrder', data)
    assert caught.value.cl_ord_id == 'my-order-1' and 'cl_ord_id my-order-1' in str(caught.value)
    found = api.reconcile(caught.value)
    assert len(found) == 1 and next(iter(found.values()))['cl_ord_id'] == 'my-order-1'


def test_an_empty_reconcile_is_final_because_its_nonce_fences_off_the_lost_call(
        api: API, sandbox: Sandbox) -> None:
    sandbox.inject('delay', method='AddOrder', seconds=SLOW)
    with pytest.raises(OutcomeUnknownTimeout) as caught:
        api.query_private('AddOrder', limit_buy(77))
    assert api.reconcile(caught.value) == {}
    settle('delay')
    assert orders_with(sandbox, 77) == []


def test_many_addorder_intents_under_mixed_faults_never_make_more_orders(
        api: API, sandbox: Sandbox) -> None:
    for kind, _, _ in FAULTS:
        sandbox.inject(kind, method='AddOrder', seconds=SLOW)
    userrefs = range(5000, 5000 + len(FAULTS) + 3)
    outcomes: dict[int, str] = {}
    for userref in userrefs:
        try:
            reply = api.query_private('AddOrder', limit_buy(userref))
            outcomes[userref] = 'placed' if not reply['error'] else 'refused'
        except OutcomeUnknownError:
            outcomes[userref] = 'unknown'
    settle('delay')
    for i, (userref, outcome) in enumerate(outcomes.items()):
        kind, processed, raised = FAULTS[i] if i < len(FAULTS) else ('none', True, None)
        # A delayed AddOrder reaches the exchange after later calls with higher
        # nonces, so Kraken's nonce rule refuses it: it never becomes an order.
        expected = int(processed and kind != 'delay')
        assert len(orders_with(sandbox, userref)) == expected, (kind, outcome)
        assert outcome == ('placed' if raised is None and processed else
                           'refused' if raised is None else 'unknown'), (kind, outcome)


@pytest.mark.parametrize('kind', sorted(ODD_REPLIES))
def test_addorder_answered_with_a_2xx_that_is_not_krakens_envelope_raises_even_with_raise_errors(
        sandbox: Sandbox, kind: str) -> None:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True) as api:
        sandbox.inject(kind, method='AddOrder')
        with pytest.raises(OutcomeUnknownResponseError) as caught:
            api.query_private('AddOrder', limit_buy(88))
        error = caught.value
        assert (error.method, error.userref, error.status) == ('AddOrder', '88', 200)
        assert error.nonce == int(next(n for m, n in sandbox.requests_log if m == 'AddOrder'))
        assert "not its reply {\"error\": [...], \"result\": ...}" in str(error)
        assert [o['userref'] for o in sandbox.orders()] == [88]  # placed, and only once
        assert set(api.reconcile(error)) == {o['txid'] for o in sandbox.orders()}


@pytest.mark.parametrize('kind', sorted(set(ODD_REPLIES) - {'octet_stream'}))
def test_a_read_answered_every_time_with_a_2xx_that_is_not_krakens_envelope_is_a_clear_error(
        api: API, sandbox: Sandbox, kind: str) -> None:
    sandbox.inject(kind, method='Balance', times=api.retries + 1)
    with pytest.raises(KrakenResponseError) as caught:
        api.query_private('Balance')
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert str(caught.value).startswith('Kraken Balance answered HTTP 200 with ')
    assert ODD_REPLIES[kind][0].decode() in str(caught.value)  # the body, as it came


def test_a_file_answers_a_read_but_not_a_state_change(api: API, sandbox: Sandbox) -> None:
    sandbox.inject('octet_stream', method='Balance')
    assert api.query_private('Balance') == ODD_REPLIES['octet_stream'][0]
    sandbox.inject('octet_stream', method='CancelAll')
    with pytest.raises(OutcomeUnknownResponseError, match='with a file'):
        api.query_private('CancelAll')


# ------------------------------------------------ CancelOrder under faults

@pytest.mark.parametrize(('kind', 'processed', 'raised'), FAULTS)
def test_cancelorder_under_each_fault_is_sent_at_most_once(
        api: API, sandbox: Sandbox, kind: str, processed: bool,
        raised: type[KrakenError] | None) -> None:
    txid = api.query_private('AddOrder', limit_buy(7))['result']['txid'][0]
    sandbox.inject(kind, method='CancelOrder', seconds=SLOW)
    if raised is None:
        assert api.query_private('CancelOrder', {'txid': txid})['error'] == ['EService:Unavailable']
    else:
        with pytest.raises(raised):
            api.query_private('CancelOrder', {'txid': txid})
    settle(kind)
    status = next(o['status'] for o in sandbox.orders() if o['txid'] == txid)
    assert status == ('canceled' if processed else 'open')
    assert len([m for m, _ in sandbox.requests_log if m == 'CancelOrder']) == int(processed)


# ------------------------------------------ read-only calls under faults

@pytest.mark.parametrize(('kind', 'processed', 'raised'), FAULTS)
@pytest.mark.parametrize('method', ['Balance', 'Ticker'])
def test_read_only_calls_succeed_after_a_transient_fault(
        api: API, sandbox: Sandbox, caplog: pytest.LogCaptureFixture, method: str, kind: str,
        processed: bool, raised: type[KrakenError] | None) -> None:
    sandbox.inject(kind, method=method, seconds=SLOW)
    with caplog.at_level(logging.WARNING, logger='krakenex'):
        if method == 'Balance':
            reply = api.query_private('Balance')
            assert reply['error'] == [] and 'ZUSD' in reply['result']
        else:
            reply = api.query_public('Ticker', {'pair': 'XBTUSD'})
            assert reply['error'] == [] and 'XXBTZUSD' in reply['result']
    retries = [r.getMessage() for r in caplog.records if 'retry' in r.getMessage()]
    assert len(retries) == 1 and retries[0].startswith(method), retries


def test_a_retried_private_call_gets_a_fresh_nonce(api: API, sandbox: Sandbox) -> None:
    sandbox.inject('reply_lost', method='Balance')
    assert api.query_private('Balance')['error'] == []
    nonces = [n for m, n in sandbox.requests_log if m == 'Balance']
    assert len(nonces) == 2 and len(set(nonces)) == 2


def test_retries_stop_after_the_budget(api: API, sandbox: Sandbox) -> None:
    api.retries = 2
    sandbox.inject('html520', times=5, method='Ticker')
    with pytest.raises(KrakenHTTPError):
        api.query_public('Ticker', {'pair': 'XBTUSD'})
    # Two faults are left: three attempts consumed three of five.
    assert api.query_public('Ticker', {'pair': 'XBTUSD'})['error'] == []


def test_retries_stop_when_the_time_budget_is_spent(api: API, sandbox: Sandbox) -> None:
    api.retries, api.backoff, api.retry_time = 10, 0.2, 0.3
    sandbox.inject('unavailable', times=10, method='Balance')
    reply = api.query_private('Balance')
    assert reply['error'] == ['EService:Unavailable']
    attempts = 10 - _faults_left(api, sandbox, 'Balance')
    assert 1 <= attempts <= 3


def _faults_left(api: API, sandbox: Sandbox, method: str) -> int:
    """Count the faults still queued for ``method`` by calling it until one succeeds."""
    api.retries = 0
    left = 0
    while api.query_private(method)['error']:
        left += 1
    return left


def test_retries_zero_turns_retrying_off(api: API, sandbox: Sandbox) -> None:
    api.retries = 0
    sandbox.inject('unavailable', method='Balance')
    assert api.query_private('Balance')['error'] == ['EService:Unavailable']
    assert api.query_private('Balance')['error'] == []


def test_a_kraken_error_that_is_not_transient_is_not_retried(api: API, sandbox: Sandbox) -> None:
    before = len(sandbox.requests_log)
    assert api.query_public('Ticker', {'pair': 'NOPE'})['error'] == ['EQuery:Unknown asset pair']
    assert len(sandbox.requests_log) - before == 1


# ------------------------------------------------- provably never sent

def free_port() -> int:
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    return int(port)


def test_addorder_is_retried_when_the_connection_was_refused() -> None:
    port = free_port()
    sandbox = Sandbox(port=port)
    starter = threading.Timer(0.3, sandbox.start)
    starter.start()
    try:
        api = API(sandbox.key, sandbox.secret, uri=f'http://127.0.0.1:{port}', retries=8,
                  backoff=0.1, timeout=2)
        reply = api.query_private('AddOrder', limit_buy(42))
        assert reply['error'] == []
        assert len(orders_with(sandbox, 42)) == 1
    finally:
        starter.join()
        sandbox.stop()


@pytest.fixture
def truncating_server() -> Iterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that reads each request, promises 100 bytes, sends 10, hangs up."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    listener.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                received.append(conn.recv(65536))
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                             b'Content-Length: 100\r\n\r\n{"error":[')

    thread = threading.Thread(target=serve)
    thread.start()
    yield f'http://127.0.0.1:{listener.getsockname()[1]}', received
    stop.set()
    thread.join()
    listener.close()


def test_a_reply_cut_off_midway_is_an_unknown_outcome_for_addorder(
        truncating_server: tuple[str, list[bytes]]) -> None:
    url, received = truncating_server
    api = API('key', 'c2VjcmV0', uri=url, retries=3, backoff=0.01)
    with pytest.raises(OutcomeUnknownConnectionError, match='broke off') as caught:
        api.query_private('AddOrder', limit_buy(9))
    assert caught.value.userref == '9'
    assert len(received) == 1, 'AddOrder was sent again'
    with pytest.raises(KrakenConnectionError, match='broke off'):
        api.query_private('Balance')
    assert len(received) == 1 + 1 + 3, 'Balance was not retried'


def test_a_bad_uri_is_a_usage_error_even_for_addorder() -> None:
    api = API('key', 'c2VjcmV0', uri='localhost:9')
    for method in ('AddOrder', 'Balance'):
        with pytest.raises(KrakenUsageError, match='not a server address'):
            api.query_private(method, limit_buy(1))


def test_a_refused_connection_says_nothing_was_sent() -> None:
    api = API('key', 'c2VjcmV0', uri=f'http://127.0.0.1:{free_port()}', retries=0)
    with pytest.raises(NotSentError, match='nothing was sent') as caught:
        api.query_private('AddOrder', limit_buy(1))
    assert isinstance(caught.value, requests.ConnectionError)
    assert not isinstance(caught.value, OutcomeUnknownError)


# ------------------------------------------------------------------ pacing

@pytest.mark.slow
def test_sixty_ledgers_calls_under_a_tier_never_hit_the_limit_and_lose_little_time() -> None:
    tier = (10.0, 10.0)  # a fast tier, so CI stays short: max 10, decay 10 a second
    with Sandbox(tier=tier) as sandbox:
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, tier=tier, retries=0)
        started = time.monotonic()
        replies = [api.query_private('Ledgers') for _ in range(60)]
        elapsed = time.monotonic() - started
    assert [r['error'] for r in replies if r['error']] == []
    minimum = (60 * 2 - tier[0]) / tier[1]  # 11 s: what the counter allows at best
    assert minimum <= elapsed <= minimum * 1.10, f'{elapsed:.2f} s against {minimum:.2f} s'


def test_eight_threads_sharing_a_paced_api_get_no_rate_limit_or_nonce_errors(
        in_threads: Callable[..., list[Any]]) -> None:
    tier = (5.0, 40.0)
    # The server allows 2 more: at 40 a second, 50 ms of a busy machine's delay between
    # the client counting a call and the server receiving it.
    with Sandbox(tier=(7.0, 40.0)) as sandbox:
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, tier=tier, retries=0)
        replies = in_threads(8, 12, lambda i: api.query_private('Ledgers' if i % 2 else 'Balance'))
        assert len(replies) == 96
        assert [r['error'] for r in replies if r['error']] == []
        assert len([m for m, _ in sandbox.requests_log if m in ('Ledgers', 'Balance')]) == 96


def test_addorder_and_cancelorder_cost_nothing_on_the_counter(sandbox: Sandbox) -> None:
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, tier=(2.0, 0.001))
    txid = api.query_private('AddOrder', limit_buy(3))['result']['txid'][0]
    assert api.query_private('CancelOrder', {'txid': txid})['error'] == []
    assert api.counter is not None and api.counter.level() == 0
    api.query_private('Balance')
    assert api.counter.level() == pytest.approx(1.0, abs=0.01)
    api.costs['Balance'] = 0
    api.query_private('Balance')
    assert api.counter.level() == pytest.approx(1.0, abs=0.01)
    assert methods.cost('Ledgers') == methods.cost('TradesHistory') == 2
    assert methods.cost('QueryLedgers') == methods.cost('QueryTrades') == 2
    assert methods.cost('Balance') == 1


def test_the_counter_waits_just_long_enough() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    counter = RateCounter(15.0, 0.33, clock=lambda: now[0], sleep=sleep)
    for _ in range(7):
        counter.acquire(2)
    assert slept == []
    counter.acquire(2)
    assert slept == [pytest.approx(1 / 0.33)]
    assert counter.level() == pytest.approx(15.0)


def test_public_calls_can_be_paced(sandbox: Sandbox) -> None:
    api = API(uri=sandbox.url, public_rate=20.0)
    started = time.monotonic()
    for _ in range(6):
        assert api.query_public('Time')['error'] == []
    assert time.monotonic() - started >= 5 / 20.0


def test_an_unknown_tier_is_refused() -> None:
    with pytest.raises(ValueError, match='starter'):
        API(tier='gold')
