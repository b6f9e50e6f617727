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
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from krakenex import API
from krakenex.sandbox import Sandbox, market
from krakenex.sandbox.market import HISTORY_TRADES, OHLC_ROWS, PAIRS, TAPE_TRADES, TRIM_BATCH

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


def test_a_step_moves_every_pair_at_once_for_every_reader_and_every_other_stepper(api) -> None:
    sandbox, client = api
    steps, names = 300, list(PAIRS)
    path = [{n: Decimal(p) for n, p in step.items()} for step in walk(5, 3 * steps)]
    whole = [tuple(step[n] for n in names) for step in path]
    whole.append(tuple(spec.start_price for spec in PAIRS.values()))  # before the first step
    seen: list[tuple[Decimal, ...]] = []
    done = threading.Event()

    def read() -> None:  # Ticker of every pair, over HTTP, as the market moves
        while not done.is_set():
            tickers = client.query_public('Ticker')['result']
            seen.append(tuple(Decimal(tickers[n]['c'][0]) for n in names))

    def step() -> list[tuple[Decimal, ...]]:
        return [tuple(Decimal(p) for p in sandbox.move().values()) for _ in range(steps)]

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        with ThreadPoolExecutor(4) as pool:
            reader = pool.submit(read)
            moved = [pool.submit(step) for _ in range(3)]
            taken = [prices for future in moved for prices in future.result()]
            done.set()
            reader.result()
    finally:
        sys.setswitchinterval(switch)
    # three threads stepping at once walk the seed's path, one whole step at a time
    assert sorted(taken) == sorted(whole[:-1])
    assert tuple(sandbox.exchange.market.mid(spec) for spec in PAIRS.values()) == whole[-2]
    assert seen and set(seen) <= set(whole), 'a reader saw some pairs moved and others not'


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


def page_trades(client: API, pair: str, since: str) -> tuple[list[list[Any]], str]:
    """Every trade after ``since``, paged with ``last`` as a client keeps up; the cursor."""
    rows: list[list[Any]] = []
    while True:
        result = client.query_public('Trades', {'pair': pair, 'since': since,
                                                'count': 1000})['result']
        page, since = result[pair], result['last']
        if not page:
            return rows, since
        rows += page


def candles_of(rows: list[list[Any]], seconds: int, decimals: int) -> dict[int, list[Any]]:
    """OHLC rows as Kraken formats them, worked out from Trades rows, by candle time."""
    grouped: dict[int, list[list[Any]]] = {}
    for row in rows:
        grouped.setdefault(int(float(row[2])) // seconds * seconds, []).append(row)
    unit = Decimal(1).scaleb(-decimals)
    out = {}
    for opened, chunk in grouped.items():
        prices = [Decimal(r[0]) for r in chunk]
        volumes = [Decimal(r[1]) for r in chunk]
        vwap = sum(p * v for p, v in zip(prices, volumes, strict=True)) / sum(volumes)
        out[opened] = [opened, chunk[0][0], str(max(prices)), str(min(prices)), chunk[-1][0],
                       str(vwap.quantize(unit, ROUND_HALF_UP)), f'{sum(volumes):.8f}',
                       len(chunk)]
    return out


def check_market_data(client: API, pair: str, seen: list[list[Any]], now: float,
                      intervals: tuple[int, ...] = (1, 15, 60, 1440)) -> None:
    """OHLC rows from the history's first candle on, and the ticker's counts, agree with
    ``seen``, every trade of ``pair`` there has been; ``now`` is the market's clock."""
    decimals = PAIRS[pair].pair_decimals
    # a candle's time is ambiguous when a trade's time, rounded to 4 decimals, sits on it
    edges = {float(row[2]) for row in seen if float(row[2]).is_integer()}
    for interval in intervals:
        seconds = interval * 60
        ohlc = client.query_public('OHLC', {'pair': pair, 'interval': interval})['result']
        expected = candles_of(seen, seconds, decimals)
        first = int(float(seen[0][2])) // seconds * seconds  # the history's first candle
        rows = {row[0]: row for row in ohlc[pair] if row[0] >= first
                and not {row[0], row[0] + seconds} & edges}
        assert any(t in expected for t in rows), interval
        for opened, row in rows.items():
            if opened in expected:
                assert row == expected[opened], (interval, opened)
            else:  # no trade: the previous close carried over, nothing traded
                close = next(r[0] for r in reversed(seen) if float(r[2]) < opened)
                assert row[1:] == [close] * 5 + ['0.00000000', 0], (interval, opened)
    ticker = client.query_public('Ticker', {'pair': pair})['result'][pair]
    midnight = int(now) // 86400 * 86400
    day = (int(now) - 86400) // 60 * 60  # 24 hours, from the start of that minute
    windows = [[row for row in seen if float(row[2]) >= since] for since in (midnight, day)]
    assert ticker['t'] == [len(rows) for rows in windows]
    assert ticker['v'] == [f'{sum(Decimal(row[1]) for row in rows):.8f}' for rows in windows]


def test_the_tape_stays_bounded_while_trades_ohlc_and_ticker_keep_every_trade_a_client_saw(
        api) -> None:
    sandbox, client = api
    pair = 'XXBTZUSD'
    tape = sandbox.exchange.market.pair(PAIRS[pair]).trades
    seen, cursor = page_trades(client, pair, '0')  # the whole history
    for _ in range(9):
        for _ in range(1000):
            sandbox.move()
        rows, cursor = page_trades(client, pair, cursor)
        seen += rows
        assert len(tape) <= TAPE_TRADES + TRIM_BATCH
    ids = [row[6] for row in seen]
    assert ids == list(range(ids[0], ids[0] + len(ids))), 'each once'
    assert len(ids) == HISTORY_TRADES + 9000
    served, _ = page_trades(client, pair, '0')
    assert served == seen[-len(served):] and len(served) <= TAPE_TRADES + TRIM_BATCH
    assert served[0][6] > ids[0], 'the oldest trades have left the tape'
    check_market_data(client, pair, seen, time.time())


class Clock:
    """The market's clock in a test that lives through a day in a second.

    It counts whole nanoseconds, from ``start_ns`` or else 250 µs after the current whole
    second, so that steps of whole milliseconds never drift: no time it serves, rounded
    to the 4 decimals of Kraken's trade times, falls on a whole second."""

    def __init__(self, start_ns: int | None = None) -> None:
        self.ns = time.time_ns() // 10**9 * 10**9 + 250_000 if start_ns is None else start_ns

    @property
    def now(self) -> float:
        return self.ns / 1e9

    @now.setter
    def now(self, seconds: float) -> None:
        self.ns = round(seconds * 10**9)

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 10**9)

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return self.ns


MINUTE_NS = 60 * 10**9


@pytest.mark.parametrize('start_ns', [
    None,
    # 55.0004 s into a minute: a clock kept in float seconds drifted over the burst until a
    # trade's time rounded to a whole minute, and the candles holding the burst went unchecked
    (time.time_ns() // MINUTE_NS + 80) * MINUTE_NS + 55_000_400_000,
], ids=['now', 'burst-across-a-minute'])
def test_a_day_of_motion_keeps_candles_and_the_ticker_whole_on_the_markets_clock(
        api, monkeypatch: pytest.MonkeyPatch, start_ns: int | None) -> None:
    sandbox, client = api
    clock, pair = Clock(start_ns), 'XXBTZUSD'
    monkeypatch.setattr(market, 'time', clock)
    seen, cursor = page_trades(client, pair, '0')

    def steps(count: int, every: float) -> None:
        nonlocal cursor
        for n in range(count):
            clock.advance(every)
            sandbox.move()
            if n % 1000 == 999 or n == count - 1:  # keep up before trades leave the tape
                rows, cursor = page_trades(client, pair, cursor)
                seen.extend(rows)

    steps(360, 5.0)  # half an hour of steps
    pause = clock.ns
    clock.advance(600)  # ten quiet minutes
    steps(TAPE_TRADES + TRIM_BATCH, 0.001)  # a burst that folds the half hour away
    # 12 hours on, the oldest one-minute candle falls in the quiet minutes
    clock.ns = pause + (300 + (OHLC_ROWS - 1) * 60) * 10**9
    check_market_data(client, pair, seen, clock.now)
    clock.advance(13 * 3600)  # and a day after the history, the ticker leaves it behind
    steps(10, 5.0)
    check_market_data(client, pair, seen, clock.now, intervals=(15, 60))


def test_a_restart_after_a_stop_that_could_not_join_leaves_one_thread_stepping(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(seed=2, tier=None, motion=0.01) as sandbox:
        motion = sandbox.motion
        monkeypatch.setattr(motion, 'join_timeout', 0.1)
        eventually(lambda: motion.steps > 0)
        with sandbox.exchange.lock:  # the stepping thread waits inside a step
            time.sleep(0.1)
            old = motion._thread
            motion.stop()
            assert old is not None and old.is_alive(), 'the join timed out'
            motion.start()
        old.join(WAIT)
        assert not old.is_alive(), 'the old thread ended after its step'
        assert motion._thread is not None and motion._thread.is_alive()
        steps = motion.steps
        eventually(lambda: motion.steps > steps + 3)
    assert not motion_threads()


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
