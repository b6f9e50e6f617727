"""Kraken's WebSocket v2 rules, without I/O: requests, replies, sequences, reconnect pacing.

The session (:mod:`krakenex.ws.session`) applies them to each connection's
messages and requests; the connection sends what it decides. Facts from Kraken's
WebSocket v2 documentation (kraken-protocol.md §5.4, §8 and §10.2).
"""

from __future__ import annotations

import contextlib
import decimal
import json
import math
import random
import re
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

from ..errors import KrakenAPIError, KrakenUsageError, RateLimitError, api_error
from ..protocol import render
from .book import DEPTHS

__all__ = [
    'URL', 'AUTH_URL', 'L3_URL', 'UNIFIED_URL', 'UNIFIED_AUTH_URL', 'PUBLIC', 'AUTH', 'LEVEL3',
    'URL_VARIABLES', 'UNIFIED_URL_VARIABLES', 'ENDPOINTS',
    'PRIVATE_CHANNELS',
    'ORDER_METHODS', 'PRIVATE_METHODS', 'KRAKEN_TIMEOUT_METHODS', 'MSG_RATE_ERROR',
    'check_url', 'check_timeout', 'check_depth', 'check_interval', 'INTERVALS', 'decode',
    'encode', 'notice', 'is_private',
    'endpoint', 'reply_error', 'token_refused', 'answers', 'split_subscription',
    'Subscriptions', 'SequenceCheck', 'Backoff', 'ResyncBackoff',
    'MAX_MESSAGE', 'MAX_DEPTH', 'MAX_DIGITS', 'MAX_EXPONENT', 'MAX_INT_DIGITS',
]

#: Kraken's public and authenticated WebSocket v2 endpoints.
URL = 'wss://ws.kraken.com/v2'
AUTH_URL = 'wss://ws-auth.kraken.com/v2'
#: Kraken's level3 endpoint (its current docs; older pages put level3 on ws-auth), with a token.
L3_URL = 'wss://ws-l3.kraken.com/v2'

#: The three endpoints, by the name the tables below use.
PUBLIC, AUTH, LEVEL3 = 'public', 'auth', 'level3'

#: The environment variable naming each endpoint when a client is given none, and the
#: address used when that is not set either.
URL_VARIABLES = {PUBLIC: ('KRAKEN_WS_URL', URL), AUTH: ('KRAKEN_WS_AUTH_URL', AUTH_URL),
                 LEVEL3: ('KRAKEN_WS_L3_URL', L3_URL)}

#: Kraken's Unified WebSocket (derivatives now, spot planned): public and private endpoints,
#: and the environment variables naming them (:mod:`krakenex.ws.unified` holds its rules).
UNIFIED_URL = 'wss://uws.kraken.com/v2/public'
UNIFIED_AUTH_URL = 'wss://uws.kraken.com/v2/private'
UNIFIED_URL_VARIABLES = {PUBLIC: ('KRAKEN_UWS_URL', UNIFIED_URL),
                         AUTH: ('KRAKEN_UWS_AUTH_URL', UNIFIED_AUTH_URL)}

#: Requests that change orders: never sent twice; a lost reply is an unknown outcome.
ORDER_METHODS = frozenset({'add_order', 'amend_order', 'edit_order', 'cancel_order',
                           'cancel_all', 'cancel_all_orders_after', 'batch_add',
                           'batch_cancel'})

#: Requests with a parameter of Kraken's own named ``timeout`` (seconds until every order is
#: cancelled; 0 disarms it): there ``timeout=`` is Kraken's, not how long to wait for the reply.
KRAKEN_TIMEOUT_METHODS = frozenset({'cancel_all_orders_after'})

#: Requests that go to the authenticated endpoint with a token.
PRIVATE_METHODS = ORDER_METHODS

#: Which endpoint a channel or request goes to, where it is not the public one: the one
#: place for that fact. Every endpoint but the public one is sent a token.
ENDPOINTS: Mapping[str, str] = {
    'executions': AUTH, 'balances': AUTH, 'level3': LEVEL3,
    **{method: AUTH for method in PRIVATE_METHODS},
}

#: Channels that need a token (on the authenticated or the level3 endpoint).
PRIVATE_CHANNELS = frozenset(ENDPOINTS) - PRIVATE_METHODS

#: What Kraken answers a request over a connection's message rate (the rate is not
#: published); the request was not carried out.
MSG_RATE_ERROR = 'Exceeded msg rate'

#: What Kraken answers when a token is refused or has died (knowm/XChange#3697).
TOKEN_ERRORS = ('ESession:Invalid session', 'EAPI:Invalid token', 'EAuth:Invalid token')

#: The channel of the messages krakenex itself puts into the stream.
NOTICE_CHANNEL = 'krakenex'


#: Longest message :func:`decode` reads, in characters (a depth-1000 book snapshot is a few
#: hundred kB); the connections refuse longer ones as websockets' ``max_size``.
MAX_MESSAGE = 16 << 20

#: Deepest nesting of lists and objects :func:`decode` reads. Kraken's messages nest five
#: deep; code that walks a message recursively (``copy.deepcopy``, a walker of one's own)
#: fails near a thousand. A message can nest only half as deep as it is long, so one of up
#: to twice this many characters (most book updates) needs no look at all.
MAX_DEPTH = 128

#: Most significant digits of a number with a fraction or an exponent (Kraken's have under
#: twenty), and the largest power of ten it may reach either way: ``1e400`` is no price.
MAX_DIGITS, MAX_EXPONENT = 40, 60

#: Most digits of a whole number (Kraken's are checksums, sequence numbers and ids): converting
#: a long one to ``int`` takes time that grows with the square of its length.
MAX_INT_DIGITS = 1000

#: Decimal numbers within the bounds above, exactly as written (trailing zeros kept); any
#: rounding or a number out of range raises instead.
_NUMBERS = decimal.Context(prec=MAX_DIGITS, Emax=MAX_EXPONENT, Emin=-MAX_EXPONENT, traps=[
    decimal.InvalidOperation, decimal.Overflow, decimal.Underflow, decimal.Subnormal,
    decimal.Inexact, decimal.Rounded, decimal.Clamped])


def _not_json(name: str) -> Any:
    raise ValueError(f'{name} is not a JSON number, and Kraken sends none')


def _whole(text: str) -> int:
    digits = len(text.lstrip('-'))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f'a whole number of {digits} digits is longer than the '
                         f'{MAX_INT_DIGITS} krakenex reads')
    return int(text)


def _fraction(text: str) -> Decimal:
    try:
        return _NUMBERS.create_decimal(text)
    except decimal.DecimalException:
        shown = text if len(text) <= 30 else f'{text[:20]}... ({len(text)} characters)'
        raise ValueError(f'the number {shown} has more than {MAX_DIGITS} digits or lies '
                         f'beyond 1e{MAX_EXPONENT} or 1e-{MAX_EXPONENT}') from None


# The scanner alone reads a message a fifth faster than JSONDecoder.decode, which first looks
# for whitespace on both sides. A message no longer than MAX_INT_DIGITS cannot hold a longer
# whole number, so only longer ones pay for checking each; _fraction names a number out of
# bounds once _NUMBERS has refused one.
_DECODER = json.JSONDecoder(parse_float=_NUMBERS.create_decimal, parse_constant=_not_json)
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]
_LONG = json.JSONDecoder(parse_float=_NUMBERS.create_decimal, parse_int=_whole,
                         parse_constant=_not_json)
_SCAN_LONG = _LONG.scan_once  # type: ignore[attr-defined]
_NAMED = json.JSONDecoder(parse_float=_fraction, parse_int=_whole, parse_constant=_not_json)


def decode(text: str | bytes, max_size: int = MAX_MESSAGE) -> Any:
    """Decode one of Kraken's messages, numbers with a fraction as :class:`~decimal.Decimal`.

    Every message is bounded before anything is converted: at most ``max_size``
    characters, :data:`MAX_DEPTH` levels of nesting, :data:`MAX_DIGITS` significant
    digits and an exponent within :data:`MAX_EXPONENT` for a number with a fraction or
    an exponent, :data:`MAX_INT_DIGITS` digits for a whole number; ``NaN`` and
    ``Infinity`` are refused (they are not JSON).

    :raises ValueError: for text that is not one JSON value (:class:`json.JSONDecodeError`),
        bytes that are not UTF-8 (:class:`UnicodeDecodeError`), or a message beyond the bounds
    """
    size = len(text)
    if size > max_size:
        raise ValueError(f'a message of {size} characters is longer than the {max_size} '
                         f'krakenex reads')
    if text.__class__ is not str:
        text = text.decode()  # type: ignore[union-attr]
        size = len(text)
    scan = _SCAN if size <= MAX_INT_DIGITS else _SCAN_LONG
    try:
        try:
            value, end = scan(text, 0)
        except StopIteration:
            end = -1
        if end != size:  # not one value alone: decode() says why, or allows the whitespace
            value = (_DECODER if scan is _SCAN else _LONG).decode(text)
    except RecursionError:
        raise ValueError(f'a message nested deeper than {MAX_DEPTH} levels') from None
    except decimal.DecimalException:
        _NAMED.decode(text)  # raises the ValueError that names the number
        raise ValueError('a number beyond the bounds krakenex reads') from None
    # nesting deeper than MAX_DEPTH needs more than twice as many characters, and more than
    # MAX_DEPTH brackets: both are cheaper to count than the levels
    if size > 2 * MAX_DEPTH and text.count('[') + text.count('{') > MAX_DEPTH \
            and _deeper(value, MAX_DEPTH):
        raise ValueError(f'a message nested deeper than {MAX_DEPTH} levels')
    return value


def _deeper(value: Any, depth: int) -> bool:
    """Whether lists and objects nest more than ``depth`` levels deep in ``value``.

    It goes a level at a time, in C where a level is all objects or all lists (a book
    snapshot's levels are), so a snapshot of a thousand levels a side costs a fraction of
    its decoding.
    """
    if value.__class__ is not dict and value.__class__ is not list:
        return False
    level: list[Any] = [value]
    for _ in range(depth):
        kinds = list(map(type, level))
        if kinds.count(dict) == len(level):
            values = list(chain.from_iterable(map(dict.values, level)))
        elif kinds.count(list) == len(level):
            values = list(chain.from_iterable(level))
        else:
            values = list(chain.from_iterable(v.values() if v.__class__ is dict else v
                                              for v in level))
        kinds = list(map(type, values))
        inner = kinds.count(dict) + kinds.count(list)
        if not inner:
            return False
        level = values if inner == len(values) else [
            v for v, kind in zip(values, kinds, strict=True) if kind is dict or kind is list]
    return True


def _marked(value: Any, numbers: list[str]) -> Any:
    if isinstance(value, (Decimal, float)) and not isinstance(value, bool):
        numbers.append(render(value))
        return f'\0{len(numbers) - 1}\0'
    if isinstance(value, Mapping):
        return {k: _marked(v, numbers) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_marked(v, numbers) for v in value]
    return value


_MARK = re.compile(r'"\\u0000(\d+)\\u0000"')


def encode(message: Mapping[str, Any]) -> str:
    """Encode a request; a :class:`~decimal.Decimal` or float goes out as a plain JSON number.

    Numbers are written as :func:`krakenex.protocol.render` writes them for REST:
    ``Decimal('1E-8')`` and ``1e-08`` both as ``0.00000001``.
    """
    numbers: list[str] = []
    text = json.dumps(_marked(message, numbers), separators=(',', ':'))
    return _MARK.sub(lambda m: numbers[int(m.group(1))], text) if numbers else text


def notice(kind: str, **fields: Any) -> dict[str, Any]:
    """A message krakenex adds to the stream: ``{"channel": "krakenex", "type": kind, ...}``."""
    return {'channel': NOTICE_CHANNEL, 'type': kind, **fields}


def check_url(url: str, name: str = 'url') -> str:
    """``url`` if it is a ``ws://`` or ``wss://`` address with a host.

    :raises KrakenUsageError: if it is not, before anything connects
    """
    scheme = host = None
    if isinstance(url, str):
        with contextlib.suppress(ValueError):  # an unreadable bracketed host
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            scheme, host = parts.scheme, parts.hostname
    if scheme not in ('ws', 'wss') or not host:
        raise KrakenUsageError(f'{name} must be a ws:// or wss:// address such as {URL!r}, '
                               f'not {url!r}')
    return url


def check_timeout(seconds: Any, *, poll: bool = False, name: str = 'timeout') -> float | None:
    """Seconds to wait, checked: ``None`` or infinity waits for ever.

    :param poll: whether zero or less may be given (look once, do not wait)
    :raises KrakenUsageError: for NaN, a value that is not a number, or (unless ``poll``)
        zero or less
    """
    if seconds is None:
        return None
    number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not number or math.isnan(seconds) or (not poll and seconds <= 0):
        wanted = 'a number of seconds' if poll else 'a number of seconds above 0'
        raise KrakenUsageError(f'{name} must be {wanted} or None, not {seconds!r}')
    return None if math.isinf(seconds) else float(seconds)


def check_depth(depth: Any) -> int:
    """A book subscription's ``depth`` (one of :data:`~krakenex.ws.book.DEPTHS` at Kraken),
    as a whole number.

    :raises KrakenUsageError: if it is not one, before anything is sent
    """
    whole = isinstance(depth, int) or (isinstance(depth, Decimal) and depth.is_finite()
                                       and depth == depth.to_integral_value())
    if isinstance(depth, bool) or not whole:
        takes = ', '.join(map(str, DEPTHS[:-1])) + f' or {DEPTHS[-1]}'
        raise KrakenUsageError(f'depth must be a whole number of levels (Kraken takes {takes}), '
                               f'not {depth!r}')
    return int(depth)


#: The candle intervals the ``ohlc`` channel takes, in minutes (Kraken's "Candles (OHLC)"
#: page of WebSocket v2, https://docs.kraken.com/api/docs/websocket-v2/ohlc).
INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)


def check_interval(interval: Any) -> int:
    """An ``ohlc`` subscription's ``interval``, a whole number of minutes of :data:`INTERVALS`.

    Kraken takes the number, not its text: ``interval='60'`` is refused here, with the hint.

    :raises KrakenUsageError: if it is not one, before anything is sent
    """
    whole = isinstance(interval, int) or (isinstance(interval, Decimal) and interval.is_finite()
                                          and interval == interval.to_integral_value())
    if isinstance(interval, bool) or not whole or int(interval) not in INTERVALS:
        takes = ', '.join(map(str, INTERVALS[:-1])) + f' or {INTERVALS[-1]}'
        hint = f', as a number: interval={interval.strip()}' if isinstance(interval, str) \
            and interval.strip().isdigit() else ''
        raise KrakenUsageError(f'interval must be a whole number of minutes (Kraken takes '
                               f'{takes}), not {interval!r}{hint}')
    return int(interval)


def endpoint(channel_or_method: str) -> str:
    """The endpoint a channel or method goes to: :data:`PUBLIC`, :data:`AUTH` or :data:`LEVEL3`."""
    return ENDPOINTS.get(channel_or_method, PUBLIC)


def is_private(channel_or_method: str) -> bool:
    """Whether a channel or method needs a token (an endpoint other than the public one)."""
    return endpoint(channel_or_method) != PUBLIC


def reply_error(errors: list[str], what: str) -> KrakenAPIError:
    """The typed exception for a reply with ``success: false``; ``what`` names the request.

    Kraken's error texts map as they do over REST, and ``Exceeded msg rate`` (too
    many messages on the connection; the request was not carried out) is a
    :class:`~krakenex.RateLimitError`.
    """
    if any(MSG_RATE_ERROR.lower() in e.lower() for e in errors):
        return RateLimitError(
            f"Kraken {what} answered {', '.join(errors)}: too many messages on this "
            f"connection, so Kraken did not carry it out; send fewer and try again in a "
            f"moment", method=what, errors=errors)
    return api_error(errors, what)


def token_refused(error: Any) -> bool:
    """Whether Kraken's ``error`` text says the token was refused."""
    return isinstance(error, str) and any(e in error for e in TOKEN_ERRORS)


def answers(request: str, reply: Any) -> bool:
    """Whether a reply's ``method`` fits a request's (with the same ``req_id``).

    Kraken echoes the method, except ``pong`` for ``ping`` and ``subscribe`` for an
    ``unsubscribe`` of something not subscribed (``Subscription Not Found``).
    """
    return reply == request or (request, reply) in (('ping', 'pong'), ('unsubscribe', 'subscribe'))


def split_subscription(params: Mapping[str, Any]) -> list[str | None]:
    """The symbols a subscribe request names (one ack comes for each), or ``[None]``."""
    symbols = params.get('symbol')
    if isinstance(symbols, str):
        return [symbols]
    return list(symbols) if symbols else [None]


class Subscriptions:
    """The user's own subscribe requests, kept to send again after a reconnect.

    Kraken's acknowledgements are per symbol and shaped differently from the
    requests (python-kraken-sdk#148); the requests themselves are what Kraken
    accepted, so those are what is sent again. An unsubscribe takes its
    symbols out of every earlier request for the same channel.
    """

    def __init__(self) -> None:
        self._requests: list[tuple[str, dict[str, Any]]] = []

    def __len__(self) -> int:
        return len(self._requests)

    def add(self, channel: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Keep a subscribe request (its ``params`` without ``channel``, ``token``, ``req_id``);
        return the kept entry, for :meth:`withdraw`."""
        entry = _without(params, 'token', 'req_id', 'channel')
        self._requests.append((channel, entry))
        return entry

    def withdraw(self, entry: dict[str, Any], symbols: set[str] | None = None) -> None:
        """Take one kept request out (Kraken refused it), or only the ``symbols`` it refused;
        the user's other requests for the channel stay."""
        for index, (_, kept) in enumerate(self._requests):
            if kept is entry:
                left = [s for s in split_subscription(kept) if symbols and s not in symbols]
                if left and left != [None]:
                    kept['symbol'] = left
                else:
                    del self._requests[index]
                return

    def remove(self, channel: str, params: Mapping[str, Any]) -> None:
        """Take an unsubscribe request's symbols (or the whole channel) out."""
        gone = set(split_subscription(params))
        kept: list[tuple[str, dict[str, Any]]] = []
        for name, request in self._requests:
            if name != channel:
                kept.append((name, request))
                continue
            symbols = [s for s in split_subscription(request) if s not in gone]
            if None in gone or not symbols or symbols == [None]:
                continue
            if symbols != split_subscription(request):
                request['symbol'] = symbols  # the same entry, for withdraw
            kept.append((name, request))
        self._requests = kept

    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        """Every kept request, in the order it was made: ``(channel, params)``."""
        return [(channel, dict(params)) for channel, params in self._requests]

    def channels(self) -> set[str]:
        """The channels subscribed to."""
        return {channel for channel, _ in self._requests}

    def params_for(self, channel: str, symbol: str) -> dict[str, Any] | None:
        """The user's parameters for one symbol of a channel (to resubscribe it alone)."""
        for name, params in reversed(self._requests):
            if name == channel and symbol in split_subscription(params):
                return {**params, 'symbol': [symbol]}
        return None


def _without(params: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in names}


class SequenceCheck:
    """Finds skipped ``sequence`` numbers in private channels (numbered per connection)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def reset(self) -> None:
        """Start again: a new connection numbers its messages afresh."""
        self._last.clear()

    def check(self, channel: str, sequence: int) -> tuple[int, int] | None:
        """Record ``sequence``; return ``(expected, received)`` if numbers were skipped."""
        last = self._last.get(channel)
        self._last[channel] = sequence
        if last is not None and sequence != last + 1:
            return last + 1, sequence
        return None


class Backoff:
    """When to try connecting again, within Cloudflare's connection budget.

    The first few attempts after a drop go at once (with a little jitter);
    after that the wait doubles up to a cap. Every attempt counts against a
    budget of ``budget`` attempts in ``window`` seconds, below Cloudflare's
    limit of about 150 per rolling 10 minutes per IP (more bans the IP for 10
    minutes). A refused handshake (HTTP 429) waits at least ``throttled``
    seconds. Once a connection has lasted ``stable`` seconds the count of
    failures starts again.

    :param give_up_after: consecutive failed attempts before giving up, or ``None`` for never
    :param random: a source of numbers in [0, 1), for the jitter
    """

    def __init__(self, *, immediate: int = 3, first: float = 1.0, factor: float = 2.0,
                 cap: float = 60.0, jitter: float = 0.25, budget: int = 120,
                 window: float = 600.0, throttled: float = 10.0, stable: float = 60.0,
                 give_up_after: int | None = None,
                 random: Callable[[], float] = random.random) -> None:
        self.immediate, self.first, self.factor, self.cap = immediate, first, factor, cap
        self.jitter, self.budget, self.window = jitter, budget, window
        self.throttled, self.stable, self.give_up_after = throttled, stable, give_up_after
        self.failures = 0
        self._random = random
        self._attempts: deque[float] = deque()
        self._connected_at: float | None = None

    def delay(self, now: float, *, throttled: bool = False) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up."""
        if self.give_up_after is not None and self.failures >= self.give_up_after:
            return None
        spread = self._random()
        if self.failures < self.immediate:
            wait = self.jitter * spread
        else:
            wait = _doubled(self.first, self.factor, self.failures - self.immediate, self.cap)
            wait *= 1 + self.jitter * (2 * spread - 1)
        if throttled:
            wait = max(wait, self.throttled)
        while self._attempts and self._attempts[0] <= now - self.window:
            self._attempts.popleft()
        if len(self._attempts) >= self.budget:
            wait = max(wait, self._attempts[0] + self.window - now)
        return wait

    def attempted(self, now: float) -> None:
        """Count an attempt against the budget."""
        self._attempts.append(now)

    def failed(self) -> None:
        """An attempt failed (or a connection ended before it was stable)."""
        self.failures += 1

    def connected(self, now: float) -> None:
        """A connection is open."""
        self._connected_at = now

    def dropped(self, now: float) -> None:
        """The connection ended: a stable one starts the count again, a short one adds to it."""
        lasted = now - self._connected_at if self._connected_at is not None else 0.0
        self._connected_at = None
        if lasted >= self.stable:
            self.failures = 0
        else:
            self.failures += 1


def _doubled(first: float, factor: float, times: int, cap: float) -> float:
    """``first`` multiplied by ``factor`` ``times`` times, at most ``cap``: a count that grows
    for days (a server down for a day) never overflows a float."""
    try:
        return min(cap, first * factor ** min(times, 64))
    except OverflowError:  # a factor so large that 64 times is past any float
        return cap


class ResyncBackoff:
    """When to subscribe a book again after it failed its checksum or could not be read.

    Each resync sends two requests (unsubscribe, subscribe), and Kraken counts both against
    the connection's message rate: a book that keeps failing must not be subscribed again as
    fast as the server answers. The first resync of a symbol goes at once; each one that
    follows within ``stable`` seconds of the previous one waits ``factor`` times as long as
    the wait before it, from ``first`` up to ``cap`` seconds. A book that has stayed good for
    ``stable`` seconds starts again at once.
    """

    def __init__(self, *, first: float = 1.0, factor: float = 2.0, cap: float = 60.0,
                 stable: float = 60.0) -> None:
        self.first, self.factor, self.cap, self.stable = first, factor, cap, stable
        self._last: dict[str, tuple[float, int]] = {}  # symbol: (when it was sent, how many)

    def delay(self, symbol: str, now: float) -> float:
        """Seconds to wait before subscribing ``symbol`` again; the resync counts as sent then."""
        last = self._last.get(symbol)
        count = 0 if last is None or now - last[0] >= self.stable else last[1] + 1
        wait = 0.0 if count == 0 else _doubled(self.first, self.factor, count - 1, self.cap)
        self._last[symbol] = (now + wait, count)
        return wait
