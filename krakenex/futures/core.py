"""What a futures client holds apart from its transport: key, nonces, options, rules.

:class:`~krakenex.futures.FuturesAPI` (requests) and
:class:`~krakenex.futures.AsyncFuturesAPI` (aiohttp) are this plus a way to
send; their options are this class's, written once here. Nonces, retry
timing and unknown outcomes come from :mod:`krakenex.protocol`; Kraken
Futures' own rules from :mod:`krakenex.futures.protocol`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from .. import order_ids
from .. import protocol as spot
from ..core import KeyedCore, server
from ..errors import KrakenError, KrakenUsageError, OutcomeUnknownError
from ..pacing import RateCounter
from ..protocol import DEFAULT_TIMEOUT, Call, Reply, Request, Timeout
from . import protocol
from .endpoints import DEFAULT_URI, Endpoint

__all__ = ['FuturesCore', 'FuturesRetry']


class FuturesRetry(spot.Retry):
    """:class:`krakenex.protocol.Retry` reading Kraken Futures' ``"result": "error"`` replies."""

    def after_reply(self, reply: Any) -> float | None:
        """Seconds to wait before trying a read again after ``reply``, or ``None`` to keep it."""
        if self.at_most_once or not protocol.transient_reply(reply):
            return None
        return self._wait()


class FuturesCore(KeyedCore):
    """The key, nonces and options of a futures client; documented on :class:`FuturesAPI`."""

    KEY_VARIABLES = ('KRAKEN_FUTURES_KEY', 'KRAKEN_FUTURES_SECRET')
    URL_VARIABLE = 'KRAKEN_FUTURES_URL'
    CALLS = 'endpoint'

    def __init__(self, key: str = '', secret: str = '', *, uri: str | None = None,
                 timeout: Timeout = DEFAULT_TIMEOUT, nonce_unit: str = 'ms',
                 raise_errors: bool = False, retries: int = 3, backoff: float = 0.5,
                 retry_time: float = 30.0, pace: bool = False,
                 costs: Mapping[str, float] | None = None, share: Any = ...,
                 client_order_ids: bool = True) -> None:
        super().__init__(key, secret, timeout=timeout, nonce_unit=nonce_unit,
                         raise_errors=raise_errors, retries=retries, backoff=backoff,
                         retry_time=retry_time, costs=costs, share=share,
                         client_order_ids=client_order_ids)
        #: The ``/derivatives`` budget (500 per 10 s), kept in the key's store when ``pace`` is set.
        self.budget = self.shared_counter('derivatives', protocol.BUDGET) if pace else None
        #: The ``/history`` token pool (100, refilled 100 per 10 min), kept when ``pace`` is set.
        self.history_pool = self.shared_counter('history', protocol.HISTORY_POOL) if pace else None
        #: The server's address, without a trailing slash.
        self.uri = server(uri, self.URL_VARIABLE, DEFAULT_URI)
        self._open()

    @staticmethod
    def _endpoint(name: str, surface: str, verb: str | None, *,
                  private: bool = True) -> tuple[Endpoint, str]:
        """The endpoint called ``name`` and the verb to send it with.

        A name Kraken's table lacks (a typo, or an endpoint newer than krakenex)
        is sent only with its ``verb`` given, as a call that may change state.

        :raises KrakenUsageError: for a name that is not a path below the surface, or
            one not in Kraken's table without ``verb``, before anything is sent
        """
        if not isinstance(name, str) or not name or name.startswith('/') or '..' in name \
                or '?' in name or '#' in name or not name.isascii():
            raise KrakenUsageError(f'{name!r} is not a Kraken Futures endpoint name such as '
                                   f"'tickers', 'sendorder' or 'orders/status'")
        if verb is None and protocol.known(name, surface) is None:
            query = {'derivatives': 'query_private' if private else 'query_public',
                     'history': 'query_history'}.get(surface, 'query_charts')
            raise KrakenUsageError(
                f'{protocol.unknown_message(name, surface)}; nothing was sent. To call an '
                f'endpoint krakenex does not know, give its verb: {query}({name!r}, '
                f"verb='POST')")
        endpoint = protocol.lookup(name, surface, private=private)
        chosen = (verb or endpoint.verb).upper() if isinstance(verb, (str, type(None))) else ''
        if chosen not in ('GET', 'POST', 'PUT', 'DELETE'):
            raise KrakenUsageError(f'verb must be GET, POST, PUT or DELETE, not {verb!r}')
        if chosen == 'PUT' and not endpoint.changes_state:
            endpoint = endpoint._replace(changes_state=True)  # setting a preference
        return endpoint, chosen

    def _request(self, endpoint: Endpoint, verb: str, data: Mapping[str, Any], *,
                 private: bool) -> Request:
        """The request for one call; a private one signed with a fresh nonce (call in order)."""
        post_data = protocol.encode(data)
        path = protocol.urlpath(endpoint)
        headers: dict[str, str] = {}
        query, body = post_data, None
        if verb in ('POST', 'PUT'):
            query, body = '', post_data.encode()
            headers['Content-Type'] = 'application/x-www-form-urlencoded'
        nonce = None
        if private:
            nonce = self._nonce()
            headers.update(APIKey=self.key, Nonce=str(nonce), Authent=protocol.authent(
                self._secret_bytes(), post_data, str(nonce), path))
        return Request(endpoint.name, verb, path, query, body, headers, nonce, data)

    def _futures_call(self, endpoint: Endpoint, verb: str, data: Mapping[str, Any], *,
                      private: bool) -> Call:
        """How a driver runs one futures call (:class:`krakenex.protocol.Call`).

        A private call is serial (its nonce leaves in the order issued), paced
        on its surface's budget, and sent at most once if it changes state.
        """
        retry = FuturesRetry(self.retries, self.backoff, self.retry_time,
                             at_most_once=endpoint.changes_state)
        if private and retry.at_most_once and self.client_order_ids:  # once for every attempt
            data = order_ids.named(endpoint.name, data, order_ids.FUTURES)

        def build() -> Request:
            return self._request(endpoint, verb, data, private=private)

        def check(reply: Any, response: Any) -> Any:
            return self._checked(endpoint.name, reply, response)

        def read(reply: Reply) -> Any:
            return spot.read_envelope(endpoint.name, reply, self._json_options,
                                      lambda decoded: protocol.envelope_problem(endpoint, decoded),
                                      protocol.ENVELOPE, 'Kraken Futures')

        if not private:
            return Call(endpoint.name, build, retry, check, read)
        changes = {'answered': self._answered} if retry.at_most_once else {}
        return Call(endpoint.name, build, retry, check, read, self._counter(endpoint),
                    self._cost(endpoint, verb, data), store=self._store(),
                    unknown=lambda error, request: self._unknown(error, request,
                                                                 at_most_once=retry.at_most_once),
                    **changes)

    def _counter(self, endpoint: Endpoint) -> RateCounter | None:
        return self.history_pool if endpoint.surface == 'history' else \
            self.budget if endpoint.private else None

    def _cost(self, endpoint: Endpoint, verb: str, data: Mapping[str, Any]) -> float:
        return self.costs.get(endpoint.name, protocol.cost(endpoint, verb, data))

    def _checked(self, name: str, reply: Any, response: Any = None) -> Any:
        """Return a reply, raising its typed error if it holds one and :attr:`raise_errors`.

        The error carries the transport's ``response`` (and its request) as evidence.
        """
        if self.raise_errors and isinstance(reply, dict):
            error = protocol.reply_error(reply, name, response) or \
                protocol.refusal(reply, name, response)
            if error is not None:
                raise error
        return reply

    @classmethod
    def _answered(cls, reply: Any, request: Request, response: Any) -> Any:
        """Kraken Futures' answer to a state change, unless it leaves the outcome unknown.

        :raises OutcomeUnknownAPIError: for an error that does not say whether the
            call took effect (``Server Error``, or no error code), carrying the
            ``cliOrdId`` to look it up by
        """
        cause = spot.ambiguous_answer(reply, request.method, response,
                                      errors=protocol.error_codes)
        if cause is None:
            return reply
        raise cls._unknown(cause, request, at_most_once=True)

    @staticmethod
    def _unknown(error: KrakenError, request: Request, *, at_most_once: bool) -> KrakenError:
        """The error to raise once ``request`` may have left: an unknown outcome for a change.

        The class comes from :func:`krakenex.protocol.after_sending`; the error
        carries the nonce and the call's ``cliOrdId`` (several, comma-separated,
        for a batch), which :meth:`FuturesAPI.reconcile` looks up.
        """
        unknown = spot.after_sending(error, request, at_most_once=at_most_once)
        if unknown is error:
            return error
        ids = ','.join(protocol.client_order_ids(request.method, request.data)) or None
        cls = cast('type[OutcomeUnknownError]', type(unknown))
        lookup = (f'look it up by cliOrdId {ids} (FuturesAPI.reconcile)' if ids else
                  'look in openorders and fills (next time give it a cliOrdId)')
        return cls(
            f'{request.method} was sent (nonce {request.nonce}) but {error}. It may or may not '
            f'have taken effect at Kraken Futures, and krakenex did not send it again: {lookup} '
            f'before you resubmit it.', nonce=request.nonce, cl_ord_id=ids,
            method=request.method, status=error.status, errors=error.errors, body=error.body,
            response=error.response)

    @staticmethod
    def _lookup(error: OutcomeUnknownError) -> list[str]:
        """The ``cliOrdId`` values to reconcile an unknown outcome by.

        :raises KrakenUsageError: if the call carried none
        """
        if not error.cl_ord_id:
            raise KrakenUsageError(f'{error.method} carried no cliOrdId to look up; check '
                                   f'openorders and fills by hand, and give orders a cliOrdId')
        return error.cl_ord_id.split(',')

    #: How many recent order events :meth:`FuturesAPI.reconcile` reads from the history.
    RECONCILE_EVENTS = 1000

    @staticmethod
    def _matches(ids: list[str], statuses: Any, history: Any) -> dict[str, Any]:
        """What ``orders/status`` and the order history say about orders with these ``cliOrdId``.

        :returns: ``{"orders": [...], "history": [...]}``: the status entries,
            and the order events (placed, updated, cancelled, rejected)
        :raises KrakenAPIError: if either lookup was refused: an unanswered
            lookup says nothing about the order
        """
        for name, reply in (('orders/status', statuses), ('history orders', history)):
            refused = protocol.reply_error(reply, name)
            if refused is not None:
                raise refused
        orders = [o for o in (statuses.get('orders') or [])
                  if str((o.get('order') or {}).get('cliOrdId')) in ids]
        events = []
        for element in history.get('elements') or []:
            event: Any = next(iter((element.get('event') or {}).values()), {})
            order = event.get('order') or event.get('newOrder') or {}
            if str(order.get('clientId')) in ids:
                events.append(element)
        return {'orders': orders, 'history': events}
