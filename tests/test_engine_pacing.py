"""Kraken's per-pair trading-engine limit, paced by krakenex across processes sharing a key.

The sandbox keeps the engine's counter per account and pair, as Kraken does,
and refuses with ``EOrder:Rate limit exceeded``; these tests hold krakenex's
pacing against it over real HTTP, from two processes at once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

import krakenex
from krakenex import engine
from krakenex.errors import KrakenUsageError
from krakenex.sandbox import Sandbox, limits
from krakenex.sandbox.market import find_pair

#: What each child runs: add a resting order and cancel it at once, ``cycles`` times,
#: starting at ``start`` (a wall-clock time), and print the errors Kraken gave.
CHILD = r'''
import json, sys, time
import krakenex
spec = json.loads(sys.argv[1])
api = krakenex.API(spec['key'], spec['secret'], uri=spec['uri'], engine=spec['engine'])
order = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
         'price': '1000'}
errors = []
time.sleep(max(0.0, spec['start'] - time.time()))
for _ in range(spec['cycles']):
    reply = api.query_private('AddOrder', order)
    errors += reply['error']
    if not reply['error']:
        errors += api.query_private('CancelOrder', {'txid': reply['result']['txid'][0]})['error']
print(json.dumps(errors))
'''


def burst(sandbox: Sandbox, pacing: str | None, cycles: int = 12) -> tuple[list[str], float]:
    """Two processes on the sandbox's key each add and cancel ``cycles`` orders on XBTUSD:
    the errors they met, and the seconds the burst took."""
    spec = {'key': sandbox.key, 'secret': sandbox.secret, 'uri': sandbox.url,
            'engine': pacing, 'cycles': cycles, 'start': time.time() + 1.5}
    started = time.monotonic()
    children = [subprocess.Popen([sys.executable, '-c', CHILD, json.dumps(spec)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    errors: list[str] = []
    for child in children:
        out, _ = child.communicate(timeout=90)
        assert child.returncode == 0
        errors += json.loads(out)
    return errors, time.monotonic() - started - 1.5


def test_an_unpaced_burst_of_adds_and_cancels_earns_the_engines_rate_limit() -> None:
    with Sandbox(tier='pro') as sandbox:  # threshold 180, decay 3.75 a second
        errors, _ = burst(sandbox, None)
    assert 'EOrder:Rate limit exceeded' in errors  # 2 x 12 x (1 + 8) = 216 in a moment


def test_two_processes_paced_on_one_key_never_earn_the_engines_rate_limit() -> None:
    with Sandbox(tier='pro') as sandbox:
        errors, seconds = burst(sandbox, 'pro')
    assert errors == []
    assert seconds >= (216 - 180) / 3.75 * 0.8  # they waited for the counter together


RESTING = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
           'price': '1000'}


def test_an_order_krakenex_added_is_cancelled_at_the_cost_of_its_age(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter')
    store = api._store()
    txid = api.query_private('AddOrder', RESTING)['result']['txid'][0]
    kept = store.order(txid)
    assert kept is not None and kept[0] == 'XBTUSD' and time.time() - kept[1] < 5
    real = time.time
    monkeypatch.setattr(time, 'time', lambda: real() + 100)  # 100 s later, for krakenex
    before = store.status()['counters']['engine:XBTUSD']
    assert api.query_private('CancelOrder', {'txid': txid})['error'] == []
    assert store.status()['counters']['engine:XBTUSD'] == pytest.approx(before + 1, abs=0.2)


def test_an_order_krakenex_does_not_know_is_cancelled_at_the_worst_cost(
        sandbox: Sandbox) -> None:
    elsewhere = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, share=None)
    txid = elsewhere.query_private('AddOrder', RESTING)['result']['txid'][0]
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter')
    assert api.query_private('CancelOrder', {'txid': txid})['error'] == []
    assert api._store().status()['counters']['engine:?'] == pytest.approx(8, abs=0.2)


def test_a_batch_above_the_engines_threshold_is_refused_before_it_is_sent(
        sandbox: Sandbox) -> None:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine=(5, 1))
    orders = [{'type': 'buy', 'ordertype': 'limit', 'volume': '0.01', 'price': '1000'}] * 12
    sent = len(sandbox.requests_log)
    with pytest.raises(KrakenUsageError, match='threshold of 5'):
        api.query_private('AddOrderBatch', {'pair': 'XBTUSD', 'orders': orders})
    assert len(sandbox.requests_log) == sent
    assert 'engine:XBTUSD' not in api._store().status()['counters']  # never charged


def test_an_engine_tier_that_is_not_one_is_a_usage_error() -> None:
    with pytest.raises(KrakenUsageError, match='trading-engine tier'):
        krakenex.API(engine='platinum')


# ------------------------------------------- the client's table is Kraken's, as the sandbox's


def test_the_engine_tiers_are_the_sandboxs() -> None:
    assert {name: tier[:2] for name, tier in limits.ENGINE_TIERS.items()} == engine.TIERS


def test_the_age_penalties_are_the_sandboxs() -> None:
    assert engine.AMEND_PENALTY == limits.AMEND_PENALTY
    assert engine.EDIT_PENALTY == limits.EDIT_PENALTY
    assert engine.CANCEL_PENALTY == limits.CANCEL_PENALTY


@pytest.mark.parametrize(('method', 'age', 'expected'), [
    ('AddOrder', 0, 1), ('AmendOrder', 4, 4), ('AmendOrder', 20, 1), ('EditOrder', 40, 3),
    ('EditOrder', 100, 1), ('CancelOrder', 1, 8), ('CancelOrder', 100, 1),
    ('CancelOrder', 400, 0)])
def test_each_call_costs_what_kraken_documents(method: str, age: float,
                                               expected: float) -> None:
    assert engine.cost(method, {}, age) == expected


def test_the_command_line_paces_orders_with_engine_and_refuses_an_unknown_tier() -> None:
    order = ['AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=limit', 'volume=0.01',
             'price=1000']
    done = subprocess.run([sys.executable, '-m', 'krakenex', '--sandbox', '--engine', 'pro',
                           *order], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'txid' in done.stdout
    refused = subprocess.run([sys.executable, '-m', 'krakenex', '--sandbox', '--engine',
                              'platinum', *order], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert 'trading-engine tier' in refused.stderr


@pytest.mark.parametrize('where', ['directory', 'redis'])
def test_an_order_placed_by_one_sharer_is_cancelled_by_another_at_the_cost_of_its_age(
        sandbox: Sandbox, where: str, request: pytest.FixtureRequest,
        tmp_path: object) -> None:
    share = request.getfixturevalue('redis_url') if where == 'redis' else str(tmp_path)
    placing, cancelling = (krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url,
                                        engine='starter', share=share) for _ in range(2))
    txid = placing.query_private('AddOrder', RESTING)['result']['txid'][0]
    assert cancelling.query_private('CancelOrder', {'txid': txid})['error'] == []
    counters = cancelling._store().status()['counters']
    assert counters['engine:XBTUSD'] == pytest.approx(1 + 8, abs=0.2)  # known: its pair
    assert 'engine:?' not in counters


def test_an_order_that_was_never_sent_is_never_charged(sandbox: Sandbox) -> None:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter',
                       retries=0)
    sandbox.stop()  # its port refuses connections: nothing reaches it
    with pytest.raises(krakenex.NotSentError):
        api.query_private('AddOrder', RESTING)
    assert api._store().status()['counters'].get('engine:XBTUSD', 0.0) == pytest.approx(0.0)


def test_async_an_order_that_was_never_sent_is_never_charged(sandbox: Sandbox) -> None:
    async def run() -> dict[str, float]:
        async with krakenex.AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url,
                                     engine='starter', retries=0) as api:
            with pytest.raises(krakenex.NotSentError):
                await api.query_private('AddOrder', RESTING)
            return dict(api._store().status()['counters'])

    sandbox.stop()
    assert asyncio.run(run()).get('engine:XBTUSD', 0.0) == pytest.approx(0.0)


def engine_held(sandbox: Sandbox, pair: str) -> float:
    """The engine's counter of the sandbox's key on ``pair``, as Kraken (the sandbox) holds it."""
    spec = find_pair(pair)
    assert spec is not None
    with sandbox.exchange.lock:
        return sandbox.exchange.engine_counter(sandbox.exchange.accounts[sandbox.key], spec)


def batch(size: int, **fields: str) -> dict[str, object]:
    row = {'type': 'buy', 'ordertype': 'limit', 'volume': '0.01', 'price': '1000'}
    return {'pair': 'XBTUSD', 'orders': [dict(row, **fields) for _ in range(size)]}


def test_an_order_call_that_waits_on_the_rest_counter_is_counted_on_the_engine_as_kraken_counts_it(
        sandbox: Sandbox) -> None:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter',
                       tier=(15, 1))
    api.counter.add(15)  # the REST counter is full: the batch waits about 1 s for room
    started = time.monotonic()
    assert api.query_private('AddOrderBatch', batch(14))['error'] == []  # engine cost 7
    assert time.monotonic() - started > 0.8
    here = api._store().status()['counters']['engine:XBTUSD']
    assert here == pytest.approx(engine_held(sandbox, 'XBTUSD'), abs=0.3)


def test_orders_sent_right_after_a_call_that_waited_on_the_rest_counter_never_earn_the_limit(
        sandbox: Sandbox) -> None:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter',
                       tier=(15, 1))
    api.counter.add(18)  # the REST counter over full: the batch waits about 4 s for room
    assert api.query_private('AddOrderBatch', batch(15))['error'] == []  # engine cost 7.5
    # AddOrder costs nothing on the REST counter: these go as fast as the engine lets them
    # (market orders, bought and sold in turn, so that none rests).
    errors = [e for side in ['buy', 'sell'] * 29 for e in api.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': side, 'ordertype': 'market', 'volume': '0.001'})['error']]
    assert errors == []


def test_an_order_known_to_be_older_than_300_seconds_is_cancelled_at_no_cost_on_its_pair(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter')
    txids = [api.query_private('AddOrder', RESTING)['result']['txid'][0] for _ in range(3)]
    before = api._store().status()['counters']['engine:XBTUSD']
    real = time.time
    monkeypatch.setattr(time, 'time', lambda: real() + 400)  # Kraken charges 0 past 300 s
    started = time.monotonic()
    for txid in txids:
        assert api.query_private('CancelOrder', {'txid': txid})['error'] == []
    assert time.monotonic() - started < 1.0  # no wait on a made-up pair's counter
    counters = api._store().status()['counters']
    assert 'engine:?' not in counters
    assert counters['engine:XBTUSD'] <= before


@pytest.mark.parametrize('where', ['directory', 'redis'])
def test_each_order_of_a_batch_is_cancelled_by_its_client_id_at_the_cost_of_its_age(
        sandbox: Sandbox, where: str, request: pytest.FixtureRequest, tmp_path: object) -> None:
    share = request.getfixturevalue('redis_url') if where == 'redis' else str(tmp_path)
    api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url, engine='starter',
                       share=share, client_order_ids=True)
    assert api.query_private('AddOrderBatch', batch(4))['error'] == []  # engine cost 2
    opened = api.query_private('OpenOrders')['result']['open'].values()
    ids = [order['cl_ord_id'] for order in opened]
    assert len(set(ids)) == 4 and None not in ids  # named by krakenex, one each
    assert api.query_private('CancelOrder', {'cl_ord_id': ids[2]})['error'] == []
    counters = api._store().status()['counters']
    assert counters['engine:XBTUSD'] == pytest.approx(2 + 8, abs=0.3)  # a young order: 8
    assert 'engine:?' not in counters
