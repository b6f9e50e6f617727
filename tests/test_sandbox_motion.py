"""The sandbox's market motion: a seeded random walk of prices, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from krakenex import API
from krakenex.sandbox import Sandbox
from krakenex.sandbox.market import PAIRS

ROOT = Path(__file__).resolve().parent.parent
WAIT = 5.0


def walk(seed: int, steps: int) -> list[dict[str, str]]:
    """The path of a sandbox with this seed, one dict of prices a step (it need not run)."""
    sandbox = Sandbox(seed=seed, tier=None)
    return [sandbox.move() for _ in range(steps)]


def last_price(api: API, pair: str = 'XXBTZUSD') -> Decimal:
    return Decimal(api.query_public('Ticker', {'pair': pair})['result'][pair]['c'][0])


def motion_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == 'krakenex-sandbox-motion']


def eventually(condition: object, wait: float = WAIT) -> None:
    deadline = time.monotonic() + wait
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.02)


@pytest.fixture
def api() -> Iterator[tuple[Sandbox, API]]:
    with Sandbox(seed=5, tier=None) as sandbox, \
            API(sandbox.key, sandbox.secret, uri=sandbox.url) as client:
        yield sandbox, client


def test_one_seed_walks_one_path_in_whole_ticks_and_another_seed_another() -> None:
    first, again, other = walk(7, 30), walk(7, 30), walk(8, 30)
    assert first == again
    assert first != other
    previous = {name: spec.start_price for name, spec in PAIRS.items()}
    for step in first:
        for name, text in step.items():
            price, spec = Decimal(text), PAIRS[name]
            assert price % spec.tick_size == 0, 'a price the pair can trade at'
            assert price != previous[name], 'every step moves every pair'
            # small steps: a fraction of a percent at a time
            assert abs(price - previous[name]) / previous[name] < Decimal('0.01')
            previous[name] = price


def test_each_step_trades_the_market_as_set_price_does_and_rest_shows_it(api) -> None:
    sandbox, client = api
    before = client.query_public('Trades', {'pair': 'SOLUSD'})['result']['SOLUSD'][-1]
    moved = sandbox.move()
    after = client.query_public('Trades', {'pair': 'SOLUSD'})['result']['SOLUSD'][-1]
    assert after[6] == before[6] + 1 and after[0] == moved['SOLUSD']
    assert last_price(client, 'SOLUSD') == Decimal(moved['SOLUSD'])


def test_resting_limit_orders_and_stops_fill_on_the_step_that_reaches_them(api) -> None:
    sandbox, client = api
    path = [Decimal(step['XXBTZUSD']) for step in walk(5, 40)]
    low = min(path)
    reached = path.index(low)  # the first step at the lowest price
    assert low < PAIRS['XXBTZUSD'].start_price and reached > 0
    buy = client.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': str(low),
        'volume': '0.01', 'userref': '1'})['result']['txid'][0]
    stop = client.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'sell', 'ordertype': 'stop-loss', 'price': str(low),
        'volume': '0.01', 'userref': '2'})['result']['txid'][0]

    def status(txid: str) -> str:
        return client.query_private('QueryOrders', {'txid': txid})['result'][txid]['status']

    for _ in range(reached):
        sandbox.move()
    assert (status(buy), status(stop)) == ('open', 'open'), 'not yet reached'
    assert Decimal(sandbox.move()['XXBTZUSD']) == low
    assert (status(buy), status(stop)) == ('closed', 'closed')


def test_motion_moves_prices_on_its_own_and_stops_with_the_sandbox() -> None:
    assert motion_threads() == []
    with Sandbox(tier=None, motion=0.02) as sandbox, \
            API(sandbox.key, sandbox.secret, uri=sandbox.url) as client:
        first = last_price(client)
        eventually(lambda: last_price(client) != first)
        assert len(motion_threads()) == 1
    assert motion_threads() == [], 'stopped and joined with the sandbox'
    still = sandbox.exchange.market.mid(PAIRS['XXBTZUSD'])
    time.sleep(0.1)
    assert sandbox.exchange.market.mid(PAIRS['XXBTZUSD']) == still
    with sandbox:  # a restarted sandbox moves again
        eventually(lambda: sandbox.exchange.market.mid(PAIRS['XXBTZUSD']) != still)
    assert motion_threads() == []


def test_without_motion_prices_stay_still(api) -> None:
    sandbox, client = api
    first = last_price(client)
    time.sleep(0.2)
    assert last_price(client) == first and sandbox.motion.steps == 0


@pytest.mark.parametrize('motion', [0, -1, float('nan'), float('inf')])
def test_motion_must_be_a_positive_number_of_seconds(motion: float) -> None:
    with pytest.raises(ValueError, match='motion'):
        Sandbox(motion=motion)


def test_rest_calls_during_a_fast_motion_are_all_answered(api) -> None:
    sandbox, client = api
    sandbox.stop()
    fast = Sandbox(seed=5, tier=None, motion=0.001)
    with fast, API(fast.key, fast.secret, uri=fast.url) as busy:

        def call(n: int) -> list[str]:
            if n % 2:
                return busy.query_public('Depth', {'pair': 'XBTUSD', 'count': 10})['error']
            return busy.query_private('AddOrder', {
                'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'market',
                'volume': '0.001'})['error']

        steps = fast.motion.steps
        with ThreadPoolExecutor(4) as pool:
            errors = list(pool.map(call, range(60)))
        assert errors == [[]] * 60
        assert fast.motion.steps > steps


def run_sandbox(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    process = subprocess.Popen([sys.executable, '-m', 'krakenex.sandbox', *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []],
                     daemon=True).start()
    printed = dict(lines.get(timeout=20).strip().partition(': ')[::2] for _ in range(3))
    return process, printed


def test_command_line_motion_moves_the_served_market() -> None:
    process, printed = run_sandbox('--motion', '0.05', '--seed', '3')
    try:
        with API(uri=printed['url']) as client:
            first = last_price(client)
            eventually(lambda: last_price(client) != first)
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.parametrize('value', ['0', '-2', 'nan', 'fast'])
def test_command_line_motion_refuses_what_is_not_a_positive_number(value: str) -> None:
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    done = subprocess.run([sys.executable, '-m', 'krakenex', 'sandbox', '--motion', value],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=20)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and 'motion' in done.stderr, done.stderr
