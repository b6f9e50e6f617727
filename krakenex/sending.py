"""Sends Kraken calls over requests: the sending loop of :class:`~krakenex.API` and FuturesAPI.

:class:`RequestsDriver` runs a :class:`krakenex.protocol.Call` built by a
client's core (spot or futures): the rate counter, the key's send lock, one
deadline per attempt, the transport's failures named, unknown outcomes, and
the sleeps between retries. What the call means is the core's; this module
only sends.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from . import protocol
from .core import KeyedCore
from .errors import KrakenError, KrakenUsageError, NotSentError
from .pacing import RateCounter
from .protocol import Reply, Request, Timeout
from .share import lease
from .version import __version__
from .watchdog import Watch, watch_adapter

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ['RequestsDriver']

log = logging.getLogger('krakenex')

#: requests' exceptions for an address that is not a server's.
_BAD_URI = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema, requests.exceptions.InvalidProxyURL)


class RequestsDriver(KeyedCore):
    """A client's way to send over one :class:`requests.Session`: :class:`~krakenex.API` and
    :class:`~krakenex.futures.FuturesAPI` are their core plus this.

    :attr:`session` and :attr:`response` are documented on :class:`~krakenex.API`.
    """

    def _open(self) -> None:
        """Set up the session, the last response and the send lock."""
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its connections, and the key's store."""
        self.session.close()
        self._close_store()

    # ---------------------------------------------------------------- sending

    def run(self, call: protocol.Call, timeout: Timeout | None = None) -> Any:
        """Run a call built by the client's core: send it, and again where it may be sent again.

        The one sending loop of the clients on requests: it waits on the
        call's rate counter, holds the key's send lock from the nonce to the
        reply, bounds each attempt by its deadline, turns a failure after
        sending into what the call says (an unknown outcome for a state
        change), and sleeps between retries.

        :param call: what to send and how to judge it (:class:`krakenex.protocol.Call`)
        :param timeout: overrides :attr:`timeout` for this call
        :returns: the call's checked result
        """
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
        # A state change goes on no pooled connection idle past stale_after (watchdog.py).
        stale_after = self.stale_after if call.retry.at_most_once else None
        try:
            reply = call.read(self._transmit(request, timeout, stale_after))
            return call.answered(reply, request, getattr(self._thread, 'response', None))
        except KrakenError as exc:
            unknown = call.unknown(exc, request)
            if unknown is exc:
                raise
            raise unknown from exc.__cause__

    def _transmit(self, request: Request, timeout: Timeout,
                  stale_after: float | None = None) -> Reply:
        """Send ``request`` through the session: the reply as it came, or what went wrong.

        The attempt is over by :func:`~krakenex.protocol.deadline_seconds` of
        ``timeout``, however slowly the reply's status line, headers and body arrive.
        With ``stale_after``, a pooled connection idle longer is closed and opened afresh
        before the request goes on it.
        """
        method = request.method
        started = time.perf_counter()
        seconds = protocol.deadline_seconds(timeout)
        deadline = time.monotonic() + seconds
        watch = Watch(deadline, stale_after)
        try:
            prepared = self._prepare(request)
            watch_adapter(self.session.get_adapter(prepared.url or ''))
            try:
                with watch:  # cut at the deadline while the status line and headers come
                    response = self.session.send(prepared, timeout=timeout,
                                                 allow_redirects=False, **self._send_settings())
            except requests.RequestException as exc:
                if watch.fired:
                    raise _PastDeadline from exc
                raise
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
    counted_at = counter.acquire(cost)
    try:
        yield
    except NotSentError:
        counter.unsent(cost)  # Kraken never counted it
        raise
    finally:
        counter.settle(cost, counted_at)


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
