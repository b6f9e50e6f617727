"""Kraken's WebSocket v2: ``WS`` for plain code and notebooks, ``AsyncWS`` for asyncio.

>>> from krakenex.ws import WS
>>> with WS() as ws:                                            # doctest: +SKIP
...     ws.subscribe('book', symbol=['BTC/USD'], depth=10)
...     for message in ws:
...         print(ws.book('BTC/USD').bids[0])

Books are checked against Kraken's checksum at each pair's precision and are
never shown unverified; reconnects, resubscriptions, resyncs and skipped
sequence numbers appear in the stream as ``{"channel": "krakenex", ...}``
messages. Needs the ``websockets`` package: the ``ws`` extra, ``pip install '.[ws]'`` in a checkout.
The book, protocol and session modules work without it.

``WS(api, unified=True)`` speaks Kraken's Unified WebSocket instead (derivatives now),
with its rules (:mod:`krakenex.ws.unified`) and the ``positions()`` and ``margin()`` views.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .book import Book, BookView
from .errors import (
    BookUnavailableError,
    SocketOutcomeUnknownError,
    SocketOutcomeUnknownTimeout,
    ViewUnavailableError,
)
from .protocol import (
    AUTH_URL,
    L3_URL,
    UNIFIED_AUTH_URL,
    UNIFIED_URL,
    URL,
    Backoff,
    ResyncBackoff,
)

if TYPE_CHECKING:
    from .client import AsyncWS
    from .sync import WS

__all__ = ['WS', 'AsyncWS', 'Book', 'BookView', 'Backoff', 'ResyncBackoff', 'URL', 'AUTH_URL',
           'L3_URL', 'UNIFIED_URL', 'UNIFIED_AUTH_URL', 'BookUnavailableError',
           'ViewUnavailableError', 'SocketOutcomeUnknownError', 'SocketOutcomeUnknownTimeout']

_DRIVERS = {'WS': 'sync', 'AsyncWS': 'client'}


def __getattr__(name: str) -> Any:
    """Import the drivers (and websockets) only when they are asked for."""
    if name not in _DRIVERS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{_DRIVERS[name]}'), name)
    globals()[name] = value
    return value
