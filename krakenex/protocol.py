"""Kraken's spot REST protocol, with no I/O: what to send, and what a reply means.

Every driver (:class:`krakenex.API` on requests, :class:`krakenex.AsyncAPI`
on aiohttp) builds its requests and reads its replies here, so Kraken's rules
are written once:

- :func:`clock_nonce`: the clock's nonce in a unit (the key's store keeps them increasing);
- :func:`render`, :func:`query_string`, :func:`encode`: parameters as text,
  numbers in plain positional notation (``0.00000001``, never ``1e-08``);
- :func:`sign`: Kraken's ``API-Sign``;
- :func:`public_request`, :func:`private_request`: a :class:`Request` to send;
- :func:`read_reply`: a transport's :class:`Reply` -> decoded JSON, bytes, or
  the typed exception; :func:`read_envelope` also refuses a reply that is not
  Kraken's envelope (:func:`envelope_problem`); :func:`checked` applies ``raise_errors``;
- :class:`Retry`: whether and when a call is tried again;
- :func:`after_sending`: a failure after a state-changing call left is an
  :class:`~krakenex.OutcomeUnknownError`;
- :func:`transport_error`: the exception for a failure below HTTP.

Kraken's documentation: https://docs.kraken.com/api/docs/guides/spot-rest-auth
(signing), https://docs.kraken.com/api/docs/guides/spot-errors (error strings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import random
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from . import methods
from .errors import (
    BODY_EXCERPT,
    KrakenAPIError,
    KrakenConnectionError,
    KrakenConnectTimeout,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownAPIError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownResponseError,
    OutcomeUnknownTimeout,
    ambiguous,
    api_error,
    failures,
)
from .pacing import RateCounter

__all__ = [
    'DEFAULT_URI', 'DEFAULT_TIMEOUT', 'NONCE_UNITS', 'clock_nonce', 'check_nonce_unit', 'Request',
    'Reply', 'Retry',
    'render', 'form', 'query_string', 'encode', 'sign', 'decode_secret', 'nonce_in', 'check_method',
    'check_timeout', 'split_timeout', 'deadline_seconds', 'public_request', 'private_request',
    'loads', 'UnboundedNumberError', 'MAX_DIGITS', 'MAX_EXPONENT_DIGITS', 'read_reply',
    'check_uri', 'read_envelope', 'envelope_problem', 'checked', 'after_sending',
    'ambiguous_answer', 'after_answer', 'transport_error', 'unicode_only',
]

log = logging.getLogger('krakenex')

#: Kraken's spot REST API.
DEFAULT_URI = 'https://api.kraken.com'

#: Seconds to wait for a connection and then for the whole reply, unless told otherwise.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: The longest timeout a call accepts, in seconds (about eleven days).
MAX_TIMEOUT = 1_000_000

#: Nonce units and what :func:`time.time_ns` is divided by to get them. Kraken
#: remembers the largest nonce a key used, so a key stays with one unit.
NONCE_UNITS = {'ms': 1_000_000, 'us': 1_000, 'ns': 1}

#: Kraken error strings that mean "try again later"; a read-only call is retried on them.
TRANSIENT_ERRORS = (
    'EService:Unavailable', 'EService:Busy', 'EGeneral:Internal error',
    'EGeneral:Too many requests', 'EAPI:Rate limit exceeded',
    'EService:Throttled', 'EService: Throttled', 'EEarnings:Busy',
)

#: HTTP statuses after which a read-only call is retried: too many requests, server errors
#: and Cloudflare's 52x pages.
RETRY_STATUS = frozenset({429, *range(500, 600)})

#: ``EService: Throttled: <unix time>`` names the time to retry after.
_THROTTLED_UNTIL = re.compile(r'EService: ?Throttled: ?(\d+)')

#: Replies that are files, not JSON (RetrieveExport's zip archive).
BINARY_TYPES = ('application/zip', 'application/octet-stream')

_TITLE = re.compile(rb'<title>\s*(.*?)\s*</title>', re.I | re.S)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Timeout = float | tuple[float, float]
Otp = str | Callable[[], str]


# ------------------------------------------------------------------ nonces

def check_nonce_unit(unit: str) -> str:
    """Return ``unit`` if it is a nonce unit.

    :raises KrakenUsageError: for another unit
    """
    if not isinstance(unit, str) or unit not in NONCE_UNITS:
        raise KrakenUsageError(f'nonce_unit must be one of {", ".join(NONCE_UNITS)}, '
                               f'not {unit!r}')
    return unit


def clock_nonce(unit: str) -> int:
    """The clock's time in nonce ``unit``: what a nonce is unless the key's floor is higher.

    The key's store (:mod:`krakenex.share`) raises it past every nonce issued
    before, so the clock standing still or going back never repeats a nonce.
    """
    return time.time_ns() // NONCE_UNITS[unit]


# ------------------------------------------------------------ parameters

def render(value: Any) -> Any:
    """A parameter's value as Kraken reads it.

    Booleans are ``true``/``false``; ``float`` and :class:`~decimal.Decimal`
    are written in plain positional notation, the number the user meant
    (``1e-08`` -> ``0.00000001``, ``0.1 + 0.2`` -> ``0.3``); strings and
    integers go as they are.

    :raises KrakenUsageError: for NaN or an infinity, which no Kraken parameter accepts
    """
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        if not math.isfinite(value):
            raise KrakenUsageError(f'{value!r} is not a number Kraken accepts')
        from decimal import Decimal  # here, not up front: it adds to krakenex's import time

        # Fifteen significant digits is what a float reliably holds.
        value = Decimal(f'{value:.15g}')
    # A Decimal can only exist once its module is loaded; krakenex does not load it up front.
    decimal = sys.modules.get('decimal')
    if decimal is not None and isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise KrakenUsageError(f'{value!r} is not a number Kraken accepts')
        text = format(value, 'f')
        return text.rstrip('0').rstrip('.') if '.' in text else text
    return value


def _rendered_tree(value: Any) -> Any:
    """A JSON body's values rendered; containers walked, integers kept as numbers."""
    if isinstance(value, Mapping):
        return {k: _rendered_tree(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_rendered_tree(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    return render(value)


#: Text that form encoding writes as it is: what :func:`urllib.parse.quote_plus` never changes.
_PLAIN = re.compile(r'[A-Za-z0-9_.~-]*')


def form(pairs: list[tuple[Any, Any]]) -> str:
    """``urllib.parse.urlencode(pairs)``: the same text, joined directly when nothing needs quoting.

    Most calls carry names and values such as ``pair=XBTUSD`` and
    ``nonce=1700000000000``; those are joined as they are, and anything else
    goes through :func:`urllib.parse.urlencode`.
    """
    texts = []
    for name, value in pairs:
        kind = type(value)
        if kind is int:
            text = str(value)  # digits, and perhaps a minus sign: all plain
        elif kind is str and (value.isascii() and value.isalnum()
                              or _PLAIN.fullmatch(value) is not None):
            text = value
        else:
            return urllib.parse.urlencode(pairs)
        if type(name) is not str or not (name.isascii() and name.isalnum()) \
                and _PLAIN.fullmatch(name) is None:
            return urllib.parse.urlencode(pairs)
        texts.append(f'{name}={text}')
    return '&'.join(texts)


def query_string(data: Mapping[str, Any]) -> str:
    """A public call's query string: values rendered, lists comma-separated.

    :raises KrakenUsageError: for NaN, an infinity, or text that is not Unicode
    """
    try:
        return form([
            (k, ','.join(str(render(item)) for item in v) if isinstance(v, (list, tuple))
             else render(v)) for k, v in data.items() if v is not None])
    except UnicodeEncodeError as exc:
        raise _not_unicode(exc) from None


def encode(data: Mapping[str, Any]) -> tuple[bytes, str]:
    """A private call's body and its content type: JSON if any value is nested, else a form.

    :raises KrakenUsageError: for NaN, an infinity, or text that is not Unicode
    """
    try:
        for v in data.values():
            if isinstance(v, (list, tuple, dict)):
                text = json.dumps(_rendered_tree(data), separators=(',', ':'), default=str)
                return text.encode(), 'application/json'
        pairs = [(k, v if type(v) is int or type(v) is str else render(v))
                 for k, v in data.items() if v is not None]
        return form(pairs).encode(), 'application/x-www-form-urlencoded'
    except UnicodeEncodeError as exc:
        raise _not_unicode(exc) from None


@contextmanager
def unicode_only() -> Iterator[None]:
    """Turn text that cannot be UTF-8 (a lone surrogate) into a usage error, before sending."""
    try:
        yield
    except UnicodeEncodeError as exc:
        raise _not_unicode(exc) from None


def _not_unicode(exc: UnicodeEncodeError) -> KrakenUsageError:
    return KrakenUsageError(f'a parameter holds text that is not valid Unicode '
                            f'({exc.object[exc.start:exc.end]!r}); nothing was sent')


def check_method(method: object) -> str:
    """Return ``method`` if it has the shape of a Kraken method name.

    :raises KrakenUsageError: otherwise, before anything is sent
    """
    if not methods.valid_name(method):
        raise KrakenUsageError(f'{method!r} is not a Kraken method name: expected letters '
                               f'and digits such as Ticker, AddOrder or Earn/Allocate')
    return str(method)


def check_timeout(timeout: Any) -> Timeout:
    """Return ``timeout`` if it is seconds above zero, or a ``(connect, read)`` pair of them.

    :raises KrakenUsageError: for zero, a negative number, NaN, an infinity, or
        more than :data:`MAX_TIMEOUT` seconds (which the operating system cannot wait)
    """
    parts = timeout if isinstance(timeout, tuple) else (timeout,)
    if len(parts) != (2 if isinstance(timeout, tuple) else 1) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= MAX_TIMEOUT
            for p in parts):
        raise KrakenUsageError(f'timeout must be a number of seconds above 0 and at most '
                               f'{MAX_TIMEOUT:,}, or a (connect, read) pair of them, '
                               f'not {timeout!r}')
    return timeout  # type: ignore[no-any-return]


def split_timeout(timeout: Timeout) -> tuple[float, float]:
    """A timeout as its ``(connect, read)`` pair; one number stands for both."""
    return timeout if isinstance(timeout, tuple) else (timeout, timeout)


def deadline_seconds(timeout: Timeout) -> float:
    """How long one attempt may last in all: connecting, sending, and the whole reply.

    The connection gets its connect time and the reply its read time, and
    however slowly the reply's body comes, the attempt is over by their sum.
    """
    connect, read = split_timeout(timeout)
    return connect + read


def check_uri(uri: str, name: str = 'uri') -> str:
    """Return ``uri`` without a trailing slash if it is an ``http://`` or ``https://`` server.

    :param name: where the address came from, for the message (``--uri``, ``KRAKEN_API_URL``)
    :raises KrakenUsageError: otherwise, before anything is sent
    """
    try:
        parts = urllib.parse.urlsplit(uri)
        usable = parts.scheme in ('http', 'https') and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except (ValueError, TypeError, AttributeError):
        usable = False
    if not usable or any(c.isspace() or not c.isprintable() for c in uri):
        raise KrakenUsageError(f'{name} {uri!r} is not a server address: give one such as '
                               f'{DEFAULT_URI} or http://127.0.0.1:8080')
    return uri.rstrip('/')


# --------------------------------------------------------------- signing

def decode_secret(secret: str, what: str = 'the API secret') -> bytes:
    """Decode a base64 secret, with an error that never shows it.

    :raises KrakenUsageError: if it is not base64
    """
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raw = b''
    if not raw:
        raise KrakenUsageError(f'{what} is not valid base64 ({len(secret)} characters); copy the '
                               f'private key exactly as Kraken showed it')
    return raw


def sign(secret: bytes, urlpath: str, nonce: str | int, body: bytes) -> str:
    """Kraken's ``API-Sign``: ``base64(HMAC-SHA512(secret, path + SHA256(nonce + body)))``."""
    message = urlpath.encode() + hashlib.sha256(str(nonce).encode() + body).digest()
    signer = _keyed(secret).copy()
    signer.update(message)
    return base64.b64encode(signer.digest()).decode()


#: The last secret signed with, and HMAC-SHA512 keyed with it: a copy of it signs
#: without keying a new HMAC for every request.
_KEYED: tuple[bytes, hmac.HMAC] = (b'', hmac.new(b'', digestmod=hashlib.sha512))


def _keyed(secret: bytes) -> hmac.HMAC:
    global _KEYED
    last, keyed = _KEYED
    if secret is last or (type(secret) is bytes and secret == last):
        return keyed
    keyed = hmac.new(secret, digestmod=hashlib.sha512)
    if type(secret) is bytes:  # a secret that cannot change afterwards
        _KEYED = (secret, keyed)
    return keyed


def nonce_in(body: bytes) -> str:
    """The nonce inside an encoded body, JSON or form.

    :raises KrakenUsageError: if it has none
    """
    try:
        if body.lstrip().startswith(b'{'):
            nonce = json.loads(body)['nonce']
        else:
            nonce = urllib.parse.parse_qs(body.decode())['nonce'][0]
    except (ValueError, KeyError, TypeError, IndexError):
        raise KrakenUsageError('the body to sign has no nonce') from None
    return str(nonce)


# -------------------------------------------------------------- requests

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Request(NamedTuple):
    """One HTTP request to send, as a driver needs it."""

    #: Kraken's method name, for messages.
    method: str
    #: ``'GET'`` or ``'POST'``.
    verb: str
    #: The path, such as ``/0/private/AddOrder``.
    path: str
    #: The query string, without ``?``.
    query: str = ''
    #: The body, for a POST.
    body: bytes | None = None
    #: Headers of this request (``API-Key``, ``API-Sign``, ``Content-Type``).
    headers: Mapping[str, str] = _EMPTY
    #: The nonce a private call carries.
    nonce: int | None = None
    #: The caller's parameters, for the evidence of an unknown outcome.
    data: Mapping[str, Any] = _EMPTY


def public_request(apiversion: str, method: str, data: Mapping[str, Any]) -> Request:
    """A public call: a GET with the parameters in the query string."""
    return Request(method, 'GET', f'/{apiversion}/public/{method}', query_string(data), data=data)


def private_request(apiversion: str, method: str, data: Mapping[str, Any], *, key: str,
                    secret: bytes, nonce: int, otp: Otp | None = None) -> Request:
    """A private call: a POST whose exact body is signed with the secret.

    ``data`` is not modified; ``nonce`` (and ``otp``, unless given) go first.

    :raises KrakenUsageError: if ``nonce`` is not a non-negative integer
    """
    if not (type(nonce) is int and nonce >= 0) and (
            isinstance(nonce, bool) or not str(nonce).isdigit()):
        raise KrakenUsageError(f'_nonce() returned {nonce!r}; a nonce must be a '
                               f'non-negative integer')
    params: dict[str, Any] = {'nonce': nonce}
    if data:
        params.update((k, v) for k, v in data.items() if k != 'nonce')
    if otp is not None and 'otp' not in data:
        params['otp'] = otp() if callable(otp) else otp
    body, content_type = encode(params)
    path = f'/{apiversion}/private/{method}'
    headers = {'API-Key': key, 'Content-Type': content_type,
               'API-Sign': sign(secret, path, nonce, body)}
    return Request(method, 'POST', path, body=body, headers=headers, nonce=nonce, data=data)


class SendLock(Protocol):
    """What a call needs of the key's store (:class:`krakenex.share.Store`): its send lock."""

    def lock(self, lease: float) -> Any: ...

    def try_lock(self, lease: float) -> Any: ...

    def unlock(self, handle: Any) -> None: ...


class Call(NamedTuple):
    """One call as a driver runs it: how to build each attempt, and what its outcomes mean.

    A driver (:class:`~krakenex.API`, :class:`~krakenex.AsyncAPI`) runs every
    call the same way: wait for room on :attr:`counter`, :attr:`build` the
    request (holding the key's send lock of :attr:`store`, so nonces leave in
    the order issued), send it, turn a failure into what :attr:`unknown`
    says, and ask :attr:`retry` whether to try again.
    """

    #: The method or endpoint, for log lines.
    name: str
    #: Builds the request of one attempt (a fresh nonce each time).
    build: Callable[[], Request]
    #: Whether and when to try again.
    retry: Retry
    #: Checks the final reply: ``check(reply, response)`` returns the result or raises.
    check: Callable[[Any, Any], Any]
    #: Reads the transport's reply: the decoded reply, or the error it is
    #: (:func:`read_envelope`); a failure here after sending is judged by :attr:`unknown`.
    read: Callable[[Reply], Any]
    #: The rate counter to wait on, if the call is paced (waited on before the send lock).
    counter: RateCounter | None = None
    #: What the call adds to :attr:`counter`.
    cost: float = 1.0
    #: The key's store whose send lock the call holds from its nonce to its reply, so
    #: private calls are sent one at a time by every sharer of the key; None: no lock.
    store: SendLock | None = None
    #: The error to raise for a failure once a request may have left.
    unknown: Callable[[KrakenError, Request], KrakenError] = lambda error, request: error
    #: Kraken's answers that leave the outcome unknown: ``answered(reply, request,
    #: response)`` returns the reply, or raises (:func:`after_answer`).
    answered: Callable[[Any, Request, Any], Any] = lambda reply, request, response: reply


# --------------------------------------------------------------- replies

class Reply(NamedTuple):
    """What a transport received: enough to judge it, and the transport's own object."""

    status: int
    #: The status line's text, such as ``Bad Gateway``.
    reason: str
    #: The headers; looked up without regard to case.
    headers: Mapping[str, str]
    content: bytes
    #: The transport's response object, kept as the exception's evidence.
    response: Any = None


#: The most digits a number in a reply may have before its point, after it, and in its
#: exponent. Kraken's numbers have a few dozen at most; a longer one would take minutes to
#: convert, or gigabytes to print, so such a reply is refused rather than decoded.
MAX_DIGITS = 100
MAX_EXPONENT_DIGITS = 3

#: What the quick look for numbers beyond the bounds sees of a reply: digits and signs as
#: ``0``, an exponent's letter as ``e``, the rest as blanks. Only a reply with a run of too
#: many digits, or an ``e`` before too many, is decoded the slow way, each number checked
#: (the run may also be inside a string, which is harmless).
_SCAN = bytes(ord('0') if chr(c) in '0123456789+-' else ord('e') if chr(c) in 'eE' else
               ord(' ') for c in range(256))
_LONG_RUN = b'0' * (MAX_DIGITS + 1)
_LONG_EXPONENT = re.compile(b'e' + b'0' * (MAX_EXPONENT_DIGITS + 1))
_NUMBER_PARTS = re.compile(r'-?([0-9]*)(?:\.([0-9]*))?(?:[eE][-+]?([0-9]*))?')


class UnboundedNumberError(ValueError):
    """A number in JSON text has more digits than :data:`MAX_DIGITS` or
    :data:`MAX_EXPONENT_DIGITS` allow, or is ``NaN`` or an infinity."""

    def __init__(self, text: str) -> None:
        shown = text if len(text) <= 40 else f'{text[:20]}...{text[-10:]} ({len(text)} characters)'
        super().__init__(shown)


def _bounded(text: str) -> str:
    """``text``, a number as JSON writes it, if it is within the bounds."""
    parts = _NUMBER_PARTS.fullmatch(text)
    if parts is None or any(len(part or '') > limit for part, limit in zip(
            parts.groups(), (MAX_DIGITS, MAX_DIGITS, MAX_EXPONENT_DIGITS), strict=True)):
        raise UnboundedNumberError(text)
    return text


def _no_constant(text: str) -> Any:
    raise UnboundedNumberError(text)


#: A reply's decoder when no option is set: json.loads' own, refusing NaN and Infinity.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def loads(content: bytes | str, json_options: Mapping[str, Any] = _EMPTY) -> Any:
    """Decode JSON as :func:`json.loads` does, with every number bounded.

    A number with more than :data:`MAX_DIGITS` digits before or after its
    point, or more than :data:`MAX_EXPONENT_DIGITS` in its exponent, and
    ``NaN`` or ``Infinity`` (which JSON does not have), are refused before
    they are converted, whatever ``parse_int`` or ``parse_float`` would make
    of them; the user's ``parse_constant`` is kept.

    :param json_options: keyword arguments of :func:`json.loads`
    :raises UnboundedNumberError: for such a number
    :raises ValueError: for text that is not JSON
    :raises RecursionError: for JSON nested too deeply
    """
    if isinstance(content, str):
        text, utf8 = content, content.encode('utf-8', 'surrogatepass')
    elif content[:1] == b'{' and content[1:2] != b'\0':  # what json.detect_encoding calls UTF-8
        text, utf8 = content.decode('utf-8', 'surrogatepass'), content
    else:
        encoding = json.detect_encoding(content)
        text = content.decode(encoding, 'surrogatepass')
        utf8 = content if encoding.startswith('utf-8') else text.encode('utf-8', 'surrogatepass')
    scanned = utf8.translate(_SCAN)
    suspect = _LONG_RUN in scanned or _LONG_EXPONENT.search(scanned) is not None
    if not suspect and not json_options:
        try:  # the reply as Kraken writes it: a value, with nothing before or after it
            decoded, end = _DECODER.raw_decode(text)
            if end == len(text):
                return decoded
        except ValueError:
            pass
        return _DECODER.decode(text)  # anything else, the way json.loads reads it
    options = {'parse_constant': _no_constant, **json_options}
    if suspect:
        parse_int = options.get('parse_int') or int
        parse_float = options.get('parse_float') or float
        options['parse_int'] = lambda number: parse_int(_bounded(number))
        options['parse_float'] = lambda number: parse_float(_bounded(number))
    return json.loads(text, **options)


def read_reply(method: str, reply: Reply, json_options: Mapping[str, Any],
               server: str = 'Kraken') -> Any:
    """Decode a reply: JSON, or ``bytes`` for a file.

    :param server: who answered, for messages: ``'Kraken'`` or ``'Kraken Futures'``
    :raises KrakenHTTPError: for a status other than 2xx, naming Cloudflare's
        page or the redirect's target
    :raises KrakenResponseError: for a 2xx body that is not JSON, or whose
        numbers are beyond :func:`loads`' bounds
    """
    if not 200 <= reply.status < 300:
        raise KrakenHTTPError(_http_message(method, reply, server), method=method,
                              status=reply.status, body=_excerpt(reply.content),
                              response=reply.response)
    content_type = reply.headers.get('Content-Type') or ''
    if content_type.startswith(BINARY_TYPES):
        return reply.content
    try:
        return loads(reply.content, json_options)
    except UnboundedNumberError as exc:
        raise KrakenResponseError(
            f'Kraken {method} answered with a number krakenex does not decode ({exc}): at most '
            f'{MAX_DIGITS} digits before and after the point and {MAX_EXPONENT_DIGITS} in the '
            f'exponent, and no NaN or Infinity; the reply was not used', method=method,
            status=reply.status, body=_excerpt(reply.content), response=reply.response) from None
    except (ValueError, RecursionError):
        raise KrakenResponseError(
            f'{server} {method} answered HTTP {reply.status} with a body that is not JSON '
            f'({content_type or "no content type"}): {_excerpt(reply.content)!r}',
            method=method, status=reply.status, body=_excerpt(reply.content),
            response=reply.response) from None


#: Kraken's spot envelope, as messages show it.
ENVELOPE = '{"error": [...], "result": ...}'


def envelope_problem(decoded: Any, *, files: bool = False) -> str | None:
    """What keeps a decoded reply from being Kraken's spot envelope; None if it is one.

    An envelope is a JSON object whose ``error`` is a list of strings and
    which holds a ``result`` unless an error (not a warning) says why not.

    :param files: whether a file (``bytes``, RetrieveExport's zip) is an answer too
    """
    if isinstance(decoded, bytes):
        return None if files else 'a file'
    if not isinstance(decoded, dict):
        return f'JSON {_json_kind(decoded)}'
    errors = decoded.get('error')
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        return 'JSON whose "error" is not a list of error strings'
    if 'result' not in decoded and not failures(errors):
        return 'JSON holding neither a result nor an error'
    return None


def read_envelope(method: str, reply: Reply, json_options: Mapping[str, Any],
                  problem: Callable[[Any], str | None], shape: str = ENVELOPE,
                  server: str = 'Kraken') -> Any:
    """Decode a reply (:func:`read_reply`) that must be the envelope ``problem`` accepts.

    A 2xx reply that is JSON but not the envelope (``{}``, ``[]``, ``null``,
    ``"ok"``, an ``error`` that is not a list) says nothing about what
    happened: it is a :class:`~krakenex.KrakenResponseError`, which a driver
    turns into an unknown outcome for a state-changing call
    (:func:`after_sending`).

    :param problem: what keeps a decoded reply from being the envelope, or None
    :param shape: the envelope, for the message
    :param server: who should have sent it, for the message
    :raises KrakenHTTPError: for a status other than 2xx
    :raises KrakenResponseError: for a 2xx reply that is not the envelope
    """
    decoded = read_reply(method, reply, json_options, server)
    what = problem(decoded)
    if what is None:
        return decoded
    content_type = reply.headers.get('Content-Type') or 'no content type'
    raise KrakenResponseError(
        f'{server} {method} answered HTTP {reply.status} with {what} ({content_type}), not '
        f'its reply {shape}: {_excerpt(reply.content)!r}', method=method, status=reply.status,
        body=_excerpt(reply.content), response=reply.response)


def _json_kind(value: Any) -> str:
    """What a decoded JSON value is, in a word or two: ``an empty list``, ``text``, ``null``."""
    if value is None:
        return 'null'
    if isinstance(value, str):
        return 'text'
    if isinstance(value, list):
        return 'an empty list' if not value else 'a list'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, dict):
        return 'an empty object' if not value else 'an object'
    return 'a number'


def checked(method: str, reply: Any, *, raise_errors: bool, response: Any = None) -> Any:
    """Return a decoded reply, raising its typed error if it holds one and ``raise_errors``.

    Warnings (strings starting with ``W``) never raise. An invalid nonce that
    is returned rather than raised is logged with its likely causes.
    """
    errors = reply.get('error') if isinstance(reply, dict) else None
    if isinstance(errors, list) and failures(errors):
        error = api_error(errors, method, response)
        if raise_errors:
            raise error
        if 'EAPI:Invalid nonce' in errors:
            log.warning('%s', error)
    return reply


def _excerpt(content: bytes) -> str:
    return content[:BODY_EXCERPT].decode('utf-8', 'replace')


def _http_message(method: str, reply: Reply, server: str) -> str:
    """Say what a non-2xx reply was, naming Cloudflare's pages and redirects."""
    message = f'{server} {method} answered HTTP {reply.status}'
    if reply.reason:
        message += f' {reply.reason}'
    headers = reply.headers
    if (headers.get('Server') or '').lower() == 'cloudflare' or headers.get('CF-RAY'):
        title = _TITLE.search(reply.content[:4096])
        detail = title.group(1).decode('utf-8', 'replace') if title else 'an HTML error page'
        message += f' from Cloudflare ({detail}), an error in front of Kraken'
    elif reply.status in _REDIRECTS:
        message += (f'; it redirects to {headers.get("Location") or "another address"}, and '
                    f'krakenex does not follow redirects: check API.uri')
    return message


# ----------------------------------------------------------------- retry

class Retry:
    """Whether a call is tried again after each outcome, and after how long.

    Read-only calls are retried after transient faults (connection failures,
    timeouts, 429 and 5xx replies, replies that are not JSON, and Kraken's
    "try again" errors), with exponential backoff and jitter, until
    ``retries`` or ``retry_time`` runs out. A state-changing call (``at_most_once``)
    is retried only after :class:`~krakenex.NotSentError`.

    :param at_most_once: the call changes state, so it may be sent at most once
    """

    def __init__(self, retries: int, backoff: float, retry_time: float, *,
                 at_most_once: bool) -> None:
        self.retries = retries
        self.backoff = backoff
        self.at_most_once = at_most_once
        self.attempt = 0
        self._give_up_at = time.monotonic() + retry_time

    def after_error(self, error: KrakenError) -> float | None:
        """Seconds to wait before trying again after ``error``, or ``None`` to raise it."""
        if self.at_most_once and not isinstance(error, NotSentError):
            return None
        transient = isinstance(error, (KrakenConnectionError, KrakenTimeout,
                                       KrakenResponseError)) or (
            isinstance(error, KrakenHTTPError) and (error.status or 0) in RETRY_STATUS)
        return self._wait() if transient else None

    def after_reply(self, reply: Any) -> float | None:
        """Seconds to wait before trying again after a decoded ``reply``, or ``None`` to keep it."""
        errors = reply.get('error') if isinstance(reply, dict) else None
        if self.at_most_once or not isinstance(errors, list):
            return None
        refused = failures(errors)
        if not refused or not all(isinstance(e, str) and e.startswith(TRANSIENT_ERRORS)
                                  for e in refused):
            return None
        throttled = [int(m.group(1)) for e in refused if (m := _THROTTLED_UNTIL.match(e))]
        return self._wait(max(throttled, default=0) - time.time())

    def _wait(self, at_least: float = 0.0) -> float | None:
        if self.attempt >= self.retries:
            return None
        wait = max(at_least, self.backoff * 2.0 ** self.attempt * random.uniform(0.5, 1.0))
        if time.monotonic() + wait > self._give_up_at:
            return None
        self.attempt += 1
        return wait


# ------------------------------------------------------- unknown outcomes

_OUTCOME_UNKNOWN: tuple[tuple[type[KrakenError], type[OutcomeUnknownError]], ...] = (
    (KrakenAPIError, OutcomeUnknownAPIError),  # an answer that leaves it unknown
    (KrakenHTTPError, OutcomeUnknownHTTPError),
    (KrakenResponseError, OutcomeUnknownResponseError),
    (KrakenTimeout, OutcomeUnknownTimeout),
    (KrakenConnectionError, OutcomeUnknownConnectionError),
)


def after_sending(error: KrakenError, request: Request, *,
                  at_most_once: bool) -> KrakenError:
    """The error to raise for a failure once ``request`` may have left.

    For a state-changing call (``at_most_once``) any failure other than "never sent"
    or bad input means the outcome is unknown: the call may have taken
    effect. The error then carries the nonce and the identifiers to look the
    order up with.
    """
    if not at_most_once or isinstance(error, (NotSentError, KrakenUsageError, OutcomeUnknownError)):
        return error
    cls = next((unknown for known, unknown in _OUTCOME_UNKNOWN if isinstance(error, known)),
               OutcomeUnknownConnectionError)
    cl_ord_id = request.data.get('cl_ord_id')
    orders = request.data.get('orders') if request.method == 'AddOrderBatch' else None
    if cl_ord_id is None and isinstance(orders, (list, tuple)):  # a batch: each order's own
        cl_ord_id = ','.join(str(o['cl_ord_id']) for o in orders
                             if isinstance(o, Mapping) and o.get('cl_ord_id') is not None) or None
    return cls.sent(error, method=request.method, nonce=request.nonce,
                    userref=request.data.get('userref'), cl_ord_id=cl_ord_id)


def ambiguous_answer(reply: Any, method: str, response: Any = None, *,
                     errors: Callable[[Any], list[str]] | None = None) -> KrakenAPIError | None:
    """The error of Kraken's answer to ``method`` if it leaves the call's outcome unknown.

    An error such as ``EService:Timeout`` or ``EGeneral:Internal error`` does
    not say whether the call took effect (:data:`krakenex.errors.AMBIGUOUS_ERRORS`).

    :param errors: the error strings of a reply (spot's ``error`` list unless given)
    :returns: the error, or None for any other reply
    """
    found = errors(reply) if errors is not None else (
        reply.get('error') if isinstance(reply, dict) else None)
    if not isinstance(found, list):
        return None
    doubtful = ambiguous(failures([str(e) for e in found]))
    if not doubtful:
        return None
    status = getattr(response, 'status_code', getattr(response, 'status', None))
    return KrakenAPIError(f'Kraken answered {", ".join(doubtful)}, which does not say whether '
                          f'it took effect', method=method, status=status, errors=found,
                          response=response)


def after_answer(reply: Any, request: Request, response: Any = None) -> Any:
    """Return Kraken's answer to a state-changing spot ``request``, unless it leaves the
    outcome unknown (:func:`ambiguous_answer`).

    :raises OutcomeUnknownAPIError: for such an answer, whatever ``raise_errors`` says
    """
    cause = ambiguous_answer(reply, request.method, response)
    if cause is None:
        return reply
    raise after_sending(cause, request, at_most_once=True)


# ------------------------------------------------------ transport failures

def transport_error(kind: str, uri: str, method: str, reason: str = '') -> KrakenError:
    """The exception for a failure below HTTP, worded the same for every driver.

    :param kind: ``'bad_uri'``, ``'not_sent'``, ``'connect_timeout'``,
        ``'timeout'``, ``'deadline'`` (the reply did not arrive whole in time),
        ``'dropped'`` or ``'broken'`` (a reply cut off)
    :param reason: the transport's innermost cause, in a few words; for
        ``'deadline'``, the seconds the attempt had
    """
    if kind == 'bad_uri':
        return KrakenUsageError(f'API.uri {uri!r} is not a server address such as '
                                f'{DEFAULT_URI}', method=method)
    if kind == 'not_sent':
        return NotSentError(f'could not connect to {uri} for {method}: {reason}; '
                            f'nothing was sent', method=method)
    if kind == 'connect_timeout':
        return KrakenConnectTimeout(f'could not connect to {uri} within the timeout for '
                                    f'{method}; nothing was sent', method=method)
    if kind == 'timeout':
        return KrakenTimeout(f'no reply from {uri} to {method} within the timeout', method=method)
    if kind == 'deadline':
        return KrakenTimeout(f'the reply from {uri} to {method} did not arrive whole within '
                             f'{reason} s, the connect and read timeouts together', method=method)
    if kind == 'dropped':
        return KrakenConnectionError(f'the connection to {uri} failed during {method}: '
                                     f'{reason}', method=method)
    return KrakenConnectionError(f'the reply from {uri} to {method} broke off: {reason}',
                                 method=method)
