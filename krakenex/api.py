"""The Kraken spot REST client: one :class:`API` object per key.

It keeps the shape of krakenex 2.x (``query_public``, ``query_private``,
``load_key``, the decoded JSON envelope as Kraken sent it) and adds what a
client trusted with money needs: nonces that never collide, a finite timeout,
clear exceptions, at-most-once state changes, retries for reads and optional
pacing under Kraken's rate limits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import random
import re
import stat
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, cast

import requests
import urllib3

from . import methods
from .errors import (
    BODY_EXCERPT,
    KrakenConnectionError,
    KrakenConnectTimeout,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownResponseError,
    OutcomeUnknownTimeout,
    api_error,
    fatal,
    unwrap,
)
from .pacing import RateCounter
from .version import __url__, __version__

__all__ = ['API', 'DEFAULT_URI', 'DEFAULT_TIMEOUT', 'NONCE_UNITS']

log = logging.getLogger('krakenex')

#: Kraken's spot REST API.
DEFAULT_URI = 'https://api.kraken.com'

#: Seconds to wait for a connection and then for a reply, unless told otherwise.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: Nonce units and what :func:`time.time_ns` is divided by to get them. Kraken
#: remembers the largest nonce a key used, so a key stays with one unit.
NONCE_UNITS = {'ms': 1_000_000, 'us': 1_000, 'ns': 1}

#: Kraken's method names: letters and digits, with one ``/`` for the ``Earn/...`` family.
_METHOD_NAME = re.compile(r'[A-Za-z][A-Za-z0-9]*(?:/[A-Za-z][A-Za-z0-9]*)?\Z')

#: Kraken error strings that mean "try again later"; a read-only call is retried on them.
TRANSIENT_ERRORS = (
    'EService:Unavailable', 'EService:Busy', 'EGeneral:Internal error',
    'EGeneral:Too many requests', 'EAPI:Rate limit exceeded',
    'EService:Throttled', 'EService: Throttled',
)

#: HTTP statuses after which a read-only call is retried: too many requests, server errors
#: and Cloudflare's 52x pages.
_RETRY_STATUS = frozenset({429, *range(500, 600)})

#: ``EService: Throttled: <unix time>`` names the time to retry after.
_THROTTLED_UNTIL = re.compile(r'EService: ?Throttled: ?(\d+)')

#: Replies that are files, not JSON (RetrieveExport's zip archive).
_BINARY_TYPES = ('application/zip', 'application/octet-stream')

_TITLE = re.compile(rb'<title>\s*(.*?)\s*</title>', re.I | re.S)

Otp = str | Callable[[], str]


class API:
    """Maintains a session with Kraken for one API key.

    A key and secret are optional; without them only public calls work. When
    both are left empty they are read from ``KRAKEN_API_KEY`` and
    ``KRAKEN_API_SECRET`` if those are set.

    :attr:`session` is a :class:`requests.Session`: set its headers, proxies,
    adapters or ``verify`` as you need. :attr:`response` holds the last
    :class:`requests.Response`. Proxy and CA-bundle settings from the
    environment are read once per :attr:`uri`, not on every call.

    Private calls on one object are sent one at a time, each with a nonce above
    the one before, so their nonces reach Kraken in order even when many
    threads share the object.

    :param key: API key
    :param secret: API secret (private key), base64 as Kraken shows it
    :param uri: the server, ``https://api.kraken.com`` or a sandbox's URL
    :param timeout: seconds to wait for a connection and a reply: one number
        or a ``(connect, read)`` pair; :data:`DEFAULT_TIMEOUT` unless given
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
    :raises KrakenUsageError: for an unknown nonce unit or tier
    """

    def __init__(self, key: str = '', secret: str = '', *, uri: str = DEFAULT_URI,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 nonce_unit: str = 'ms', otp: Otp | None = None, raise_errors: bool = False,
                 retries: int = 3, backoff: float = 0.5, retry_time: float = 30.0,
                 tier: str | tuple[float, float] | None = None,
                 costs: Mapping[str, float] | None = None,
                 public_rate: float | None = None) -> None:
        if nonce_unit not in NONCE_UNITS:
            raise KrakenUsageError(f'nonce_unit must be one of {", ".join(NONCE_UNITS)}, '
                                   f'not {nonce_unit!r}')
        try:
            self.counter = RateCounter.for_tier(tier) if tier is not None else None
            self.public_counter = RateCounter(1.0, public_rate) if public_rate is not None else None
        except (TypeError, ValueError) as exc:
            raise KrakenUsageError(str(exc)) from None
        if not key and not secret:
            key = os.environ.get('KRAKEN_API_KEY', '')
            secret = os.environ.get('KRAKEN_API_SECRET', '')
        #: The API key, sent in the ``API-Key`` header.
        self.key = key
        #: The API secret; never sent, logged or shown.
        self.secret = secret
        #: The server's address, without a trailing slash.
        self.uri = uri
        #: Kraken's API version, part of every path.
        self.apiversion = '0'
        #: The :class:`requests.Session` every call goes through.
        self.session = requests.Session()
        self.session.headers['User-Agent'] = f'krakenex/{__version__} (+{__url__})'
        #: The last :class:`requests.Response`, overwritten by every call.
        self.response: requests.Response | None = None
        # This thread's last response: the one an error belongs to, when threads share the object.
        self._own = threading.local()
        #: The default timeout: seconds, or a ``(connect, read)`` pair.
        self.timeout = timeout
        #: The one-time password, or a function that returns a fresh one.
        self.otp = otp
        #: Whether Kraken's error strings raise :class:`~krakenex.KrakenAPIError`.
        self.raise_errors = raise_errors
        #: How many times a read-only call is retried after a transient fault.
        self.retries = retries
        #: The first retry's wait in seconds, doubled for each retry after it.
        self.backoff = backoff
        #: Seconds from a call's start after which it is no longer retried.
        self.retry_time = retry_time
        #: Rate-counter costs by method, where they differ from Kraken's table.
        self.costs = dict(costs or {})
        #: The unit of nonces, fixed when the object is made: ``'ms'``, ``'us'`` or ``'ns'``.
        self.nonce_unit = nonce_unit
        self._nonce_divisor = NONCE_UNITS[nonce_unit]
        self._last_nonce = 0
        self._nonce_lock = threading.Lock()
        self._private_lock = threading.Lock()
        self._json_options: dict[str, Any] = {}
        self._secret_cache: tuple[str, bytes] = ('', b'')
        self._environment_cache: tuple[str, dict[str, str], str | None] = ('', {}, None)
        self._environment()

    def __repr__(self) -> str:
        shown = self.key[:4] + '...' if self.key else ''
        return f'<krakenex.API key={shown!r} uri={self.uri!r}>'

    def __enter__(self) -> API:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def json_options(self, **kwargs: Any) -> API:
        """Set keyword arguments for decoding replies, such as ``parse_float=Decimal``.

        :param kwargs: passed to :func:`json.loads`
        :returns: this object, for chaining
        """
        self._json_options = kwargs
        return self

    def close(self) -> None:
        """Close the session and its connections."""
        self.session.close()

    def load_key(self, path: str | os.PathLike[str]) -> None:
        """Load the key (first line) and secret (second line) from a file.

        Surrounding whitespace and Windows line ends are ignored. A file that
        others may read gets a warning.

        :param path: the key file
        :raises OSError: if the file cannot be read
        :raises KrakenUsageError: if a line is missing or the secret is not base64
        """
        with open(path, encoding='utf-8') as f:
            lines = [line.strip() for line in f.read().splitlines()]
        lines = [line for line in lines if line]
        if len(lines) < 2:
            raise KrakenUsageError(
                f'key file {os.fspath(path)!r} needs the API key on its first line and the '
                f'secret on its second; it has {len(lines)} non-empty line(s)')
        key, secret = lines[0], lines[1]
        _decode_secret(secret, f'the secret in key file {os.fspath(path)!r}')
        if os.name == 'posix' and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(f'key file {os.fspath(path)!r} can be read by other users; '
                          f'make it private with: chmod 600 {os.fspath(path)}', stacklevel=2)
        self.key, self.secret = key, secret

    # ------------------------------------------------------------------ calls

    def query_public(self, method: str, data: Mapping[str, Any] | None = None,
                     timeout: float | tuple[float, float] | None = None) -> Any:
        """Call a public method: a GET with ``data`` in the query string.

        Transient faults are retried (see :attr:`retries`).

        :param method: Kraken's method name, such as ``'Ticker'``
        :param data: parameters; a list value is sent comma-separated
        :param timeout: overrides :attr:`timeout` for this call
        :returns: the decoded envelope ``{"error": [...], "result": ...}``
        :raises KrakenHTTPError: on a reply that is not 2xx (also a :class:`requests.HTTPError`)
        :raises KrakenResponseError: on a 2xx reply that is not JSON
        :raises KrakenConnectionError: when the connection failed (:class:`NotSentError`
            if it could not be opened)
        :raises KrakenTimeout: when no reply came within the timeout
        :raises KrakenAPIError: when Kraken answers with an error and
            :attr:`raise_errors` is set
        :raises KrakenUsageError: for a name that is not a Kraken method name
        """
        urlpath = self._urlpath('public', method)
        return self._call(method, urlpath, dict(data or {}), timeout, private=False)

    def query_private(self, method: str, data: Mapping[str, Any] | None = None,
                      timeout: float | tuple[float, float] | None = None) -> Any:
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
        :raises KrakenUsageError: without a key or secret, or with a secret that
            is not base64, before anything is sent
        :raises OutcomeUnknownError: when a state-changing call was sent but
            its reply was lost: it may or may not have taken effect
        :raises NotSentError: when the connection could not be opened
        :raises KrakenHTTPError: on a reply that is not 2xx
        :raises KrakenResponseError: on a 2xx reply that is not JSON
        :raises KrakenConnectionError: when the connection failed
        :raises KrakenTimeout: when no reply came within the timeout
        :raises KrakenAPIError: when Kraken answers with an error and
            :attr:`raise_errors` is set
        """
        urlpath = self._urlpath('private', method)
        if not self.key or not self.secret:
            raise KrakenUsageError(
                f'{method} is a private method and needs an API key and secret: pass them to '
                f'API(key, secret), call load_key(path), or set KRAKEN_API_KEY and '
                f'KRAKEN_API_SECRET')
        self._secret_bytes()
        return self._call(method, urlpath, dict(data or {}), timeout, private=True)

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
        if (userref is None) == (cl_ord_id is None):
            raise KrakenUsageError('find_order needs exactly one of userref or cl_ord_id')
        field, value = ('userref', userref) if userref is not None else ('cl_ord_id', cl_ord_id)
        found: dict[str, Any] = {}
        for method, member in (('OpenOrders', 'open'), ('ClosedOrders', 'closed')):
            orders = unwrap(self.query_private(method, {field: value}), method)[member]
            found.update((txid, order) for txid, order in orders.items()
                         if str(order.get(field)) == str(value))
        return found

    def reconcile(self, error: OutcomeUnknownError) -> dict[str, Any]:
        """Look up the order behind an :class:`OutcomeUnknownError` by its userref or cl_ord_id.

        The lookup's own nonce is above the lost call's. With the key's nonce
        window at 0 (Kraken's default), once the lookup is answered Kraken can
        no longer accept the lost call if it is still on its way: an empty
        answer then means the order was not placed and will not be.

        :param error: the exception a state-changing call raised
        :returns: the matching orders by txid, empty if none was found
        :raises KrakenUsageError: if the call carried neither identifier
        :raises KrakenAPIError: if Kraken refuses the lookup
        """
        if error.cl_ord_id is not None:
            return self.find_order(cl_ord_id=error.cl_ord_id)
        if error.userref is not None:
            return self.find_order(userref=error.userref)
        raise KrakenUsageError(f'{error.method} carried no userref or cl_ord_id to look up; '
                               f'check OpenOrders and ClosedOrders by hand')

    def _urlpath(self, access: str, method: str) -> str:
        if not isinstance(method, str) or not _METHOD_NAME.match(method):
            raise KrakenUsageError(f'{method!r} is not a Kraken method name: expected letters '
                                   f'and digits such as Ticker, AddOrder or Earn/Allocate')
        return f'/{self.apiversion}/{access}/{method}'

    def _call(self, method: str, urlpath: str, data: dict[str, Any],
              timeout: float | tuple[float, float] | None, *, private: bool) -> Any:
        """Send a call, pacing it and retrying what may be retried."""
        once = private and methods.changes_state(method, data)
        give_up_at = time.monotonic() + self.retry_time
        attempt = 0
        while True:
            try:
                if private:
                    reply = self._send_private(method, urlpath, data, timeout, once=once)
                else:
                    with _paced(self.public_counter, 1):
                        reply = self._query(urlpath, data, timeout=timeout)
            except KrakenError as exc:
                wait = self._retry_wait(exc, attempt, give_up_at, once=once)
                if wait is None:
                    raise
                log.warning('%s failed (%s); retry %d in %.2f s', method, exc, attempt + 1, wait)
            else:
                wait = self._retry_wait(reply, attempt, give_up_at, once=once)
                if wait is None:
                    return self._checked(method, reply)
                log.warning('%s answered %s; retry %d in %.2f s',
                            method, reply['error'], attempt + 1, wait)
            time.sleep(wait)
            attempt += 1

    def _retry_wait(self, outcome: Any, attempt: int, give_up_at: float, *,
                    once: bool) -> float | None:
        """How long to wait before retrying after ``outcome``, or ``None`` not to retry."""
        if attempt >= self.retries:
            return None
        wait = self.backoff * 2 ** attempt * random.uniform(0.5, 1.0)
        if isinstance(outcome, KrakenError):
            if once and not isinstance(outcome, NotSentError):
                return None
            transient = isinstance(outcome, (KrakenConnectionError, KrakenTimeout,
                                             KrakenResponseError)) or (
                isinstance(outcome, KrakenHTTPError) and (outcome.status or 0) in _RETRY_STATUS)
            if not transient:
                return None
        elif once or not _transient_reply(outcome):
            return None
        else:
            for error in outcome['error']:
                if until := _THROTTLED_UNTIL.match(error):
                    wait = max(wait, int(until.group(1)) - time.time())
        return wait if time.monotonic() + wait <= give_up_at else None

    def _checked(self, method: str, reply: Any) -> Any:
        """Return a reply, raising or warning about Kraken's errors as configured."""
        if isinstance(reply, dict) and reply.get('error'):
            errors = reply['error']
            if fatal(errors):
                error = api_error(errors, method, getattr(self._own, 'response', None))
                if self.raise_errors:
                    raise error
                if 'EAPI:Invalid nonce' in errors:
                    log.warning('%s', error)
        return reply

    def _send_private(self, method: str, urlpath: str, data: dict[str, Any],
                      timeout: float | tuple[float, float] | None, *, once: bool) -> Any:
        """Sign and send one private request, with a nonce issued in send order.

        The lock keeps one private call in flight, so nonces arrive in the order
        issued; the rate counter is consulted inside it, where its clock agrees
        best with the moment Kraken counts the call.
        """
        cost = self.costs.get(method, methods.cost(method))
        with self._private_lock, _paced(self.counter, cost):
            nonce = self._nonce()
            if isinstance(nonce, bool) or not str(nonce).isdigit():
                raise KrakenUsageError(f'_nonce() returned {nonce!r}; a nonce must be a '
                                       f'non-negative integer')
            params: dict[str, Any] = {'nonce': nonce}
            params.update((k, v) for k, v in data.items() if k != 'nonce')
            if self.otp is not None and 'otp' not in data:
                params['otp'] = self.otp() if callable(self.otp) else self.otp
            body, content_type = _encode(params)
            headers = {'API-Key': self.key, 'Content-Type': content_type,
                       'API-Sign': self._signature(urlpath, str(nonce), body)}
            try:
                return self._query(urlpath, body, headers, timeout)
            except (NotSentError, KrakenUsageError):
                raise
            except KrakenError as exc:
                if once:
                    raise _outcome_unknown(exc, method, nonce, data) from exc
                raise

    def _query(self, urlpath: str, data: Mapping[str, Any] | str | bytes | None,
               headers: Mapping[str, str] | None = None,
               timeout: float | tuple[float, float] | None = None) -> Any:
        """Send one request to ``uri + urlpath`` and decode the reply.

        Public paths are a GET with ``data`` in the query string; other paths
        a POST with ``data`` as the body (a mapping is encoded as
        :meth:`_sign` encodes it; ``str`` or ``bytes`` go as they are).

        .. note:: Use :meth:`query_public` or :meth:`query_private` unless you
           have a good reason not to: this sends once, without retries.

        :returns: the decoded JSON, or ``bytes`` for a file
        :raises KrakenHTTPError: on a reply that is not 2xx
        :raises KrakenResponseError: on a 2xx reply that is not JSON
        :raises KrakenConnectionError: when the connection failed
        :raises KrakenTimeout: when no reply came within the timeout
        """
        method = urlpath.split('/', 3)[-1]
        url = self.uri + urlpath
        prepared = requests.PreparedRequest()
        prepared.prepare_hooks(self.session.hooks)
        all_headers: requests.structures.CaseInsensitiveDict[str | bytes] = \
            requests.structures.CaseInsensitiveDict(self.session.headers)
        if '/public/' in urlpath:
            prepared.method = 'GET'
            if data and isinstance(data, Mapping):
                url += '?' + urllib.parse.urlencode(_query_values(data))
        else:
            prepared.method = 'POST'
            if isinstance(data, str):
                body = data.encode()
            elif isinstance(data, bytes):
                body = data
            else:
                body, all_headers['Content-Type'] = _encode(data or {})
            prepared.body = body
            all_headers['Content-Length'] = str(len(body))
        if headers:
            all_headers.update(headers)
        prepared.url = url
        prepared.headers = cast('requests.structures.CaseInsensitiveDict[str]', all_headers)
        if self.session.cookies:
            prepared.prepare_cookies(self.session.cookies)
        if self.session.auth:
            prepared.prepare_auth(self.session.auth, url)
        proxies, verify = self._environment()
        started = time.perf_counter()
        try:
            response = self.session.send(
                prepared, timeout=self.timeout if timeout is None else timeout,
                proxies=proxies, verify=verify, cert=self.session.cert,
                stream=False, allow_redirects=False)
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema) as exc:
            raise KrakenUsageError(f'API.uri {self.uri!r} is not a server address such as '
                                   f'{DEFAULT_URI}', method=method) from exc
        except requests.ConnectTimeout as exc:
            raise KrakenConnectTimeout(f'could not connect to {self.uri} within the timeout '
                                       f'for {method}; nothing was sent', method=method) from exc
        except requests.Timeout as exc:
            raise KrakenTimeout(f'no reply from {self.uri} to {method} within the timeout',
                                method=method) from exc
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                raise NotSentError(f'could not connect to {self.uri} for {method}: '
                                   f'{_reason(exc)}; nothing was sent', method=method) from exc
            raise KrakenConnectionError(f'the connection to {self.uri} failed during {method}: '
                                        f'{_reason(exc)}', method=method) from exc
        except requests.RequestException as exc:  # such as a body cut off mid-way
            raise KrakenConnectionError(f'the reply from {self.uri} to {method} broke off: '
                                        f'{_reason(exc)}', method=method) from exc
        self.response = self._own.response = response
        status = response.status_code
        if log.isEnabledFor(logging.DEBUG):
            log.debug('%s %s -> %d in %.1f ms', prepared.method, method, status,
                      (time.perf_counter() - started) * 1000)
        content = response.content
        if not 200 <= status < 300:
            raise KrakenHTTPError(_http_message(method, response), method=method, status=status,
                                  body=_excerpt(content), response=response)
        if response.headers.get('Content-Type', '').startswith(_BINARY_TYPES):
            return content
        try:
            return json.loads(content, **self._json_options)
        except ValueError:
            kind = response.headers.get('Content-Type') or 'no content type'
            raise KrakenResponseError(
                f'Kraken {method} answered HTTP {status} with a body that is not JSON '
                f'({kind}): {_excerpt(content)!r}', method=method, status=status,
                body=_excerpt(content), response=response) from None

    def _environment(self) -> tuple[dict[str, str], Any]:
        """Proxies and ``verify`` for the session, with the environment read once per uri."""
        uri, proxies, bundle = self._environment_cache
        if uri != self.uri:
            proxies, bundle = {}, None
            if self.session.trust_env:
                proxies = requests.utils.get_environ_proxies(self.uri)
                bundle = os.environ.get('REQUESTS_CA_BUNDLE') or os.environ.get('CURL_CA_BUNDLE')
            self._environment_cache = (self.uri, proxies, bundle)
        if self.session.proxies:
            proxies = {**proxies, **self.session.proxies}
        verify = self.session.verify
        return proxies, bundle if verify is True and bundle else verify

    # --------------------------------------------------------- nonce, signing

    def _nonce(self) -> int:
        """Return a nonce above every nonce this object issued before.

        It is the time in :attr:`nonce_unit`, raised past the last one when the
        clock has not moved on (or went back). Safe to call from many threads.
        """
        with self._nonce_lock:
            nonce = max(time.time_ns() // self._nonce_divisor, self._last_nonce + 1)
            self._last_nonce = nonce
            return nonce

    def _sign(self, data: Mapping[str, Any] | str | bytes, urlpath: str) -> str:
        """Sign a request as Kraken checks it, for a hand-made :meth:`_query`.

        :param data: the parameters, with ``nonce``, encoded here exactly as
            :meth:`query_private` sends them; or the exact body
        :param urlpath: the path, such as ``/0/private/AddOrder``
        :returns: the value of the ``API-Sign`` header
        :raises KrakenUsageError: if there is no nonce, or the secret is not base64
        """
        if isinstance(data, (str, bytes)):
            body = data.encode() if isinstance(data, str) else data
            return self._signature(urlpath, _nonce_in(body), body)
        if 'nonce' not in data:
            raise KrakenUsageError('the data to sign has no nonce')
        return self._signature(urlpath, str(data['nonce']), _encode(data)[0])

    def _signature(self, urlpath: str, nonce: str, body: bytes) -> str:
        """``base64(HMAC-SHA512(secret, path + SHA256(nonce + body)))``, Kraken's API-Sign."""
        message = urlpath.encode() + hashlib.sha256(nonce.encode() + body).digest()
        digest = hmac.new(self._secret_bytes(), message, hashlib.sha512).digest()
        return base64.b64encode(digest).decode()

    def _secret_bytes(self) -> bytes:
        """The decoded secret, decoded again only when :attr:`secret` changes."""
        text, raw = self._secret_cache
        if text != self.secret or not raw:
            raw = _decode_secret(self.secret, 'the API secret')
            self._secret_cache = (self.secret, raw)
        return raw


# ------------------------------------------------------------------- helpers

def _paced(counter: RateCounter | None, cost: float) -> AbstractContextManager[None]:
    """Count a call on ``counter``, waiting for room first; nothing without a counter."""
    return counter.counting(cost) if counter else nullcontext()


def _decode_secret(secret: str, what: str) -> bytes:
    """Decode a base64 secret, with an error that never shows it."""
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raw = b''
    if not raw:
        raise KrakenUsageError(f'{what} is not valid base64 ({len(secret)} characters); copy the '
                               f'private key exactly as Kraken showed it')
    return raw


def _form_value(value: Any) -> Any:
    return ('true' if value else 'false') if isinstance(value, bool) else value


def _query_values(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Query-string pairs: booleans as Kraken spells them, lists comma-separated."""
    return [(k, ','.join(map(str, v)) if isinstance(v, (list, tuple)) else _form_value(v))
            for k, v in data.items() if v is not None]


def _encode(data: Mapping[str, Any]) -> tuple[bytes, str]:
    """Encode a private call's parameters: JSON if any value is nested, else a form."""
    if any(isinstance(v, (list, tuple, dict)) for v in data.values()):
        text = json.dumps({k: v for k, v in data.items() if v is not None},
                          separators=(',', ':'), default=str)
        return text.encode(), 'application/json'
    pairs = [(k, _form_value(v)) for k, v in data.items() if v is not None]
    return urllib.parse.urlencode(pairs).encode(), 'application/x-www-form-urlencoded'


def _nonce_in(body: bytes) -> str:
    """The nonce inside an encoded body, JSON or form."""
    try:
        if body.lstrip().startswith(b'{'):
            nonce = json.loads(body)['nonce']
        else:
            nonce = urllib.parse.parse_qs(body.decode())['nonce'][0]
    except (ValueError, KeyError, TypeError, IndexError):
        raise KrakenUsageError('the body to sign has no nonce') from None
    return str(nonce)


def _transient_reply(reply: Any) -> bool:
    """Whether every error in a reply says to try again later."""
    errors = reply.get('error') if isinstance(reply, dict) else None
    if not errors:
        return False
    failures = fatal(errors)
    return bool(failures) and all(e.startswith(TRANSIENT_ERRORS) for e in failures)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether a connection error happened before any byte of the request left."""
    reason = getattr(exc.args[0], 'reason', None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


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


def _excerpt(content: bytes) -> str:
    return content[:BODY_EXCERPT].decode('utf-8', 'replace')


def _http_message(method: str, response: requests.Response) -> str:
    """Say what a non-2xx reply was, naming Cloudflare's pages by their title."""
    message = f'Kraken {method} answered HTTP {response.status_code}'
    if response.reason:
        message += f' {response.reason}'
    if response.headers.get('Server', '').lower() == 'cloudflare' or \
            response.headers.get('CF-RAY'):
        title = _TITLE.search(response.content[:4096])
        detail = title.group(1).decode('utf-8', 'replace') if title else 'an HTML error page'
        message += f' from Cloudflare ({detail}), an error in front of Kraken'
    elif response.is_redirect:
        message += f'; it redirects to {response.headers.get("Location")}: check API.uri'
    return message


_OUTCOME_UNKNOWN: tuple[tuple[type[KrakenError], type[OutcomeUnknownError]], ...] = (
    (KrakenHTTPError, OutcomeUnknownHTTPError),
    (KrakenResponseError, OutcomeUnknownResponseError),
    (KrakenTimeout, OutcomeUnknownTimeout),
    (KrakenConnectionError, OutcomeUnknownConnectionError),
)


def _outcome_unknown(exc: KrakenError, method: str, nonce: int,
                     data: Mapping[str, Any]) -> OutcomeUnknownError:
    """Turn a failure after a state-changing call was sent into an unknown outcome."""
    cls = next(unknown for known, unknown in _OUTCOME_UNKNOWN if isinstance(exc, known))
    userref, cl_ord_id = data.get('userref'), data.get('cl_ord_id')
    ids = ', '.join(f'{name} {value}' for name, value in
                    (('userref', userref), ('cl_ord_id', cl_ord_id)) if value is not None)
    lookup = (f'look it up by {ids} (API.reconcile)' if ids else
              'look in OpenOrders and ClosedOrders (next time give it a userref or cl_ord_id)')
    error = cls(f'{method} was sent (nonce {nonce}) but {exc}. It may or may not have taken '
                f'effect at Kraken, and krakenex did not send it again: {lookup} before you '
                f'resubmit.', method=method, status=exc.status, errors=exc.errors,
                body=exc.body, response=exc.response)
    error.nonce = nonce
    error.userref = None if userref is None else str(userref)
    error.cl_ord_id = None if cl_ord_id is None else str(cl_ord_id)
    return error
