"""Level 3 of the sandbox's book: the resting orders behind each price level.

REST ``Level3`` and the WebSocket ``level3`` channel (:mod:`krakenex.sandbox.feed`)
both list the orders that :func:`queues` makes of the levels of the synthetic
book, so the two always show the same orders: the same ids, quantities, queue
order and times. A level's orders are fixed by the pair, the side and the price,
so a level keeps its orders while it stays in the book; :func:`changes` says
which orders a move of the market adds, modifies and deletes, as the feed's
updates carry them. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache

from .market import LOT_DECIMALS, Market, PairSpec, places

__all__ = ['Level3Side', 'Event', 'resting_orders', 'queues', 'placed', 'changes']

#: One side of a level3 book: its price levels best first, each as its price's wire text
#: and its orders in queue order, (order_id, qty wire text).
Level3Side = list[tuple[str, tuple[tuple[str, str], ...]]]
#: One change of a level3 book: ('add' | 'modify' | 'delete', order_id, price, qty).
Event = tuple[str, str, str, str]


def resting_orders(market: Market, spec: PairSpec, depth: int) -> dict[str, Level3Side]:
    """The top ``depth`` price levels of both sides, order by order."""
    return queues(spec, market.top(spec, depth))


def queues(spec: PairSpec, book: dict[str, list[tuple[str, str]]]) -> dict[str, Level3Side]:
    """A book's levels (wire text, best first) order by order."""
    return {side: [(price, _orders(spec.name, side, price, qty)) for price, qty in ladder]
            for side, ladder in book.items()}


def placed(market: Market, position: int) -> int:
    """When the order at ``position`` of its level's queue was placed, in nanoseconds.

    The synthetic book's orders rest from the sandbox's start, in queue order.
    """
    return int(market.start * 1e9) + position


def changes(before: dict[str, Level3Side],
            after: dict[str, Level3Side]) -> dict[str, list[Event]]:
    """The add, modify and delete events that turn ``before`` into ``after``, by side.

    Deletes first, then quantity changes, then new orders in the order they queue, so
    that applying them in turn gives ``after`` exactly, queues included.
    """
    out: dict[str, list[Event]] = {}
    for side in ('bids', 'asks'):
        old = {oid: (price, qty) for price, orders in before[side] for oid, qty in orders}
        new = {oid: (price, qty) for price, orders in after[side] for oid, qty in orders}
        events = [('delete', oid, *old[oid]) for oid in old if oid not in new]
        events += [('modify', oid, *new[oid]) for oid in new
                   if oid in old and old[oid] != new[oid]]
        events += [('add', oid, *new[oid]) for oid in new if oid not in old]
        out[side] = events
    return out


@lru_cache(maxsize=1 << 14)
def _orders(pair: str, side: str, price: str, qty: str) -> tuple[tuple[str, str], ...]:
    """The resting orders that make up one level of the synthetic book, in queue order.

    Two orders a level, a third of the quantity and the rest; their ids are fixed by
    the pair, the side and the price, so a level keeps its orders while it stays.
    """
    total = Decimal(qty)
    first = (total / 3).quantize(Decimal(1).scaleb(-LOT_DECIMALS), ROUND_DOWN)
    parts = [first, total - first] if first else [total]
    return tuple((_order_id(f'{pair}/{side}/{price}/{n}'), places(part, LOT_DECIMALS))
                 for n, part in enumerate(parts))


def _order_id(seed: str) -> str:
    raw = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    return f'O{raw[:5]}-{raw[5:10]}-{raw[10:16]}'
