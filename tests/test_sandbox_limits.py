"""Kraken's limits in the sandbox, on by default as on a real key, shown over real HTTP.

Figures from https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits (the REST
call counter) and https://docs.kraken.com/api/docs/guides/spot-ratelimits (the
trading engine's counter per pair and the open orders per pair).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from test_sandbox import Kraken, error

from krakenex import methods
from krakenex.sandbox import Sandbox
from krakenex.sandbox.market import find_pair

FUNDS = {'ZUSD': '10000000', 'XXBT': '1000', 'XETH': '1000'}


def resting(**params: str) -> dict[str, str]:
    """A limit buy far below the market: it rests on the book."""
    return {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
            'price': '1000', **params}


@pytest.fixture
def starter() -> Iterator[tuple[Sandbox, Kraken]]:
    with Sandbox(balances=FUNDS) as sandbox:  # the default tier
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        yield sandbox, client
        client.session.close()


def engine_counter(sandbox: Sandbox, pair: str) -> float:
    spec = find_pair(pair)
    assert spec is not None
    with sandbox.exchange.lock:
        return sandbox.exchange.engine_counter(sandbox.exchange.accounts[sandbox.key], spec)


def decayed_from(expected: float, since: float, value: float) -> bool:
    """Whether ``value`` is ``expected`` less at most what the starter tier's decay of 1 a
    second took away since ``since`` (a monotonic time)."""
    return expected - (time.monotonic() - since) - 0.01 <= value <= expected + 0.01


def test_a_new_sandbox_keeps_the_starter_rest_counter(starter: tuple[Sandbox, Kraken]) -> None:
    _, client = starter
    assert 15 <= accepted_before_refusal(client) <= 16  # the starter maximum: 15


def accepted_before_refusal(client: Kraken, limit: int = 40) -> int:
    """How many Balance calls in a row are accepted before ``EAPI:Rate limit exceeded``,
    less what the starter decay (0.33 a second) gave back while they ran."""
    since = time.monotonic()
    for count in range(limit):
        reply = client.private('Balance')
        if reply['error']:
            assert reply['error'] == ['EAPI:Rate limit exceeded']
            return count - int(0.33 * (time.monotonic() - since))
    return limit


def test_tier_none_turns_every_limit_off() -> None:
    with Sandbox(tier=None, balances=FUNDS) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        for _ in range(30):
            client.ok('Balance')
        for _ in range(70):  # past 60 open orders and the engine's threshold of 60
            client.ok('AddOrder', resting())
        assert len(client.ok('OpenOrders')['open']) == 70


def test_open_orders_past_the_tiers_limit_are_refused_per_pair() -> None:
    with Sandbox(tier='intermediate', balances=FUNDS) as sandbox:  # 80 a pair, threshold 125
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        txids = [client.ok('AddOrder', resting())['txid'][0] for _ in range(80)]
        assert error(client.private('AddOrder', resting())) == 'EOrder:Orders limit exceeded'
        client.ok('AddOrder', resting(pair='ETHUSD', price='100'))  # another pair: its own
        client.ok('CancelOrder', {'txid': txids[0]})
        client.ok('AddOrder', resting())  # room again


def test_a_batch_past_the_open_orders_limit_places_what_fits() -> None:
    with Sandbox(tier='intermediate', balances=FUNDS) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        for _ in range(79):
            client.ok('AddOrder', resting())
        batch = [{'type': 'buy', 'ordertype': 'limit', 'volume': '0.01', 'price': '1000'}] * 2
        rows = client.ok('AddOrderBatch', {'pair': 'XBTUSD', 'orders': batch},
                         as_json=True)['orders']
        assert 'txid' in rows[0]
        assert rows[1] == {'error': 'EOrder:Orders limit exceeded'}


def test_adding_and_cancelling_at_once_hits_the_engines_rate_limit_per_pair(
        starter: tuple[Sandbox, Kraken]) -> None:
    sandbox, client = starter
    refused = None
    for cycle in range(12):  # each cycle: add +1, cancel within 5 s +8
        reply = client.private('AddOrder', resting())
        if reply['error']:
            refused = (cycle, reply['error'])
            break
        reply = client.private('CancelOrder', {'txid': reply['result']['txid'][0]})
        if reply['error']:
            refused = (cycle, reply['error'])
            break
    assert refused is not None and refused[1] == ['EOrder:Rate limit exceeded']
    assert 6 <= refused[0] <= 9  # 60 / 9 a cycle, and what decayed meanwhile (1 a second)
    client.ok('AddOrder', resting(pair='ETHUSD', price='100'))  # another pair's counter
    client.ok('Balance')  # AddOrder and CancelOrder cost nothing on the REST counter


def test_a_batch_cancel_is_accepted_past_the_threshold(starter: tuple[Sandbox, Kraken]) -> None:
    sandbox, client = starter
    txids = [client.ok('AddOrder', resting())['txid'][0] for _ in range(10)]
    assert client.ok('CancelOrderBatch', {'orders': txids}, as_json=True) == {'count': 10}
    assert engine_counter(sandbox, 'XBTUSD') > 60  # 10 adds + 10 young cancels at 8
    assert error(client.private('AddOrder', resting())) == 'EOrder:Rate limit exceeded'


def test_amend_and_cancel_cost_by_the_orders_age_as_in_krakens_example(
        starter: tuple[Sandbox, Kraken]) -> None:
    # Kraken's example: add, amend after 7 s, cancel 36 s later: 1 + (1 + 2) + 4 = 8.
    sandbox, client = starter
    since = time.monotonic()
    txid = client.ok('AddOrder', resting())['txid'][0]
    order = sandbox.exchange.accounts[sandbox.key].orders[txid]
    order.opentm -= 7  # placed 7 s ago
    client.ok('AmendOrder', {'txid': txid, 'limit_price': '1001'})
    amend = order.amends[-1]
    amend['timestamp'] -= 36 * 10**9  # amended 36 s ago
    order.opentm -= 36
    client.ok('CancelOrder', {'txid': txid})
    assert decayed_from(8, since, engine_counter(sandbox, 'XBTUSD'))


def test_an_edit_of_a_young_order_costs_more_than_an_amend(
        starter: tuple[Sandbox, Kraken]) -> None:
    sandbox, client = starter
    since = time.monotonic()
    first = client.ok('AddOrder', resting())['txid'][0]
    client.ok('AmendOrder', {'txid': first, 'limit_price': '1001'})  # 1 + 1 + 3
    assert decayed_from(5, since, engine_counter(sandbox, 'XBTUSD'))
    since = time.monotonic()
    second = client.ok('AddOrder', resting(pair='ETHUSD', price='100'))['txid'][0]
    client.ok('EditOrder', {'txid': second, 'pair': 'ETHUSD', 'price': '101'})  # 1 + 1 + 6
    assert decayed_from(8, since, engine_counter(sandbox, 'ETHUSD'))


def test_calls_refused_for_a_bad_nonce_still_count() -> None:
    with Sandbox(tier=(3, 0.001)) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        client.ok('Balance', nonce='100')
        for _ in range(2):
            assert error(client.private('Balance', nonce='50')) == 'EAPI:Invalid nonce'
        assert error(client.private('Balance', nonce='101')) == 'EAPI:Rate limit exceeded'


def test_every_cost_says_how_it_was_settled_and_where() -> None:
    for method in methods.METHODS.values():
        how, url = methods.cost_source(method.name)
        assert method.cost_basis in methods.COST_BASES and url.startswith('https://')
    assert methods.METHODS['Ledgers'].cost_basis == 'named'
    assert methods.METHODS['TradesHistory'].cost_basis == 'named'
    assert methods.METHODS['QueryTrades'].cost_basis == 'not documented'
    assert methods.METHODS['AmendOrder'].cost_basis == 'rule'
    assert methods.cost('AddOrder') == methods.cost('CancelOrder') == 0


@pytest.mark.parametrize(('method', 'cost'), [
    ('QueryTrades', 2), ('QueryLedgers', 2), ('Ledgers', 2), ('TradesHistory', 2),
    ('AmendOrder', 1), ('EditOrder', 1), ('CancelOrderBatch', 1), ('AddOrderBatch', 1),
    ('Balance', 1), ('AddOrder', 0), ('CancelOrder', 0)])
def test_the_sandbox_charges_each_method_the_documented_cost(method: str, cost: int) -> None:
    with Sandbox(tier=(2, 0.0001)) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        client.private(method, {})  # refused for its arguments, charged all the same
        for _ in range(2 - cost):
            client.ok('Balance')
        assert error(client.private('Balance')) == 'EAPI:Rate limit exceeded'


def test_the_engine_counter_decays_at_the_tiers_rate(starter: tuple[Sandbox, Kraken]) -> None:
    sandbox, client = starter
    for _ in range(5):
        client.ok('AddOrder', resting())
    before, since = engine_counter(sandbox, 'XBTUSD'), time.monotonic()
    time.sleep(1.0)
    after, elapsed = engine_counter(sandbox, 'XBTUSD'), time.monotonic() - since
    assert before - after == pytest.approx(elapsed, abs=0.05)  # 1 a second


@pytest.mark.parametrize(('options', 'refused'), [([], True), (['--tier', 'none'], False)])
def test_the_sandbox_command_keeps_the_starter_limits_unless_told_none(options: list[str],
                                                                       refused: bool) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, '-m', 'krakenex.sandbox', '--port', '0', *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        shown = dict(proc.stdout.readline().rstrip('\n').split(': ', 1) for _ in range(3))
        client = Kraken(shown['url'], shown['key'], shown['secret'])
        accepted = accepted_before_refusal(client)
        assert 15 <= accepted <= 16 if refused else accepted == 40
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.communicate()


# -- the one counter behind every limit ----------------------------------------------------

def test_the_counter_drains_refuses_past_its_maximum_and_adds_nothing_then() -> None:
    from krakenex.sandbox.counter import Counter

    counter = Counter()
    assert [counter.charge(4, 10, 1.0, now=0.0) for _ in range(3)] == [True, True, False]
    assert counter.level == 8  # the refused call added nothing
    assert counter.drain(1.0, now=3.0) == 5
    assert counter.charge(5, 10, 1.0, now=3.0) and counter.level == 10
    assert counter.drain(1.0, now=100.0) == 0  # never below zero


def test_the_counter_adds_a_charge_it_must_take_even_past_the_maximum() -> None:
    from krakenex.sandbox.counter import Counter

    counter = Counter(level=9.0, stamp=0.0)
    assert counter.charge(5, 10, 0.0, now=0.0, always=True) is False  # did not fit...
    assert counter.level == 14  # ...and was added: Kraken's engine takes batch cancels
