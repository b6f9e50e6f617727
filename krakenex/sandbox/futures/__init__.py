"""Kraken Futures on the sandbox: perpetual and fixed-maturity contracts, paper trading.

:class:`FuturesExchange` answers Kraken Futures' REST paths
(``/derivatives/api/v3/...``, ``/api/history/v3/orders``, ``/api/charts/v1/...``)
as Kraken does: it checks ``APIKey``, ``Authent`` and ``Nonce`` exactly (with
a check of its own, not the client's), keeps the 500-per-10-s budget and the
history pool with the costs of its own table of Kraken's limits, serves
instruments, tickers, order books, trades and candles, keeps a
multi-collateral (flex) account per key, and fills paper orders against a
synthetic book around each contract's mark price. Refusals
carry Kraken's codes and order statuses; a parameter it does not know is
refused, never ignored. The sandbox's HTTP server routes those paths here, so
one :class:`~krakenex.sandbox.Sandbox` serves spot and futures. Standard
library only.

The package, one responsibility per module:

- :mod:`~krakenex.sandbox.futures.endpoints`: one request in, one reply out: verb,
  authentication, budget, then the endpoint's handler;
- :mod:`~krakenex.sandbox.futures.exchange`: accounts, Kraken's request checks, the
  budgets, margin and matching (the state, behind one lock);
- :mod:`~krakenex.sandbox.futures.account_data` and
  :mod:`~krakenex.sandbox.futures.trading`: the account reads and the order endpoints,
  each over the exchange it is given;
- :mod:`~krakenex.sandbox.futures.market`: contracts, marks, trades, candles and the
  public endpoints;
- :mod:`~krakenex.sandbox.futures.accounts`: the records of one key;
- :mod:`~krakenex.sandbox.futures.limits`: Kraken's budgets and costs;
- :mod:`~krakenex.sandbox.futures.params`: reading parameters and writing replies.
"""

from __future__ import annotations

from .accounts import FuturesAccount, FuturesOrder, Position
from .endpoints import FUTURES_PATHS, FuturesEndpoints, attach
from .exchange import FuturesExchange
from .limits import BUDGET, HISTORY_POOL
from .market import INSTRUMENTS, FuturesMarket, Instrument

__all__ = ['FuturesExchange', 'FuturesEndpoints', 'FuturesMarket', 'FuturesAccount',
           'FuturesOrder', 'Position', 'Instrument', 'INSTRUMENTS', 'BUDGET', 'HISTORY_POOL',
           'FUTURES_PATHS', 'attach']
