"""The sandbox's market looks like a market, seeded, and its public views agree.

Everything is read over HTTP (and the WebSocket feed) on 127.0.0.1, as a user sees it.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.sync.client import connect

from krakenex import API
from krakenex.sandbox import Sandbox

pytest.importorskip('websockets')

WAIT = 10
PAIR = 'XXBTZUSD'
TICK = Decimal('0.1')


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=7, tier=None) as running:
        yield running


def public(sb: Sandbox, method: str, **params: Any) -> Any:
    with API(uri=sb.url) as api:
        reply = api.query_public(method, params)
    assert reply['error'] == [], reply
    return reply['result']


def book_after_moves(sb: Sandbox, moves: int) -> list[dict[str, list[list[str]]]]:
    """The XBT/USD Depth (25 levels) after each of ``moves`` moves of the market."""
    books = []
    for _ in range(moves):
        sb.move()
        books.append(public(sb, 'Depth', pair='XBTUSD', count=25)[PAIR])
    return books


def test_the_spread_varies_within_a_few_ticks(sb: Sandbox) -> None:
    books = book_after_moves(sb, 60)
    spreads = [(Decimal(b['asks'][0][0]) - Decimal(b['bids'][0][0])) / TICK for b in books]
    assert min(spreads) >= 2 and max(spreads) <= 12  # one to six ticks a side
    assert len(set(spreads)) >= 3, spreads
    rows = public(sb, 'Spread', pair='XBTUSD')[PAIR]
    assert len({Decimal(ask) - Decimal(bid) for _, bid, ask in rows[-60:]}) >= 3


def test_level_sizes_vary_by_level_and_over_time_and_thicken_away_from_the_mid(
        sb: Sandbox) -> None:
    sb.set_price('XBTUSD', '60000')
    deep = public(sb, 'Depth', pair='XBTUSD', count=500)[PAIR]
    for side in ('bids', 'asks'):
        sizes = [Decimal(volume) for _, volume, _ in deep[side]]
        assert len(set(sizes[:25])) == 25  # every level its own size
        near, far = statistics.median(sizes[:10]), statistics.median(sizes[-50:])
        assert far > 3 * near, (side, near, far)
    books = book_after_moves(sb, 10)
    first_sizes = [[level[1] for level in b['bids'][:10]] for b in books]
    changed = [sum(a != b for a, b in zip(one, two, strict=True))
               for one, two in itertools.pairwise(first_sizes)]
    assert all(0 < count < 10 for count in changed), changed  # some levels, never all


def test_trades_arrive_in_bursts(sb: Sandbox) -> None:
    rows = public(sb, 'Trades', pair='XBTUSD', count=1000)[PAIR]
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(rows)]
    mean = statistics.mean(gaps)
    assert sum(gap < mean / 10 for gap in gaps) > len(gaps) / 3  # many quick follow-ups
    assert statistics.pstdev(gaps) > 1.5 * mean  # and long quiet spells: not Poisson


def all_trades_since(sb: Sandbox, since: int) -> list[list[Any]]:
    """Every trade since ``since`` (seconds), paging Trades as Kraken's users do."""
    found: list[list[Any]] = []
    cursor: Any = since
    while True:
        page = public(sb, 'Trades', pair='XBTUSD', since=cursor, count=1000)
        found += page[PAIR]
        if len(page[PAIR]) < 1000:
            return found
        cursor = page['last']


def test_ticker_candles_and_trades_count_the_same_24_hours(sb: Sandbox) -> None:
    while True:  # one look within one minute: the ticker's window starts on a minute
        before = public(sb, 'Time')['unixtime']
        ticker = public(sb, 'Ticker', pair='XBTUSD')[PAIR]
        after = public(sb, 'Time')['unixtime']
        if before // 60 == after // 60:
            break
    window = (before - 86400) // 60 * 60
    trades = all_trades_since(sb, window)
    volume = sum(Decimal(t[1]) for t in trades)
    turnover = sum(Decimal(t[0]) * Decimal(t[1]) for t in trades)
    assert ticker['t'][1] == len(trades) > 3000
    assert Decimal(ticker['v'][1]) == volume
    assert Decimal(ticker['p'][1]) == (turnover / volume).quantize(TICK)
    assert ticker['c'][0] == trades[-1][0]
    hours = public(sb, 'OHLC', pair='XBTUSD', interval=60)[PAIR]
    day = [row for row in hours if row[0] >= (window + 3599) // 3600 * 3600]
    in_day = [t for t in trades if t[2] >= day[0][0]]
    assert sum(row[7] for row in day) == len(in_day)
    assert sum(Decimal(row[6]) for row in day) == sum(Decimal(t[1]) for t in in_day)
    assert day[-1][4] == ticker['c'][0]


def test_the_websocket_ticker_shows_the_last_paper_trade(sb: Sandbox) -> None:
    with API(sb.key, sb.secret, uri=sb.url) as api:
        ask = Decimal(public(sb, 'Depth', pair='XBTUSD', count=1)[PAIR]['asks'][0][0])
        placed = api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                                'ordertype': 'limit', 'volume': '0.5',
                                                'price': str(ask + 50)})
        assert placed['error'] == []
    last = public(sb, 'Ticker', pair='XBTUSD')[PAIR]['c'][0]
    with connect(sb.ws_url, open_timeout=WAIT) as ws:
        ws.send(json.dumps({'method': 'subscribe',
                            'params': {'channel': 'ticker', 'symbol': ['BTC/USD']}}))
        while True:
            message = json.loads(ws.recv(WAIT))
            if message.get('channel') == 'ticker':
                break
    shown = message['data'][0]['last']
    assert Decimal(str(shown)) == Decimal(last) >= ask  # the paper fill's, not the mid


def tape(seed: int) -> tuple[Any, ...]:
    with Sandbox(seed=seed, tier=None) as one:
        for _ in range(5):
            one.move()
        return ([row[:2] for row in public(one, 'Depth', pair='XBTUSD', count=50)[PAIR]['asks']],
                [row[:2] for row in public(one, 'Trades', pair='XBTUSD', count=200)[PAIR]],
                [row[1:] for row in public(one, 'Spread', pair='XBTUSD')[PAIR]])


def test_the_same_seed_gives_the_same_tape_and_another_seed_another() -> None:
    assert tape(3) == tape(3)
    assert tape(3) != tape(4)


# -- Kraken's own names, family by family, as Kraken's documentation examples show them --

def test_assets_carry_krakens_x_and_z_names_and_altnames(sb: Sandbox) -> None:
    assets = public(sb, 'Assets', asset='XBT,ETH,USD,SOL')
    assert {name: row['altname'] for name, row in assets.items()} == {
        'XXBT': 'XBT', 'XETH': 'ETH', 'ZUSD': 'USD', 'SOL': 'SOL'}


def test_asset_pairs_carry_krakens_names_altnames_and_wsnames(sb: Sandbox) -> None:
    pairs = public(sb, 'AssetPairs')
    assert {name: (row['altname'], row['wsname'], row['base'], row['quote'])
            for name, row in pairs.items()} == {
        'XXBTZUSD': ('XBTUSD', 'XBT/USD', 'XXBT', 'ZUSD'),
        'XETHZUSD': ('ETHUSD', 'ETH/USD', 'XETH', 'ZUSD'),
        'XETHXXBT': ('ETHXBT', 'ETH/XBT', 'XETH', 'XXBT'),
        'SOLUSD': ('SOLUSD', 'SOL/USD', 'SOL', 'ZUSD')}
    assert pairs['XXBTZUSD']['fee_volume_currency'] == 'ZUSD'


@pytest.mark.parametrize('method', ['Ticker', 'Depth', 'Trades', 'OHLC', 'Spread'])
def test_market_data_is_keyed_by_krakens_pair_names_whatever_name_was_asked(
        sb: Sandbox, method: str) -> None:
    for asked, key in (('XBTUSD', 'XXBTZUSD'), ('XXBTZUSD', 'XXBTZUSD'),
                       ('ETHXBT', 'XETHXXBT'), ('SOLUSD', 'SOLUSD')):
        assert set(public(sb, method, pair=asked)) - {'last'} == {key}, (method, asked)


def test_account_replies_name_assets_and_pairs_as_kraken_does(sb: Sandbox) -> None:
    with API(sb.key, sb.secret, uri=sb.url) as api:
        private = api.query_private
        assert set(private('Balance')['result']) == {'ZUSD', 'XXBT', 'XETH'}
        assert set(private('BalanceEx')['result']) == {'ZUSD', 'XXBT', 'XETH'}
        ledger = private('Ledgers')['result']['ledger'].values()
        assert {row['asset'] for row in ledger} <= {'ZUSD', 'XXBT', 'XETH', 'SOL'}
        trades = private('TradesHistory')['result']['trades'].values()
        assert {row['pair'] for row in trades} <= {'XXBTZUSD', 'XETHZUSD', 'XETHXXBT'}
        placed = private('AddOrder', {'pair': 'XXBTZUSD', 'type': 'buy', 'ordertype': 'limit',
                                      'volume': '0.01', 'price': '50000'})['result']
        descr = private('OpenOrders')['result']['open'][placed['txid'][0]]['descr']
        assert descr['pair'] == 'XBTUSD'  # the altname, in descr as in its order text
        assert placed['descr']['order'] == 'buy 0.01000000 XBTUSD @ limit 50000.0'
        volume = private('TradeVolume', {'pair': 'XBTUSD'})['result']
        assert volume['currency'] == 'ZUSD' and set(volume['fees']) == {'XXBTZUSD'}
        deposits = private('DepositStatus', {'asset': 'XBT'})['result']
        assert {row['asset'] for row in deposits} == {'XXBT'}


def test_the_websocket_names_pairs_as_its_v2_symbols(sb: Sandbox) -> None:
    with connect(sb.ws_url, open_timeout=WAIT) as ws:
        ws.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'ticker', 'symbol': ['BTC/USD', 'ETH/BTC']}}))
        seen = set()
        while len(seen) < 2:
            message = json.loads(ws.recv(WAIT))
            if message.get('channel') == 'ticker':
                seen |= {row['symbol'] for row in message['data']}
    assert seen == {'BTC/USD', 'ETH/BTC'}
