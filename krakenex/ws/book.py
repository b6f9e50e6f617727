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
"""

from __future__ import annotations

import threading
import zlib
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ['Book', 'BookView', 'checksum', 'level_text', 'CHECKSUM_LEVELS', 'DEPTHS']

#: The checksum covers this many levels per side, whatever the subscribed depth.
CHECKSUM_LEVELS = 10

#: Prices whose checksum text a book keeps written, at most.
PRICE_TEXTS = 4096

#: The depths Kraken's ``book`` channel accepts; 10 is its default.
DEPTHS = (10, 25, 100, 500, 1000)

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
    return Decimal(value)


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


class _Side:
    """One side of the book: each level's quantity and checksum text, the prices sorted."""

    __slots__ = ('best_high', 'keys', 'levels')

    def __init__(self, best_high: bool) -> None:
        self.best_high = best_high  # bids: the highest price is the best
        self.levels: dict[Decimal, tuple[Decimal, str]] = {}
        self.keys: list[Decimal] = []  # the prices, ascending

    def set(self, price: Decimal, qty: Decimal, text: str) -> None:
        levels = self.levels
        if not qty:
            if levels.pop(price, None) is not None:
                del self.keys[bisect_left(self.keys, price)]
            return
        if price not in levels:
            insort(self.keys, price)
        levels[price] = (qty, text)

    def cut(self, depth: int) -> None:
        keys = self.keys
        if len(keys) <= depth:
            return
        gone = slice(0, len(keys) - depth) if self.best_high else slice(depth, None)
        for price in keys[gone]:
            del self.levels[price]
        del keys[gone]

    def best(self, count: int | None = None) -> list[Decimal]:
        """The prices, best first: the first ``count`` of them, or all."""
        keys = self.keys
        if self.best_high:
            return keys[::-1] if count is None else keys[:-count - 1:-1]
        return keys[:] if count is None else keys[:count]

    def checksum_text(self) -> str:
        levels = self.levels
        return ''.join([levels[price][1] for price in self.best(CHECKSUM_LEVELS)])


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
        self.price_precision = price_precision
        self.qty_precision = qty_precision
        self.verified = False
        self.checksum: int | None = None  # the last checksum that matched
        self.timestamp: str | None = None
        self.computed: int | None = None  # the checksum of the last message applied, ours
        self.expected: int | None = None  # and Kraken's
        self._bids = _Side(best_high=True)
        self._asks = _Side(best_high=False)
        self._price_text: dict[Decimal, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = 'verified' if self.verified else 'not verified'
        return (f'<Book {self.symbol} depth {self.depth}, {len(self._bids.levels)} bids, '
                f'{len(self._asks.levels)} asks, {state}>')

    def set_precision(self, price_precision: int | None, qty_precision: int | None) -> None:
        """Use these precisions for the checksum from now on (``instrument`` channel data)."""
        with self._lock:
            if (price_precision, qty_precision) == (self.price_precision, self.qty_precision):
                return
            self.price_precision, self.qty_precision = price_precision, qty_precision
            self._price_text = {}
            for side in (self._bids, self._asks):
                side.levels = {p: (q, self._text(p, q)) for p, (q, _) in side.levels.items()}

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
        """
        with self._lock:
            if snapshot:
                self._clear()
            elif not self.verified:
                return 'ignored'
            pp, qp, depth, digits = self.price_precision, self.qty_precision, self.depth, _digits
            for name, side in (('bids', self._bids), ('asks', self._asks)):
                levels = data.get(name)
                if not levels:
                    continue
                put, written = side.set, self._price_text
                for level in levels:
                    price, qty = level['price'], level['qty']
                    if price.__class__ is not Decimal:
                        price = _decimal(price)
                    if qty.__class__ is not Decimal:
                        qty = _decimal(qty)
                    if not qty:
                        put(price, qty, '')
                        continue
                    text = written.get(price)
                    if text is None:  # prices come back again and again: write each once
                        if len(written) > PRICE_TEXTS:
                            written.clear()
                        text = written[price] = digits(price, pp)
                    put(price, qty, text + digits(qty, qp))
                if len(side.keys) > depth:
                    side.cut(depth)
            self.computed = zlib.crc32((self._asks.checksum_text()
                                        + self._bids.checksum_text()).encode('ascii'))
            self.expected = data.get('checksum')
            self.timestamp = data.get('timestamp', self.timestamp)
            if self.expected is not None and self.computed == int(self.expected):
                self.verified, self.checksum = True, self.computed
                return 'verified'
            self._clear()  # a book that failed its checksum is never shown
            return 'mismatch'

    def view(self) -> BookView | None:
        """The book now, if verified; ``None`` while it waits for a snapshot."""
        with self._lock:
            if not self.verified or self.checksum is None:
                return None
            bids = [(p, self._bids.levels[p][0]) for p in self._bids.best()]
            asks = [(p, self._asks.levels[p][0]) for p in self._asks.best()]
            return BookView(self.symbol, bids, asks, self.checksum, self.timestamp)

    def _text(self, price: Decimal, qty: Decimal) -> str:
        return level_text(price, qty, self.price_precision, self.qty_precision)

    def _checksum(self) -> int:
        text = self._asks.checksum_text() + self._bids.checksum_text()
        return zlib.crc32(text.encode('ascii'))

    def _clear(self) -> None:
        self.verified, self.checksum = False, None
        self._bids = _Side(best_high=True)
        self._asks = _Side(best_high=False)
