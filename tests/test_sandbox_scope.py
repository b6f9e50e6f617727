"""The sandbox answers every documented spot method and never silently drops a parameter."""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_sandbox import Kraken, error, kraken, result

from krakenex.methods import METHODS
from krakenex.sandbox import Sandbox
from krakenex.sandbox.scope import NOT_MODELLED

__all__ = ['kraken']  # the fixture

LIMIT = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
         'price': '50000'}


@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_documented_spot_method_answers(kraken: Kraken, method: str) -> None:
    reply = kraken.private(method) if METHODS[method].private else kraken.public(method)
    assert reply.get('error') != ['EGeneral:Unknown method'], reply


@pytest.mark.parametrize(('method', 'params', 'name'), [
    ('AddOrder', {**LIMIT, 'leverage': '2'}, 'leverage'),
    ('AddOrder', {**LIMIT, 'reduce_only': 'true'}, 'reduce_only'),
    ('AddOrder', {**LIMIT, 'trigger': 'index'}, 'trigger'),
    ('AddOrder', {**LIMIT, 'displayvol': '0.001'}, 'displayvol'),
    ('AddOrder', {**LIMIT, 'close[ordertype]': 'trailing-stop', 'close[price]': '+5'},
     'close[ordertype]'),
    ('AddOrder', {**LIMIT, 'ordertype': 'settle-position'}, 'ordertype'),
    ('AddOrder', {**LIMIT, 'oflags': 'viqc'}, 'oflags'),
    ('AddOrder', {**LIMIT, 'stptype': 'cancel-both'}, 'stptype'),
    ('AddOrder', {**LIMIT, 'prize': '50000'}, 'prize'),
    ('AmendOrder', {'txid': 'X', 'trigger_price': '1'}, 'trigger_price'),
    ('EditOrder', {'txid': 'X', 'pair': 'XBTUSD', 'cancel_response': 'true'},
     'cancel_response'),
    ('Balance', {'rebase_multiplier': 'base'}, 'rebase_multiplier'),
    ('Ledgers', {'aclass': 'forex'}, 'aclass'),
    ('WithdrawStatus', {'cursor': 'true'}, 'cursor'),
])
def test_unmodelled_parameters_are_refused_not_ignored(kraken: Kraken, method: str,
                                                       params: dict[str, str],
                                                       name: str) -> None:
    assert error(kraken.private(method, params)) == f'EGeneral:Invalid arguments:{name}'


def test_unmodelled_public_parameters_are_refused(kraken: Kraken) -> None:
    assert error(kraken.public('AssetPairs', country_code='DE')) == \
        'EGeneral:Invalid arguments:country_code'
    assert result(kraken.public('Ticker', pair='XBTUSD', asset_class='forex'))


def test_the_default_value_of_an_unmodelled_parameter_is_accepted(kraken: Kraken) -> None:
    placed = kraken.ok('AddOrder', {**LIMIT, 'leverage': 'none', 'reduce_only': 'false',
                                    'trigger': 'last', 'stptype': 'cancel-newest',
                                    'validate': 'true'})
    assert placed['descr']['order'] == 'buy 0.01000000 XBTUSD @ limit 50000.0'
    assert kraken.ok('Balance', {'rebase_multiplier': 'rebased'})


@pytest.mark.parametrize(('method', 'params', 'name'), [
    ('Balance', {'asset': 'ZUSD'}, 'asset'),
    ('Ledgers', {'strat': '1700000000'}, 'strat'),
    ('OpenOrders', {'userref': '1', 'colour': 'blue'}, 'colour'),
    ('Earn/Allocations', {'hide_zero': 'true'}, 'hide_zero'),
])
def test_an_unknown_parameter_of_a_read_is_refused(kraken: Kraken, method: str,
                                                   params: dict[str, str], name: str) -> None:
    assert error(kraken.private(method, params)) == f'EGeneral:Invalid arguments:{name}'


def test_an_unknown_parameter_of_a_public_read_is_refused(kraken: Kraken) -> None:
    assert error(kraken.public('Ticker', pair='XBTUSD', pairs='ETHUSD')) == \
        'EGeneral:Invalid arguments:pairs'
    assert error(kraken.public('Time', now='1')) == 'EGeneral:Invalid arguments:now'
    assert result(kraken.public('Ticker', pair='XBTUSD'))


def test_the_docs_list_every_parameter_that_is_not_modelled() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / 'doc' / 'sandbox.rst').read_text()
    for method, names in NOT_MODELLED.items():
        for name in names:
            assert f'``{name}``' in page, (method, name)


def test_open_positions_consolidated_by_market_is_a_list(kraken: Kraken) -> None:
    assert kraken.ok('OpenPositions') == {}
    assert kraken.ok('OpenPositions', {'consolidation': 'market'}) == []


def test_closed_orders_honour_without_count_and_closetime(kraken: Kraken) -> None:
    txid = kraken.order(price='50000')
    kraken.ok('CancelOrder', {'txid': txid})
    page = kraken.ok('ClosedOrders', {'without_count': 'true'})
    assert 'count' not in page and txid in page['closed']
    opened = kraken.ok('QueryOrders', {'txid': txid})[txid]['opentm']
    assert txid in kraken.ok('ClosedOrders', {'closetime': 'open', 'start': opened - 1})['closed']
    assert txid not in kraken.ok('ClosedOrders', {'closetime': 'open', 'end': opened - 1})['closed']
    assert error(kraken.private('ClosedOrders', {'closetime': 'later'})) == \
        'EGeneral:Invalid arguments:closetime'


def test_deposit_and_withdraw_status_filter_by_method_and_time_newest_first(
        kraken: Kraken) -> None:
    deposits = kraken.ok('DepositStatus')
    assert [d['time'] for d in deposits] == sorted((d['time'] for d in deposits), reverse=True)
    oldest = deposits[-1]
    by_method = kraken.ok('DepositStatus', {'method': oldest['method']})
    assert by_method and all(d['method'] == oldest['method'] for d in by_method)
    assert kraken.ok('DepositStatus', {'method': 'nope'}) == []
    assert oldest in kraken.ok('DepositStatus', {'start': oldest['time']})  # inclusive
    later = kraken.ok('DepositStatus', {'start': oldest['time'] + 1})
    assert oldest['refid'] not in [d['refid'] for d in later]
    refid = kraken.ok('Withdraw', {'asset': 'XBT', 'key': 'sandbox', 'amount': '0.01'})['refid']
    now = time.time()
    assert [w['refid'] for w in kraken.ok('WithdrawStatus', {'end': now + 5})] == [refid]
    assert kraken.ok('WithdrawStatus', {'end': now - 3600}) == []


def test_deposit_status_pages_with_cursor_and_limit(kraken: Kraken) -> None:
    everything = kraken.ok('DepositStatus')
    seen, cursor = [], 'true'
    while cursor:
        page = kraken.ok('DepositStatus', {'cursor': cursor, 'limit': 2})
        assert set(page) == {'deposit', 'next_cursor'} and len(page['deposit']) <= 2
        seen += page['deposit']
        cursor = page['next_cursor']
    assert seen == everything
    assert error(kraken.private('DepositStatus', {'cursor': 'garbage'})) == \
        'EGeneral:Invalid arguments:cursor'


def test_withdraw_to_an_address_other_than_the_keys_is_refused(kraken: Kraken) -> None:
    params = {'asset': 'XBT', 'key': 'sandbox', 'amount': '0.01', 'address': 'bc1qnotmine'}
    assert error(kraken.private('Withdraw', params)) == 'EFunding:Invalid address'


@pytest.mark.parametrize(('offset', 'accepted'), [(-5, False), (30, True), (300, False)])
def test_deadline_must_be_within_the_next_60_seconds(kraken: Kraken, offset: float,
                                                     accepted: bool) -> None:
    when = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + offset))
    reply = kraken.private('AddOrder', {**LIMIT, 'deadline': when, 'validate': 'true'})
    if accepted:
        assert result(reply)
    else:
        assert error(reply) == 'EGeneral:Invalid arguments:deadline'


def test_cancel_order_batch_takes_txids_and_cl_ord_ids_in_both_shapes(kraken: Kraken) -> None:
    a, b = kraken.order(price='50000'), kraken.order(price='50100')
    kraken.order(price='50200', cl_ord_id='c-1')
    kraken.order(price='50300', cl_ord_id='c-2')
    body: dict[str, Any] = {'orders': [{'txid': a}, b], 'cl_ord_ids': ['c-1']}
    assert kraken.ok('CancelOrderBatch', body, as_json=True) == {'count': 3}
    assert kraken.ok('CancelOrderBatch', {'cl_ord_ids[0]': 'c-2'}) == {'count': 1}
    assert kraken.ok('OpenOrders')['open'] == {}


def test_an_unknown_parameter_inside_a_batch_order_is_refused_for_that_order(
        sandbox: Sandbox, kraken: Kraken) -> None:
    orders = [{'ordertype': 'limit', 'type': 'buy', 'volume': '0.1', 'price': '58000',
               'leverage': '3'},
              {'ordertype': 'limit', 'type': 'buy', 'volume': '0.1', 'price': '57000'}]
    placed = kraken.ok('AddOrderBatch', {'pair': 'XBTUSD', 'orders': orders}, as_json=True)
    assert placed['orders'][0] == {'error': 'EGeneral:Invalid arguments:leverage'}
    assert 'txid' in placed['orders'][1]
    assert len(sandbox.orders()) == 1
