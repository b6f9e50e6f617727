"""Kraken's per-pair trading-engine rate limit: tiers, costs and age penalties; no I/O.

Kraken meters adding, amending, editing and cancelling orders with one counter
per account and pair, whichever key or protocol (REST, WebSocket, FIX) sends
them. A call adds its cost; the counter decays every second; a call that would
take it past the tier's threshold is refused with ``EOrder:Rate limit exceeded``.
Acting on a young order costs more. Source:
https://docs.kraken.com/api/docs/guides/spot-ratelimits
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .pacing import parse_tier

__all__ = ['TIERS', 'AMEND_PENALTY', 'EDIT_PENALTY', 'CANCEL_PENALTY', 'METHODS',
           'WORST_AGE', 'KEEP_AGE', 'NOTE_AGE', 'parse_engine', 'penalty', 'cost', 'counter_name',
           'order_ids', 'added_ids']

#: The engine's counter per tier: (threshold, decay per second).
TIERS: dict[str, tuple[float, float]] = {
    'starter': (60.0, 1.0),
    'intermediate': (125.0, 2.34),
    'pro': (180.0, 3.75),
}

#: The extra cost of acting on an order by its age: (younger than seconds, extra cost).
AMEND_PENALTY = ((5, 3), (10, 2), (15, 1))
EDIT_PENALTY = ((5, 6), (10, 5), (15, 4), (45, 2), (90, 1))
CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))

#: The calls the engine meters.
METHODS = frozenset({'AddOrder', 'AddOrderBatch', 'AmendOrder', 'EditOrder', 'CancelOrder'})

#: The age of an order krakenex did not see added: the youngest, so the worst case.
WORST_AGE = 0.0
#: Seconds after which no penalty applies.
KEEP_AGE = float(CANCEL_PENALTY[-1][0])
#: Seconds an order's age is kept: well past :data:`KEEP_AGE`, so an order known to be
#: older is charged 0 on its own pair rather than the worst case on an unknown one.
NOTE_AGE = 3600.0


def parse_engine(engine: str | Sequence[float | str]) -> tuple[float, float]:
    """Read an engine tier as ``(threshold, decay per second)``.

    :param engine: ``'starter'``, ``'intermediate'``, ``'pro'``, ``'MAX,DECAY'``, or a pair
    :raises ValueError: for an unknown name, or values that are not finite and above zero
    """
    return parse_tier(engine, TIERS, what='trading-engine tier', limit='threshold',
                      example='60,1')


def penalty(table: Sequence[tuple[int, int]], age: float) -> int:
    """The extra cost of acting on an order ``age`` seconds old, by ``table``."""
    for younger_than, extra in table:
        if age < younger_than:
            return extra
    return 0


def order_ids(method: str, data: Mapping[str, Any]) -> list[str]:
    """The orders a call acts on, as named in its parameters (txid, userref or cl_ord_id)."""
    if method == 'AddOrder' or method == 'AddOrderBatch':
        return []
    for field in ('txid', 'cl_ord_id', 'userref'):
        value = data.get(field)
        if value not in (None, ''):
            return [str(value)]
    return []


def added_ids(method: str, data: Mapping[str, Any], reply: Any) -> list[str]:
    """The ids of the orders a successful AddOrder, AddOrderBatch, AmendOrder or EditOrder
    added or changed: Kraken's txids in ``reply``, and the cl_ord_id and userref sent."""
    found = order_ids(method, data)
    if isinstance(reply, Mapping):
        txid = reply.get('txid')
        found += [str(t) for t in txid] if isinstance(txid, list) else [str(txid)] if txid else []
        for row in reply.get('orders') or []:
            if isinstance(row, Mapping) and row.get('txid'):
                found.append(str(row['txid']))
    rows = data.get('orders') if method == 'AddOrderBatch' else [data]
    for row in rows if isinstance(rows, Sequence) else []:
        if isinstance(row, Mapping):
            found += [str(row[f]) for f in ('cl_ord_id', 'userref') if row.get(f)]
    return found


def cost(method: str, data: Mapping[str, Any], age: float) -> float:
    """What ``method`` adds to the engine's counter, acting on an order ``age`` seconds old.

    AddOrder 1; AddOrderBatch half the number of its orders; AmendOrder 1 plus
    :data:`AMEND_PENALTY`; EditOrder 1 plus :data:`EDIT_PENALTY`; CancelOrder
    :data:`CANCEL_PENALTY` alone.
    """
    if method == 'AddOrder':
        return 1.0
    if method == 'AddOrderBatch':
        orders = data.get('orders')
        return len(orders) / 2 if isinstance(orders, Sequence) else 1.0
    if method == 'AmendOrder':
        return 1.0 + penalty(AMEND_PENALTY, age)
    if method == 'EditOrder':
        return 1.0 + penalty(EDIT_PENALTY, age)
    if method == 'CancelOrder':
        return float(penalty(CANCEL_PENALTY, age))
    return 0.0


def counter_name(pair: str) -> str:
    """The name of the engine's counter of ``pair`` in the key's store."""
    return f'engine:{pair}'
