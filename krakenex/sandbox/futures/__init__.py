"""Kraken Futures on the sandbox: perpetual and fixed-maturity contracts, paper trading.

:class:`FuturesExchange` answers Kraken Futures' REST paths
(``/derivatives/api/v3/...``, ``/api/history/v3/orders``, ``/api/charts/v1/...``)
as Kraken does: it checks ``APIKey``, ``Authent`` and ``Nonce`` exactly (with
a check of its own, not the client's), keeps the 500-per-10-s budget and the
history pool with the costs of :mod:`krakenex.futures.endpoints`, serves
instruments, tickers, order books, trades and candles, keeps a
multi-collateral (flex) account per key, and fills paper orders against a
synthetic book around each contract's mark price. Refusals
carry Kraken's codes and order statuses; a parameter it does not know is
refused, never ignored. The sandbox's HTTP server routes those paths here, so
one :class:`~krakenex.sandbox.Sandbox` serves spot and futures. Standard
library only, besides krakenex's endpoint table.
"""

from __future__ import annotations

from .accounts import FuturesAccount, FuturesOrder, Position
from .exchange import BUDGET, FUTURES_PATHS, HISTORY_POOL, FuturesExchange, attach
from .market import INSTRUMENTS, FuturesMarket, Instrument

__all__ = ['FuturesExchange', 'FuturesMarket', 'FuturesAccount', 'FuturesOrder', 'Position',
           'Instrument', 'INSTRUMENTS', 'BUDGET', 'HISTORY_POOL', 'FUTURES_PATHS', 'attach']
