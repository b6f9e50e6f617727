"""Kraken Futures REST: :class:`FuturesAPI` on requests, :class:`AsyncFuturesAPI` on aiohttp.

Kraken turns this API off on 1 March 2027 (:data:`krakenex.futures.sunset.DECOMMISSIONED`):
its replacement is Kraken's Unified WebSocket, ``krakenex.ws.WS(api, unified=True,
asset_class='derivatives')``. The first call of a process warns once
(:class:`KrakenSunsetWarning`); doc/futures-migration.rst maps every endpoint to its
counterpart.

>>> from krakenex.futures import FuturesAPI
>>> with FuturesAPI() as futures:                       # doctest: +SKIP
...     futures.query_public('tickers')['tickers'][0]['symbol']
'PF_XBTUSD'

:class:`AsyncFuturesAPI` needs the ``async`` extra (``pip install '.[async]'`` in
a checkout of krakenex); it is imported on first use. Kraken Futures' rules
(endpoints, ``Authent``, error codes, order statuses) are in
:mod:`krakenex.futures.protocol`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .endpoints import DEFAULT_URI
from .sunset import KrakenSunsetWarning

if TYPE_CHECKING:
    from .aio import AsyncFuturesAPI
    from .api import FuturesAPI

__all__ = ['FuturesAPI', 'AsyncFuturesAPI', 'DEFAULT_URI', 'KrakenSunsetWarning']

_MODULES = {'FuturesAPI': 'api', 'AsyncFuturesAPI': 'aio'}


def __getattr__(name: str) -> Any:
    """Import a client class from its module the first time it is asked for."""
    if name not in _MODULES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{_MODULES[name]}'), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
