"""Kraken's order types in the sandbox, over real HTTP: stops fire when the price
(``Sandbox.set_price``) reaches them, then fill as Kraken fills them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_sandbox import Kraken, balances, error
from test_sandbox_hostile import check_invariants

from krakenex.sandbox import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """A sandbox whose XBT/USD last trade is at 60000."""
    with Sandbox(balances={'ZUSD': '100000', 'XXBT': '2'}) as sandbox:
        sandbox.set_price('XBTUSD', 60000)
        yield sandbox
        check_invariants(sandbox)


@pytest.fixture
def kr(sb: Sandbox) -> Iterator[Kraken]:
    client = Kraken(sb.url, sb.key, sb.secret)
    yield client
    client.session.close()


def place(kr: Kraken, **params: Any) -> str:
    order = {'pair': 'XBTUSD', 'volume': '0.1', **params}
    return str(kr.ok('AddOrder', order)['txid'][0])


def query(kr: Kraken, txid: str) -> dict[str, Any]:
    return dict(kr.ok('QueryOrders', {'txid': txid, 'trades': 'true'})[txid])


def test_stop_loss_rests_until_the_price_falls_to_it_then_sells_at_market(
        sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='sell', ordertype='stop-loss', price='59000')
    order = query(kr, txid)
    assert order['status'] == 'open' and order['vol_exec'] == '0.00000000'
    assert order['descr']['order'] == 'sell 0.10000000 XBTUSD @ stop loss 59000.0'
    sb.set_price('XBTUSD', 59500)
    assert query(kr, txid)['status'] == 'open'
    sb.set_price('XBTUSD', 58900)
    order = query(kr, txid)
    assert order['status'] == 'closed' and order['vol_exec'] == '0.10000000'
    assert order['stopprice'] == '59000.0'
    assert Decimal(order['price']) < Decimal('58900')  # sold into the bids, as a taker
    fills = [kr.ok('QueryTrades', {'txid': t})[t] for t in order['trades']]
    assert all(not f['maker'] for f in fills)


def test_take_profit_buys_when_the_price_falls_to_it(sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='take-profit', price='58000')
    sb.set_price('XBTUSD', 61000)
    assert query(kr, txid)['status'] == 'open'
    sb.set_price('XBTUSD', 57990)
    assert query(kr, txid)['status'] == 'closed'


def test_a_stop_already_through_the_market_fires_at_once(kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='stop-loss', price='59000')
    assert query(kr, txid)['status'] == 'closed'


def test_stop_loss_limit_becomes_a_limit_order_at_price2_when_triggered(
        sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='sell', ordertype='stop-loss-limit', price='59000', price2='58950')
    assert query(kr, txid)['descr']['order'] == \
        'sell 0.10000000 XBTUSD @ stop loss 59000.0 -> limit 58950.0'
    sb.set_price('XBTUSD', 58000)  # triggers; the limit is above the bids: it rests
    order = query(kr, txid)
    assert order['status'] == 'open' and order['stopprice'] == '59000.0'
    assert order['limitprice'] == '58950.0' and order['vol_exec'] == '0.00000000'
    sb.set_price('XBTUSD', 59000)
    order = query(kr, txid)
    assert order['status'] == 'closed' and order['price'] == '58950.0'


def test_trailing_stop_follows_the_best_price_and_fires_its_offset_below(
        sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='sell', ordertype='trailing-stop', price='+100')
    assert query(kr, txid)['descr']['order'] == 'sell 0.10000000 XBTUSD @ trailing stop +100'
    sb.set_price('XBTUSD', 61000)
    sb.set_price('XBTUSD', 60950)
    assert query(kr, txid)['status'] == 'open'
    sb.set_price('XBTUSD', 60890)
    order = query(kr, txid)
    assert order['status'] == 'closed' and order['stopprice'] == '60900.0'


def test_trailing_stop_limit_in_percent_sets_its_limit_from_the_trigger(
        sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='trailing-stop-limit', price='+1%', price2='+50')
    sb.set_price('XBTUSD', 59000)  # the low: the trigger is now 59590
    sb.set_price('XBTUSD', 59500)
    assert query(kr, txid)['status'] == 'open'
    sb.set_price('XBTUSD', 59600)
    order = query(kr, txid)
    assert order['stopprice'] == '59590.0' and order['limitprice'] == '59640.0'
    assert order['status'] == 'closed'


@pytest.mark.parametrize(('params', 'name'), [
    ({'ordertype': 'trailing-stop', 'price': '100'}, 'price'),
    ({'ordertype': 'trailing-stop', 'price': '+150%'}, 'price'),
    ({'ordertype': 'stop-loss-limit', 'price': '59000'}, 'price2'),
    ({'ordertype': 'stop-loss', 'price': '59000', 'price2': '1'}, 'price2'),
    ({'ordertype': 'stop-loss', 'price': '59000', 'oflags': 'post'}, 'oflags'),
    ({'ordertype': 'iceberg', 'price': '59000'}, 'displayvol'),
    ({'ordertype': 'iceberg', 'price': '59000', 'displayvol': '0.001'}, 'displayvol'),
    ({'ordertype': 'limit', 'price': '59000', 'displayvol': '0.05'}, 'displayvol'),
    ({'ordertype': 'limit', 'price': '59000', 'timeinforce': 'GTD'}, 'timeinforce'),
    ({'ordertype': 'limit', 'price': '59000', 'expiretm': '+60'}, 'expiretm'),
    ({'ordertype': 'limit', 'price': '59000', 'timeinforce': 'GTD', 'expiretm': '1'},
     'expiretm'),
])
def test_order_parameters_are_checked_per_type(kr: Kraken, params: dict[str, str],
                                               name: str) -> None:
    reply = kr.private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'volume': '0.1', **params})
    assert error(reply) == f'EGeneral:Invalid arguments:{name}'


def test_iceberg_rests_like_a_limit_and_shows_its_visible_volume(sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='iceberg', price='59000', displayvol='0.01')
    order = query(kr, txid)
    assert order['descr']['ordertype'] == 'iceberg' and order['display_volume'] == '0.01000000'
    sb.set_price('XBTUSD', 58900)
    assert query(kr, txid)['status'] == 'closed'


def test_conditional_close_places_the_closing_order_when_the_order_fills(
        sb: Sandbox, kr: Kraken) -> None:
    before = balances(kr)
    txid = place(kr, type='buy', ordertype='limit', price='59000',
                 **{'close[ordertype]': 'limit', 'close[price]': '61000'})
    assert query(kr, txid)['descr']['close'] == 'close position @ limit 61000.0'
    assert len(sb.orders()) == 1
    sb.set_price('XBTUSD', 58900)
    closing = [o for o in sb.orders() if o['txid'] != txid]
    assert len(closing) == 1 and closing[0]['descr']['order'] == \
        'sell 0.10000000 XBTUSD @ limit 61000.0'
    assert closing[0]['status'] == 'open'
    sb.set_price('XBTUSD', 61000)
    after = balances(kr)
    assert after['XXBT'] == before['XXBT']
    assert after['ZUSD'] - before['ZUSD'] == Decimal(200) - Decimal('9.44') - Decimal('9.76')


def test_gtd_order_expires_at_its_expiretm(kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='limit', price='59000', timeinforce='GTD',
                 expiretm='+1')
    assert query(kr, txid)['expiretm'] > time.time()
    time.sleep(1.2)
    order = query(kr, txid)
    assert order['status'] == 'expired'
    assert kr.ok('OpenOrders')['open'] == {}


def test_starttm_schedules_the_order_pending_until_then(kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='market', starttm='+1')
    order = query(kr, txid)
    assert order['status'] == 'pending' and order['vol_exec'] == '0.00000000'
    assert txid in kr.ok('OpenOrders')['open']
    time.sleep(1.2)
    assert query(kr, txid)['status'] == 'closed'


def test_ioc_limit_that_does_not_cross_is_canceled_at_once(kr: Kraken) -> None:
    txid = place(kr, type='buy', ordertype='limit', price='59000', timeinforce='IOC')
    order = query(kr, txid)
    assert order['status'] == 'canceled' and order['reason'] == 'Immediate or cancel'


def test_amend_order_moves_a_stop_limit_orders_limit_price(sb: Sandbox, kr: Kraken) -> None:
    txid = place(kr, type='sell', ordertype='stop-loss-limit', price='59000', price2='58950')
    kr.ok('AmendOrder', {'txid': txid, 'limit_price': '58900'})
    assert query(kr, txid)['descr']['price2'] == '58900.0'
    history = kr.ok('OrderAmends', {'order_id': txid})['amends']
    assert [a['amend_type'] for a in history] == ['original', 'user']
    assert error(kr.private('AmendOrder', {'txid': place(kr, type='sell', ordertype='stop-loss',
                                                         price='58000'),
                                           'limit_price': '1'})) == \
        'EGeneral:Invalid arguments:limit_price'


def test_a_buy_stop_holds_its_funds_while_it_waits(sb: Sandbox, kr: Kraken) -> None:
    place(kr, type='buy', ordertype='stop-loss', price='61000', volume='1.5')
    held = Decimal(kr.ok('BalanceEx')['ZUSD']['hold_trade'])
    assert held == Decimal('91500') * Decimal('1.0026')
    reply = kr.private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                    'price': '59000', 'volume': '0.2'})
    assert error(reply) == 'EOrder:Insufficient funds'


def test_viqc_market_buy_spends_the_quote_amount_given_as_volume(kr: Kraken) -> None:
    before = balances(kr)
    txid = place(kr, type='buy', ordertype='market', volume='1000', oflags='viqc')
    order = query(kr, txid)
    assert order['status'] == 'closed'
    cost, fee = Decimal(order['cost']), Decimal(order['fee'])
    assert Decimal('999.9') < cost <= Decimal('1000')  # rounded down to whole lots
    assert Decimal(order['vol']) == Decimal(order['vol_exec']) < Decimal('0.02')
    after = balances(kr)
    assert before['ZUSD'] - after['ZUSD'] == (cost + fee).quantize(Decimal('0.0001'))
    assert after['XXBT'] - before['XXBT'] == Decimal(order['vol_exec'])


@pytest.mark.parametrize('params', [
    {'type': 'sell', 'ordertype': 'market'},
    {'type': 'buy', 'ordertype': 'limit', 'price': '59000'}])
def test_viqc_is_refused_except_on_a_market_buy(kr: Kraken, params: dict[str, str]) -> None:
    reply = kr.private('AddOrder', {'pair': 'XBTUSD', 'volume': '1000', 'oflags': 'viqc',
                                    **params})
    assert error(reply) == 'EGeneral:Invalid arguments:oflags'
