"""krakenex.frames: DataFrames of the sandbox's replies over real HTTP, warnings as errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from krakenex import API, KrakenUsageError, frames
from krakenex.sandbox import Sandbox

pd = pytest.importorskip('pandas')

# pandas 2.x and 3.x must both run these without a single warning.
pytestmark = pytest.mark.filterwarnings('error')

TIME_DTYPE = 'datetime64[ns, UTC]'


@pytest.fixture(scope='module')
def shared() -> Iterator[Sandbox]:
    """One sandbox for the tests that only read; every test of the module calls it at
    full speed, so it keeps none of Kraken's limits (pacing is tested elsewhere)."""
    with Sandbox(seed=3, tier=None) as running:
        yield running


@pytest.fixture
def api(shared: Sandbox) -> Iterator[API]:
    # A tier no call reaches: the object paces itself, so paging adds no starter-tier counter
    # (the key's, which the many calls of one test would fill) against a sandbox with none.
    with API(shared.key, shared.secret, uri=shared.url, tier=(10**6, 10**6)) as api:
        yield api


def result(api: API, method: str, data: dict[str, Any] | None = None) -> Any:
    query = api.query_public if method in ('OHLC', 'Trades', 'Spread', 'Depth', 'Ticker',
                                           'AssetPairs') else api.query_private
    return query(method, data)['result']


CALLS: dict[str, Callable[[API], Any]] = {
    'ohlc': lambda api: frames.ohlc(api, 'XBTUSD', interval=60),
    'trades': lambda api: frames.trades(api, 'XBTUSD', since='2h', pace=False),
    'spread': lambda api: frames.spread(api, 'ETHUSD', pace=False),
    'depth': lambda api: frames.depth(api, 'XBTUSD', count=20),
    'ticker': lambda api: frames.ticker(api),
    'asset_pairs': lambda api: frames.asset_pairs(api),
    'balance': lambda api: frames.balance(api),
    'ledgers': lambda api: frames.ledgers(api),
    'closed_orders': lambda api: frames.closed_orders(api),
    'trades_history': lambda api: frames.trades_history(api),
}

KIND_DTYPES = {'number': ['float64'], 'integer': ['int64', 'Int64'], 'time': [TIME_DTYPE],
               'flag': ['bool'], 'other': ['object'], 'text': ['object', 'str']}


@pytest.mark.parametrize('name', sorted(CALLS))
def test_each_frame_has_its_known_columns_with_their_dtypes(api: API, name: str) -> None:
    df = CALLS[name](api)
    (index, index_kind), *columns = frames.COLUMNS[name]
    assert len(df) > 0
    assert df.index.name == index
    assert list(df.columns[:len(columns)]) == [column for column, _ in columns]
    for column, kind in columns:
        assert str(df[column].dtype) in KIND_DTYPES[kind], (column, df[column].dtype)
    if index_kind == 'time':
        assert str(df.index.dtype) == TIME_DTYPE
        if name != 'depth':  # a book is in price order
            assert df.index.is_monotonic_increasing


@pytest.mark.parametrize('name', ['ohlc', 'depth', 'ticker', 'balance', 'ledgers',
                                  'closed_orders'])
def test_exact_gives_decimals_where_numbers_are_floats(api: API, name: str) -> None:
    df = CALLS[name](api)
    exact = {'ohlc': lambda: frames.ohlc(api, 'XBTUSD', interval=60, exact=True),
             'depth': lambda: frames.depth(api, 'XBTUSD', count=20, exact=True),
             'ticker': lambda: frames.ticker(api, exact=True),
             'balance': lambda: frames.balance(api, exact=True),
             'ledgers': lambda: frames.ledgers(api, exact=True),
             'closed_orders': lambda: frames.closed_orders(api, exact=True)}[name]()
    for column, kind in frames.COLUMNS[name][1:]:
        if kind == 'number':
            assert exact[column].dtype == object
            assert all(isinstance(v, Decimal) for v in exact[column].dropna())
            assert exact[column].dropna().map(float).tolist() == df[column].dropna().tolist()


def test_ohlc_rows_are_kraken_s_candles_by_start_time(api: API) -> None:
    raw = result(api, 'OHLC', {'pair': 'XBTUSD', 'interval': 60})['XXBTZUSD']
    df = frames.ohlc(api, 'XBTUSD', interval='1h')
    assert len(df) == len(raw) == 720
    assert df.index[0] == pd.Timestamp(raw[0][0], unit='s', tz='UTC')
    assert df['close'].tolist()[:-1] == [float(row[4]) for row in raw][:-1]  # the last one moves
    assert df['count'].tolist()[:-1] == [row[7] for row in raw][:-1]
    assert (df.index[1:] - df.index[:-1]).unique().tolist() == [pd.Timedelta(hours=1)]


def test_ledgers_hold_every_entry_once_with_kraken_s_asset_names_and_times(api: API) -> None:
    df = frames.ledgers(api, exact=True)
    count = result(api, 'Ledgers')['count']
    assert len(df) == df['id'].nunique() == count
    sample = result(api, 'QueryLedgers', {'id': ','.join(df['id'].tolist()[:20])})
    for ledger_id, entry in sample.items():
        row = df[df['id'] == ledger_id].iloc[0]
        assert row['amount'] == Decimal(entry['amount']) and str(row['amount']) == entry['amount']
        assert row['asset'] == entry['asset']
        # Kraken's times have four decimals; none is lost on the way to nanoseconds.
        stamp = df.index[df['id'] == ledger_id][0]
        assert stamp.value == int(Decimal(str(entry['time'])) * 10**9)
    assert set(df['asset']) <= {'XXBT', 'XETH', 'ZUSD', 'SOL'}


def test_ledgers_of_one_asset_and_a_window(api: API) -> None:
    everything = frames.ledgers(api)
    xbt = frames.ledgers(api, asset='XBT')
    assert len(xbt) == (everything['asset'] == 'XXBT').sum() > 0
    middle = everything.index[len(everything) // 2]
    window = frames.ledgers(api, start=middle, end=everything.index[-1].to_pydatetime())
    assert len(window) > 0 and (window.index > middle).all()
    assert window['id'].tolist() == everything[everything.index > middle]['id'].tolist()
    naive = frames.ledgers(api, start=middle.tz_localize(None))  # naive means UTC
    assert naive['id'].tolist() == window['id'].tolist()
    by_id = frames.ledgers(api, start=everything['id'].iloc[len(everything) // 2])
    assert by_id['id'].tolist() == window['id'].tolist()
    iso = frames.ledgers(api, end=middle.isoformat())
    assert iso['id'].tolist() == everything[everything.index <= middle]['id'].tolist()


def test_trades_since_a_duration_reach_from_then_to_now(api: API) -> None:
    df = frames.trades(api, 'XBTUSD', since='2h', pace=False)
    now = pd.Timestamp.now(tz='UTC')
    assert df.index[0] >= now - pd.Timedelta(hours=2, minutes=1)
    assert df.index[0] <= now - pd.Timedelta(hours=1, minutes=50)
    newest = result(api, 'Trades', {'pair': 'XBTUSD'})['XXBTZUSD'][-1]
    assert df['trade_id'].iloc[-1] == newest[6]
    assert df['trade_id'].is_unique and df['trade_id'].diff().dropna().eq(1).all()


def test_trades_history_and_closed_orders_use_kraken_s_pair_names(api: API) -> None:
    history = frames.trades_history(api)
    orders = frames.closed_orders(api)
    assert set(history['pair']) <= {'XXBTZUSD', 'XETHZUSD', 'XETHXXBT', 'SOLUSD'}
    assert set(orders['descr_pair']) <= {'XBTUSD', 'ETHUSD', 'ETHXBT', 'SOLUSD'}  # descr: altname
    assert len(orders) == result(api, 'ClosedOrders')['count']
    assert (orders['descr_order'].str.split().str[0] == orders['descr_type']).all()


def test_ticker_spreads_kraken_s_lists_into_named_columns(api: API) -> None:
    raw = result(api, 'Ticker', {'pair': 'XBTUSD,ETHUSD'})
    df = frames.ticker(api, ['XBTUSD', 'ETHUSD'])
    assert sorted(df.index) == sorted(raw) == ['XETHZUSD', 'XXBTZUSD']
    for pair, fields in raw.items():
        assert df.loc[pair, 'ask'] == float(fields['a'][0])
        assert df.loc[pair, 'bid_volume'] == float(fields['b'][2])
        assert df.loc[pair, 'trades_24h'] == fields['t'][1]
        assert df.loc[pair, 'open'] == float(fields['o'])


def test_depth_lists_asks_up_then_bids_down(api: API) -> None:
    df = frames.depth(api, 'XBTUSD', count=10)
    asks, bids = df[df['side'] == 'ask'], df[df['side'] == 'bid']
    assert len(asks) == len(bids) == 10
    assert asks['price'].is_monotonic_increasing and bids['price'].is_monotonic_decreasing
    assert asks['price'].min() > bids['price'].max()


def test_balance_is_indexed_by_kraken_s_asset_names(api: API) -> None:
    df = frames.balance(api)
    raw = result(api, 'Balance')
    assert df['balance'].to_dict() == {asset: float(value) for asset, value in raw.items()}


class KrakenAddsColumns(API):
    """The real sandbox reply, with the columns Kraken might add one day."""

    def query_public(self, method: str, data: Any = None, timeout: Any = None) -> Any:
        reply = super().query_public(method, data, timeout)
        for member, rows in reply['result'].items():
            if member != 'last' and method == 'OHLC':
                for row in rows:
                    row.append('new')
            if method == 'Ticker':
                rows['z'] = ['1.5', '2']
        return reply

    def query_private(self, method: str, data: Any = None, timeout: Any = None) -> Any:
        reply = super().query_private(method, data, timeout)
        if method == 'Ledgers':
            for entry in reply['result']['ledger'].values():
                entry['wallet'] = 'spot / main'
        return reply


def test_a_column_kraken_adds_later_comes_through_and_breaks_nothing(shared: Sandbox) -> None:
    with KrakenAddsColumns(shared.key, shared.secret, uri=shared.url) as api:
        ledgers = frames.ledgers(api)
        candles = frames.ohlc(api, 'XBTUSD')
        tick = frames.ticker(api, 'XBTUSD')
    assert list(ledgers.columns[-2:]) == ['balance', 'wallet']
    assert set(ledgers['wallet']) == {'spot / main'}
    assert ledgers['amount'].dtype == 'float64'
    assert list(candles.columns[-2:]) == ['count', 'column9']
    assert tick.loc['XXBTZUSD', 'z'] == ['1.5', '2']


def test_an_empty_window_gives_an_empty_frame_with_the_known_columns(api: API) -> None:
    df = frames.ledgers(api, start='2200-01-01')
    assert len(df) == 0
    assert list(df.columns) == [column for column, _ in frames.COLUMNS['ledgers'][1:]]
    assert str(df.index.dtype) == TIME_DTYPE


def test_ledgers_since_a_time_are_the_entries_after_it(api: API) -> None:
    everything = frames.ledgers(api)
    cutoff = everything.index[len(everything) // 2]
    since = frames.ledgers(api, since=cutoff)
    assert len(since) > 0 and (since.index > cutoff).all()
    assert list(since['id']) == list(everything[everything.index > cutoff]['id'])


def test_since_and_start_together_are_refused_before_anything_is_sent(
        api: API, shared: Sandbox) -> None:
    shared.requests_log.clear()
    with pytest.raises(KrakenUsageError, match='give since or start, not both'):
        frames.ledgers(api, since='1D', start=time.time() - 3600)
    with pytest.raises(KrakenUsageError, match='is not a time'):
        frames.ledgers(api, end=object())
    assert shared.requests_log == []


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60)


def test_without_pandas_a_one_line_error_names_the_extra(shared: Sandbox) -> None:
    done = run_python(
        'import sys; sys.modules["pandas"] = None\n'
        'from krakenex import API, frames\n'
        f'frames.balance(API({shared.key!r}, {shared.secret!r}, uri={shared.url!r}))\n')
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ImportError: krakenex.frames needs pandas: pip install 'pandas<4,>=2.1' (or, in a "
        "checkout of krakenex: pip install '.[pandas]')")
    assert 'During handling' not in done.stderr


def test_importing_frames_does_not_import_pandas() -> None:
    done = run_python('import sys; from krakenex import frames, paging; '
                      'print("pandas" in sys.modules, "tqdm" in sys.modules)')
    assert done.stdout.split() == ['False', 'False'], done.stderr


# ------------------------------------------------------------------ AsyncAPI

STABLE = ['asset_pairs', 'balance', 'ledgers', 'closed_orders', 'trades_history', 'ohlc']


def test_with_an_async_api_every_function_is_awaitable_and_gives_the_same_frame(
        api: API, shared: Sandbox) -> None:
    aio = pytest.importorskip('krakenex.aio')

    async def fetch_all() -> dict[str, Any]:
        async with aio.AsyncAPI(shared.key, shared.secret, uri=shared.url,
                                tier=(10**6, 10**6)) as async_api:
            return {name: await call(async_api) for name, call in CALLS.items()}

    frames_async = asyncio.run(fetch_all())
    for name, df in frames_async.items():
        expected = CALLS[name](api)
        assert isinstance(df, pd.DataFrame), name
        assert list(df.columns) == list(expected.columns), name
        assert df.dtypes.equals(expected.dtypes) and df.index.dtype == expected.index.dtype
        if name in STABLE:  # the market moves on between the two fetches
            compared = [df, expected]
            if name == 'ohlc':  # ... and so does the current candle
                compared = [df.iloc[:-1], expected.iloc[:-1]]
            pd.testing.assert_frame_equal(*compared)
