"""pandas DataFrames from Kraken's replies, every page fetched (the ``pandas`` extra).

>>> from krakenex import API, frames
>>> candles = frames.ohlc(API(), 'XBTUSD', interval='1h')      # doctest: +SKIP
>>> candles['close'].plot()                                      # doctest: +SKIP

Every function takes an :class:`~krakenex.API` first and returns a
:class:`pandas.DataFrame`:

* rows that have a time are indexed by it: a ``DatetimeIndex`` in UTC,
  oldest first;
* numbers are ``float64``, or :class:`~decimal.Decimal` (exactly as Kraken
  sent them) with ``exact=True``; counts are ``int64``; times are UTC
  datetimes; text keeps pandas' default string dtype;
* columns are picked by name, so a column Kraken adds one day comes through
  as Kraken sent it, after the known ones, and breaks nothing;
* assets and pairs keep Kraken's names (``XXBT``, ``XXBTZUSD``).

``ledgers``, ``closed_orders``, ``trades_history``, ``trades`` and
``spread`` fetch every page through :func:`krakenex.paging.rows`, paced and
with a progress bar in notebooks. Given an :class:`~krakenex.AsyncAPI`
(or any client whose ``query_public`` is a coroutine function), each
function returns an awaitable instead: ``df = await frames.balance(api)``.

pandas is imported when a function is called, not when this module is.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import methods, paging
from ._extras import needs

if TYPE_CHECKING:
    import pandas

    from .paging import Client

__all__ = ['ohlc', 'trades', 'spread', 'depth', 'ticker', 'asset_pairs', 'balance',
           'ledgers', 'closed_orders', 'trades_history', 'COLUMNS']

#: Kraken's ids of ledger entries, orders and trades, such as ``LBOIXS-ELNGL-XW6T6Y``.
KRAKEN_ID = re.compile(r'[A-Z0-9]{6}-[A-Z0-9]{5}-[A-Z0-9]{6}\Z')

#: A time: Unix seconds, a datetime or pandas Timestamp (naive means UTC), or ISO text.
TimeLike = Any

# Column kinds: how a value Kraken sent becomes a cell.
NUMBER, INTEGER, TIME, TEXT, FLAG, OTHER = 'number', 'integer', 'time', 'text', 'flag', 'other'

#: The columns each function knows, in order, with their kind; the index comes first.
#: Columns Kraken adds later follow these, as Kraken sent them.
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    'ohlc': (('time', TIME), ('open', NUMBER), ('high', NUMBER), ('low', NUMBER),
             ('close', NUMBER), ('vwap', NUMBER), ('volume', NUMBER), ('count', INTEGER)),
    'trades': (('time', TIME), ('price', NUMBER), ('volume', NUMBER), ('side', TEXT),
               ('type', TEXT), ('misc', TEXT), ('trade_id', INTEGER)),
    'spread': (('time', TIME), ('bid', NUMBER), ('ask', NUMBER)),
    'depth': (('time', TIME), ('side', TEXT), ('price', NUMBER), ('volume', NUMBER)),
    'ticker': (('pair', TEXT), ('ask', NUMBER), ('ask_whole_lot_volume', NUMBER),
               ('ask_volume', NUMBER), ('bid', NUMBER), ('bid_whole_lot_volume', NUMBER),
               ('bid_volume', NUMBER), ('last', NUMBER), ('last_volume', NUMBER),
               ('volume_today', NUMBER), ('volume_24h', NUMBER), ('vwap_today', NUMBER),
               ('vwap_24h', NUMBER), ('trades_today', INTEGER), ('trades_24h', INTEGER),
               ('low_today', NUMBER), ('low_24h', NUMBER), ('high_today', NUMBER),
               ('high_24h', NUMBER), ('open', NUMBER)),
    'asset_pairs': (('pair', TEXT), ('altname', TEXT), ('wsname', TEXT), ('base', TEXT),
                    ('quote', TEXT), ('aclass_base', TEXT), ('aclass_quote', TEXT),
                    ('lot', TEXT), ('pair_decimals', INTEGER), ('cost_decimals', INTEGER),
                    ('lot_decimals', INTEGER), ('lot_multiplier', INTEGER),
                    ('ordermin', NUMBER), ('costmin', NUMBER), ('tick_size', NUMBER),
                    ('fees', OTHER), ('fees_maker', OTHER), ('fee_volume_currency', TEXT),
                    ('leverage_buy', OTHER), ('leverage_sell', OTHER),
                    ('margin_call', INTEGER), ('margin_stop', INTEGER), ('status', TEXT)),
    'balance': (('asset', TEXT), ('balance', NUMBER)),
    'ledgers': (('time', TIME), ('id', TEXT), ('refid', TEXT), ('type', TEXT),
                ('subtype', TEXT), ('aclass', TEXT), ('asset', TEXT), ('amount', NUMBER),
                ('fee', NUMBER), ('balance', NUMBER)),
    'trades_history': (('time', TIME), ('txid', TEXT), ('ordertxid', TEXT), ('postxid', TEXT),
                       ('pair', TEXT), ('type', TEXT), ('ordertype', TEXT), ('price', NUMBER),
                       ('cost', NUMBER), ('fee', NUMBER), ('vol', NUMBER), ('margin', NUMBER),
                       ('leverage', TEXT), ('misc', TEXT), ('maker', FLAG)),
    'closed_orders': (('closetm', TIME), ('txid', TEXT), ('status', TEXT), ('reason', TEXT),
                      ('opentm', TIME), ('starttm', TIME), ('expiretm', TIME),
                      ('userref', INTEGER), ('refid', TEXT), ('descr_pair', TEXT),
                      ('descr_type', TEXT), ('descr_ordertype', TEXT),
                      ('descr_price', NUMBER), ('descr_price2', NUMBER),
                      ('descr_leverage', TEXT), ('descr_order', TEXT), ('descr_close', TEXT),
                      ('vol', NUMBER), ('vol_exec', NUMBER), ('cost', NUMBER), ('fee', NUMBER),
                      ('price', NUMBER), ('stopprice', NUMBER), ('limitprice', NUMBER),
                      ('misc', TEXT), ('oflags', TEXT), ('timeinforce', TEXT)),
}

#: Ticker's lists, by Kraken's key, and the column each member becomes.
TICKER_FIELDS = {
    'a': ('ask', 'ask_whole_lot_volume', 'ask_volume'),
    'b': ('bid', 'bid_whole_lot_volume', 'bid_volume'),
    'c': ('last', 'last_volume'),
    'v': ('volume_today', 'volume_24h'),
    'p': ('vwap_today', 'vwap_24h'),
    't': ('trades_today', 'trades_24h'),
    'l': ('low_today', 'low_24h'),
    'h': ('high_today', 'high_24h'),
    'o': ('open',),
}


# ------------------------------------------------------------------ market data

def ohlc(api: Client, pair: str, interval: int | str = 1, since: TimeLike = None, *,
         exact: bool = False) -> pandas.DataFrame:
    """Candles of one pair: open, high, low, close, vwap, volume and count.

    Kraken serves the last 720 candles of an interval, the current
    (unfinished) one included; ``since`` keeps those after it.

    :param pair: Kraken's name or altname, such as ``'XBTUSD'``
    :param interval: minutes (1, 5, 15, 30, 60, 240, 1440, 10080 or 21600),
        or a duration such as ``'1h'``, ``'15min'`` or ``'1D'``
    :param since: a time (:data:`TimeLike`) or a duration back from now, such as ``'6h'``
    :returns: one row per candle, indexed by its start time
    """
    pd = _pandas()
    params = {'pair': pair, 'interval': _minutes(pd, interval)}
    if since is not None:
        params['since'] = _whole(_since(pd, since))
    return _paged(api, 'OHLC', params, True, False,
                  lambda found: _lists(pd, 'ohlc', found, exact))


def trades(api: Client, pair: str, since: TimeLike = None, *, exact: bool = False,
           pace: bool = True, progress: bool | None = None) -> pandas.DataFrame:
    """Public trades of one pair: every page from ``since`` to now, or Kraken's last 1000.

    :param since: a time or a duration back from now, such as ``'2h'``
    :param pace: see :func:`krakenex.paging.rows`: one call a second unless the API paces
    :param progress: see :func:`krakenex.paging.rows`
    :returns: price, volume, side (``b``/``s``), type (``m``/``l``), misc, trade_id
    """
    pd = _pandas()
    params = {'pair': pair}
    if since is not None:
        params['since'] = _whole(_since(pd, since))
    return _paged(api, 'Trades', params, pace, progress,
                  lambda found: _lists(pd, 'trades', found, exact))


def spread(api: Client, pair: str, since: TimeLike = None, *, exact: bool = False,
           pace: bool = True) -> pandas.DataFrame:
    """Best bid and ask of one pair over time (Kraken keeps about the last 200).

    :param since: a time or a duration back from now
    :returns: bid and ask, indexed by time
    """
    pd = _pandas()
    params = {'pair': pair}
    if since is not None:
        params['since'] = _whole(_since(pd, since))
    return _paged(api, 'Spread', params, pace, False,
                  lambda found: _lists(pd, 'spread', found, exact))


def depth(api: Client, pair: str, count: int = 100, *, exact: bool = False) -> pandas.DataFrame:
    """The order book of one pair: asks from the best up, then bids from the best down.

    :param count: levels per side (Kraken allows 1 to 500)
    :returns: side (``ask``/``bid``), price and volume, indexed by each level's last change
    """
    pd = _pandas()

    def build(result: Mapping[str, Any]) -> pandas.DataFrame:
        records = [{'side': side, 'price': level[0], 'volume': level[1], 'time': level[2]}
                   for book in result.values()
                   for side, levels in (('ask', book.get('asks', [])),
                                        ('bid', book.get('bids', [])))
                   for level in levels]
        return _frame(pd, 'depth', records, exact, sort=False)
    return _single(api, 'Depth', {'pair': pair, 'count': count}, build)


def ticker(api: Client, pair: str | Iterable[str] | None = None, *,
           exact: bool = False) -> pandas.DataFrame:
    """Best prices, last trade, volumes and ranges: one row per pair (all pairs by default).

    "Today" starts at midnight UTC; the ``_24h`` columns cover the last 24 hours.

    :param pair: one pair, several, or ``None`` for every pair
    :returns: one row per pair, indexed by Kraken's pair name
    """
    pd = _pandas()

    def build(result: Mapping[str, Any]) -> pandas.DataFrame:
        records = []
        for name, fields in result.items():
            record: dict[str, Any] = {'pair': name}
            for key, value in fields.items():
                names = TICKER_FIELDS.get(key)
                if names is None:
                    record[key] = value  # a field Kraken added
                else:
                    values = value if isinstance(value, list) else [value]
                    record.update(zip(names, values, strict=False))
            records.append(record)
        return _frame(pd, 'ticker', records, exact)
    return _single(api, 'Ticker', _pairs(pair), build)


def asset_pairs(api: Client, pair: str | Iterable[str] | None = None, *,
                exact: bool = False) -> pandas.DataFrame:
    """Tradable pairs: names, base and quote assets, decimals, minimums and fees.

    :param pair: one pair, several, or ``None`` for every pair
    :returns: one row per pair, indexed by Kraken's pair name
    """
    pd = _pandas()

    def build(result: Mapping[str, Any]) -> pandas.DataFrame:
        return _frame(pd, 'asset_pairs', [{'pair': name, **fields}
                                          for name, fields in result.items()], exact)
    return _single(api, 'AssetPairs', _pairs(pair), build)


# ------------------------------------------------------------------ account data

def balance(api: Client, *, exact: bool = False) -> pandas.DataFrame:
    """The account's balance of every asset it holds.

    :returns: one row per asset, indexed by Kraken's asset name, column ``balance``
    """
    pd = _pandas()

    def build(result: Mapping[str, Any]) -> pandas.DataFrame:
        return _frame(pd, 'balance', [{'asset': a, 'balance': b} for a, b in result.items()],
                      exact)
    return _single(api, 'Balance', {}, build)


def ledgers(api: Client, asset: str | Iterable[str] | None = None, type: str | None = None, *,
            since: TimeLike = None, start: TimeLike = None, end: TimeLike = None,
            exact: bool = False, pace: bool = True, progress: bool | None = None,
            **params: Any) -> pandas.DataFrame:
    """Every ledger entry (every page), or those in a window.

    :param asset: one asset or several, such as ``'XXBT'``; all by default
    :param type: Kraken's entry type: ``'trade'``, ``'deposit'``, ``'withdrawal'``, ...
    :param since: a time or a duration back from now, such as ``'30D'``: entries after it
    :param start: entries after this time or ledger id (exclusive)
    :param end: entries up to this time or ledger id (inclusive)
    :param pace: see :func:`krakenex.paging.rows`: under Kraken's starter tier
        unless the API object paces calls itself
    :param progress: see :func:`krakenex.paging.rows`
    :param params: more of Kraken's parameters, such as ``aclass``
    :returns: id, refid, type, subtype, aclass, asset, amount, fee, balance, indexed by time
    """
    pd = _pandas()
    if asset is not None:
        params['asset'] = asset if isinstance(asset, str) else ','.join(asset)
    if type is not None:
        params['type'] = type
    _window(pd, params, since, start, end)
    return _paged(api, 'Ledgers', params, pace, progress,
                  lambda found: _by_id(pd, 'ledgers', 'id', found, exact))


def trades_history(api: Client, *, since: TimeLike = None, start: TimeLike = None,
                   end: TimeLike = None, exact: bool = False, pace: bool = True,
                   progress: bool | None = None, **params: Any) -> pandas.DataFrame:
    """The account's own trades (every page), or those in a window.

    Windows and pacing as in :func:`ledgers`; ``params`` may hold Kraken's
    ``type``, ``trades`` or ``ledgers``.

    :returns: txid, ordertxid, pair, type, ordertype, price, cost, fee, vol, ...,
        indexed by time
    """
    pd = _pandas()
    _window(pd, params, since, start, end)
    return _paged(api, 'TradesHistory', params, pace, progress,
                  lambda found: _by_id(pd, 'trades_history', 'txid', found, exact))


def closed_orders(api: Client, *, since: TimeLike = None, start: TimeLike = None,
                  end: TimeLike = None, exact: bool = False, pace: bool = True,
                  progress: bool | None = None, **params: Any) -> pandas.DataFrame:
    """The account's closed and canceled orders (every page), or those in a window.

    The order description ``descr`` becomes the columns ``descr_pair``,
    ``descr_type``, ``descr_price``, ... Windows and pacing as in
    :func:`ledgers`; ``params`` may hold Kraken's ``trades``, ``userref``,
    ``cl_ord_id`` or ``closetime``.

    :returns: one row per order, indexed by its close time ``closetm``
    """
    pd = _pandas()
    _window(pd, params, since, start, end)
    return _paged(api, 'ClosedOrders', params, pace, progress,
                  lambda found: _by_id(pd, 'closed_orders', 'txid', found, exact))


# ------------------------------------------------------------------ fetching

def _pandas() -> Any:
    """pandas, or the one-line error that names the extra."""
    try:
        import pandas
    except ImportError:
        raise ImportError(needs('krakenex.frames', 'pandas')) from None
    return pandas


def _single(api: Any, method: str, params: dict[str, Any],
            build: Callable[[Any], pandas.DataFrame]) -> Any:
    """One call, its result made into a frame (awaitable for an async client)."""
    query = api.query_private if methods.METHODS[method].private else api.query_public
    if paging.is_async(api):
        async def fetch() -> pandas.DataFrame:
            return build(paging.checked_result(method, await query(method, params)))
        return fetch()
    return build(paging.checked_result(method, query(method, params)))


def _paged(api: Any, method: str, params: dict[str, Any], pace: bool, progress: bool | None,
           build: Callable[[list[paging.Row]], pandas.DataFrame]) -> Any:
    """Every page's rows, made into a frame (awaitable for an async client)."""
    found = paging.rows(api, method, params, pace=pace, progress=progress)
    if paging.is_async(api):
        async def fetch() -> pandas.DataFrame:
            return build([row async for row in found])
        return fetch()
    return build(list(found))


def _pairs(pair: str | Iterable[str] | None) -> dict[str, Any]:
    if pair is None:
        return {}
    return {'pair': pair if isinstance(pair, str) else ','.join(pair)}


# ------------------------------------------------------------------ times

def _since(pd: Any, value: TimeLike) -> Decimal:
    """A time, or a duration back from now, as Unix seconds."""
    if isinstance(value, (dt.timedelta, pd.Timedelta)):
        return Decimal(repr(time.time())) - Decimal(repr(pd.Timedelta(value).total_seconds()))
    if isinstance(value, str) and not _is_number(value):
        try:
            delta = pd.Timedelta(value)
        except ValueError:
            return _seconds(pd, value)
        return _since(pd, delta)
    return _seconds(pd, value)


def _seconds(pd: Any, value: TimeLike) -> Decimal:
    """Unix seconds of a number, a datetime or Timestamp (naive means UTC), or ISO text."""
    from .errors import KrakenUsageError

    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str) and _is_number(value):
        return Decimal(value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise KrakenUsageError(f'{value!r} is not a time: give Unix seconds, a datetime, '
                               f'a pandas Timestamp or ISO text such as 2026-01-31') from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize('UTC')
    return Decimal(stamp.value) / 10**9


def _is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except ArithmeticError:
        return False


def _whole(seconds: Decimal) -> str:
    return str(int(seconds))


def _window(pd: Any, params: dict[str, Any], since: TimeLike, start: TimeLike,
            end: TimeLike) -> None:
    """Put ``start`` and ``end`` (times or ids) into Kraken's parameters."""
    from .errors import KrakenUsageError

    if since is not None and start is not None:
        raise KrakenUsageError('give since or start, not both: both say where the rows begin')
    if since is not None:
        params['start'] = f'{_since(pd, since):.4f}'
    for name, value in (('start', start), ('end', end)):
        if value is not None:
            params[name] = _bound(pd, value)


def _bound(pd: Any, value: TimeLike) -> str:
    """Unix seconds as Kraken shows times (4 decimals), or an id (ledger id, txid) as it is."""
    if isinstance(value, str) and KRAKEN_ID.match(value):
        return value
    return f'{_seconds(pd, value):.4f}'


def _minutes(pd: Any, interval: int | str) -> int:
    if isinstance(interval, int):
        return interval
    return int(pd.Timedelta(interval).total_seconds() // 60)


# ------------------------------------------------------------------ building frames

def _lists(pd: Any, name: str, found: list[paging.Row], exact: bool) -> pandas.DataFrame:
    """Rows that are lists (OHLC, Trades, Spread): Kraken's columns by position, named."""
    method = {'ohlc': 'OHLC', 'trades': 'Trades', 'spread': 'Spread'}[name]
    names = paging.SINCE_PAGED[method][0]
    records = []
    for _pair, row in found:
        record = dict(zip(names, row, strict=False))
        record.update((f'column{n + 1}', cell) for n, cell in enumerate(row)
                      if n >= len(names))  # a column Kraken added
        records.append(record)
    return _frame(pd, name, records, exact)


def _by_id(pd: Any, name: str, id_column: str, found: list[paging.Row],
           exact: bool) -> pandas.DataFrame:
    """Rows by id (Ledgers, TradesHistory, ClosedOrders); nested dicts become prefixed columns."""
    records = []
    for row_id, row in found:
        record: dict[str, Any] = {id_column: row_id}
        for key, value in row.items():
            if isinstance(value, dict):
                record.update((f'{key}_{k}', v) for k, v in value.items())
            else:
                record[key] = value
        records.append(record)
    return _frame(pd, name, records, exact)


def _frame(pd: Any, name: str, records: list[dict[str, Any]], exact: bool,
           sort: bool = True) -> pandas.DataFrame:
    """The known columns of ``name``, converted, then any others as Kraken sent them."""
    known = COLUMNS[name]
    names = {column for column, _ in known}
    others = dict.fromkeys(k for record in records for k in record if k not in names)
    data = {column: _column(pd, kind, [r.get(column) for r in records], exact)
            for column, kind in known}
    data.update((column, pd.Series([r.get(column) for r in records], dtype=object))
                for column in others)
    index, index_kind = known[0]
    frame = pd.DataFrame(data).set_index(index)
    if index_kind == TIME and sort:
        frame = frame.sort_index(kind='stable')
    return frame


def _empty(value: Any) -> bool:
    return value is None or value == ''


def _column(pd: Any, kind: str, values: list[Any], exact: bool) -> Any:
    """One column as a Series, its values converted by kind."""
    if kind == NUMBER and exact:
        return pd.Series([None if _empty(v) else Decimal(str(v)) for v in values], dtype=object)
    if kind == NUMBER:
        return pd.Series([float('nan') if _empty(v) else float(v) for v in values],
                         dtype='float64')
    if kind == INTEGER:
        nullable = any(_empty(v) for v in values)
        return pd.Series([None if _empty(v) else int(v) for v in values],
                         dtype='Int64' if nullable else 'int64')
    if kind == TIME:
        # Nanoseconds from the decimal text, so that 0.0001 s steps survive; 0 means none.
        stamps = [None if _empty(v) or Decimal(str(v)) == 0 else int(Decimal(str(v)) * 10**9)
                  for v in values]
        return pd.Series(pd.to_datetime(stamps, unit='ns', utc=True).as_unit('ns'))
    if kind == FLAG:
        return pd.Series([bool(v) for v in values], dtype=bool)
    if kind == TEXT:  # pandas' default for text: object on pandas 2, str on pandas 3
        return pd.Series(values, dtype=pd.Series(['']).dtype)
    return pd.Series(values, dtype=object)
