"""The exceptions only the WebSocket client raises; the rest come from :mod:`krakenex.errors`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    KrakenError,
    OutcomeUnknownAPIError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownTimeout,
    lookup_advice,
)

__all__ = ['ViewUnavailableError', 'BookUnavailableError', 'SocketOutcomeUnknownError',
           'SocketOutcomeUnknownTimeout', 'outcome_unknown', 'answer_unknown']


class ViewUnavailableError(KrakenError, LookupError):
    """A view krakenex keeps from a channel (a book, the positions, the margin) is not
    current now: before the connection's snapshot, or after the connection was lost."""


class BookUnavailableError(ViewUnavailableError):
    """There is no verified book for the symbol now: before its snapshot, or while it resyncs."""


class _SentOverSocket(OutcomeUnknownError):
    """An order request sent over the socket, with what it carries (the token left out)."""

    def __init__(self, message: str = '', *, req_id: int | None = None,
                 params: Mapping[str, Any] | None = None, **evidence: Any) -> None:
        super().__init__(message, **evidence)
        self.req_id = req_id
        self.params = None if params is None else {k: v for k, v in params.items()
                                                    if k != 'token'}
        self.order_userref = self.userref


class SocketOutcomeUnknownError(_SentOverSocket, OutcomeUnknownConnectionError):
    """An order request was sent over the socket and the connection dropped before its reply.

    :ivar req_id: the ``req_id`` it was sent with
    :ivar cl_ord_id: its ``cl_ord_id``, if any (also what :meth:`krakenex.API.reconcile` uses)
    :ivar order_userref: its ``order_userref``, if any (also set as ``userref``)
    :ivar params: its parameters, without the token
    """


class SocketOutcomeUnknownTimeout(_SentOverSocket, OutcomeUnknownTimeout):
    """An order request was sent over the socket and no reply came within the timeout.

    It carries the same fields as :class:`SocketOutcomeUnknownError`.
    """


def outcome_unknown(
        method: str, req_id: int, params: Mapping[str, Any], what: str,
        timeout: bool = False) -> SocketOutcomeUnknownError | SocketOutcomeUnknownTimeout:
    """The exception for an order request whose reply did not come: ``what`` says why."""
    ids = _identifiers(params)
    userref, cl_ord_id = ids.get('order_userref'), ids.get('cl_ord_id')
    message = (f'{method} was sent over the WebSocket (req_id {req_id}) but {what}. '
               + lookup_advice(method, userref, cl_ord_id, 'API.reconcile'))
    cls = SocketOutcomeUnknownTimeout if timeout else SocketOutcomeUnknownError
    return cls(message, req_id=req_id, params=params, userref=userref, cl_ord_id=cl_ord_id,
               method=method)


def answer_unknown(method: str, req_id: int | None, params: Mapping[str, Any],
                   errors: list[str]) -> OutcomeUnknownAPIError:
    """The exception for an order request Kraken answered without saying whether it took
    effect (:data:`krakenex.errors.AMBIGUOUS_ERRORS`), as the REST clients have it."""
    ids = _identifiers({k: v for k, v in params.items() if k != 'token'})
    userref, cl_ord_id = ids.get('order_userref'), ids.get('cl_ord_id')
    return OutcomeUnknownAPIError(
        f'{method} was sent over the WebSocket (req_id {req_id}) but Kraken answered '
        f'{", ".join(errors)}, which does not say whether it took effect. '
        + lookup_advice(method, userref, cl_ord_id, 'API.reconcile'),
        userref=userref, cl_ord_id=cl_ord_id, method=method, errors=errors)


def _identifiers(params: Mapping[str, Any]) -> dict[str, str]:
    """``cl_ord_id`` and ``order_userref`` of a request, or of the first order of a batch."""
    source: Mapping[str, Any] = params
    orders = params.get('orders')
    if isinstance(orders, list) and orders and isinstance(orders[0], Mapping):
        source = orders[0]
    return {k: str(source[k]) for k in ('cl_ord_id', 'order_userref') if source.get(k) is not None}
