"""Paging and tables for the ``krakenex`` command: ``--all`` and ``--csv``.

Kraken pages its history two ways (kraken-protocol.md §6.1, §6.2, §9):
``ClosedOrders``, ``TradesHistory`` and ``Ledgers`` take an offset ``ofs`` and
answer 50 rows a page, newest first, with the total in ``count``; ``Trades``,
``OHLC`` and ``Spread`` answer the rows after ``since`` and a cursor ``last``
to pass as the next ``since``. :func:`fetch_all` follows either to the end and
merges the pages so that every row appears exactly once. :func:`table` turns a
result into rows for the csv module. Standard library only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import Any, TextIO

__all__ = ['PAGED', 'TABLES', 'Progress', 'fetch_all', 'table']

#: The ofs-paged methods and the member of their result that holds the rows by id.
OFS_PAGED = {'ClosedOrders': 'closed', 'TradesHistory': 'trades', 'Ledgers': 'ledger'}

#: Rows per page of the ofs-paged methods, as Kraken serves them.
PAGE_SIZE = 50

#: The since/last-paged methods: their result is ``{PAIR: rows, 'last': cursor}``.
#: Each row is a list; these are its columns, from Kraken's docs, and where its time is.
SINCE_PAGED: dict[str, tuple[tuple[str, ...], int]] = {
    'OHLC': (('time', 'open', 'high', 'low', 'close', 'vwap', 'volume', 'count'), 0),
    'Trades': (('price', 'volume', 'time', 'side', 'type', 'misc', 'trade_id'), 2),
    'Spread': (('time', 'bid', 'ask'), 0),
}

#: Every method ``--all`` can page.
PAGED = (*OFS_PAGED, *SINCE_PAGED)

#: Methods whose result is a table of rows by id, and the member holding it
#: (``None``: the result itself is the table).
BY_ID: dict[str, str | None] = {
    **OFS_PAGED, 'OpenOrders': 'open', 'QueryOrders': None, 'QueryTrades': None,
    'QueryLedgers': None, 'OpenPositions': None,
}

#: Every method ``--csv`` can write.
TABLES = (*SINCE_PAGED, *BY_ID)

Call = Callable[[str, dict[str, Any]], Any]
Row = list[Any]


class Progress:
    """A one-line progress bar on a terminal: pages fetched, rows so far, of how many.

    :param label: what is fetched, shown first (the method name)
    :param stream: where to draw the bar, or ``None`` for no bar at all
    """

    width = 30

    def __init__(self, label: str, stream: TextIO | None) -> None:
        self.label = label
        self.stream = stream
        self.drawn = False

    def update(self, pages: int, rows: int, total: int | None) -> None:
        if self.stream is None:
            return
        if total:
            filled = min(self.width, rows * self.width // total)
            bar = f'[{"#" * filled}{"." * (self.width - filled)}] {rows}/{total} rows'
        else:
            bar = f'{rows} rows'
        text = f'{self.label}: {bar}, {pages} page{"s" if pages != 1 else ""}'
        self.stream.write(f'\r{text}\x1b[K')
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the bar's line, so that what follows starts on a line of its own."""
        if self.stream is not None and self.drawn:
            self.stream.write('\n')
            self.stream.flush()


def fetch_all(call: Call, method: str, data: Mapping[str, Any], progress: Progress) -> Any:
    """Fetch every page of ``method`` and return one result holding all the rows.

    :param call: sends one call and returns its ``result`` (raising on Kraken's errors)
    :param method: one of :data:`PAGED`
    :param data: the caller's parameters; ``ofs`` or ``since`` say where to start
    :param progress: told about every page
    :returns: a result shaped like one page's, with the rows of all of them
    """
    try:
        if method in OFS_PAGED:
            return _fetch_by_offset(call, method, dict(data), progress)
        return _fetch_since(call, method, dict(data), progress)
    finally:
        progress.close()


def _fetch_by_offset(call: Call, method: str, params: dict[str, Any],
                     progress: Progress) -> dict[str, Any]:
    """Page with ``ofs`` until ``count`` rows are in or a page brings nothing new."""
    member = OFS_PAGED[method]
    start = ofs = int(params.get('ofs') or 0)
    rows: dict[str, Any] = {}
    result: dict[str, Any] = {}
    pages = 0
    while True:
        params['ofs'] = ofs
        result = call(method, params)
        page: dict[str, Any] = result.get(member) or {}
        pages += 1
        before = len(rows)
        for row_id, row in page.items():
            rows.setdefault(row_id, row)
        count = result.get('count')
        progress.update(pages, len(rows), None if count is None else int(count) - start)
        ofs += len(page)
        # A new entry during paging shifts the pages by one: the overlap is dropped above.
        if len(rows) == before or (count is not None and ofs >= int(count)):
            break
    return {**result, member: rows}


def _fetch_since(call: Call, method: str, params: dict[str, Any],
                 progress: Progress) -> dict[str, Any]:
    """Page with ``since=last`` until a page brings nothing new or reaches the present."""
    time_column = SINCE_PAGED[method][1]
    started = time.time()
    merged: dict[str, dict[Hashable, Row]] = {}
    last: Any = None
    pages = 0
    while True:
        result = call(method, params)
        pages += 1
        new = 0
        newest = 0.0
        for pair, page in result.items():
            if pair == 'last':
                continue
            rows = merged.setdefault(pair, {})
            for row in page:
                key = _row_key(method, row)
                if key not in rows:
                    new += 1
                rows[key] = row  # a later copy wins: OHLC's current candle changes
                newest = max(newest, float(row[time_column]))
        last = result.get('last')
        progress.update(pages, sum(map(len, merged.values())), None)
        if not new or last is None or str(last) == str(params.get('since')) or \
                newest >= started:
            break
        params['since'] = last
    return {**{pair: list(rows.values()) for pair, rows in merged.items()}, 'last': last}


def _row_key(method: str, row: Row) -> Hashable:
    """What makes a row unique: a candle's time, a trade's id, else the whole row."""
    if method == 'OHLC':
        return str(row[0])
    if method == 'Trades' and len(row) > 6:
        return str(row[6])
    return tuple(str(cell) for cell in row)


def table(method: str, result: Any) -> tuple[list[str], list[list[str]]]:
    """Turn a result of one of :data:`TABLES` into a header and rows of text.

    Rows by id (Ledgers, TradesHistory, ClosedOrders, ...) get an ``id``
    column first, then every field any row has; nested fields such as an
    order's ``descr`` become ``descr.order``, ``descr.price`` and so on.

    :raises ValueError: if the result does not have the shape of that method's table
    """
    if method in SINCE_PAGED:
        return _table_of_lists(method, result)
    member = BY_ID[method]
    rows = result.get(member) if member and isinstance(result, dict) else result
    if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
        raise ValueError(f'the result of {method} is not a table of rows by id')
    flat = [{'id': row_id, **_flatten(row)} for row_id, row in rows.items()]
    header = list(dict.fromkeys(name for row in flat for name in row)) or ['id']
    return header, [[_cell(row.get(name)) for name in header] for row in flat]


def _table_of_lists(method: str, result: Any) -> tuple[list[str], list[list[str]]]:
    """OHLC, Trades and Spread: the rows of each pair; a ``pair`` column if there are several."""
    if not isinstance(result, dict):
        raise ValueError(f'the result of {method} is not a table of rows')
    pairs = {pair: rows for pair, rows in result.items() if pair != 'last'}
    if not all(isinstance(rows, list) for rows in pairs.values()):
        raise ValueError(f'the result of {method} is not a table of rows')
    width = max((len(row) for rows in pairs.values() for row in rows), default=0)
    columns = list(SINCE_PAGED[method][0])
    columns += [f'column{n + 1}' for n in range(len(columns), width)]
    several = len(pairs) > 1
    header = (['pair'] if several else []) + columns[:width or len(columns)]
    body = [([pair] if several else []) + [_cell(cell) for cell in row]
            for pair, rows in pairs.items() for row in rows]
    return header, body


def _flatten(row: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{name}.'))
        else:
            flat[f'{prefix}{name}'] = value
    return flat


def _cell(value: Any) -> str:
    """A value as CSV text: numbers exactly as Kraken sent them, lists comma-separated."""
    if value is None:
        return ''
    if isinstance(value, Decimal):
        return format(value, 'f')  # str() would turn 0.00000001 into 1E-8
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ','.join(_cell(v) for v in value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(',', ':'), default=str)
    return str(value)
