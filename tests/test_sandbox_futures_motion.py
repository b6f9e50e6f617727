"""The sandbox's motion moves its futures market too, seen over Kraken Futures REST on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.sandbox.futures.market import BY_SYMBOL
from krakenex.sandbox.market import PAIRS

#: Futures REST is the witness here: its sunset notice is expected.
pytestmark = pytest.mark.filterwarnings('ignore::krakenex.futures.KrakenSunsetWarning')

#: Each contract and the spot pair it follows.
FOLLOWS = {'PF_XBTUSD': 'XXBTZUSD', 'PF_ETHUSD': 'XETHZUSD', 'FF_XBTUSD_261225': 'XXBTZUSD'}
WAIT = 5.0


def marks(client: FuturesAPI) -> dict[str, Decimal]:
    """Each contract's mark price, as Kraken Futures' ``tickers`` gives it."""
    return {t['symbol']: Decimal(str(t['markPrice']))
            for t in client.query_public('tickers')['tickers']}


def best(client: FuturesAPI, symbol: str) -> tuple[Decimal, Decimal]:
    book = client.query_public('orderbook', {'symbol': symbol})['orderBook']
    return Decimal(str(book['bids'][0][0])), Decimal(str(book['asks'][0][0]))


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=7) as sandbox:
        yield sandbox


@pytest.fixture
def futures(sb: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(uri=sb.futures_url) as client:
        yield client


def test_each_step_moves_every_contract_by_whole_ticks_and_a_small_fraction(sb, futures):
    before = marks(futures)
    for _ in range(20):
        sb.move()
        after = marks(futures)
        for symbol in FOLLOWS:
            change = after[symbol] - before[symbol]
            assert change != 0 and change % BY_SYMBOL[symbol].tick == 0, (symbol, change)
            assert abs(change / before[symbol]) < Decimal('0.01')
        before = after


def test_the_futures_book_and_ticker_follow_the_mark(sb, futures):
    bid, ask = best(futures, 'PF_XBTUSD')
    for _ in range(5):
        sb.move()
    mark = marks(futures)['PF_XBTUSD']
    new_bid, new_ask = best(futures, 'PF_XBTUSD')
    assert (new_bid, new_ask) != (bid, ask)
    assert new_bid < mark < new_ask
    ticker = futures.query_public('tickers/PF_XBTUSD')['ticker']
    assert Decimal(str(ticker['last'])) == mark  # each step trades at the new mark


def test_each_contract_moves_the_way_its_spot_pair_moved():
    sandbox = Sandbox(seed=11, tier=None)
    contracts = sandbox.futures.market.marks
    for _ in range(30):
        spot_before = {pair: sandbox.exchange.market.mid(PAIRS[pair]) for pair in FOLLOWS.values()}
        futures_before = dict(contracts)
        moved = sandbox.move()
        for symbol, pair in FOLLOWS.items():
            up = Decimal(moved[pair]) > spot_before[pair]
            assert (contracts[symbol] > futures_before[symbol]) == up, (symbol, pair)


def test_two_sandboxes_with_one_seed_move_their_futures_alike():
    one, two = Sandbox(seed=5, tier=None), Sandbox(seed=5, tier=None)
    other = Sandbox(seed=6, tier=None)
    paths = []
    for sandbox in (one, two, other):
        path = []
        for _ in range(25):
            sandbox.move()
            path.append(dict(sandbox.futures.market.marks))
        paths.append(path)
    assert paths[0] == paths[1] and paths[0] != paths[2]


def test_without_motion_the_futures_market_stays_still(sb, futures):
    before = marks(futures), best(futures, 'PF_ETHUSD')
    time.sleep(0.3)
    assert (marks(futures), best(futures, 'PF_ETHUSD')) == before


def test_with_motion_the_futures_market_moves_on_its_own():
    with Sandbox(motion=0.05) as sandbox, FuturesAPI(uri=sandbox.futures_url) as client:
        first = marks(client)
        deadline = time.monotonic() + WAIT
        while marks(client) == first:
            assert time.monotonic() < deadline, 'the futures market never moved'
            time.sleep(0.05)
        assert sandbox.motion.steps >= 1
