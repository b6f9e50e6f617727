"""Kraken Futures' REST rate limits, as Kraken publishes them: the budgets and each call's cost.

The sandbox's own table, written from Kraken's "Futures Rate Limits" guide
(https://docs.kraken.com/api/docs/guides/futures-rate-limits), not taken from
the client's: a test holds the two side by side, so a wrong cost in either shows.
Only the endpoints the sandbox answers are here. Standard library only.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ['BUDGET', 'HISTORY_POOL', 'COSTS', 'FILLS_SINCE_COST', 'BATCH_COST',
           'HISTORY_COSTS', 'cost']

D = Decimal

#: ``/derivatives``: a key may spend 500 every 10 seconds, as (maximum, refill per second).
BUDGET = (D(500), D(50))
#: ``/history``: a pool of 100 tokens that refills at 100 every 10 minutes.
HISTORY_POOL = (D(100), D(100) / D(600))

#: What a call takes from the ``/derivatives`` budget, by (verb, endpoint); public calls
#: take nothing.
COSTS: dict[tuple[str, str], int] = {
    ('POST', 'sendorder'): 10,
    ('POST', 'editorder'): 10,
    ('POST', 'cancelorder'): 10,
    ('POST', 'batchorder'): 9,  # plus one per instruction: BATCH_COST
    ('GET', 'accounts'): 2,
    ('GET', 'openpositions'): 2,
    ('GET', 'openorders'): 2,
    ('GET', 'fills'): 2,  # 25 with lastFillTime: FILLS_SINCE_COST
    ('POST', 'cancelallorders'): 25,
    ('POST', 'cancelallordersafter'): 25,
    ('POST', 'orders/status'): 1,
    ('GET', 'leveragepreferences'): 2,
    ('PUT', 'leveragepreferences'): 10,
}
#: ``fills`` with ``lastFillTime``.
FILLS_SINCE_COST = 25
#: What each instruction of a ``batchorder`` adds to its cost ("9 + size of batch").
BATCH_COST = 1
#: What a call takes from the ``/history`` pool, by endpoint ("historicalorders": 1).
HISTORY_COSTS = {'orders': 1}


def cost(verb: str, name: str, params: dict[str, str], instructions: int = 0) -> int:
    """What a call to ``/derivatives`` endpoint ``name`` takes from the key's budget.

    :param instructions: how many instructions a ``batchorder`` carries
    """
    if name == 'fills' and 'lastFillTime' in params:
        return FILLS_SINCE_COST
    return COSTS[(verb, name)] + (BATCH_COST * instructions if name == 'batchorder' else 0)
