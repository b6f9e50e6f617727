"""Kraken Futures' rules as pure functions: no sockets, no clock, no threads.

What the futures clients (:class:`~krakenex.futures.FuturesAPI` and
:class:`~krakenex.futures.AsyncFuturesAPI`) share: the ``Authent``
signature, ``postData`` exactly as sent, the reply envelope and Kraken's
error codes, and the order statuses that mean an order was refused although
the reply says ``"result": "success"``. The endpoint table (verb, public or
private, state-changing, cost) is :mod:`krakenex.futures.endpoints`,
re-exported here. Kraken decommissions this API on 1 March 2027
(:mod:`krakenex.futures.sunset`).

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
from typing import Any

from ..errors import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidNonceError,
    InvalidOrderError,
    KrakenAPIError,
    KrakenResponseError,
    RateLimitError,
    ServiceUnavailableError,
    response_status,
)
from ..protocol import render, unicode_only
from .endpoints import (
    BUDGET,
    DEFAULT_URI,
    ENDPOINTS,
    HISTORY_POOL,
    SURFACES,
    Endpoint,
    batch,
    cost,
    known,
    lookup,
    unknown_message,
    urlpath,
)

__all__ = [
    'DEFAULT_URI', 'SURFACES', 'Endpoint', 'ENDPOINTS', 'known', 'unknown_message', 'lookup',
    'urlpath', 'signing_path',
    'encode', 'authent', 'cost', 'BUDGET', 'HISTORY_POOL', 'ERROR_CODES', 'TRANSIENT_CODES',
    'error_class', 'error_codes', 'reply_error', 'order_failures', 'refusal', 'transient_reply',
    'client_order_ids', 'ENVELOPE', 'STATUS_MEMBERS', 'envelope_problem',
]

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
    with unicode_only():
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


def client_order_ids(name: str, data: Mapping[str, Any]) -> list[str]:
    """The ``cliOrdId`` values a call carries (one, or one per batch instruction)."""
    if name == 'batchorder':
        return [str(i['cliOrdId']) for i in batch(data)
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
    'key. Likely causes: another client, or a krakenex on another machine or with share=None, '
    'uses the same key (give every krakenex one share=), or a client with a larger nonce unit '
    'used it: match its nonce_unit=, or create a new key (a new key resets the nonce).')


#: Kraken Futures' envelope under ``/derivatives``, as messages show it.
ENVELOPE = '{"result": "success" or "error", ...}'

#: The member of a success reply that says what became of each order instruction.
STATUS_MEMBERS: Mapping[str, str] = {
    'sendorder': 'sendStatus', 'editorder': 'editStatus', 'cancelorder': 'cancelStatus',
    'cancelallorders': 'cancelStatus', 'batchorder': 'batchStatus',
}


def envelope_problem(endpoint: Endpoint, decoded: Any) -> str | None:
    """What keeps a decoded reply from being Kraken Futures' answer to ``endpoint``; None if it is.

    Under ``/derivatives`` an answer is a JSON object whose ``result`` is
    ``"success"`` or ``"error"``, and a success of an order instruction holds
    its status (:data:`STATUS_MEMBERS`). The history and charts surfaces, which
    only read, answer in shapes of their own and are taken as they come.
    """
    if endpoint.surface != 'derivatives':
        return None
    if not isinstance(decoded, dict):
        return 'a file' if isinstance(decoded, bytes) else 'JSON that is not an object'
    result = decoded.get('result')
    if result not in ('success', 'error'):
        return 'JSON whose "result" is neither "success" nor "error"'
    member = STATUS_MEMBERS.get(endpoint.name)
    if result == 'success' and member is not None and \
            not isinstance(decoded.get(member), (dict, list)):
        return f'a success without {member}, which says what became of the order'
    return None


def error_class(code: str) -> type[KrakenAPIError]:
    """The exception class for one of Kraken Futures' error codes."""
    return ERROR_CODES.get(code, KrakenAPIError)


def _codes(reply: Mapping[str, Any]) -> list[str]:
    codes = [str(reply['error'])] if reply.get('error') else []
    errors = reply.get('errors')
    if isinstance(errors, list):
        codes += [str(e) for e in errors if str(e) not in codes]
    return codes or ['unknownError']


def error_codes(reply: Any) -> list[str]:
    """The error codes of a reply with ``"result": "error"`` (``unknownError`` if it names
    none); none for any other reply."""
    if not isinstance(reply, dict) or reply.get('result') != 'error':
        return []
    return _codes(reply)


def reply_error(reply: Any, name: str, response: Any = None) -> KrakenAPIError | None:
    """The typed error of a reply with ``"result": "error"``, or None for any other reply.

    :param response: the transport's response the reply came in, kept as the error's evidence

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
    return cls(message, method=name, errors=codes, status=response_status(response),
               response=response)


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


def refusal(reply: Mapping[str, Any], name: str, response: Any = None) -> KrakenAPIError | None:
    """The typed error of an order instruction Kraken refused inside a success reply.

    :param response: the transport's response the reply came in, kept as the error's evidence
    """
    failures = order_failures(reply)
    if not failures:
        return None
    first = failures[0]
    cls: type[KrakenAPIError] = (InsufficientFundsError if first in _FUNDS else
                                 ServiceUnavailableError if first in _MARKET else
                                 InvalidOrderError)
    return cls(f"Kraken Futures {name} answered success but refused the order: "
               f"{', '.join(failures)}", method=name, errors=failures,
               status=response_status(response), response=response)


def transient_reply(reply: Any) -> bool:
    """Whether a reply is an error that says to try again later."""
    if not isinstance(reply, dict) or reply.get('result') != 'error':
        return False
    return all(code in TRANSIENT_CODES for code in _codes(reply))
