"""The Kraken spot REST client on requests: one :class:`API` object per key.

It keeps the shape of krakenex 2.x (``query_public``, ``query_private``,
``load_key``, the decoded JSON envelope as Kraken sent it). What Kraken
requires (nonces, signing, what may be retried, what a reply means) is in
:mod:`krakenex.protocol`; how a call is sent, in :mod:`krakenex.sending`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import core, protocol
from .deadman import ADVISED_TIMEOUT, DeadManSwitch, call_timeout
from .errors import OutcomeUnknownError, unwrap
from .protocol import DEFAULT_TIMEOUT, DEFAULT_URI, NONCE_UNITS, Request, Timeout
from .sending import RequestsDriver

__all__ = ['API', 'DEFAULT_URI', 'DEFAULT_TIMEOUT', 'NONCE_UNITS']


class API(RequestsDriver, core.SpotCore):
    """Maintains a session with Kraken for one API key.

    A key and secret are optional; without them only public calls work. When
    both are left empty they are read from ``KRAKEN_API_KEY`` and
    ``KRAKEN_API_SECRET`` if those are set; the server, from ``KRAKEN_API_URL``.

    :attr:`session` is a :class:`requests.Session`, honoured as requests
    honours it: its headers, cookies, auth, params, hooks, proxies, ``verify``,
    ``cert`` and mounted adapters apply to every call. Proxy and CA-bundle
    settings from the environment are read once per :attr:`uri` and session
    settings, not on every call. :attr:`response` holds the last
    :class:`requests.Response`.

    Private calls on one key are sent one at a time, each with a nonce above
    the one before, so their nonces reach Kraken in order, however many
    threads, processes and re-runs use the key: its nonce floor, send lock
    and rate counter live in a store shared by every user of the key (see
    ``share``; doc/share.rst).

    :param key: API key
    :param secret: API secret (private key), base64 as Kraken shows it
    :param uri: the server, ``https://api.kraken.com`` or a sandbox's URL; if not
        given, ``KRAKEN_API_URL`` when it is set (so a script reaches a sandbox
        unchanged), else Kraken's
    :param timeout: seconds to wait for a connection and a reply: one number
        or a ``(connect, read)`` pair; :data:`DEFAULT_TIMEOUT` unless given.
        However slowly the reply's status line, headers and body arrive, an attempt
        is over by the two together
    :param nonce_unit: ``'ms'`` (the default, as krakenex 2.x and ccxt),
        ``'us'`` or ``'ns'``
    :param otp: one-time password for keys with two-factor authentication:
        a string, or a function returning a fresh code
    :param raise_errors: raise a :class:`~krakenex.KrakenAPIError` when Kraken
        answers with an error string, instead of returning the envelope
    :param retries: how many times a read-only call is retried after a
        transient fault; ``0`` turns retries off
    :param backoff: the first retry's wait in seconds; it doubles each time,
        with random jitter
    :param retry_time: seconds from a call's start after which it is not retried again
    :param tier: pace private calls under Kraken's rate counter of this
        tier, ``'starter'``, ``'intermediate'`` or ``'pro'``, or a
        ``(maximum, decay per second)`` pair; ``None`` (default) does not pace
    :param costs: what a method adds to the rate counter, where it differs
        from Kraken's published costs (:mod:`krakenex.methods`)
    :param public_rate: pace public calls to at most this many per second
    :param share: where the key's nonce floor, send lock and rate counter are
        kept. Not given: ``$KRAKENEX_SHARE`` if set, else a store in the
        user's cache directory that every process on this machine shares; a
        directory; a ``redis://`` or ``rediss://`` URL or a :class:`redis.Redis`
        client, for several machines (extra ``redis``); ``None``: this object
        alone, as krakenex 2.x
    :param nonce_window: the key's nonce window as set at Kraken, in nonce
        units. Above 0, private calls are sent at once, without the send
        lock, each with a unique nonce from the store; Kraken accepts those
        that arrive out of order within the window
    :param client_order_ids: give an order that carries neither ``userref`` nor
        ``cl_ord_id`` (AddOrder, each order of AddOrderBatch) a ``cl_ord_id``
        before it is first sent, so that :meth:`reconcile` can always look it
        up; ``False`` sends orders as given
    :param engine: pace order calls under Kraken's per-pair trading-engine
        limit of this tier, ``'starter'``, ``'intermediate'`` or ``'pro'``, or
        a ``(threshold, decay per second)`` pair, shared through the key's
        store; ``None`` (default) does not pace them
    :raises KrakenUsageError: for an unknown nonce unit, tier or engine tier, a ``KRAKEN_API_URL``
        that is not a server address, a timeout
        that is not a finite number of seconds above zero, or a ``share``
        that is neither a directory, a Redis URL or client, nor None
    """

    # ------------------------------------------------------------------ calls

    def query_public(self, method: str, data: Mapping[str, Any] | None = None,
                     timeout: Timeout | None = None) -> Any:
        """Call a public method: a GET with ``data`` in the query string.

        Transient faults are retried (see :attr:`retries`).

        :param method: Kraken's method name, such as ``'Ticker'``
        :param data: parameters; a list value is sent comma-separated
        :param timeout: overrides :attr:`timeout` for this call
        :returns: the decoded envelope ``{"error": [...], "result": ...}``
        :raises KrakenHTTPError: on a reply that is not 2xx (also a :class:`requests.HTTPError`)
        :raises KrakenResponseError: on a 2xx reply that is not JSON, or not Kraken's envelope
        :raises KrakenConnectionError: when the connection failed (:class:`NotSentError`
            if it could not be opened)
        :raises KrakenTimeout: when no reply came within the timeout
        :raises KrakenAPIError: when Kraken answers with an error and
            :attr:`raise_errors` is set
        :raises KrakenUsageError: for a name that is not a Kraken method name, or
            a parameter that is NaN or infinite
        """
        return self._call(protocol.check_method(method), dict(data or {}), timeout,
                          private=False)

    def query_private(self, method: str, data: Mapping[str, Any] | None = None,
                      timeout: Timeout | None = None) -> Any:
        """Call a private method: a POST signed with the key, with a fresh nonce.

        ``data`` goes form-encoded, or as JSON when a value is a list or a dict
        (AddOrderBatch's ``orders``); the signature covers the exact bytes sent.
        ``data`` itself is never modified.

        Read-only calls are retried after transient faults, each time with a
        new nonce. A call that changes state (AddOrder, CancelOrder, Withdraw,
        ...) is sent again only when it provably never reached Kraken.

        :param method: Kraken's method name, such as ``'AddOrder'`` or ``'Earn/Allocate'``
        :param data: parameters, without ``nonce`` (it is added to a copy)
        :param timeout: overrides :attr:`timeout` for this call
        :returns: the decoded envelope, or ``bytes`` for a file (RetrieveExport)
        :raises KrakenUsageError: without a key or secret, with a secret that
            is not base64, or a parameter that is NaN or infinite, before
            anything is sent
        :raises OutcomeUnknownError: when a state-changing call was sent but
            its reply was lost: it may or may not have taken effect
        :raises NotSentError: when the connection could not be opened
        :raises KrakenHTTPError: on a reply that is not 2xx
        :raises KrakenResponseError: on a 2xx reply that is not JSON, or not Kraken's envelope
        :raises KrakenConnectionError: when the connection failed
        :raises KrakenTimeout: when no reply came within the timeout
        :raises KrakenAPIError: when Kraken answers with an error and
            :attr:`raise_errors` is set
        """
        method = protocol.check_method(method)
        self._check_private(method)
        return self._call(method, dict(data or {}), timeout, private=True)

    def find_order(self, *, userref: int | str | None = None,
                   cl_ord_id: str | None = None) -> dict[str, Any]:
        """Find orders by ``userref`` or ``cl_ord_id`` among open and recent closed orders.

        Use it after an :class:`OutcomeUnknownError` to learn whether an order
        exists before placing it again. Among closed orders, only the newest 50
        that match are searched.

        :param userref: the ``userref`` the order was placed with
        :param cl_ord_id: the ``cl_ord_id`` the order was placed with
        :returns: the matching orders by txid, empty if none was found
        :raises KrakenUsageError: unless exactly one of the two is given
        :raises KrakenAPIError: if Kraken refuses the lookup
        """
        field, value = core.order_filter(userref, cl_ord_id)
        found: dict[str, Any] = {}
        for method, member in core.ORDER_LISTS:
            orders = unwrap(self.query_private(method, {field: value}), method)[member]
            found.update(core.matching_orders(orders, field, value))
        return found

    def reconcile(self, error: OutcomeUnknownError) -> dict[str, Any]:
        """Look up the order behind an :class:`OutcomeUnknownError` by its userref or cl_ord_id.

        The lookup's own nonce is above the lost call's. With the key's nonce
        window at 0 (Kraken's default), once the lookup is answered Kraken can
        no longer accept the lost call if it is still on its way: an empty
        answer then means the order was not placed and will not be. With a
        :attr:`nonce_window`, the lookup's nonce is raised past the lost
        call's by the window, so the same holds.

        :param error: the exception a state-changing call raised
        :returns: the matching orders by txid, empty if none was found
        :raises KrakenUsageError: if the call carried neither identifier
        :raises KrakenAPIError: if Kraken refuses the lookup
        """
        field, value = self._lookup_filter(error)
        return self.find_order(**{field: value})

    def dead_man_switch(self, timeout: int = ADVISED_TIMEOUT, every: float | None = None, *,
                        disarm_on_error: bool = False) -> DeadManSwitch:
        """A keeper of Kraken's dead man's switch (CancelAllOrdersAfter) for this key.

        ``with api.dead_man_switch(timeout=60, every=20):`` arms it, re-arms it every
        ``every`` seconds from a thread, and disarms it when the block ends cleanly; an
        exception leaves it armed, so Kraken cancels every order when the timer runs
        out (:mod:`krakenex.deadman`). A failed re-arm is a warning on the ``krakenex``
        logger and is tried again sooner.

        :param timeout: seconds Kraken waits after the last arming, 1 to 86399
        :param every: seconds between two armings, at most half of ``timeout``
            (default: a third of it)
        :param disarm_on_error: disarm when an exception leaves the block, too
        :raises KrakenUsageError: for a timeout or period out of those bounds
        """
        def arm(seconds: int, within: float) -> None:
            unwrap(self.query_private('CancelAllOrdersAfter', {'timeout': seconds},
                                      timeout=call_timeout(self.timeout, within)),
                   'CancelAllOrdersAfter')

        return DeadManSwitch(arm, timeout, every, what=f'{self.uri} (REST)',
                             disarm_on_error=disarm_on_error)

    def _call(self, method: str, data: dict[str, Any], timeout: Timeout | None, *,
              private: bool) -> Any:
        return self.run(self._spot_call(method, data, private=private), timeout)

    def _query(self, urlpath: str, data: Mapping[str, Any] | str | bytes | None,
               headers: Mapping[str, str] | None = None, timeout: Timeout | None = None) -> Any:
        """Send one request to ``uri + urlpath`` and decode the reply (the 2.x internal).

        Public paths are a GET with ``data`` in the query string; other paths
        a POST with ``data`` as the body (a mapping is encoded as
        :meth:`_sign` encodes it; ``str`` or ``bytes`` go as they are).

        .. note:: Use :meth:`query_public` or :meth:`query_private` unless you
           have a good reason not to: this sends once, without retries.

        :returns: the decoded JSON, or ``bytes`` for a file
        """
        method = urlpath.rsplit('/', 1)[-1]
        if '/public/' in urlpath:
            query = protocol.query_string(data) if isinstance(data, Mapping) else ''
            request = Request(method, 'GET', urlpath, query)
        else:
            if isinstance(data, (str, bytes)):
                body = data.encode() if isinstance(data, str) else data
                content_type = 'application/x-www-form-urlencoded'
            else:
                body, content_type = protocol.encode(data or {})
            request = Request(method, 'POST', urlpath, body=body,
                              headers={'Content-Type': content_type, **(headers or {})})
        reply = self._transmit(request, self.timeout if timeout is None else timeout)
        return protocol.read_reply(method, reply, self._json_options)

