"""The exceptions krakenex raises: one tree rooted at :class:`KrakenError`.

Transport failures are also the matching :mod:`requests` exception, so code
written for krakenex 2.x (``except requests.HTTPError``) keeps working.
Every exception carries its evidence (method, HTTP status, Kraken's error
list, the start of the body) and never the API secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

__all__ = [
    'KrakenError', 'KrakenUsageError', 'KeyFileError', 'KrakenHTTPError', 'KrakenResponseError',
    'KrakenConnectionError', 'NotSentError', 'ShareUnavailableError', 'KrakenTimeout',
    'KrakenConnectTimeout',
    'KrakenAPIError', 'InvalidNonceError', 'AuthenticationError', 'RateLimitError',
    'OrdersLimitError', 'InsufficientFundsError', 'InvalidArgumentsError', 'InvalidOrderError',
    'InvalidOrderArgumentsError', 'OrderNotFoundError', 'UnknownAssetError',
    'ServiceUnavailableError',
    'OutcomeUnknownError', 'OutcomeUnknownHTTPError', 'OutcomeUnknownResponseError',
    'OutcomeUnknownConnectionError', 'OutcomeUnknownTimeout', 'OutcomeUnknownAPIError',
    'AMBIGUOUS_ERRORS', 'ambiguous', 'error_class', 'lookup_advice',
    'failures', 'unwrap', 'response_status',
]

#: How much of a reply body an exception keeps, in characters.
BODY_EXCERPT = 200


class KrakenError(Exception):
    """Root of every exception krakenex raises.

    :ivar method: the Kraken method called (``'Ticker'``, ``'AddOrder'``), if any
    :ivar status: the HTTP status of the reply, if one arrived
    :ivar errors: Kraken's error strings, if the reply had any
    :ivar body: the start of the reply body, for replies that were not usable
    :ivar response: the :class:`requests.Response`, if one arrived
    :ivar request: the :class:`requests.PreparedRequest` that was sent, if a reply arrived
    """

    def __init__(self, message: str = '', *, method: str | None = None,
                 status: int | None = None, errors: Sequence[str] = (),
                 body: str | None = None, response: Any = None) -> None:
        super().__init__(message)
        self.method = method
        self.status = status
        self.errors = list(errors)
        self.body = body
        #: The transport's response: a :class:`requests.Response` from :class:`~krakenex.API`,
        #: an :class:`aiohttp.ClientResponse` from :class:`~krakenex.AsyncAPI`.
        self.response = response
        self.request: Any = getattr(response, 'request', None)


class KrakenUsageError(KrakenError, ValueError):
    """Bad input caught before anything was sent: a method name, a key, a nonce."""


class KeyFileError(KrakenUsageError, OSError):
    """A key file could not be read, or does not hold a key and a secret.

    Also an :class:`OSError`, as the missing or unreadable file was in krakenex 2.x.
    """


class KrakenHTTPError(KrakenError, requests.HTTPError):
    """Kraken (or Cloudflare in front of it) answered with a status other than 2xx."""


class KrakenResponseError(KrakenError, requests.exceptions.InvalidJSONError, ValueError):
    """A 2xx reply whose body is not JSON, or not the envelope Kraken sends."""


class KrakenConnectionError(KrakenError, requests.ConnectionError):
    """The connection failed or was dropped before a reply arrived."""


class NotSentError(KrakenConnectionError):
    """The connection could not be opened (refused, unknown host): nothing reached Kraken.

    This is the one failure after which a state-changing call is safe to send again.
    """


class ShareUnavailableError(NotSentError):
    """The key's store (``share=``) could not be used, so nothing was sent.

    krakenex never falls back to sending without the store it was asked to use.

    :ivar where: the store: a directory's file or a Redis address
    :ivar reason: what went wrong, in a few words
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f'the key\'s store {where} cannot be used ({reason}), so nothing was '
                         f'sent; fix it, or choose another with share= or KRAKENEX_SHARE')
        self.where = where
        self.reason = reason


class KrakenTimeout(KrakenError, requests.Timeout):
    """No reply arrived within the timeout."""


class KrakenConnectTimeout(NotSentError, KrakenTimeout, requests.ConnectTimeout):
    """The connection could not be opened within the timeout: nothing reached Kraken."""


class KrakenAPIError(KrakenError):
    """Kraken answered with an error string, such as ``EOrder:Insufficient funds``."""


class InvalidNonceError(KrakenAPIError):
    """``EAPI:Invalid nonce``: the nonce was not above the last one Kraken accepted."""


class AuthenticationError(KrakenAPIError):
    """The key, the signature or the key's permissions were refused."""


class RateLimitError(KrakenAPIError):
    """One of Kraken's limits was hit, or the key is locked out for a while.

    Kraken's call counters (``EAPI:Rate limit exceeded``, ``EOrder:Rate limit
    exceeded``) fall after a few seconds; :class:`OrdersLimitError` only when
    orders close.
    """


class OrdersLimitError(RateLimitError):
    """Too many open orders or positions: ``EOrder:Orders limit exceeded`` and its kin.

    Kraken caps the open orders per pair by tier (60 on a starter account). Waiting
    does not help: close or cancel some first.
    """


class InsufficientFundsError(KrakenAPIError):
    """The account lacks the funds or margin level for the request."""


class InvalidArgumentsError(KrakenAPIError):
    """``EGeneral:Invalid arguments``: a parameter of any method was missing, unknown or bad.

    The text after the second colon, when Kraken sends one, names the parameter
    (``EGeneral:Invalid arguments:volume``).
    """


class InvalidOrderError(KrakenAPIError):
    """Kraken refused the order (``EOrder:...``): its price, size, type or flags."""


class OrderNotFoundError(InvalidOrderError):
    """``EOrder:Unknown order``: no order of this key has that txid, userref or cl_ord_id.

    Also an :class:`InvalidOrderError`, the class this error had before.
    """


class InvalidOrderArgumentsError(InvalidArgumentsError, InvalidOrderError):
    """``EGeneral:Invalid arguments`` in answer to a call that places or changes an order.

    Both an :class:`InvalidArgumentsError` and, as it was before, an
    :class:`InvalidOrderError`, so ``except InvalidOrderError`` around AddOrder
    still catches a bad volume or price.
    """


#: The methods whose invalid arguments are also an invalid order.
ORDER_METHODS = frozenset({'AddOrder', 'AddOrderBatch', 'EditOrder', 'AmendOrder'})


class UnknownAssetError(KrakenAPIError):
    """Kraken does not know the asset or pair named."""


class ServiceUnavailableError(KrakenAPIError):
    """Kraken cannot serve the request now: unavailable, busy, failing internally, in a
    limited mode, or short of the funds a margin order needs (``EOrder:Insufficient margin``)."""


class OutcomeUnknownError(KrakenError):
    """A state-changing call may or may not have taken effect at Kraken.

    It was sent, and then the reply was lost, late or unreadable. krakenex does
    not send it again: look the order up (by ``userref`` or ``cl_ord_id``)
    before you resubmit.

    :ivar nonce: the nonce the call was sent with
    :ivar userref: the ``userref`` the call carried, if any
    :ivar cl_ord_id: the ``cl_ord_id`` the call carried, if any
    """

    def __init__(self, message: str = '', *, nonce: int | None = None,
                 userref: object = None, cl_ord_id: object = None, **evidence: Any) -> None:
        super().__init__(message, **evidence)
        self.nonce = nonce
        self.userref = None if userref is None else str(userref)
        self.cl_ord_id = None if cl_ord_id is None else str(cl_ord_id)

    @classmethod
    def sent(cls, cause: KrakenError, *, method: str, nonce: int | None, userref: object = None,
             cl_ord_id: object = None) -> OutcomeUnknownError:
        """The unknown outcome of ``method``, sent with ``nonce``, that failed with ``cause``."""
        message = (f'{method} was sent (nonce {nonce}) but {cause}. '
                   + lookup_advice(method, userref, cl_ord_id, 'API.reconcile'))
        return cls(message, nonce=nonce, userref=userref, cl_ord_id=cl_ord_id, method=method,
                   status=cause.status, errors=cause.errors, body=cause.body,
                   response=cause.response)


def lookup_advice(method: str | None, userref: object, cl_ord_id: object, how: str) -> str:
    """What to do after an unknown outcome: look the order up before sending it again.

    :param how: how to look it up, such as ``'API.reconcile'`` or a shell command
    """
    ids = ', '.join(f'{name} {value}' for name, value in
                    (('cl_ord_id', cl_ord_id), ('userref', userref)) if value is not None)
    lookup = (f'look it up by {ids} ({how})' if ids else
              'look in OpenOrders and ClosedOrders (next time give it a userref or cl_ord_id)')
    return (f'It may or may not have taken effect at Kraken, and krakenex did not send it '
            f'again: {lookup} before you resubmit {method or "it"}.')


class OutcomeUnknownHTTPError(OutcomeUnknownError, KrakenHTTPError):
    """A state-changing call got a non-2xx reply (such as Cloudflare's 520)."""


class OutcomeUnknownResponseError(OutcomeUnknownError, KrakenResponseError):
    """A state-changing call got a 2xx reply that was not JSON, or not Kraken's envelope."""


class OutcomeUnknownConnectionError(OutcomeUnknownError, KrakenConnectionError):
    """A state-changing call lost its connection after it was sent."""


class OutcomeUnknownTimeout(OutcomeUnknownError, KrakenTimeout):
    """A state-changing call got no reply within the timeout."""


class OutcomeUnknownAPIError(OutcomeUnknownError):
    """Kraken answered a state-changing call with an error that does not say whether it
    took effect, such as ``EService:Timeout`` (see :data:`AMBIGUOUS_ERRORS`).

    Kraken's error strings are in :attr:`errors`. It is deliberately not a
    :class:`KrakenAPIError`: an ``except`` clause that resends on Kraken's
    refusals must not resend this.
    """


#: Kraken's answers to a call that do not say whether it took effect: for a state-changing
#: call each is an unknown outcome (:class:`OutcomeUnknownAPIError`), not a refusal.
#: Kraken's spot errors page (https://docs.kraken.com/api/docs/guides/spot-errors) gives
#: ``EGeneral:Internal error[:<code>]`` only as "Internal Support. Please contact support."
#: and does not list ``EService:Timeout``, ``EService:Busy`` or ``EDatabase:Internal
#: error`` at all (they come from its older support article and other clients' error maps):
#: nothing Kraken publishes says the order was not placed. The same page has
#: ``EService:Unavailable`` as "The matching engine or API is offline", and ``EService:Deadline
#: elapsed`` as the request timing out by its deadline, after which "the engine will prevent
#: this order from matching" (the order's ``deadline``, e.g.
#: https://docs.kraken.com/exchange/api-reference/unified-ws/batch_add): both stay refusals,
#: as do the market modes, the rate limits and every ``EOrder`` error. Kraken Futures'
#: ``Server Error``, and its error replies without a code (``unknownError``), say no more.
AMBIGUOUS_ERRORS = ('EService:Timeout', 'EService:Busy', 'EGeneral:Internal error',
                    'EDatabase:Internal error', 'Server Error', 'unknownError')


def ambiguous(errors: Sequence[str]) -> list[str]:
    """Those of Kraken's error strings that leave a call's outcome unknown.

    See :data:`AMBIGUOUS_ERRORS`; a warning or a refusal is not among them.
    """
    return [e for e in errors if isinstance(e, str) and e.startswith(AMBIGUOUS_ERRORS)]


#: Every error string Kraken documents for spot (by prefix) and the class it raises; the
#: first match wins, and a string that matches no row raises :class:`KrakenAPIError`. The
#: rows with :class:`KrakenAPIError` itself are documented strings knowingly left unmapped.
#: Sources: https://docs.kraken.com/api/docs/guides/spot-errors (the spot errors page),
#: https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits, the Earn methods'
#: descriptions in https://docs.kraken.com/api/docs/rest-api/allocate-strategy, and
#: support.kraken.com's "API error messages" for the older strings.
ERROR_PREFIXES: tuple[tuple[str, type[KrakenAPIError]], ...] = (
    # keys, signatures, permissions
    ('EAPI:Invalid nonce', InvalidNonceError),
    ('EAPI:Invalid key', AuthenticationError),
    ('EAPI:Invalid signature', AuthenticationError),
    ('EGeneral:Permission denied', AuthenticationError),
    ('EAccount:Invalid permissions', AuthenticationError),
    ('EAuth:Account temporary disabled', AuthenticationError),
    ('EAuth:Account unconfirmed', AuthenticationError),
    ('EAuth:Failed', AuthenticationError),
    ('ESession:Invalid session', AuthenticationError),
    ('EEarnings:Permission denied', AuthenticationError),
    # limits: call counters, lock-outs, open orders and positions
    ('EAPI:Rate limit exceeded', RateLimitError),
    ('EOrder:Rate limit exceeded', RateLimitError),
    ('EOrder:Domain rate limit exceeded', RateLimitError),
    ('EGeneral:Too many requests', RateLimitError),
    ('EGeneral:Temporary lockout', RateLimitError),
    ('EService:Throttled', RateLimitError),
    ('EService: Throttled', RateLimitError),
    ('EAuth:Rate limit exceeded', RateLimitError),
    ('EAuth:Too many requests', RateLimitError),
    ('EOrder:Orders limit exceeded', OrdersLimitError),
    ('EOrder:Positions limit exceeded', OrdersLimitError),
    ('EOrder:Scheduled orders limit exceeded', OrdersLimitError),
    # the account's funds
    ('EOrder:Insufficient funds', InsufficientFundsError),
    ('EOrder:Margin level too low', InsufficientFundsError),
    ('EFunding:Insufficient funds', InsufficientFundsError),
    ('EEarnings:Insufficient funds', InsufficientFundsError),
    # Kraken's side: down, busy, limited modes, and its own shortage of margin funds
    ('EOrder:Insufficient margin', ServiceUnavailableError),
    ('EService:Unavailable', ServiceUnavailableError),
    ('EService:Busy', ServiceUnavailableError),
    ('EService:Timeout', ServiceUnavailableError),
    ('EService:Market in', ServiceUnavailableError),
    ('EService:Deadline elapsed', ServiceUnavailableError),
    ('EGeneral:Internal error', ServiceUnavailableError),
    ('EDatabase:Internal error', ServiceUnavailableError),
    ('EEarnings:Busy', ServiceUnavailableError),
    # unknown names
    ('EQuery:Unknown asset', UnknownAssetError),
    ('EQuery:Invalid asset pair', UnknownAssetError),
    ('EFunding:Unknown asset', UnknownAssetError),
    # arguments of any method
    ('EGeneral:Invalid arguments', InvalidArgumentsError),
    ('ETrade:Invalid request', InvalidArgumentsError),
    ('EAPI:Bad request', InvalidArgumentsError),
    ('EEarnings:Below min', InvalidArgumentsError),
    ('EEarnings:Above max', InvalidArgumentsError),
    ('EFunding:Invalid amount', InvalidArgumentsError),
    ('EFunding:Unknown withdraw key', InvalidArgumentsError),
    ('EFunding:Invalid reference id', InvalidArgumentsError),
    ('EFunding:Unknown reference id', InvalidArgumentsError),
    ('EFunding:No funding method', InvalidArgumentsError),
    ('EFunding:Max fee exceeded', InvalidArgumentsError),
    # orders
    ('EOrder:Unknown order', OrderNotFoundError),
    ('EOrder:', InvalidOrderError),
    # documented, knowingly left on KrakenAPIError: no class above says what they mean
    ('EGeneral:Unknown method', KrakenAPIError),
    ('EAPI:Feature disabled', KrakenAPIError),
    ('ETrade:Locked', KrakenAPIError),
    ('ETrade:User Locked', KrakenAPIError),
    ('EFunding:Too many addresses', KrakenAPIError),
    ('EBM:limit exceeded', KrakenAPIError),
)

_NONCE_ADVICE = (
    'Kraken accepts a nonce only if it is above the last nonce it accepted for this key. '
    'Likely causes: another client, or a krakenex on another machine or with share=None, uses '
    'the same key (krakenex shares a key\'s nonces between the processes of one machine; give '
    'all of them one share=, a Redis URL across machines); or a client with a larger nonce '
    'unit (microseconds or nanoseconds, such as python-kraken-sdk) used this key, so its '
    'nonces are now ahead: pass nonce_unit= to match, or create a new key.'
)


def failures(errors: Sequence[str]) -> list[str]:
    """Kraken's error strings without the warnings (those starting with ``W``)."""
    return [e for e in errors if not e.startswith('W')]


def error_class(error: str) -> type[KrakenAPIError]:
    """Return the exception class for one of Kraken's error strings."""
    for prefix, cls in ERROR_PREFIXES:
        if error.startswith(prefix):
            return cls
    return KrakenAPIError


def api_error(errors: Sequence[str], method: str | None = None,
              response: Any = None) -> KrakenAPIError:
    """Build the typed exception for the error strings of one envelope."""
    first = failures(errors)[0]
    cls = error_class(first)
    if cls is InvalidArgumentsError and method in ORDER_METHODS:
        cls = InvalidOrderArgumentsError
    where = f'Kraken {method}' if method else 'Kraken'
    message = f"{where} answered {', '.join(errors)}"
    if cls is InvalidNonceError:
        message += '. ' + _NONCE_ADVICE
    return cls(message, method=method, status=response_status(response), errors=errors,
               response=response)


def response_status(response: Any) -> int | None:
    """The HTTP status of a transport's response (requests' or aiohttp's), or None without one."""
    return getattr(response, 'status_code', getattr(response, 'status', None))


def unwrap(envelope: Any, method: str | None = None) -> Any:
    """Return the ``result`` of one of Kraken's replies, or raise its typed error.

    Warnings (strings starting with ``W``) never raise.

    :param envelope: a decoded reply ``{"error": [...], "result": ...}``
    :param method: the Kraken method, for the exception message
    :returns: the ``result`` member (``None`` if absent)
    :raises KrakenAPIError: or a subclass, if the envelope holds an error
    :raises KrakenResponseError: if ``envelope`` is not a Kraken reply
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get('error', []), list):
        raise KrakenResponseError(f'not a Kraken reply: {str(envelope)[:BODY_EXCERPT]!r}',
                                  method=method)
    errors = envelope.get('error') or []
    if failures(errors):
        raise api_error(errors, method)
    return envelope.get('result')
