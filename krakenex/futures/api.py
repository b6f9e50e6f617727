"""The Kraken Futures REST client on requests: one :class:`FuturesAPI` object per key.

Kraken decommissions this REST API on 1 March 2027 (:mod:`krakenex.futures.sunset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..deadman import ADVISED_TIMEOUT, DeadManSwitch, call_timeout
from ..errors import KrakenError, OutcomeUnknownError
from ..protocol import Timeout
from ..sending import RequestsDriver
from . import protocol, sunset
from .core import FuturesCore
from .endpoints import Endpoint

__all__ = ['FuturesAPI']


class FuturesAPI(RequestsDriver, FuturesCore):
    """Maintains a session with Kraken Futures for one API key.

    Kraken decommissions the Derivatives (Futures) REST API on 1 March 2027;
    move to its Unified WebSocket, ``krakenex.ws.WS(api, unified=True,
    asset_class='derivatives')`` (doc/futures-migration.rst). The first call
    of a process warns once (:class:`~krakenex.futures.KrakenSunsetWarning`).
    From that date on, a call to ``futures.kraken.com`` that fails as a
    server that is gone fails (no connection, 404, 410, a redirect, an HTML
    page) says so in its message; its error class stays what it was. Calls
    to a sandbox go on as before.

    Calls are named by Kraken's endpoint names under ``/derivatives/api/v3``
    (``'tickers'``, ``'sendorder'``, ``'orders/status'``); the HTTP verb comes
    from Kraken's table (:data:`krakenex.futures.endpoints.ENDPOINTS`) unless
    ``verb=`` says otherwise. Both query methods return Kraken's decoded JSON
    as sent, ``{"result": "success", ...}`` or ``{"result": "error", ...}``.

    Private calls on one key are sent one at a time, each with a ``Nonce``
    above the one before, so nonces reach Kraken in order however many
    threads, processes and re-runs use the key (``share``). A call that
    changes state (``sendorder``,
    ``editorder``, ``cancelorder``, ``batchorder``, ``transfer``,
    ``withdrawal``, a preference PUT, ...) is never sent again after it may
    have reached Kraken; reads retry transient faults.

    :param key: API key; with ``secret`` left empty too, ``KRAKEN_FUTURES_KEY``
    :param secret: API secret, base64; else ``KRAKEN_FUTURES_SECRET``
    :param uri: the server, ``https://futures.kraken.com`` or a sandbox's
        :attr:`~krakenex.sandbox.Sandbox.futures_url`; if not given,
        ``KRAKEN_FUTURES_URL`` when it is set, else Kraken's
    :param timeout: seconds, or a ``(connect, read)`` pair
    :param nonce_unit: ``'ms'`` (Kraken's advice), ``'us'`` or ``'ns'``
    :param raise_errors: raise on ``"result": "error"``, and on an order
        instruction Kraken refused inside a success reply (``sendStatus``,
        ``editStatus``, ``cancelStatus``, ``batchStatus``)
    :param retries: how many times a read is retried after a transient fault
    :param backoff: the first retry's wait in seconds, doubled each time, with jitter
    :param retry_time: seconds from a call's start after which it is not retried
    :param pace: wait rather than exceed Kraken's budgets (500 per 10 s on
        ``/derivatives`` with Kraken's costs; 100 tokens per 10 min on ``/history``)
    :param costs: budget costs by endpoint name, where they differ from Kraken's
    :param share: where the key's nonce floor, send lock and budgets are kept,
        as for :class:`krakenex.API`: shared by every process on this machine
        unless told otherwise
    :param client_order_ids: give a ``sendorder`` without ``cliOrdId`` (and each
        ``send`` of a ``batchorder``) a ``cliOrdId`` before it is first sent, so
        that :meth:`reconcile` can always look it up; ``False`` sends them as given
    :raises KrakenUsageError: for an unknown nonce unit, a bad timeout or ``share``

    :attr:`session` (a :class:`requests.Session`) and :attr:`response` are as
    on :class:`krakenex.API`; the spot key (``KRAKEN_API_KEY``) is never read.
    """

    # ------------------------------------------------------------------ calls

    def query_public(self, endpoint: str, data: Mapping[str, Any] | None = None, *,
                     verb: str | None = None, timeout: Timeout | None = None) -> Any:
        """Call a public endpoint under ``/derivatives/api/v3``, such as ``'tickers'``.

        :param endpoint: Kraken's endpoint name; ``'tickers/PF_XBTUSD'`` works too
        :param data: parameters, sent in the query string
        :param verb: the HTTP verb, if not the one Kraken's table gives
        :param timeout: overrides :attr:`timeout` for this call
        :returns: the decoded JSON
        :raises KrakenHTTPError: on a reply that is not 2xx
        :raises KrakenResponseError: on a 2xx reply that is not JSON
        :raises KrakenConnectionError: when the connection failed
        :raises KrakenTimeout: when no reply came within the timeout
        :raises KrakenAPIError: for ``"result": "error"`` when :attr:`raise_errors` is set
        """
        found, chosen = self._endpoint(endpoint, 'derivatives', verb, private=False)
        return self._call(found, chosen, dict(data or {}), timeout, private=False)

    def query_private(self, endpoint: str, data: Mapping[str, Any] | None = None, *,
                      verb: str | None = None, timeout: Timeout | None = None) -> Any:
        """Call a private endpoint under ``/derivatives/api/v3``, signed with ``Authent``.

        ``data`` goes in the query string of a GET and the form body of a POST
        or PUT, URL-encoded exactly as signed; a dict value (``batchorder``'s
        ``json``) goes as JSON, a list of plain values repeats its name.
        ``data`` itself is never modified.

        :param endpoint: Kraken's endpoint name, such as ``'sendorder'`` or ``'accounts'``
        :param data: parameters
        :param verb: the HTTP verb, if not the one Kraken's table gives
            (``verb='PUT'`` sets ``leveragepreferences``)
        :param timeout: overrides :attr:`timeout` for this call
        :returns: the decoded JSON
        :raises KrakenUsageError: without a key or secret, or with a secret that
            is not base64, before anything is sent
        :raises OutcomeUnknownError: when a state-changing call was sent and its
            reply was lost; it carries the ``cliOrdId`` and the nonce
        :raises NotSentError: when the connection could not be opened
        :raises KrakenAPIError: for ``"result": "error"``, or a refused order,
            when :attr:`raise_errors` is set
        """
        found, chosen = self._endpoint(endpoint, 'derivatives', verb)
        self._check_private(found.name)
        return self._call(found, chosen, dict(data or {}), timeout, private=True)

    def query_history(self, endpoint: str, data: Mapping[str, Any] | None = None, *,
                      timeout: Timeout | None = None) -> Any:
        """Call a private history endpoint under ``/api/history/v3``, such as ``'executions'``.

        Signed like :meth:`query_private`; paced on the history token pool.
        """
        found, chosen = self._endpoint(endpoint, 'history', None)
        self._check_private(found.name)
        return self._call(found, chosen, dict(data or {}), timeout, private=True)

    def query_charts(self, path: str, data: Mapping[str, Any] | None = None, *,
                     timeout: Timeout | None = None) -> Any:
        """Read candles under ``/api/charts/v1``: ``query_charts('trade/PF_XBTUSD/1h')``.

        :param path: ``tick_type/symbol/resolution``, or a shorter path listing what exists
        :param data: ``from``, ``to`` (epoch seconds), ``count``
        """
        found, chosen = self._endpoint(path, 'charts', None)
        return self._call(found, chosen, dict(data or {}), timeout, private=False)

    def reconcile(self, error: OutcomeUnknownError) -> dict[str, Any]:
        """Look up the orders behind an :class:`OutcomeUnknownError` by their ``cliOrdId``.

        Asks ``orders/status`` (orders open, or changed in the last seconds)
        and the order history (``/api/history/v3/orders``, the newest
        :attr:`RECONCILE_EVENTS` events). Kraken Futures tolerates nonces that
        arrive slightly out of order for a brief time, so a lost call may still
        take effect just after an empty answer: look again a few seconds later
        before you resubmit.

        :returns: ``{"orders": [...], "history": [...]}``: the ``orders/status``
            entries and the order events that carry those ids
        :raises KrakenUsageError: if the call carried no ``cliOrdId``
        :raises KrakenAPIError: if Kraken refuses either lookup
        """
        ids = self._lookup(error)
        statuses = self.query_private('orders/status', {'cliOrdIds': ids})
        history = self.query_history('orders', {'count': self.RECONCILE_EVENTS})
        return self._matches(ids, statuses, history)

    def dead_man_switch(self, timeout: int = ADVISED_TIMEOUT, every: float | None = None, *,
                        disarm_on_error: bool = False) -> DeadManSwitch:
        """A keeper of Kraken Futures' dead man's switch (``cancelallordersafter``);
        the same as :meth:`krakenex.API.dead_man_switch`."""
        def arm(seconds: int, within: float) -> None:
            error = protocol.reply_error(
                self.query_private('cancelallordersafter', {'timeout': seconds},
                                   timeout=call_timeout(self.timeout, within)),
                'cancelallordersafter')
            if error is not None:
                raise error

        return DeadManSwitch(arm, timeout, every, what=f'{self.uri} (Kraken Futures)',
                             disarm_on_error=disarm_on_error)

    def _call(self, endpoint: Endpoint, verb: str, data: dict[str, Any],
              timeout: Timeout | None, *, private: bool) -> Any:
        """Run one call on the requests driver (:meth:`run`), with Kraken's end date in mind."""
        sunset.announce()
        try:
            return self.run(self._futures_call(endpoint, verb, data, private=private), timeout)
        except KrakenError as exc:
            sunset.explain(exc, self.uri)  # the same error; its message may name the date
            raise
