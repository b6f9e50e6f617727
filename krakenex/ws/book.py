"""Kraken's level-2 order book as WebSocket v2 sends it, checked by its CRC32 checksum.

No I/O: :class:`Book` takes the ``data`` items of ``book`` messages and says
whether the result matches Kraken's checksum. The rules (Kraken's "Book
checksum (WebSocket v2)" guide, kraken-protocol.md §8.4 and §10.1):

* apply every level of a message, in order, before checking; ``qty`` 0 removes
  a level; then cut each side to the subscribed depth (levels pushed out are
  not sent as qty 0);
* the checksum covers the ten best asks (low to high) then the ten best bids
  (high to low): for each level, price then quantity, written at the pair's
  precision with the ``.`` removed and leading zeros stripped; CRC32 of that
  ASCII text, unsigned.

Numbers stay :class:`~decimal.Decimal` from the wire to the checksum: a float
loses the trailing zeros the checksum includes (``0.10000000``) and writes
small prices as ``1.234e-05``.

A level no exchange can have (a price that is not above zero, a quantity below
zero, either one not a finite number or at :data:`LEVEL_LIMIT` or more) and a
checksum that is not a CRC32 make :meth:`Book.apply` raise, whatever the
checksum says: the book is emptied and never shows them.
"""

from __future__ import annotations

import threading
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ['Book', 'BookView', 'checksum', 'level_text', 'CHECKSUM_LEVELS', 'DEPTHS',
           'LEVEL_LIMIT']

#: The checksum covers this many levels per side, whatever the subscribed depth.
CHECKSUM_LEVELS = 10

#: The depths Kraken's ``book`` channel accepts; 10 is its default.
DEPTHS = (10, 25, 100, 500, 1000)

#: Prices and quantities stay below this (a billion billion): a level at or above it cannot exist.
LEVEL_LIMIT = Decimal(10) ** 18
_LIMIT_DIGITS = 18  # digits before the point of a number just below LEVEL_LIMIT

#: Kraken's checksum is a CRC32: a whole number from 0 to this, inclusive.
CRC_MAX = (1 << 32) - 1

Level = tuple[Decimal, Decimal]


def _digits(value: Decimal, precision: int | None) -> str:
    text = str(value)
    dot = text.find('.')
    # str() is exact, and fast, when the wire already had the pair's precision
    if 'E' in text or (precision is not None
                       and (len(text) - dot - 1 if dot >= 0 else 0) != precision):
        text = format(value, 'f' if precision is None else f'.{precision}f')
        dot = text.find('.')
    return (text[:dot] + text[dot + 1:] if dot >= 0 else text).lstrip('0')


def level_text(price: Decimal, qty: Decimal, price_precision: int | None = None,
               qty_precision: int | None = None) -> str:
    """What one level adds to the checksum's input, such as ``'452852' + '100000'``.

    Without a precision the number is written as decoded, which keeps the wire's
    trailing zeros when it was decoded as :class:`~decimal.Decimal`.
    """
    return _digits(price, price_precision) + _digits(qty, qty_precision)


def checksum(asks: Iterable[Level], bids: Iterable[Level], price_precision: int | None = None,
             qty_precision: int | None = None) -> int:
    """Kraken's book checksum over the ten best ``asks`` (low to high) and ``bids`` (high to low).

    :returns: the CRC32 as an unsigned 32-bit integer, as Kraken sends it
    """
    text = ''.join(level_text(p, q, price_precision, qty_precision)
                   for side in (asks, bids) for p, q in list(side)[:CHECKSUM_LEVELS])
    return zlib.crc32(text.encode('ascii'))


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))  # the best a float can give; the precision restores zeros
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise ValueError(f'a level has {_shown(value)} where a number belongs')


def _shown(value: Any) -> str:
    """A value for an error message, cut short."""
    if isinstance(value, (list, dict)):
        return f'a {type(value).__name__}'
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 40 else text[:30] + '...'


def _possible(value: Decimal, what: str, *, zero: bool) -> Decimal:
    """``value`` if a level can have it as its ``what`` (its price: above zero; its
    quantity, with ``zero``: zero or more), finite and below :data:`LEVEL_LIMIT`.

    :raises ValueError: if it cannot
    """
    if not (value.is_finite() and (value >= 0 if zero else value > 0)
            and value.adjusted() < _LIMIT_DIGITS):
        raise ValueError(f'a level with {what} {_shown(value)} cannot exist')
    return value


def _crc(value: Any) -> int:
    """Kraken's checksum as a whole number from 0 to :data:`CRC_MAX`.

    :raises ValueError: for anything else (no checksum, a fraction, a number out of range)
    """
    if value.__class__ is int and 0 <= value <= CRC_MAX:
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and 0 <= value <= CRC_MAX \
            and value == value.to_integral_value():
        return int(value)
    raise ValueError(f'the checksum {_shown(value)} is not a CRC32 (a whole number from 0 '
                     f'to {CRC_MAX})')


@dataclass(frozen=True)
class BookView:
    """A verified order book at one moment: what :meth:`krakenex.ws.WS.book` returns.

    :ivar symbol: the pair, such as ``'BTC/USD'``
    :ivar bids: ``(price, qty)`` pairs, best (highest) first
    :ivar asks: ``(price, qty)`` pairs, best (lowest) first
    :ivar checksum: Kraken's checksum that this book matched
    :ivar timestamp: Kraken's timestamp of the last message applied
    """

    symbol: str
    bids: list[Level]
    asks: list[Level]
    checksum: int
    timestamp: str | None


#: A pair's precisions and what follows from them for reading its numbers as written on the
#: wire: ``(price_precision, qty_precision, pdot, qdot, plong, qlong)``.
_Wire = tuple[Any, Any, int, int, int, int]


def _wire(pp: int | None, qp: int | None) -> _Wire:
    """A number written at the pair's precision ends in '.' and that many digits, where
    Decimal's str() gives that text back (and never an exponent): ``pdot`` and ``qdot`` are
    where the '.' is, from the end, or 0 without a precision. A quantity so written that is
    not negative and shorter than ``qlong`` has at most _LIMIT_DIGITS digits before the point
    and is possible; a price is checked when its level is added (``plong``)."""
    return (pp, qp, -pp - 1 if pp else 0, -qp - 1 if qp else 0,
            pp + _LIMIT_DIGITS + 2 if pp else 0, qp + _LIMIT_DIGITS + 2 if qp else 0)


class _Side:
    """One side of the book, kept sorted, with the checksum text of its ten best levels.

    ``levels`` maps each price's key (its text at the pair's precision, or the
    :class:`~decimal.Decimal` itself while the precision is unknown) to
    ``((price, qty), price digits)``; ``prices`` holds the prices in ascending
    order as :class:`~decimal.Decimal`, and ``keys`` and ``texts`` (each level's
    checksum text) follow it in step, so the ten best texts are one slice. Looking a wire
    price up by its text skips hashing a new Decimal; the order comes from
    comparing Decimals, so it never depends on the text.
    """

    __slots__ = ('best_high', 'levels', 'texts', 'prices', 'keys', 'text', 'crc')

    def __init__(self, best_high: bool) -> None:
        self.best_high = best_high  # bids: the highest price is the best
        self.levels: dict[Any, tuple[Level, str]] = {}
        self.prices: list[Decimal] = []  # ascending
        self.keys: list[Any] = []  # the key of each price in ``prices``
        self.texts: list[str] = []  # the checksum text of each level in ``prices``
        self.text = b''  # the checksum's input for this side's ten best levels
        self.crc = 0  # CRC32 of ``text``, kept for the asks alone

    def apply(self, levels: Iterable[Mapping[str, Any]], wire: _Wire) -> bool:
        """Apply the levels of one message in order; whether the ten best may have changed."""
        own, prices, keys, texts = self.levels, self.prices, self.keys, self.texts
        best_high = self.best_high
        changed = len(prices) < CHECKSUM_LEVELS
        edge = None if changed else prices[-CHECKSUM_LEVELS] if best_high else prices[
            CHECKSUM_LEVELS - 1]
        pp, qp, pdot, qdot, plong, qlong = wire
        for level in levels:
            price, qty = level['price'], level['qty']
            if price.__class__ is not Decimal:
                price = _decimal(price)
            if qty.__class__ is not Decimal:
                qty = _decimal(qty)
            key: Any = str(price)
            if not (pdot and len(key) > pp and key[pdot] == '.' and 'E' not in key):
                key = _key(price, pp)
            if not changed and (price >= edge if best_high else price <= edge):  # type: ignore[operator]
                changed = True
            old = own.get(key)
            if not qty:
                if old is not None:
                    del own[key]
                    at = bisect_left(prices, old[0][0])
                    del prices[at], keys[at], texts[at]
                continue
            text = str(qty)
            if not (qdot and qp < len(text) < qlong and text[qdot] == '.'
                    and 'E' not in text and text[0] != '-'):
                text = _fixed(_possible(qty, 'quantity', zero=True), qp)
            if old is None:
                # _key checked a price it wrote; one as written on the wire is checked here
                if key.__class__ is str and (key[0] in '-0' or len(key) >= plong):
                    _possible(price, 'price', zero=False)
                digits = (key if key.__class__ is str else _fixed(price, pp)).replace(
                    '.', '').lstrip('0')
                at = bisect_left(prices, price)
                prices.insert(at, price)
                keys.insert(at, key)
                texts.insert(at, digits + text.replace('.', '').lstrip('0'))
                own[key] = ((price, qty), digits)
            else:
                digits = old[1]
                price = old[0][0]
                own[key] = ((price, qty), digits)
                texts[bisect_left(prices, price)] = digits + text.replace('.', '').lstrip('0')
        return changed

    def take(self, levels: Iterable[Mapping[str, Any]] | None, wire: _Wire, depth: int,
             snapshot: bool) -> None:
        """Apply one message's levels for this side, cut to ``depth``, and write the
        checksum's input again if its ten best levels may have changed."""
        if levels and self.apply(levels, wire) or snapshot:
            if len(self.keys) > depth:
                self.cut(depth)
            self.write()
        elif len(self.keys) > depth:
            self.cut(depth)
            if depth < CHECKSUM_LEVELS:
                self.write()

    def cut(self, depth: int) -> None:
        """Keep the ``depth`` best levels."""
        keys = self.keys
        gone = slice(0, len(keys) - depth) if self.best_high else slice(depth, None)
        levels = self.levels
        for key in keys[gone]:
            del levels[key]
        del keys[gone], self.prices[gone], self.texts[gone]

    def best(self) -> list[Any]:
        """The keys, best first."""
        return self.keys[::-1] if self.best_high else self.keys[:]

    def write(self) -> None:
        """Write the checksum's input for the ten best levels again.

        The asks come first in the checksum, so only their CRC32 is kept; the
        bids' text continues it (:meth:`Book.apply`).
        """
        if self.best_high:
            self.text = ''.join(self.texts[:-CHECKSUM_LEVELS - 1:-1]).encode()
        else:
            self.text = ''.join(self.texts[:CHECKSUM_LEVELS]).encode()
            self.crc = zlib.crc32(self.text)


def _fixed(value: Decimal, precision: int | None) -> str:
    """``value`` with exactly ``precision`` decimals, or as decoded; never an exponent."""
    if precision is None:
        text = str(value)
        return format(value, 'f') if 'E' in text else text
    return format(value, f'.{precision}f')


def _key(price: Decimal, precision: int | None) -> Any:
    """What a price is looked up by: its text at the precision, or itself without one.

    :raises ValueError: for a price no level can have
    """
    _possible(price, 'price', zero=False)
    return price if precision is None else format(price, f'.{precision}f')


class Book:
    """One symbol's book, maintained from Kraken's snapshot and updates and checked.

    :param symbol: the pair, such as ``'BTC/USD'``
    :param depth: the subscribed depth; each side is cut to it after every message
    :param price_precision: decimals of the pair's prices (``instrument`` channel)
    :param qty_precision: decimals of the pair's quantities (``instrument`` channel)

    :attr:`verified` is true only while the last message applied matched its
    checksum; after a mismatch the book ignores updates until the next snapshot.
    It is safe to read a :meth:`view` from one thread while another applies messages.
    """

    def __init__(self, symbol: str, depth: int = 10, *, price_precision: int | None = None,
                 qty_precision: int | None = None) -> None:
        self.symbol = symbol
        self.depth = depth
        self._wire = _wire(price_precision, qty_precision)
        self.verified = False
        self.checksum: int | None = None  # the last checksum that matched
        self.timestamp: str | None = None
        self.computed: int | None = None  # the checksum of the last message applied, ours
        self.expected: int | None = None  # and Kraken's
        self._bids = _Side(best_high=True)
        self._asks = _Side(best_high=False)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = 'verified' if self.verified else 'not verified'
        return (f'<Book {self.symbol} depth {self.depth}, {len(self._bids.levels)} bids, '
                f'{len(self._asks.levels)} asks, {state}>')

    @property
    def price_precision(self) -> int | None:
        """Decimals of the pair's prices, if known (:meth:`set_precision` changes them)."""
        return self._wire[0]  # type: ignore[no-any-return]

    @property
    def qty_precision(self) -> int | None:
        """Decimals of the pair's quantities, if known."""
        return self._wire[1]  # type: ignore[no-any-return]

    def set_precision(self, price_precision: int | None, qty_precision: int | None) -> None:
        """Use these precisions for the checksum from now on (``instrument`` channel data)."""
        with self._lock:
            if (price_precision, qty_precision) == (self.price_precision, self.qty_precision):
                return
            self._wire = _wire(price_precision, qty_precision)
            for side in (self._bids, self._asks):
                pairs = [level[0] for level in side.levels.values()]
                fresh = _Side(side.best_high)
                fresh.apply([{'price': p, 'qty': q} for p, q in pairs], self._wire)
                fresh.write()
                if side is self._bids:
                    self._bids = fresh
                else:
                    self._asks = fresh

    def reset(self) -> None:
        """Forget every level and wait for a snapshot (after a reconnect or a resync)."""
        with self._lock:
            self._clear()

    def apply(self, data: Mapping[str, Any], snapshot: bool) -> str:
        """Apply one ``data`` item of a ``book`` message and check it.

        :param data: ``{"symbol", "bids", "asks", "checksum", "timestamp"}`` as Kraken sends it
        :param snapshot: whether the message's ``type`` was ``'snapshot'``
        :returns: ``'verified'`` if the book now matches Kraken's checksum;
            ``'mismatch'`` if not (the book is then emptied and waits for a
            snapshot; :attr:`computed` and :attr:`expected` show both values);
            ``'ignored'`` for an update that arrives while the book waits for a snapshot
        :raises ValueError: for a level that cannot exist, a checksum that is not a CRC32 or
            a timestamp that is not text; the book is then emptied and waits for a snapshot
            (other errors, such as a level without ``qty``, do the same)
        """
        with self._lock:
            if snapshot:
                self._clear()
            elif not self.verified:
                return 'ignored'
            try:
                wire, depth = self._wire, self.depth
                bids, asks = self._bids, self._asks
                # an update usually touches one side: the other is left alone, uncalled
                levels = data.get('bids')
                if levels or snapshot or len(bids.keys) > depth:
                    bids.take(levels, wire, depth, snapshot)
                levels = data.get('asks')
                if levels or snapshot or len(asks.keys) > depth:
                    asks.take(levels, wire, depth, snapshot)
                self.computed = computed = zlib.crc32(bids.text, asks.crc)
                self.expected = expected = data.get('checksum')
                timestamp = data.get('timestamp')
                if timestamp.__class__ is not str:
                    if timestamp is not None:
                        raise ValueError(f'the timestamp {_shown(timestamp)} is not text')
                    timestamp = self.timestamp
                self.timestamp = timestamp
                # an int equal to our CRC32 is one; anything else is checked before comparing
                if computed == expected and expected.__class__ is int or computed == _crc(
                        expected):
                    self.verified, self.checksum = True, computed
                    return 'verified'
            except BaseException:
                self._clear()  # a message that could not be applied leaves no book behind
                raise
            self._clear()  # a book that failed its checksum is never shown
            return 'mismatch'

    def view(self) -> BookView | None:
        """The book now, if verified; ``None`` while it waits for a snapshot."""
        with self._lock:
            if not self.verified or self.checksum is None:
                return None
            levels = self._bids.levels
            bids = [levels[key][0] for key in self._bids.best()]
            levels = self._asks.levels
            asks = [levels[key][0] for key in self._asks.best()]
            return BookView(self.symbol, bids, asks, self.checksum, self.timestamp)

    def _clear(self) -> None:
        self.verified, self.checksum = False, None
        self._bids = _Side(best_high=True)
        self._asks = _Side(best_high=False)
