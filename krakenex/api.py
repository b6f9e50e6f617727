"""The Kraken spot REST client on requests: one :class:`API` object per key.

It keeps the shape of krakenex 2.x (``query_public``, ``query_private``,
``load_key``, the decoded JSON envelope as Kraken sent it). What Kraken
requires (nonces, signing, what may be retried, what a reply means) is in
:mod:`krakenex.protocol`; this module only sends, maps the transport's
failures and sleeps between retries.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

import requests
import urllib3

from . import core, protocol
from .errors import KrakenError, KrakenUsageError, OutcomeUnknownError, unwrap
from .pacing import RateCounter
from .protocol import DEFAULT_TIMEOUT, DEFAULT_URI, NONCE_UNITS, Reply, Request, Timeout
from .share import lease
from .version import __version__

__all__ = ['API', 'DEFAULT_URI', 'DEFAULT_TIMEOUT', 'NONCE_UNITS']

log = logging.getLogger('krakenex')

#: requests' exceptions for an address that is not a server's.
_BAD_URI = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema, requests.exceptions.InvalidProxyURL)


class API(core.SpotCore):
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
        However slowly the reply's body arrives, an attempt is over by the two together
        (its status line and headers wait at most the read time for each read)
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
    :raises KrakenUsageError: for an unknown nonce unit or tier, a ``KRAKEN_API_URL``
        that is not a server address, a timeout
        that is not a finite number of seconds above zero, or a ``share``
        that is neither a directory, a Redis URL or client, nor None
    """

    def _open(self) -> None:
        #: The :class:`requests.Session` every call goes through.
        self.session = requests.Session()
        self.session.headers['User-Agent'] = f'krakenex/{__version__}'
        #: The last :class:`requests.Response`, overwritten by every call.
        self.response: requests.Response | None = None
        # Each thread's last response: the one its error belongs to, when threads share the object.
        self._thread = threading.local()
        self._private_lock = threading.Lock()
        self._settings: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
        # What _prepare keeps between calls: the state it was made for, the checked address,
        # the .netrc auth, the session's checked headers, and a blank request to copy.
        self._blank: tuple[tuple[Any, ...], str | None, Any, list[tuple[str, Any]],
                           requests.PreparedRequest] = ((), None, None, [],
                                                        requests.PreparedRequest())
        with suppress(ValueError):  # a bad uri is reported by the first call, as a usage error
            self._send_settings()

    def __enter__(self) -> API:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its connections, and the key's store."""
        self.session.close()
        self._close_store()

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

    def _call(self, method: str, data: dict[str, Any], timeout: Timeout | None, *,
              private: bool) -> Any:
        return self._run(self._spot_call(method, data, private=private), timeout)

    def _run(self, call: protocol.Call, timeout: Timeout | None) -> Any:
        """Run a call: send it, and again after a transient fault where it may be sent again."""
        timeout = self.timeout if timeout is None else protocol.check_timeout(timeout)
        while True:
            try:
                reply = self._attempt(call, timeout)
            except KrakenError as exc:
                if (wait := call.retry.after_error(exc)) is None:
                    raise
                log.warning('%s failed (%s); retry %d in %.2f s',
                            call.name, exc, call.retry.attempt, wait)
            else:
                if (wait := call.retry.after_reply(reply)) is None:
                    return call.check(reply, getattr(self._thread, 'response', None))
                log.warning('%s answered %s; retry %d in %.2f s',
                            call.name, reply['error'], call.retry.attempt, wait)
            time.sleep(wait)

    def _attempt(self, call: protocol.Call, timeout: Timeout) -> Any:
        """Send one attempt; one holding the key's send lock alone, its nonce issued in order.

        The rate counter is waited on first, so a call waiting for room holds
        no lock; the cost is settled when the reply arrives, where Kraken's
        own counter has it.
        """
        with _paced(call.counter, call.cost):
            store = call.store
            if store is None:
                return self._send(call, timeout)
            # The key's send lock: this object's threads one at a time, then the store's.
            with self._private_lock:
                handle = store.lock(lease(timeout))
                try:
                    return self._send(call, timeout)
                finally:
                    store.unlock(handle)

    def _send(self, call: protocol.Call, timeout: Timeout) -> Any:
        """Build and send one attempt; a failure once it may have left is what the call says."""
        request = call.build()
        try:
            reply = call.read(self._transmit(request, timeout))
            return call.answered(reply, request, getattr(self._thread, 'response', None))
        except KrakenError as exc:
            unknown = call.unknown(exc, request)
            if unknown is exc:
                raise
            raise unknown from exc.__cause__

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

    def _transmit(self, request: Request, timeout: Timeout) -> Reply:
        """Send ``request`` through the session: the reply as it came, or what went wrong.

        The attempt is over by :func:`~krakenex.protocol.deadline_seconds` of
        ``timeout``, however slowly the reply's body arrives.
        """
        method = request.method
        started = time.perf_counter()
        seconds = protocol.deadline_seconds(timeout)
        deadline = time.monotonic() + seconds
        try:
            prepared = self._prepare(request)
            response = self.session.send(prepared, timeout=timeout, allow_redirects=False,
                                         **self._send_settings())
            content = _read_whole(response, deadline)
        except _PastDeadline as exc:
            raise protocol.transport_error('deadline', self.uri, method,
                                           f'{seconds:g}') from _alone(exc)
        except requests.exceptions.InvalidHeader as exc:
            raise KrakenUsageError(f'{method} cannot be sent: {exc}', method=method) from None
        except (*_BAD_URI, ValueError) as exc:
            raise protocol.transport_error('bad_uri', self.uri, method) from _alone(exc)
        except requests.ConnectTimeout as exc:
            raise protocol.transport_error('connect_timeout', self.uri, method) from _alone(exc)
        except requests.Timeout as exc:
            raise protocol.transport_error('timeout', self.uri, method) from _alone(exc)
        except requests.ConnectionError as exc:
            kind = 'not_sent' if _never_sent(exc) else 'dropped'
            raise protocol.transport_error(kind, self.uri, method, _reason(exc)) from _alone(exc)
        except requests.RequestException as exc:  # such as a body cut off mid-way
            raise protocol.transport_error('broken', self.uri, method,
                                           _reason(exc)) from _alone(exc)
        self.response = self._thread.response = response
        if log.isEnabledFor(logging.DEBUG):
            log.debug('%s %s -> %d in %.1f ms', request.verb, method, response.status_code,
                      (time.perf_counter() - started) * 1000)
        return Reply(response.status_code, response.reason or '', response.headers,
                     content, response)

    def _prepare(self, request: Request) -> requests.PreparedRequest:
        """The request as ``session.prepare_request`` makes it, built step by step for speed.

        The session's headers (``None`` removes one), cookies, auth, params and
        hooks apply as requests applies them, with requests' own ``prepare_*``
        steps and header checks. What requests works out afresh on every call
        is kept until :attr:`uri`, ``session.trust_env`` or the session's
        headers change: the checked address, the checked session headers, and
        the ``.netrc`` auth used when the session trusts the environment and
        has no auth of its own.
        """
        session = self.session
        state = (self.uri, session.trust_env, tuple(session.headers.items()))
        if self._blank[0] != state:
            blank = requests.PreparedRequest()
            blank.prepare_url(self.uri + '/', None)
            url = blank.url or ''
            netrc = requests.utils.get_netrc_auth(url) if session.trust_env else None
            blank.prepare_headers({k: v for k, v in state[2] if v is not None})
            own = list(blank.headers.items())
            blank.headers = requests.structures.CaseInsensitiveDict()  # each request's own below
            blank.prepare_cookies({})  # an empty jar, as requests gives every request
            # An address with a query or fragment is rebuilt around each path by requests.
            self._blank = (state, url[:-1] if url.endswith('/') else None, netrc, own, blank)
        _, prefix, netrc, own, blank = self._blank
        prepared = blank.copy()
        prepared.method = request.verb
        tail = request.path + ('?' + request.query if request.query else '')
        if session.params or prefix is None:
            params = session.params  # requests ignores params that are not a mapping
            prepared.prepare_url(self.uri + tail, params if isinstance(params, Mapping) else None)
        else:
            prepared.url = prefix + requests.utils.requote_uri(tail)
        for header in request.headers.items():
            requests.utils.check_header_validity(header)
        prepared.headers = requests.structures.CaseInsensitiveDict([*own, *request.headers.items()])
        if session.cookies:
            prepared.prepare_cookies(requests.cookies.merge_cookies(  # type: ignore[no-untyped-call]
                requests.cookies.RequestsCookieJar(), session.cookies))
        if request.body:  # bytes go as they are, with their length, as prepare_body sends them
            prepared.body = request.body
            prepared.headers['Content-Length'] = str(len(request.body))
        else:
            prepared.prepare_body(None, None)
        auth = session.auth or netrc
        if auth:
            prepared.prepare_auth(auth, prepared.url)
        if any(session.hooks.values()):
            prepared.prepare_hooks(session.hooks)
        else:
            prepared.hooks = requests.hooks.default_hooks()
        return prepared

    def _send_settings(self) -> dict[str, Any]:
        """Proxies, ``verify`` and ``cert`` merged as requests merges them, read once per setting.

        requests reads the environment (proxies, ``no_proxy``, CA bundles) on
        every call; the result only changes with :attr:`uri` or the session's
        own settings, so it is kept until one of those changes.
        """
        session = self.session
        key = (self.uri, session.trust_env, tuple(sorted(session.proxies.items())),
               str(session.verify), str(session.cert))
        if key != self._settings[0]:
            settings = session.merge_environment_settings(self.uri + '/', {}, False, None, None)
            # The body is read by _read_whole, against the call's deadline.
            self._settings = (key, {**settings, 'stream': True})
        return self._settings[1]


# ------------------------------------------------------------------- helpers

class _PastDeadline(Exception):
    """The reply did not arrive whole by the attempt's deadline."""


#: The most one read of a reply's body takes at a time, in bytes.
_READ_SIZE = 1 << 16


def _read_whole(response: requests.Response, deadline: float) -> bytes:
    """The whole body of a streamed ``response``, read by ``deadline`` (:func:`time.monotonic`).

    Each read takes what one receive brings (urllib3 2's ``read1``), and the
    socket waits no longer than the time left, so a server that sends a byte
    at a time cannot hold the call past its deadline. A transport other than
    urllib3's (an adapter of the user's own) is read as requests reads it, and
    judged when it is done. The body is kept as ``response.content``.

    :raises _PastDeadline: when the deadline passed first; the connection is closed
    """
    raw = response.raw
    if not isinstance(raw, urllib3.response.HTTPResponse):
        content = response.content
        if time.monotonic() > deadline:
            raise _PastDeadline
        return content
    read1 = getattr(raw, 'read1', None)  # urllib3 1.26 has none: small reads instead
    sock = getattr(getattr(raw, 'connection', None), 'sock', None)
    kept = sock.gettimeout() if sock is not None else None
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _PastDeadline
            if sock is not None:
                sock.settimeout(left)
            chunk = (read1(_READ_SIZE, decode_content=True) if read1 is not None else
                     raw.read(8192, decode_content=True))
            if not chunk:
                break
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError as exc:
        response.close()
        if time.monotonic() >= deadline:
            raise _PastDeadline from exc
        raise requests.ReadTimeout(exc) from exc
    except urllib3.exceptions.HTTPError as exc:  # cut off, reset, or not decodable
        response.close()
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except BaseException:
        response.close()
        raise
    if sock is not None:
        with suppress(OSError):
            sock.settimeout(kept)
    content = b''.join(chunks)
    response._content = content  # what requests keeps after reading a body itself
    response._content_consumed = True  # type: ignore[attr-defined]
    return content


@contextmanager
def _paced(counter: RateCounter | None, cost: float) -> Iterator[None]:
    """Count a call on ``counter``, waiting for room first; nothing without a counter."""
    if counter is None:
        yield
        return
    with counter.counting(cost):
        yield


def _alone(exc: BaseException) -> BaseException:
    """The transport's exception without the chain of causes behind it, for a short traceback."""
    exc.__cause__ = None
    exc.__suppress_context__ = True
    return exc


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether a connection error happened before any byte of the request left.

    That is so when the connection (to the server or its proxy) could not be
    opened, or the server's certificate was refused during the handshake.
    """
    stack: list[object] = [exc]
    seen: set[int] = set()
    while stack:
        inner = stack.pop()
        if not isinstance(inner, BaseException) or id(inner) in seen:
            continue
        seen.add(id(inner))
        if isinstance(inner, (urllib3.exceptions.NewConnectionError,
                              ssl.SSLCertVerificationError)):
            return True
        stack.extend((getattr(inner, 'reason', None), inner.__cause__, inner.__context__,
                      *inner.args))
    return False


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause of a requests error, in a few words."""
    inner: BaseException = exc
    while True:
        nested = getattr(inner, 'reason', None) or inner.__context__
        if not isinstance(nested, BaseException) or nested is inner:
            break
        inner = nested
    text = str(inner) or type(inner).__name__
    return text.split(': ', 1)[-1] if text.startswith('<') else text
