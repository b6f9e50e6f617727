"""Kraken Futures' rules as pure functions: no sockets, no clock, no threads.

What the futures clients (:class:`~krakenex.futures.FuturesAPI` and
:class:`~krakenex.futures.AsyncFuturesAPI`) and the futures sandbox share:
the endpoint table (verb, public or private, state-changing, cost), the
``Authent`` signature, ``postData`` exactly as sent, the reply envelope and
Kraken's error codes, and the order statuses that mean an order was refused
although the reply says ``"result": "success"``.

Kraken's documentation: https://docs.kraken.com/api/docs/guides/futures-rest
(signing, envelope), https://docs.kraken.com/api/docs/guides/futures-rate-limits
(budgets and costs), https://docs.kraken.com/api/docs/futures-api/trading/send-order
(order statuses).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from ..errors import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidNonceError,
    InvalidOrderError,
    KrakenAPIError,
    KrakenResponseError,
    RateLimitError,
    ServiceUnavailableError,
)
from ..protocol import render

__all__ = [
    'DEFAULT_URI', 'SURFACES', 'Endpoint', 'ENDPOINTS', 'lookup', 'urlpath', 'signing_path',
    'encode', 'authent', 'cost', 'BUDGET', 'HISTORY_POOL', 'ERROR_CODES', 'TRANSIENT_CODES',
    'error_class', 'reply_error', 'order_failures', 'refusal', 'transient_reply',
    'client_order_ids',
]

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


def lookup(name: str, surface: str = 'derivatives', *, private: bool = True) -> Endpoint:
    """Return the endpoint called ``name``, or a safe guess for one not in the table.

    An unknown public name (``tickers/PF_XBTUSD``) is a GET; an unknown private
    one is assumed to change state: POST, never re-sent, cost 10 (1 on
    ``/history``, which only reads).
    """
    endpoint = ENDPOINTS.get(name)
    if endpoint is not None and endpoint.surface == surface:
        return endpoint
    if surface == 'charts' or not private:
        return _public(name, surface)
    if surface == 'history':
        return _read(name, 1, 'history')
    return _write(name, 10)


def urlpath(endpoint: Endpoint) -> str:
    """The URL path of an endpoint, such as ``/derivatives/api/v3/sendorder``."""
    return SURFACES[endpoint.surface] + endpoint.name


def signing_path(path: str) -> str:
    """The ``endpointPath`` Kraken signs: the URL path without ``/derivatives``."""
    return path.removeprefix('/derivatives')


def _text(value: Any) -> str:
    """A parameter value as Kraken reads it: plain decimals, ``true``/``false``, compact JSON."""
    if isinstance(value, (dict, list, tuple)):
        return _json(value)
    return str(render(value))


def _json(value: Any) -> str:
    """Compact JSON whose numbers are plain decimals (``0.00000001``, never ``1e-08``)."""
    if isinstance(value, dict):
        return '{' + ','.join(json.dumps(str(k)) + ':' + _json(v)
                              for k, v in value.items() if v is not None) + '}'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_json(v) for v in value) + ']'
    if isinstance(value, (float, Decimal)) and not isinstance(value, bool):
        return str(render(value))
    return json.dumps(value, separators=(',', ':'))


def encode(data: Mapping[str, Any]) -> str:
    """``postData``: the parameters URL-encoded exactly as they are sent and signed.

    Spaces become ``%20`` (Kraken's 2024 rule), ``None`` values are left out,
    numbers go in plain decimal notation, a list of plain values repeats its
    name (``orders/status``'s ``orderIds``), a dict (``batchorder``'s
    ``json``) goes as compact JSON.
    """
    pairs = []
    for name, value in data.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and not any(
                isinstance(v, (dict, list, tuple)) for v in value):
            pairs += [(name, _text(v)) for v in value]
        else:
            pairs.append((name, _text(value)))
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def authent(secret: bytes, post_data: str, nonce: str, path: str) -> str:
    """Kraken's ``Authent``: base64(HMAC-SHA512(secret, SHA256(postData + nonce + path))).

    :param secret: the API secret, base64-decoded
    :param post_data: the encoded parameters as sent (query string or body)
    :param nonce: the ``Nonce`` header's value, or ``''`` when none is sent
    :param path: the URL path; ``/derivatives`` is stripped here
    """
    message = hashlib.sha256((post_data + nonce + signing_path(path)).encode()).digest()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha512).digest()).decode()


def cost(endpoint: Endpoint, verb: str, data: Mapping[str, Any]) -> float:
    """What a call takes from its budget, by Kraken's published costs.

    ``fills`` costs 25 with ``lastFillTime``; ``batchorder`` costs 9 plus the
    number of instructions; a preference PUT costs 10; ``account-log`` costs
    by the number of entries asked for.
    """
    if endpoint.name == 'fills' and data.get('lastFillTime') is not None:
        return 25
    if endpoint.name == 'batchorder':
        return endpoint.cost + len(_batch(data))
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


def _batch(data: Mapping[str, Any]) -> list[Any]:
    """The instructions of a ``batchorder`` call, whether ``json`` is a dict or its text."""
    value = data.get('json')
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    orders = value.get('batchOrder') if isinstance(value, dict) else None
    return orders if isinstance(orders, list) else []


def client_order_ids(name: str, data: Mapping[str, Any]) -> list[str]:
    """The ``cliOrdId`` values a call carries (one, or one per batch instruction)."""
    if name == 'batchorder':
        return [str(i['cliOrdId']) for i in _batch(data)
                if isinstance(i, dict) and i.get('cliOrdId') is not None]
    value = data.get('cliOrdId')
    return [] if value is None else [str(value)]


# -- replies -----------------------------------------------------------------------------

#: Kraken Futures' error codes and the class each raises.
ERROR_CODES: Mapping[str, type[KrakenAPIError]] = {
    'authenticationError': AuthenticationError,
    'accountInactive': AuthenticationError,
    'nonceBelowThreshold': InvalidNonceError,
    'nonceDuplicate': InvalidNonceError,
    'apiLimitExceeded': RateLimitError,
    'insufficientFunds': InsufficientFundsError,
    'invalidArgument': InvalidOrderError,
    'requiredArgumentMissing': InvalidOrderError,
    'invalidAccount': InvalidOrderError,
    'invalidAmount': InvalidOrderError,
    'invalidUnit': InvalidOrderError,
    'Json Parse Error': InvalidOrderError,
    'marketUnavailable': ServiceUnavailableError,
    'Unavailable': ServiceUnavailableError,
    'Server Error': ServiceUnavailableError,
    'unknownError': ServiceUnavailableError,
}

#: Error codes that mean "try again later"; a read is retried on them.
TRANSIENT_CODES = frozenset({'apiLimitExceeded', 'Unavailable', 'Server Error'})

#: Order statuses that mean the instruction took effect.
_DONE = frozenset({'placed', 'partiallyFilled', 'filled', 'edited', 'cancelled'})

#: Refused order statuses whose cause is money or margin.
_FUNDS = frozenset({'insufficientAvailableFunds', 'wouldCauseLiquidation',
                    'maxPositionViolation', 'fixedLeverageTooHigh'})
#: Refused order statuses whose cause is the market's state.
_MARKET = frozenset({'marketSuspended', 'marketInactive', 'marketIsPostOnly'})

_NONCE_ADVICE = (
    'Kraken Futures accepts a nonce only once and only above the ones it has seen for this '
    'key. Likely causes: another program or API object uses the same key, or a client with a '
    'larger nonce unit used it: use one key per process, or create a new key (a new key resets '
    'the nonce).')


def error_class(code: str) -> type[KrakenAPIError]:
    """The exception class for one of Kraken Futures' error codes."""
    return ERROR_CODES.get(code, KrakenAPIError)


def _codes(reply: Mapping[str, Any]) -> list[str]:
    codes = [str(reply['error'])] if reply.get('error') else []
    errors = reply.get('errors')
    if isinstance(errors, list):
        codes += [str(e) for e in errors if str(e) not in codes]
    return codes or ['unknownError']


def reply_error(reply: Any, name: str) -> KrakenAPIError | None:
    """The typed error of a reply with ``"result": "error"``, or None for any other reply.

    :raises KrakenResponseError: if ``reply`` is not a JSON object
    """
    if not isinstance(reply, dict):
        raise KrakenResponseError(f'Kraken Futures {name} answered with something that is not '
                                  f'a JSON object: {str(reply)[:200]!r}', method=name)
    if reply.get('result') != 'error':
        return None
    codes = _codes(reply)
    cls = error_class(codes[0])
    message = f"Kraken Futures {name} answered {', '.join(codes)}"
    if cls is InvalidNonceError:
        message += '. ' + _NONCE_ADVICE
    return cls(message, method=name, errors=codes)


def order_failures(reply: Mapping[str, Any]) -> list[str]:
    """The statuses in a successful reply that say an order instruction did not take effect.

    ``sendStatus``, ``editStatus`` and ``cancelStatus`` hold one status,
    ``batchStatus`` one per instruction. A cancel that finds nothing to cancel
    (``noOrdersToCancel``) is not a failure.
    """
    failures = []
    for member in ('sendStatus', 'editStatus', 'cancelStatus'):
        status = reply.get(member)
        if isinstance(status, dict):
            value = str(status.get('status'))
            if value not in _DONE and value != 'noOrdersToCancel':
                failures.append(value)
    batch = reply.get('batchStatus')
    if isinstance(batch, list):
        failures += [str(s.get('status')) for s in batch
                     if isinstance(s, dict) and str(s.get('status')) not in _DONE]
    return failures


def refusal(reply: Mapping[str, Any], name: str) -> KrakenAPIError | None:
    """The typed error of an order instruction Kraken refused inside a success reply."""
    failures = order_failures(reply)
    if not failures:
        return None
    first = failures[0]
    cls: type[KrakenAPIError] = (InsufficientFundsError if first in _FUNDS else
                                 ServiceUnavailableError if first in _MARKET else
                                 InvalidOrderError)
    return cls(f"Kraken Futures {name} answered success but refused the order: "
               f"{', '.join(failures)}", method=name, errors=failures)


def transient_reply(reply: Any) -> bool:
    """Whether a reply is an error that says to try again later."""
    if not isinstance(reply, dict) or reply.get('result') != 'error':
        return False
    return all(code in TRANSIENT_CODES for code in _codes(reply))
