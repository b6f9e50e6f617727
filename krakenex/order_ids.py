"""Client order ids: the ``cl_ord_id`` (``cliOrdId``) krakenex gives an order sent unnamed.

An order whose reply is lost can only be looked up by an identifier it
carried. So, unless switched off (``client_order_ids=False`` on
:class:`krakenex.API`, :class:`krakenex.AsyncAPI`, :class:`krakenex.ws.WS`,
:class:`krakenex.ws.AsyncWS` and the futures clients), every order placed
without ``userref`` or ``cl_ord_id`` (``order_userref`` on the WebSocket;
``cliOrdId`` on Kraken Futures) gets one here, once per call, before its
first attempt.

The id is a UUID in its long form (``6d1b345e-2821-40e2-ad83-4ecb18a06876``),
one of the formats Kraken documents for ``cl_ord_id``
(https://docs.kraken.com/api/docs/guides/spot-clordid); Kraken Futures takes
a ``cliOrdId`` of up to 100 characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ['new_id', 'Naming', 'SPOT_REST', 'SPOT_WS', 'FUTURES', 'named', 'check_option']


def new_id() -> str:
    """A fresh client order id in a format every Kraken surface accepts."""
    import uuid  # here, not up front: it adds to krakenex's import time

    return str(uuid.uuid4())


class Naming(NamedTuple):
    """How one call names its orders."""

    #: The identifier krakenex adds: ``cl_ord_id`` or ``cliOrdId``.
    field: str
    #: The identifiers a user may give; an order carrying any of them is left alone.
    given: tuple[str, ...]
    #: The member holding a batch's orders, or ``None`` for a call placing one order.
    batch: str | None = None


#: Spot REST: AddOrder and each order of AddOrderBatch. EditOrder takes ``userref`` but
#: not ``cl_ord_id``; AmendOrder's ``cl_ord_id`` names the order to change, not a new one.
SPOT_REST: Mapping[str, Naming] = {
    'AddOrder': Naming('cl_ord_id', ('cl_ord_id', 'userref')),
    'AddOrderBatch': Naming('cl_ord_id', ('cl_ord_id', 'userref'), 'orders'),
}

#: WebSocket v2 and the Unified WebSocket: add_order and each order of batch_add.
SPOT_WS: Mapping[str, Naming] = {
    'add_order': Naming('cl_ord_id', ('cl_ord_id', 'order_userref')),
    'batch_add': Naming('cl_ord_id', ('cl_ord_id', 'order_userref'), 'orders'),
}

#: Kraken Futures: sendorder and each ``send`` instruction of batchorder (its ``json``).
FUTURES: Mapping[str, Naming] = {
    'sendorder': Naming('cliOrdId', ('cliOrdId',)),
    'batchorder': Naming('cliOrdId', ('cliOrdId',), 'json'),
}


def check_option(value: object) -> bool:
    """``client_order_ids=`` as given, if it is True or False.

    :raises TypeError: otherwise (the caller turns it into its usage error)
    """
    if not isinstance(value, bool):
        raise TypeError(f'client_order_ids must be True or False, not {value!r}')
    return value


def _unnamed(order: Any, naming: Naming) -> bool:
    return isinstance(order, Mapping) and all(order.get(n) is None for n in naming.given)


def named(name: str, data: Mapping[str, Any], table: Mapping[str, Naming]) -> Mapping[str, Any]:
    """``data`` with an id added to each order of call ``name`` that carries none.

    ``data`` itself is never changed: a call that adds an id gets a new mapping
    (and new orders for a batch); any other call gets ``data`` back as it is.
    """
    naming = table.get(name)
    if naming is None:
        return data
    if naming.batch is None:
        return {**data, naming.field: new_id()} if _unnamed(data, naming) else data
    if naming.batch == 'json':  # Kraken Futures: {"batchOrder": [{"order": "send", ...}]}
        return _futures_batch(data, naming)
    orders = data.get(naming.batch)
    if not isinstance(orders, (list, tuple)) or not any(_unnamed(o, naming) for o in orders):
        return data
    return {**data, naming.batch: [{**o, naming.field: new_id()} if _unnamed(o, naming) else o
                                   for o in orders]}


def _futures_batch(data: Mapping[str, Any], naming: Naming) -> Mapping[str, Any]:
    value = data.get('json')
    if isinstance(value, str):  # read as given; the futures encoder writes it out again
        from decimal import Decimal  # here, not up front: it adds to krakenex's import time

        try:
            value = json.loads(value, parse_float=Decimal)
        except ValueError:
            return data  # Kraken refuses it; nothing to name
    if not isinstance(value, Mapping):
        return data
    orders = value.get('batchOrder')
    if not isinstance(orders, list) or not any(
            _unnamed(o, naming) and o.get('order') == 'send' for o in orders):
        return data
    orders = [{**o, naming.field: new_id()} if _unnamed(o, naming) and o.get('order') == 'send'
              else o for o in orders]
    return {**data, 'json': {**value, 'batchOrder': orders}}
