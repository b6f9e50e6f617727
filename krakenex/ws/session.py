"""One connection's share of Kraken's WebSocket v2 rules, without I/O: messages in, decisions out.

A :class:`Session` is told what arrives (:meth:`Session.receive`), what the user asks
(:meth:`Session.prepare`, :meth:`Session.subscribing`, ...) and what became of the socket
(:meth:`Session.opened`, :meth:`Session.lost`), and answers with events for its driver
(:mod:`krakenex.ws.connection`) to act on: messages for the user's stream, requests fully
answered, books to subscribe again. It never touches a socket, a clock or an event loop:
the time is given to it, so every rule can be tried with plain messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from ..errors import (
    KrakenConnectionError,
    KrakenError,
    KrakenTimeout,
    KrakenUsageError,
    ambiguous,
)
from .book import Book
from .errors import answer_unknown, outcome_unknown
from .protocol import (
    ORDER_METHODS,
    PRIVATE_CHANNELS,
    ResyncBackoff,
    SequenceCheck,
    Subscriptions,
    answers,
    decode,
    encode,
    notice,
    reply_error,
    split_subscription,
    token_refused,
)
from .unified import ONE_PER_CONNECTION, SEQUENCED, Margin, Positions, Unified

__all__ = ['Session', 'Request', 'carried_out', 'Precisions', 'Deliver', 'Answered', 'Resync',
           'Send', 'NOTICE_SIZE', 'LATE_REPLY_WAIT', 'MAX_PRECISIONS', 'BAD_TEXT', 'BAD_REASON']

#: What one of krakenex's own notices counts against ``max_queue_bytes``.
NOTICE_SIZE = 256

#: Seconds a request nobody waits for any more (it timed out, was cancelled, or krakenex
#: sent it for itself) keeps its ``req_id``, so that its late reply settles nothing else.
LATE_REPLY_WAIT = 600.0

#: Characters of a message krakenex could not read that a ``bad_message`` notice quotes, and
#: of the reason it gives.
BAD_TEXT = 200
BAD_REASON = 500

#: Pairs whose precisions are kept from the ``instrument`` channel (Kraken lists about a
#: thousand); past it the pair named longest ago is forgotten. A book keeps its own.
MAX_PRECISIONS = 5000

#: What a JSON value that is not an object is called, for a ``bad_message``'s reason.
_JSON_NAMES = {list: 'an array', str: 'a string', int: 'a number', Decimal: 'a number',
               bool: 'true or false', type(None): 'null'}


# -- what a session decides ------------------------------------------------------------------

class Deliver:
    """A message for the user's stream; ``size`` counts against ``max_queue_bytes``."""

    __slots__ = ('message', 'size')

    def __init__(self, message: dict[str, Any], size: int = NOTICE_SIZE) -> None:
        self.message, self.size = message, size

    def __repr__(self) -> str:
        return f'Deliver({self.message!r}, {self.size})'


class Answered:
    """Every reply to ``request`` has come: its :attr:`Request.replies`."""

    __slots__ = ('request',)

    def __init__(self, request: Request) -> None:
        self.request = request

    def __repr__(self) -> str:
        return f'Answered({self.request!r})'


class Resync:
    """Subscribe the book of ``symbol`` again in ``wait`` seconds; then ask
    :meth:`Session.resync_due` what to send."""

    __slots__ = ('symbol', 'wait')

    def __init__(self, symbol: str, wait: float) -> None:
        self.symbol, self.wait = symbol, wait

    def __repr__(self) -> str:
        return f'Resync({self.symbol!r}, {self.wait})'


class Send:
    """A request krakenex sends on its own (``internal``: its replies stay out of the stream)."""

    __slots__ = ('method', 'params', 'internal', 'expected')

    def __init__(self, method: str, params: dict[str, Any], internal: bool,
                 expected: int = 1) -> None:
        self.method, self.params, self.internal, self.expected = (method, params, internal,
                                                                  expected)

    def __repr__(self) -> str:
        return f'Send({self.method!r}, {self.params!r}, internal={self.internal})'


Event = Deliver | Answered | Resync


class _BadBook(ValueError):
    """A book message krakenex could not apply; ``symbols`` are the books it may have touched."""

    def __init__(self, reason: str, symbols: Iterable[str]) -> None:
        super().__init__(reason)
        self.symbols = set(symbols)


# -- requests ----------------------------------------------------------------------------------

class Request:
    """A request sent and not fully answered (a subscribe waits for one ack per symbol).

    It keeps its ``req_id`` until its replies come, even once nobody waits for them
    (``abandoned``: the time since then), for at most :data:`LATE_REPLY_WAIT`.
    ``waiter`` is the driver's, for whoever waits for the replies; the session never
    looks at it.
    """

    def __init__(self, method: str, params: Mapping[str, Any], req_id: int, *, expected: int,
                 internal: bool, now: float) -> None:
        self.method, self.params, self.req_id = method, params, req_id
        self.expected, self.internal = expected, internal
        self.replies: list[dict[str, Any]] = []
        self.abandoned: float | None = now if internal else None
        self.waiter: Any = None

    def __repr__(self) -> str:
        return f'<Request {self.method} req_id {self.req_id}, {len(self.replies)} replies>'

    @property
    def order(self) -> bool:
        """Whether it is the user's order request: never sent twice, a lost reply unknown."""
        return self.method in ORDER_METHODS and not self.internal

    def reply(self, message: dict[str, Any]) -> bool:
        """Take one reply; True once every reply has come (a refusal naming no symbol is
        the whole request's)."""
        self.replies.append(message)
        whole = message.get('success') is False and not symbol_of(message)
        return len(self.replies) >= self.expected or whole

    def abandon(self, now: float) -> None:
        """Nobody waits for the reply any more; it may still come."""
        if self.abandoned is None:
            self.abandoned = now

    def unanswered(self, error: KrakenError) -> KrakenError:
        """The error for this request, which may have reached Kraken, when no reply will come."""
        if self.order:
            return outcome_unknown(self.method, self.req_id, self.params,
                                   f'{error}; no reply came')
        if self.method in ('subscribe', 'unsubscribe'):
            keep = ' krakenex keeps the subscription and sends it again on reconnecting.'
            return KrakenConnectionError(f'{self.method} got no acknowledgement: {error}.'
                                         + (keep if self.method == 'subscribe' else ''))
        return KrakenConnectionError(f'{self.method} got no reply: {error}')

    def cancelled(self) -> KrakenError | None:
        """The error for a task cancelled after this request was sent: an unknown outcome for
        an order request (it may have reached Kraken, and is never sent again), else none
        (the cancellation stands)."""
        if self.order:
            return outcome_unknown(self.method, self.req_id, self.params,
                                   'the task was cancelled before its reply came')
        return None

    def timed_out(self, timeout: float | None, url: str) -> KrakenError:
        """The error for a request whose reply did not come within ``timeout`` seconds."""
        if self.method in ORDER_METHODS:
            return outcome_unknown(self.method, self.req_id, self.params,
                                   f'no reply came within {timeout} s', timeout=True)
        return KrakenTimeout(f'no reply to {self.method} from {url} within {timeout} s',
                             method=self.method)


def symbol_of(message: Mapping[str, Any]) -> Any:
    """The symbol a reply names, at its top or in its ``result``."""
    result = message.get('result')
    return message.get('symbol') or (result.get('symbol') if isinstance(result, dict) else None)


def carried_out(method: str, params: Mapping[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """A request's reply, if it says Kraken carried the request out.

    :raises KrakenAPIError: (a subclass) if Kraken answered ``success: false``
    :raises OutcomeUnknownAPIError: for an order request Kraken answered with an error that
        does not say whether it took effect, such as ``EService:Timeout``
    :raises SocketOutcomeUnknownError: for an order request whose reply says neither
        ``success`` true nor false
    """
    success = reply.get('success')
    if success is False:
        errors = [str(reply.get('error'))]
        if method in ORDER_METHODS and ambiguous(errors):
            raise answer_unknown(method, reply.get('req_id'), params, errors)
        raise reply_error(errors, method)
    if success is not True and method in ORDER_METHODS:  # (ping's pong carries none)
        # a reply that says neither yes nor no does not say what became of the order
        raise outcome_unknown(method, reply.get('req_id') or 0, params,
                              f'its reply says neither success nor failure: {str(reply)[:200]}')
    return reply


# -- precisions ------------------------------------------------------------------------------

class Precisions(Mapping[str, tuple[int, int]]):
    """Pairs' ``(price_precision, qty_precision)`` from the ``instrument`` channel, for the
    checksums of books subscribed later: at most ``limit`` pairs, the one named longest ago
    forgotten first."""

    def __init__(self, limit: int = MAX_PRECISIONS) -> None:
        self.limit = limit
        self._pairs: dict[str, tuple[int, int]] = {}

    def __getitem__(self, symbol: str) -> tuple[int, int]:
        return self._pairs[symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f'Precisions({self._pairs!r})'

    def set(self, symbol: str, precisions: tuple[int, int]) -> None:
        """Keep a pair's precisions as the newest; past :attr:`limit`, forget the oldest."""
        pairs = self._pairs
        pairs.pop(symbol, None)  # named again: the newest
        pairs[symbol] = precisions
        if len(pairs) > self.limit:
            del pairs[next(iter(pairs))]


def _precision(value: Any) -> int:
    """A pair's precision from the ``instrument`` channel: a whole number of decimals."""
    whole = isinstance(value, int) or (isinstance(value, Decimal) and value.is_finite()
                                       and value == value.to_integral_value())
    if isinstance(value, bool) or not whole or not 0 <= value <= 30:
        raise ValueError(f'not a precision: {value!r}')
    return int(value)


# -- the session -----------------------------------------------------------------------------

class Session:
    """Kraken's rules for one endpoint's connections, one socket after another.

    :param url: the endpoint's address, as notices name it
    :param private: whether requests carry the connection's token
    :param precisions: the pairs' precisions, shared by the client's sessions
    :param resync_backoff: paces the books subscribed again after a failure
    :param ids: the ``req_id`` numbers to take from, shared by the client's sessions
    :param unified: the Unified WebSocket's rules, for a connection to it
    """

    def __init__(self, url: str, *, private: bool, precisions: Precisions,
                 resync_backoff: ResyncBackoff, ids: Iterator[int],
                 unified: Unified | None = None) -> None:
        self.url = url
        self.unified = unified
        #: The private channels that number their messages per connection.
        self.sequenced = SEQUENCED if unified is not None else PRIVATE_CHANNELS
        #: The open positions and the margin, on the Unified WebSocket.
        self.positions = Positions()
        self.margin = Margin()
        self.private = private
        self.precisions = precisions
        self.resync_backoff = resync_backoff
        self.ids = ids
        self.subs = Subscriptions()
        self.sequences = SequenceCheck()
        self.pending: dict[int, Request] = {}  # by req_id; a lost socket clears it
        self.books: dict[str, Book] = {}
        self.instrument = False  # krakenex subscribed to instrument on this socket
        self.token: str | None = None  # the socket's token, for a private endpoint
        self.resyncs: dict[str, tuple[float, Book]] = {}  # symbol: (when due, its book)

    # -- the socket ----------------------------------------------------------------------

    def opened(self, token: str | None = None) -> None:
        """A new socket is open: its private channels number their messages afresh."""
        self.sequences.reset()
        if token is not None:
            self.token = token

    def reconnect_requests(self) -> list[Send]:
        """What to send on a socket that replaces a lost one: the ``instrument`` subscription
        krakenex needs for its books' precisions, then the user's own subscribe requests."""
        instrument = self.instrument_request() if self.books and not self.instrument else None
        return [*([instrument] if instrument is not None else []),
                *(Send('subscribe', {'channel': channel, **params}, internal=False,
                       expected=len(split_subscription(params)))
                  for channel, params in self.subs.requests())]

    def lost(self, error: KrakenError) -> list[tuple[Request, KrakenError]]:
        """The socket ended: every book waits for a new snapshot (the next socket subscribes
        it again, so planned resyncs are dropped), krakenex's ``instrument`` subscription is
        gone, and each request still waiting fails with the error returned beside it."""
        self.resyncs.clear()
        for book in self.books.values():
            book.reset()
        self.positions.reset()
        self.margin.reset()
        self.instrument = False
        return self.fail(error)

    def fail(self, error: KrakenError) -> list[tuple[Request, KrakenError]]:
        """No reply will come to any request still waiting: each with its error."""
        pending, self.pending = self.pending, {}
        return [(request, request.unanswered(error)) for request in pending.values()]

    # -- requests ------------------------------------------------------------------------

    def prepare(self, method: str, params: Mapping[str, Any], *, now: float,
                internal: bool = False, expected: int = 1,
                req_id: int | None = None) -> Request:
        """A request about to be sent, with the caller's ``req_id`` or the next one free.

        :raises KrakenUsageError: if ``req_id`` is taken by a request whose reply has not come
        """
        pending = self.pending
        for stale in [k for k, r in pending.items()
                      if r.abandoned is not None and now - r.abandoned > LATE_REPLY_WAIT]:
            del pending[stale]
        if req_id is None:
            req_id = next(self.ids)
            while req_id in pending:
                req_id = next(self.ids)
        elif req_id in pending:
            raise KrakenUsageError(f'{method} was not sent: req_id {req_id} is taken by a '
                                   f'{pending[req_id].method} whose reply has not come')
        return Request(method, params, req_id, expected=expected, internal=internal, now=now)

    def sending(self, request: Request) -> str:
        """The text of a request about to go on the socket; its replies are awaited from now."""
        body: dict[str, Any] = {'method': request.method, 'req_id': request.req_id}
        params = dict(request.params) if self.unified is None \
            else self.unified.outgoing(request.method, request.params)
        if self.private and request.method != 'ping' and self.token is not None:
            params['token'] = self.token
        if params:
            body['params'] = params
        text = encode(body)
        self.pending[request.req_id] = request
        return text

    def forget(self, request: Request) -> None:
        """A request that may not have left: no reply is awaited for it."""
        self.pending.pop(request.req_id, None)

    def refused_token(self, replies: Iterable[Mapping[str, Any]]) -> str | None:
        """Kraken's error if a reply says it refused this endpoint's token (the request then
        did nothing: a fresh token and the same request again are safe)."""
        if not self.private:
            return None
        return next((str(r['error']) for r in replies if token_refused(r.get('error'))), None)

    def hide_token(self, text: str) -> str:
        """``text`` without the socket's token, if it holds it."""
        token = self.token
        return text.replace(token, '[token]') if token and token in text else text

    # -- subscriptions -------------------------------------------------------------------

    def check_subscription(self, channel: str, params: Mapping[str, Any]) -> None:
        """Refuse a subscription Kraken would refuse on this connection, before it is sent.

        :raises KrakenUsageError: on the Unified WebSocket, for a second ``positions`` or
            ``margin`` subscription, or parameters Kraken refuses for the channel
        """
        if self.unified is None:
            return
        self.unified.check_subscription(channel, params)
        if channel in ONE_PER_CONNECTION and channel in self.subs.channels():
            raise KrakenUsageError(f'{channel} is subscribed already: Kraken takes one {channel} '
                                   f'subscription per connection (Already subscribed to '
                                   f'{channel} channel)')

    def subscribing(self, channel: str, params: Mapping[str, Any],
                    depth: int) -> tuple[dict[str, Any], set[str]]:
        """Keep a user's subscribe request, to send again after reconnects, and make the books
        it names that do not exist yet; return the kept entry and those symbols, for
        :meth:`not_subscribed`."""
        entry = self.subs.add(channel, params)
        new: set[str] = set()
        if channel == 'book':
            for symbol in split_subscription(params):
                if symbol is not None and symbol not in self.books:
                    price, qty = self.precisions.get(symbol, (None, None))
                    self.books[symbol] = Book(symbol, depth, price_precision=price,
                                              qty_precision=qty)
                    new.add(symbol)
        return entry, new

    def needs_instrument(self, channel: str, params: Mapping[str, Any]) -> bool:
        """Whether krakenex must subscribe to ``instrument`` for the precisions of a book
        subscription's pairs before sending it."""
        return channel == 'book' and not self.instrument and not all(
            s in self.precisions for s in split_subscription(params))

    def instrument_request(self) -> Send | None:
        """krakenex's own ``instrument`` subscription on this socket, unless the user's
        already brings the pairs."""
        self.instrument = True
        if 'instrument' in self.subs.channels():
            return None
        return Send('subscribe', {'channel': 'instrument'}, internal=True)

    def not_subscribed(self, entry: dict[str, Any], new_books: set[str],
                       replies: Iterable[Mapping[str, Any]] | None = None) -> list[str]:
        """Undo a subscribe request that was not sent (``replies`` None), or the part of it
        Kraken refused; the earlier ones stay. Returns Kraken's errors, if it refused."""
        if replies is None:
            self.subs.withdraw(entry)
            self._forget_books(new_books)
            return []
        refused = [r for r in replies if r.get('success') is False]
        if refused:
            symbols = {symbol_of(r) for r in refused}
            whole = not all(symbols)  # a refusal naming no symbol is for the whole request
            self.subs.withdraw(entry, None if whole else symbols)
            self._forget_books(new_books if whole else new_books & symbols)
        return [str(r.get('error')) for r in refused]

    def unsubscribing(self, channel: str, params: Mapping[str, Any]) -> None:
        """Stop sending a subscription again after reconnects, and drop its books, or its
        positions or margin view (which waits for the next subscription's first message)."""
        self.subs.remove(channel, params)
        if channel == 'book':
            self._forget_books(split_subscription(params))
        elif channel == 'positions':
            self.positions.reset()
        elif channel == 'margin':
            self.margin.reset()

    def _forget_books(self, symbols: Iterable[str | None]) -> None:
        for symbol in symbols:
            if symbol is not None:
                self.books.pop(symbol, None)

    def resync_due(self, symbol: str) -> list[Send]:
        """What to send now that a book's resync is due: unsubscribe and subscribe with the
        user's own parameters, or nothing if a snapshot verified it meanwhile or it is no
        longer subscribed."""
        _, book = self.resyncs.pop(symbol, (None, None))
        if book is None or book.verified or self.books.get(symbol) is not book:
            return []
        params = self.subs.params_for('book', symbol) or {'symbol': [symbol], 'depth': book.depth}
        return [Send(method, {'channel': 'book', **params}, internal=True)
                for method in ('unsubscribe', 'subscribe')]

    # -- what arrives --------------------------------------------------------------------

    def receive(self, raw: str | bytes, now: float) -> list[Event]:
        """What one message from Kraken means, as events in order; a message krakenex cannot
        read is a ``bad_message`` notice, and the books it may have touched resync."""
        events: list[Event] = []
        try:
            message = decode(raw)
        except Exception as exc:  # not JSON, not UTF-8, or beyond krakenex's bounds
            self._bad_message(events, raw, exc, self.books, now)
            return events
        try:
            self._dispatch(events, message, len(raw), now)
        except _BadBook as exc:
            self._bad_message(events, raw, exc, exc.symbols, now)
        except Exception as exc:
            self._bad_message(events, raw, exc, (), now)
        return events

    def _dispatch(self, events: list[Event], message: Any, size: int, now: float) -> None:
        """Route one message: replies to their requests, books, gaps and the rest to the user.

        :raises ValueError: for a message that is not a JSON object (Kraken sends none)
        """
        if message.__class__ is not dict:
            raise ValueError(f'{_JSON_NAMES.get(type(message), "a value")} where Kraken always '
                             f'sends a JSON object')
        req_id = message.get('req_id')
        if req_id is not None and 'method' in message:
            # a reply: to the request with its req_id and method; one that answers nothing
            # krakenex knows of (a reply later than LATE_REPLY_WAIT) goes to the stream too
            if req_id.__class__ is not int:
                raise ValueError(f'a reply whose req_id {req_id!r:.40} is not a whole number')
            if message.get('success', False).__class__ is not bool:
                raise ValueError('a reply whose success is neither true nor false')
            request = self.pending.get(req_id)
            if request is not None and answers(request.method, message['method']):
                if request.reply(message):
                    del self.pending[req_id]
                    events.append(Answered(request))
                if request.internal:
                    return
            events.append(Deliver(message, size))
            return
        channel = message.get('channel')
        if channel == 'book':
            self._on_book(events, message, size, now)
            return
        if channel == 'instrument':
            self._on_instrument(message)
            if 'instrument' not in self.subs.channels():
                return
        if self.unified is not None and channel in ('positions', 'margin'):
            (self.positions if channel == 'positions' else self.margin).apply(message)
        sequence = message.get('sequence')
        if channel in self.sequenced and isinstance(sequence, int):
            gap = self.sequences.check(channel, sequence)
            if gap is not None:
                events.append(Deliver(notice('gap', feed=channel, expected=gap[0],
                                             received=gap[1])))
        events.append(Deliver(message, size))

    def _on_book(self, events: list[Event], message: dict[str, Any], size: int,
                 now: float) -> None:
        kind = message.get('type')
        snapshot = kind == 'snapshot'
        items: Any = message.get('data')
        # decoded JSON: a list is a list and a dict a dict, no subclass (a loop, not all():
        # this runs for every book message)
        named = items.__class__ is list
        if named:
            for data in items:
                if data.__class__ is not dict or data.get('symbol').__class__ is not str:
                    named = False
                    break
        if not named:
            # which book it was for is unknown: every book starts again
            raise _BadBook('a book message without a list of data with symbols', self.books)
        if not snapshot and kind != 'update':
            raise _BadBook(f'a book message of type {kind!r:.40}, neither snapshot nor update',
                           (d['symbol'] for d in items))
        books = self.books
        broken: list[Book] = []
        for data in items:
            book = books.get(data['symbol'])
            if book is None:
                continue
            try:
                result = book.apply(data, snapshot)
            except Exception as exc:
                # applied in part, or not at all: either way the book is not Kraken's
                raise _BadBook(f'{type(exc).__name__}: {exc} in the {book.symbol} book',
                               (d['symbol'] for d in items)) from exc
            if result == 'mismatch':
                broken.append(book)
        events.append(Deliver(message, size))
        for book in broken:
            self._resync(events, book, 'the checksum did not match', now,
                         checksum=book.expected, computed=book.computed)

    def _on_instrument(self, message: dict[str, Any]) -> None:
        data = message.get('data')
        pairs = data.get('pairs') if isinstance(data, dict) else None
        bad: list[str] = []
        for pair in pairs if isinstance(pairs, list) else ():
            symbol = pair.get('symbol') if isinstance(pair, dict) else None
            if not isinstance(symbol, str):
                bad.append(repr(pair))
                continue
            precision = (pair.get('price_precision'), pair.get('qty_precision'))
            if None in precision:
                continue
            try:
                price, qty = _precision(precision[0]), _precision(precision[1])
            except ValueError:
                bad.append(f'{symbol}: price_precision {precision[0]!r}, '
                           f'qty_precision {precision[1]!r}')
                continue
            self.precisions.set(symbol, (price, qty))
            book = self.books.get(symbol)
            if book is not None:
                book.set_precision(price, qty)
        if bad:
            # the pairs' books keep the precisions they had; a wrong one shows as a mismatch
            raise ValueError('instrument pairs krakenex could not read: ' + '; '.join(bad))

    def _bad_message(self, events: list[Event], raw: str | bytes, error: Exception,
                     books: Iterable[str], now: float) -> None:
        """Say that a message could not be read, quoting its start and the reason, cut short
        and without the token; resync the ``books`` it may have touched."""
        wide = BAD_TEXT + 200  # a little more than is shown: a token across the cut is found
        if isinstance(raw, str):
            text, cut = raw[:wide], len(raw) > wide
        else:
            text, cut = raw[:wide * 4].decode('utf-8', 'replace'), len(raw) > wide * 4
        text = self.hide_token(text)
        reason = self.hide_token(f'{type(error).__name__}: {error}')
        reason = reason[:BAD_REASON] + ('...' if len(reason) > BAD_REASON else '')
        text = text[:BAD_TEXT] + ('...' if cut or len(text) > BAD_TEXT else '')
        events.append(Deliver(notice('bad_message', url=self.url, reason=reason, text=text)))
        for symbol in sorted(books):
            book = self.books.get(symbol)
            if book is not None:
                self._resync(events, book, 'a message krakenex could not read', now)

    def _resync(self, events: list[Event], book: Book, reason: str, now: float,
                **fields: Any) -> None:
        """Forget a book, say ``book_resync`` and plan to subscribe it again, paced by
        :attr:`resync_backoff` unless already planned (``wait``: seconds until then)."""
        book.reset()
        planned = self.resyncs.get(book.symbol)
        if planned is not None:
            wait = max(0.0, planned[0] - now)
        else:
            wait = self.resync_backoff.delay(book.symbol, now)
            self.resyncs[book.symbol] = (now + wait, book)
            events.append(Resync(book.symbol, wait))
        events.append(Deliver(notice('book_resync', symbol=book.symbol, reason=reason,
                                     wait=wait, **fields)))
