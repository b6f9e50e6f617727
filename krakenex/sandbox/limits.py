"""Kraken's spot rate limits, as Kraken publishes them: the call counter's and the engine's.

The sandbox's own tables, written from Kraken's guides, not taken from the
client's: a test holds the two side by side, so a mistake in either shows.

* The REST call counter of a key: its maximum and decay per second by
  verification tier, and what each call adds
  (https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits: "Ledger/trade
  history calls increase the counter by 2. All other API calls increase this
  counter by 1 (except AddOrder, CancelOrder which operate on a different
  limiter)").
* The trading engine's counter of a key on a pair: its threshold and decay by
  tier, the open orders allowed per pair, and the extra cost of acting on a young
  order (https://docs.kraken.com/api/docs/guides/spot-ratelimits).

Standard library only.
"""

from __future__ import annotations

__all__ = ['REST_TIERS', 'CALL_COSTS', 'call_cost', 'ENGINE_TIERS', 'AMEND_PENALTY',
           'EDIT_PENALTY', 'CANCEL_PENALTY']

#: The REST call counter per tier: (maximum, decay per second).
REST_TIERS: dict[str, tuple[float, float]] = {
    'starter': (15.0, 0.33),
    'intermediate': (20.0, 0.5),
    'pro': (20.0, 1.0),
}

#: What a private call adds to the counter where it is not 1. QueryLedgers and
#: QueryTrades read the ledger and the trade history, so they count as those calls.
CALL_COSTS: dict[str, int] = {
    'Ledgers': 2, 'QueryLedgers': 2, 'TradesHistory': 2, 'QueryTrades': 2,
    'AddOrder': 0, 'CancelOrder': 0,  # the trading engine's counter meters these
}

#: The trading engine's limits per tier: the per-pair counter's threshold and decay per
#: second, and the open orders allowed per pair.
ENGINE_TIERS: dict[str, tuple[float, float, int]] = {
    'starter': (60.0, 1.0, 60),
    'intermediate': (125.0, 2.34, 80),
    'pro': (180.0, 3.75, 225),
}
#: The engine's extra cost by the age of the order acted on: (younger than seconds, cost).
AMEND_PENALTY = ((5, 3), (10, 2), (15, 1))
EDIT_PENALTY = ((5, 6), (10, 5), (15, 4), (45, 2), (90, 1))
CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))


def call_cost(method: str) -> int:
    """What a private call of ``method`` adds to the key's REST call counter."""
    return CALL_COSTS.get(method, 1)
