"""Kraken Futures' REST endpoints: where each lives, its verb, whether it changes state, its cost.

One table, from Kraken's Futures REST reference and its rate-limit guide
(https://docs.kraken.com/api/docs/guides/futures-rate-limits). The clients use
it to pick the verb, to decide what may be retried and to pace calls; the
sandbox uses it to keep Kraken's budgets. Standard library only. Kraken
decommissions all of them on 1 March 2027 (:mod:`krakenex.futures.sunset`);
doc/futures-migration.rst gives each one's Unified WebSocket counterpart, or none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ['DEFAULT_URI', 'SURFACES', 'BUDGET', 'HISTORY_POOL', 'Endpoint', 'ENDPOINTS',
           'known', 'unknown_message', 'lookup', 'urlpath', 'cost', 'batch']

#: Kraken Futures' REST server.
DEFAULT_URI = 'https://futures.kraken.com'

#: Where each family of endpoints lives under the server.
SURFACES = {
    'derivatives': '/derivatives/api/v3/',
    'history': '/api/history/v3/',
    'charts': '/api/charts/v1/',
}

#: The ``/derivatives`` budget: 500 per 10 seconds, as (maximum, decay per second).
BUDGET = (500.0, 50.0)
#: The ``/history`` pool: 100 tokens, refilled at 100 per 10 minutes.
HISTORY_POOL = (100.0, 100.0 / 600.0)


class Endpoint(NamedTuple):
    """One of Kraken Futures' REST endpoints."""

    #: The name after the surface's path, such as ``'sendorder'`` or ``'orders/status'``.
    name: str
    #: The HTTP verb Kraken expects.
    verb: str
    #: Whether it needs a key (``APIKey`` and ``Authent`` headers).
    private: bool
    #: Whether a call can change the account; such a call is never sent twice.
    changes_state: bool
    #: What a call takes from the budget of its surface (see :func:`cost`).
    cost: int
    #: ``'derivatives'``, ``'history'`` or ``'charts'``.
    surface: str = 'derivatives'


def _public(name: str, surface: str = 'derivatives') -> Endpoint:
    return Endpoint(name, 'GET', False, False, 0, surface)


def _read(name: str, cost: int, surface: str = 'derivatives') -> Endpoint:
    return Endpoint(name, 'GET', True, False, cost, surface)


def _write(name: str, cost: int, verb: str = 'POST') -> Endpoint:
    return Endpoint(name, verb, True, True, cost)


#: Kraken's endpoints by name; costs from Kraken's "Futures Rate Limits" page.
ENDPOINTS: Mapping[str, Endpoint] = {e.name: e for e in (
    _public('instruments'), _public('instruments/status'), _public('tickers'),
    _public('orderbook'), _public('history'), _public('feeschedules'),
    _public('historical-funding-rates'),
    _read('accounts', 2), _read('openpositions', 2), _read('openorders', 2),
    _read('fills', 2), _read('notifications', 2), _read('unwindqueue', 200),
    _read('leveragepreferences', 2), _read('pnlpreferences', 2), _read('subaccounts', 2),
    _read('self-trade-strategy', 2), _read('feeschedules/volumes', 2),
    # orders/status is a POST that reads: Kraken documents it under Order Management.
    Endpoint('orders/status', 'POST', True, False, 1),
    _write('sendorder', 10), _write('editorder', 10), _write('cancelorder', 10),
    _write('batchorder', 9), _write('cancelallorders', 25),
    _write('cancelallordersafter', 25), _write('transfer', 10),
    _write('transfer/subaccount', 10), _write('withdrawal', 100),
    _read('executions', 1, 'history'), _read('orders', 1, 'history'),
    _read('triggers', 1, 'history'), _read('account-log', 1, 'history'),
    _read('accountlogcsv', 6, 'history'),
)}

#: Setting a preference is a PUT that changes state and costs 10 instead of 2.
_PUT_COST = 10


def known(name: str, surface: str = 'derivatives') -> Endpoint | None:
    """The endpoint called ``name`` on ``surface``, or None if Kraken's table lacks it.

    A path below a public endpoint of the table (``tickers/PF_XBTUSD``,
    ``instruments/PF_XBTUSD/status``) is that endpoint's, under its own name.
    Every path of the charts surface (``trade/PF_XBTUSD/1h``) is known.
    """
    if surface == 'charts':
        return _public(name, surface)
    endpoint = ENDPOINTS.get(name)
    if endpoint is not None:
        return endpoint if endpoint.surface == surface else None
    family = ENDPOINTS.get(name.split('/', 1)[0])
    if family is None or family.surface != surface or family.private or '/' not in name:
        return None
    return family._replace(name=name)


def unknown_message(name: str, surface: str = 'derivatives') -> str:
    """Say that ``name`` is not an endpoint of ``surface``, suggesting those it resembles."""
    import difflib

    names = [e.name for e in ENDPOINTS.values() if e.surface == surface]
    close = [n for n in names if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f' (did you mean {" or ".join(close)}?)' if close else ''
    where = SURFACES[surface].rstrip('/')
    return f'{name!r} is not one of Kraken Futures\' endpoints under {where}{hint}'


def lookup(name: str, surface: str = 'derivatives', *, private: bool = True) -> Endpoint:
    """Return the endpoint called ``name``, or a safe guess for one not in the table.

    An unknown public name (``tickers/PF_XBTUSD``) is a GET; an unknown private
    one is assumed to change state: POST, never re-sent, cost 10 (1 on
    ``/history``, which only reads).
    """
    endpoint = known(name, surface)
    if endpoint is not None:
        return endpoint
    if not private:
        return _public(name, surface)
    if surface == 'history':
        return _read(name, 1, 'history')
    return _write(name, 10)


def urlpath(endpoint: Endpoint) -> str:
    """The URL path of an endpoint, such as ``/derivatives/api/v3/sendorder``."""
    return SURFACES[endpoint.surface] + endpoint.name


def cost(endpoint: Endpoint, verb: str, data: Mapping[str, Any]) -> float:
    """What a call takes from its budget, by Kraken's published costs.

    ``fills`` costs 25 with ``lastFillTime``; ``batchorder`` costs 9 plus the
    number of instructions; a preference PUT costs 10; ``account-log`` costs
    by the number of entries asked for.
    """
    if endpoint.name == 'fills' and data.get('lastFillTime') is not None:
        return 25
    if endpoint.name == 'batchorder':
        return endpoint.cost + len(batch(data))
    if verb == 'PUT' and endpoint.name in ('leveragepreferences', 'pnlpreferences',
                                           'self-trade-strategy'):
        return _PUT_COST
    if endpoint.name == 'account-log':
        try:
            count = int(data.get('count') or 500)
        except (TypeError, ValueError):
            count = 500
        return 1 if count <= 25 else 2 if count <= 50 else 3 if count <= 1000 else 6
    return endpoint.cost


def batch(data: Mapping[str, Any]) -> list[Any]:
    """The instructions of a ``batchorder`` call, whether ``json`` is a dict or its text."""
    value = data.get('json')
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    orders = value.get('batchOrder') if isinstance(value, dict) else None
    return orders if isinstance(orders, list) else []
