"""The sandbox under hostile and careless input: nothing hangs, nothing crashes.

Every request gets Kraken's answer or Kraken's refusal, never
``EGeneral:Internal error``; no request holds the exchange for more than
milliseconds; idle and slow clients cannot lock others out; balances always
equal the sum of their ledger and no fill is at an impossible price.

The property tests run a small fixed budget in the suite; for a longer run::

    KRAKENEX_FUZZ_EXAMPLES=5000 pytest tests/test_sandbox_hostile.py
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import socket
import statistics
import threading
import time
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_sandbox import Kraken, error, kraken, result, sign

__all__ = ['kraken']  # the fixture

from krakenex.methods import METHODS
from krakenex.sandbox import Sandbox

settings.register_profile(
    'sandbox-fuzz', max_examples=int(os.environ.get('KRAKENEX_FUZZ_EXAMPLES', '60')),
    deadline=None, derandomize='KRAKENEX_FUZZ_EXAMPLES' not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FUZZ = settings.get_profile('sandbox-fuzz')

HOSTILE = ['1e20', '1e400', '-1e400', 'nan', 'NaN', 'sNaN', '-sNaN', 'inf', '-Infinity', '²',
           '٣', '0', '-0', '-1', '0.000000001', '1e-30', '+100', '-5', '#5', '+1%', '#%', '%',
           '', ' ', 'abc', 'true', 'null', '\x00', '9' * 5000, '1' + '0' * 40,
           '18446744073709551616', '2147483648', '1.5', '+', '-', '#', '1,2,3', 'ÿ']
REALISTIC = {
    'pair': ['XBTUSD', 'XXBTZUSD', 'ETHUSD', 'ETHXBT', 'SOLUSD', 'XBT/USD', 'DOGEUSD'],
    'type': ['buy', 'sell', 'cancel', 'delete', 'all', 'trades', 'ledgers'],
    'ordertype': ['market', 'limit', 'stop-loss', 'take-profit', 'iceberg', 'stop-loss-limit',
                  'take-profit-limit', 'trailing-stop', 'trailing-stop-limit'],
    'price2': ['58000', '+50', '-50', '#20', '61000'],
    'displayvol': ['0.01', '0.1'], 'starttm': ['0', '+1', '+0'], 'expiretm': ['+1', '+60'],
    'close[ordertype]': ['limit', 'stop-loss'], 'close[price]': ['61000', '+100'],
    'order_qty': ['0.02', '0.5'], 'limit_price': ['59500', '60500'],
    'strategy_id': ['ESNOPE'], 'txid': ['OAAAAA-AAAAA-AAAAAA'],
    'volume': ['0.001', '0.01', '0.5', '2', '1000000'],
    'price': ['59000', '61000', '+100', '-100', '#50', '+1%', '3000.00', '0.05'],
    'asset': ['XBT', 'ZUSD', 'ETH', 'all', 'SOL', 'DOGE'],
    'amount': ['0.001', '1', '50', '100000000'],
    'report': ['trades', 'ledgers'],
    'key': ['sandbox'], 'oflags': ['post', 'fciq', 'viqc', 'post,fcib'],
    'timeinforce': ['GTC', 'IOC', 'GTD', 'FOK'], 'validate': ['false', 'true'],
    'from': ['Spot Wallet'], 'to': ['Futures Wallet'],
}
RAW_NAMES = sorted({name.rstrip('*') for m in METHODS.values() for name in m.params.split()}
                   | set(REALISTIC) | {'nonce', 'otp', 'orders', 'cl_ord_ids'})


def value_for(name: str) -> st.SearchStrategy[str]:
    sensible = st.sampled_from(REALISTIC.get(name, ['1']))
    return st.one_of(sensible, sensible, sensible, st.sampled_from(HOSTILE),
                     st.text(max_size=12))


@st.composite
def method_params(draw: st.DrawFn, method: str) -> dict[str, Any]:
    listed = METHODS[method].params.split()
    names = [name.rstrip('*') for name in listed]
    needed = [name.rstrip('*') for name in listed if name.endswith('*')]
    if draw(st.booleans()):  # the required ones, mostly sensible, so calls get far
        needed += ['price'] if method == 'AddOrder' else []
    else:
        needed = []
    chosen = needed + draw(st.lists(st.sampled_from(names + RAW_NAMES), max_size=6, unique=True))
    return {name: draw(value_for(name)) for name in dict.fromkeys(chosen)}


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(HOSTILE),
              st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12)


class Watch(logging.Handler):
    """Collects every record of ERROR or above that the sandbox logs (its tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope='module')
def fuzzed() -> Iterator[tuple[Sandbox, Kraken, Watch]]:
    watch = Watch()
    logger = logging.getLogger('krakenex.sandbox')
    logger.addHandler(watch)
    try:
        with Sandbox(seed=3) as sandbox:
            client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
            yield sandbox, client, watch
            client.session.close()
    finally:
        logger.removeHandler(watch)


def check_invariants(sandbox: Sandbox) -> None:
    """Each balance is the sum of its ledger; every fill is at a possible price."""
    exchange = sandbox.exchange
    with exchange.lock:
        for account in exchange.accounts.values():
            sums: dict[str, Decimal] = {}
            for entry in account.ledger.values():
                sums[entry.asset] = sums.get(entry.asset, Decimal(0)) + entry.amount - entry.fee
            assert {a: b for a, b in account.balances.items() if b} == \
                {a: b for a, b in sums.items() if b}
            assert all(b >= 0 for b in account.balances.values()), account.balances
            for fill in account.fills.values():
                assert fill.price > 0 and fill.volume > 0
                limit = fill.order.price
                if limit is not None and fill.order.ordertype == 'limit':
                    assert fill.price <= limit if fill.order.side == 'buy' else fill.price >= limit
            for order in account.orders.values():
                assert order.vol_exec <= order.volume


def assert_clean(reply: requests.Response, watch: Watch) -> None:
    assert reply.status_code < 500, reply.text[:200]
    if reply.headers.get('Content-Type', '').startswith('application/json'):
        assert 'EGeneral:Internal error' not in reply.text
    assert watch.records == [], [r.getMessage() for r in watch.records]


# -- the property tests -------------------------------------------------------------------

PRIVATE_METHODS = sorted(m.name for m in METHODS.values() if m.private)
PUBLIC_METHODS = sorted(m.name for m in METHODS.values() if not m.private)


@FUZZ
@given(data=st.data(), as_json=st.booleans())
def test_no_private_parameters_give_an_internal_error_or_break_an_invariant(
        fuzzed: tuple[Sandbox, Kraken, Watch], data: st.DataObject, as_json: bool) -> None:
    sandbox, client, watch = fuzzed
    method = data.draw(st.one_of(st.sampled_from(PRIVATE_METHODS),
                                 st.sampled_from(['AddOrder', 'AmendOrder', 'AddOrderBatch'])))
    params = data.draw(method_params(method))
    if as_json and data.draw(st.booleans()):
        params[data.draw(st.sampled_from(RAW_NAMES))] = data.draw(JSON_VALUES)
    if data.draw(st.booleans()):  # move the market: stops fire, resting orders fill
        sandbox.set_price(data.draw(st.sampled_from(['XBTUSD', 'ETHUSD', 'SOLUSD'])),
                          data.draw(st.sampled_from(['40000', '58000', '60000', '61000',
                                                     '2900', '150', '0.01'])))
    reply = client.post(method, params, as_json=as_json)
    assert_clean(reply, watch)
    errors = reply.json().get('error') if reply.status_code == 200 else None
    event('accepted' if errors == [] else f'refused: {str(errors)[:40]}')
    check_invariants(sandbox)


@FUZZ
@given(data=st.data())
def test_no_public_parameters_give_an_internal_error(fuzzed: tuple[Sandbox, Kraken, Watch],
                                                     data: st.DataObject) -> None:
    sandbox, client, watch = fuzzed
    method = data.draw(st.sampled_from(PUBLIC_METHODS))
    params = data.draw(method_params(method))
    reply = client.session.get(f'{sandbox.url}/0/public/{method}', params=params, timeout=10)
    assert_clean(reply, watch)


@FUZZ
@given(verb=st.sampled_from(['GET', 'POST', 'PUT', 'HEAD', 'BREW', 'G\x00T']),
       path=st.one_of(st.sampled_from(['/0/private/AddOrder', '/0/public/Time', '/0/private/',
                                       '/0/public/Earn/../Time', '/%00', '//0/public/Time']),
                      st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2000),
                              max_size=30).map(lambda p: '/0/private/' + p)),
       headers=st.lists(st.tuples(st.sampled_from(['Content-Length', 'Content-Type', 'API-Key',
                                                   'API-Sign', 'Transfer-Encoding', 'X']),
                                  st.one_of(st.sampled_from(HOSTILE),
                                            st.text(max_size=20))), max_size=5),
       body=st.binary(max_size=200))
def test_raw_http_gets_an_http_answer_or_a_closed_connection(
        fuzzed: tuple[Sandbox, Kraken, Watch], verb: str, path: str,
        headers: list[tuple[str, str]], body: bytes) -> None:
    sandbox, client, watch = fuzzed
    port = int(sandbox.url.rsplit(':', 1)[1])
    head = f'{verb} {urllib.parse.quote(path, safe="/%")} HTTP/1.1\r\nHost: x\r\n'
    head += ''.join(f'{name}: {value}\r\n' for name, value in headers
                    if '\r' not in value and '\n' not in value)
    with socket.create_connection(('127.0.0.1', port), timeout=5) as conn:
        conn.sendall(head.encode('utf-8', 'replace') + b'\r\n' + body)
        conn.shutdown(socket.SHUT_WR)
        answer = b''
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
    if answer:
        assert answer.startswith(b'HTTP/1.'), answer[:80]
        assert int(answer.split()[1]) < 500 or int(answer.split()[1]) in (501, 503, 505)
        assert b'EGeneral:Internal error' not in answer
    assert watch.records == []
    assert result(client.public('Time'))  # and the sandbox still serves everyone


BASELINES: dict[str, dict[str, str]] = {
    'AddOrder': {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
                 'price': '59000'},
    'AmendOrder': {'order_qty': '0.02'},
    'EditOrder': {'pair': 'XBTUSD', 'volume': '0.02'},
    'CancelOrder': {}, 'OrderAmends': {},
    'Withdraw': {'asset': 'XBT', 'key': 'sandbox', 'amount': '0.001'},
    'WithdrawInfo': {'asset': 'XBT', 'key': 'sandbox', 'amount': '0.001'},
    'WalletTransfer': {'asset': 'XBT', 'from': 'Spot Wallet', 'to': 'Futures Wallet',
                       'amount': '0.001'},
    'DepositAddresses': {'asset': 'XBT', 'method': 'XBT (sandbox)'},
    'AddExport': {'report': 'ledgers', 'description': 'x'},
    'CancelAllOrdersAfter': {'timeout': '60'},
    'OHLC': {'pair': 'XBTUSD'}, 'Depth': {'pair': 'XBTUSD'}, 'Trades': {'pair': 'XBTUSD'},
    'Spread': {'pair': 'XBTUSD'}, 'GroupedBook': {'pair': 'XBTUSD'},
    'PreTrade': {'symbol': 'BTC/USD'}, 'Level3': {'pair': 'XBTUSD'},
}


@pytest.mark.slow
@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_hostile_value_in_every_parameter_of_a_sensible_call(
        fuzzed: tuple[Sandbox, Kraken, Watch], method: str) -> None:
    """Each documented parameter of each method, alone given each hostile value, in an
    otherwise sensible call: never an internal error, a traceback or a broken invariant."""
    sandbox, _, watch = fuzzed
    funded = sandbox.add_account({'ZUSD': '10000', 'XXBT': '1'})  # its own funds and orders
    client = Kraken(sandbox.url, funded.key, funded.secret)
    base = dict(BASELINES.get(method, {}))
    if method in ('AmendOrder', 'EditOrder', 'CancelOrder', 'OrderAmends'):
        txid = client.order(price='50000', volume='0.01')
        base['order_id' if method == 'OrderAmends' else 'txid'] = txid
    names = [name.rstrip('*') for name in METHODS[method].params.split()]
    failures = []
    for name in names:
        for value in HOSTILE:
            params = {**base, name: value}
            if METHODS[method].private:
                reply = client.post(method, params)
            else:
                reply = client.session.get(f'{sandbox.url}/0/public/{method}', params=params,
                                           timeout=10)
            if reply.status_code >= 500 or 'Internal error' in reply.text or watch.records:
                failures.append(f'{name}={value[:20]!r}: {reply.text[:60]}')
                watch.records.clear()
    client.session.close()
    assert failures == []
    check_invariants(sandbox)


# -- the examples that were found by hand ----------------------------------------------------

NESTED = '[' * 100_000 + ']' * 100_000


@pytest.mark.parametrize(('method', 'params', 'name'), [
    ('AddOrder', {'volume': '1e20'}, 'volume'),
    ('AddOrder', {'volume': '1e400'}, 'volume'),
    ('AddOrder', {'price': '1e20'}, 'price'),
    ('AddOrder', {'price': '1e400'}, 'price'),
    ('AddOrder', {'volume': 'nan'}, 'volume'),
    ('AddOrder', {'price': 'sNaN'}, 'price'),
    ('AddOrder', {'userref': '٣'}, 'userref'),
    ('CancelAllOrdersAfter', {'timeout': '²'}, 'timeout'),
    ('Withdraw', {'asset': 'XBT', 'key': 'sandbox', 'amount': '0.01', 'max_fee': 'abc'},
     'max_fee'),
    ('Ledgers', {'start': 'sNaN'}, 'start'),
    ('ClosedOrders', {'end': '1e400'}, 'end'),
    ('AmendOrder', {'order_qty': 'sNaN'}, 'order_qty'),
])
def test_hostile_numbers_are_invalid_arguments_naming_the_parameter(
        sandbox: Sandbox, caplog: pytest.LogCaptureFixture, method: str,
        params: dict[str, str], name: str) -> None:
    client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    txid = client.order(price='50000', volume='0.01')
    base = {'AddOrder': {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                         'volume': '0.01', 'price': '50000'},
            'AmendOrder': {'txid': txid}}.get(method, {})
    with caplog.at_level(logging.ERROR, logger='krakenex.sandbox'):
        reply = client.private(method, {**base, **params})
    assert error(reply) == f'EGeneral:Invalid arguments:{name}'
    assert caplog.records == []


def test_deeply_nested_json_is_invalid_arguments(sandbox: Sandbox,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    body = ('{"nonce":"1","orders":' + NESTED + '}').encode()
    path = '/0/private/AddOrderBatch'
    with caplog.at_level(logging.ERROR, logger='krakenex.sandbox'):
        reply = requests.post(sandbox.url + path, data=body, timeout=10, headers={
            'API-Key': sandbox.key, 'API-Sign': sign(sandbox.secret, path, '1', body),
            'Content-Type': 'application/json'})
    assert error(reply.json()) == 'EGeneral:Invalid arguments'
    assert caplog.records == []
    assert result(client.public('Time'))


@pytest.mark.parametrize('validate', ['true', 'false'])
def test_a_huge_volume_order_does_not_hold_the_exchange(sandbox: Sandbox,
                                                        validate: str) -> None:
    client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    for volume, side in (('999999999', 'buy'), ('999999999', 'sell'), ('100000000', 'sell')):
        started = time.perf_counter()
        reply = client.private('AddOrder', {'pair': 'SOLUSD', 'type': side, 'volume': volume,
                                            'ordertype': 'market', 'validate': validate})
        assert time.perf_counter() - started < 1
        assert error(reply) == 'EOrder:Insufficient funds'
    rich = sandbox.add_account({'ZUSD': '100000000000', 'SOL': '1000000000'})
    whale = Kraken(sandbox.url, rich.key, rich.secret)
    started = time.perf_counter()
    placed = whale.ok('AddOrder', {'pair': 'SOLUSD', 'type': 'sell', 'volume': '999999999',
                                   'ordertype': 'market'})
    assert time.perf_counter() - started < 1
    order = whale.ok('QueryOrders', {'txid': placed['txid'][0]})[placed['txid'][0]]
    assert order['status'] == 'canceled'  # it took the whole book, the rest was canceled
    assert 0 < Decimal(order['vol_exec']) < Decimal('999999999')
    check_invariants(sandbox)


# -- relative prices and amends ---------------------------------------------------------------

@pytest.mark.parametrize(('side', 'price', 'expected'), [
    ('buy', '-100', '59900.0'), ('sell', '+100', '60100.0'), ('buy', '-1%', '59400.0'),
    ('sell', '+0.5%', '60300.0'), ('buy', '#50', '59950.0'), ('sell', '#50', '60050.0'),
    ('buy', '-0.04', '60000.0'),
])
def test_relative_prices_are_offsets_from_the_last_trade(sandbox: Sandbox, side: str,
                                                          price: str, expected: str) -> None:
    sandbox.set_price('XBTUSD', 60000)
    client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    if side == 'buy':
        sandbox.set_price('XBTUSD', 70000)  # keep the buy below the market: it must rest
        sandbox.set_price('XBTUSD', 60000)
    placed = client.ok('AddOrder', {'pair': 'XBTUSD', 'type': side, 'ordertype': 'limit',
                                    'volume': '0.01', 'price': price, 'validate': 'true'})
    assert placed['descr']['order'] == f'{side} 0.01000000 XBTUSD @ limit {expected}'


@pytest.mark.parametrize('price', ['%5', '+-5', '#', '+', '5%', '+abc', '-70000'])
def test_malformed_relative_prices_are_invalid(kraken: Kraken, price: str) -> None:
    reply = kraken.private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                        'volume': '0.01', 'price': price})
    assert error(reply) == 'EGeneral:Invalid arguments:price'


def test_amend_order_checks_lot_decimals_minimum_and_cost(kraken: Kraken,
                                                          sandbox: Sandbox) -> None:
    txid = kraken.order(price='50000', volume='0.01')
    assert error(kraken.private('AmendOrder', {'txid': txid, 'order_qty': '0.000000001'})) \
        == 'EGeneral:Invalid arguments:order_qty'
    assert error(kraken.private('AmendOrder', {'txid': txid, 'order_qty': '0.00001'})) \
        == 'EOrder:Order minimum not met'
    assert error(kraken.private('AmendOrder', {'txid': txid, 'order_qty': '0.00005',
                                               'limit_price': '1'})) \
        == 'EOrder:Cost minimum not met'
    assert error(kraken.private('AmendOrder', {'txid': txid, 'limit_price': '50000.05'})) \
        == 'EOrder:Tick size check failed'
    kraken.ok('AmendOrder', {'txid': txid, 'order_qty': '0.02'})
    sandbox.set_price('XBTUSD', 49000)
    check_invariants(sandbox)


# -- connections ---------------------------------------------------------------------------

def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f'needs {needed} open files, the hard limit is {hard}')
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.mark.slow
def test_the_sandbox_answers_in_milliseconds_while_1000_idle_connections_are_open() -> None:
    raise_file_limit(2600)
    with Sandbox(seed=4, tier=None) as sandbox:  # 25 private calls at once
        port = int(sandbox.url.rsplit(':', 1)[1])
        idle = [socket.create_connection(('127.0.0.1', port), timeout=10) for _ in range(1000)]
        try:
            deadline = time.monotonic() + 10
            while sandbox.open_connections() < 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sandbox.open_connections() >= 1000
            client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
            times = []
            for i in range(50):
                started = time.perf_counter()
                if i % 2:
                    assert result(client.public('Ticker', pair='XBTUSD'))
                else:
                    assert 'ZUSD' in client.ok('Balance')
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            print(f'median latency with 1000 idle connections: {median * 1000:.2f} ms')
            assert median < 1
            client.session.close()
        finally:
            for conn in idle:
                conn.close()


def test_a_request_whose_body_never_arrives_is_dropped_after_the_read_timeout() -> None:
    with Sandbox(read_timeout=0.3) as sandbox:
        port = int(sandbox.url.rsplit(':', 1)[1])
        with socket.create_connection(('127.0.0.1', port), timeout=5) as conn:
            conn.sendall(b'POST /0/private/Balance HTTP/1.1\r\nHost: x\r\n'
                         b'Content-Length: 100\r\n\r\n{"nonce"')
            started = time.monotonic()
            assert conn.recv(100) == b''  # closed by the sandbox, with no reply
            assert time.monotonic() - started < 3
        deadline = time.monotonic() + 3
        while sandbox.open_connections() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sandbox.open_connections() == 0


def test_idle_connections_beyond_the_cap_make_room_for_a_new_client() -> None:
    with Sandbox(max_connections=5) as sandbox:
        port = int(sandbox.url.rsplit(':', 1)[1])
        idle = [socket.create_connection(('127.0.0.1', port), timeout=5) for _ in range(5)]
        try:
            deadline = time.monotonic() + 10
            while sandbox.open_connections() < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            reply = requests.get(sandbox.url + '/0/public/Time', timeout=5)
            assert result(reply.json())
            closed, _, _ = select.select(idle, [], [], 5)
            assert len(closed) == 1 and closed[0].recv(10) == b''  # one idle one made room
            assert sandbox.open_connections() <= 5
        finally:
            for conn in idle:
                conn.close()


def test_busy_connections_at_the_cap_get_http_503_not_a_hang() -> None:
    with Sandbox(max_connections=2) as sandbox:
        sandbox.inject('delay', seconds=3, times=2)
        calls = [threading.Thread(target=requests.get, args=(sandbox.url + '/0/public/Time',),
                                  kwargs={'timeout': 10}) for _ in range(2)]
        for call in calls:
            call.start()
        deadline = time.monotonic() + 5
        while sandbox.open_connections() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        reply = requests.get(sandbox.url + '/0/public/Time', timeout=10)
        assert reply.status_code == 503
        assert time.monotonic() - started < 2, 'the newcomer waited for a busy connection'
        for call in calls:
            call.join()


def test_json_reply_of_a_hostile_value_is_json(kraken: Kraken) -> None:
    reply = kraken.post('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                     'volume': '0.01', 'price': '\x00'}, as_json=True)
    assert json.loads(reply.text)['error'] == ['EGeneral:Invalid arguments:price']
