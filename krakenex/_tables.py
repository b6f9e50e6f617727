"""Tables for the ``krakenex`` command's ``--csv``: a result as a header and rows of text.

Rows by id (Ledgers, TradesHistory, ClosedOrders, ...) get an ``id`` column
first, then every field any row has, nested fields flattened; rows that are
lists (OHLC, Trades, Spread) get Kraken's column names from
:data:`krakenex.paging.SINCE_PAGED`. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .paging import OFS_PAGED, SINCE_PAGED

__all__ = ['TABLES', 'table']

#: Methods whose result is a table of rows by id, and the member holding it
#: (``None``: the result itself is the table).
BY_ID: dict[str, str | None] = {
    **OFS_PAGED, 'OpenOrders': 'open', 'QueryOrders': None, 'QueryTrades': None,
    'QueryLedgers': None, 'OpenPositions': None,
}

#: Every method ``--csv`` can write.
TABLES = (*SINCE_PAGED, *BY_ID)


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
