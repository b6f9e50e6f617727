"""The sandbox's tables of Kraken's facts agree with the client's, and the sandbox keeps them.

The sandbox writes its own costs, budgets, tiers, page size and book depths from
Kraken's docs instead of importing the client's, so that a wrong row in either
table fails here instead of passing silently on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from krakenex import methods, pacing
from krakenex.futures import FuturesAPI
from krakenex.futures import endpoints as client_futures
from krakenex.sandbox import Sandbox, account_data, feed, limits, scope
from krakenex.sandbox.futures import limits as futures_limits
from krakenex.ws import book


def client_cost(verb: str, name: str, data: dict[str, Any] | None = None) -> float:
    endpoint = client_futures.lookup(name, 'derivatives')
    return client_futures.cost(endpoint, verb, data or {})


def test_the_futures_budgets_are_the_clients() -> None:
    maximum, refill = futures_limits.BUDGET
    assert (float(maximum), float(refill)) == client_futures.BUDGET
    maximum, refill = futures_limits.HISTORY_POOL
    assert float(maximum) == client_futures.HISTORY_POOL[0]
    assert float(refill) == pytest.approx(client_futures.HISTORY_POOL[1])


@pytest.mark.parametrize(('verb', 'name'), sorted(futures_limits.COSTS))
def test_each_futures_endpoint_costs_what_the_client_paces_it_at(verb: str, name: str) -> None:
    assert futures_limits.cost(verb, name, {}) == client_cost(verb, name)


def test_futures_costs_that_depend_on_the_call_are_the_clients() -> None:
    since = {'lastFillTime': '2026-01-01T00:00:00.000Z'}
    assert futures_limits.cost('GET', 'fills', since) == client_cost('GET', 'fills', since) == 25
    for size in (1, 2, 10):
        batch = {'json': json.dumps({'batchOrder': [{'order': 'cancel', 'order_id': 'x'}] * size})}
        assert futures_limits.cost('POST', 'batchorder', batch, size) \
            == client_cost('POST', 'batchorder', batch) == 9 + size
    history = client_futures.lookup('orders', 'history')
    assert futures_limits.HISTORY_COSTS['orders'] == client_futures.cost(history, 'GET', {})


def test_the_spot_call_counter_tiers_are_the_clients() -> None:
    assert limits.REST_TIERS == pacing.TIERS
    assert set(limits.ENGINE_TIERS) == set(pacing.TIERS)


@pytest.mark.parametrize('method', sorted(n for n, m in methods.METHODS.items() if m.private))
def test_each_private_spot_call_costs_what_the_client_paces_it_at(method: str) -> None:
    assert limits.call_cost(method) == methods.cost(method)


#: Parameters the sandbox takes that the client's table leaves out: AddOrder's conditional
#: close (Kraken documents it), and EditOrder's cl_ord_id, which the sandbox ignores.
NOT_IN_THE_CLIENTS_TABLE = {
    'AddOrder': {'close', 'close[ordertype]', 'close[price]', 'close[price2]'},
    'EditOrder': {'cl_ord_id'},
    'TradeVolume': {'fee-info', 'fee_schedule'},  # Kraken's; the client's table has pair only
}


def test_each_spot_method_takes_the_parameters_of_the_clients_table() -> None:
    assert set(scope.PARAMETERS) == set(methods.METHODS)
    for name, method in methods.METHODS.items():
        clients = {p.rstrip('*') for p in method.params.split()}
        assert set(scope.PARAMETERS[name].split()) - clients \
            == NOT_IN_THE_CLIENTS_TABLE.get(name, set()), name
        assert clients <= set(scope.PARAMETERS[name].split()), name


def test_the_page_size_and_book_depths_are_the_clients() -> None:
    assert account_data.PAGE_SIZE == methods.PAGE_SIZE
    assert feed.BOOK_DEPTHS == book.DEPTHS


# -- the sandbox keeps its tables over HTTP ---------------------------------------------

@pytest.fixture
def futures(sandbox: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    retries=0) as api:
        yield api


def refused(reply: dict[str, Any]) -> bool:
    return reply.get('result') == 'error' and reply.get('error') == 'apiLimitExceeded'


@pytest.mark.parametrize(('verb', 'name', 'data', 'cost'), [
    ('GET', 'openorders', {}, 2),
    ('POST', 'orders/status', {'orderIds': 'x'}, 1),
    ('POST', 'cancelallorders', {}, 25),
    ('GET', 'fills', {'lastFillTime': '2026-01-01T00:00:00.000Z'}, 25),
    ('POST', 'batchorder', {'json': json.dumps({'batchOrder': [
        {'order': 'cancel', 'order_id': 'a'}, {'order': 'cancel', 'order_id': 'b'}]})}, 11),
])
def test_a_futures_key_spends_its_budget_at_krakens_costs(
        sandbox: Sandbox, futures: FuturesAPI, verb: str, name: str, data: dict[str, str],
        cost: int) -> None:
    sandbox.futures.budget = (Decimal(3 * cost), Decimal('0.0001'))  # three calls, no refill
    replies = [futures.query_private(name, data, verb=verb) for _ in range(4)]
    assert [refused(r) for r in replies] == [False, False, False, True]


def test_the_futures_history_pool_holds_a_hundred_calls(sandbox: Sandbox,
                                                         futures: FuturesAPI) -> None:
    replies = [futures.query_history('orders') for _ in range(101)]
    assert not any(refused(r) for r in replies[:100])
    assert refused(replies[100])
