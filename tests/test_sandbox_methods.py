"""Kraken's spot methods added to the sandbox, each shown over real HTTP.

Shapes follow Kraken's API reference (docs.kraken.com/api-reference): GroupedBook,
PreTrade, PostTrade, Level3, CreditLines, OrderAmends, GetApiKeyInfo, the Earn
allocation methods, CreateSubaccount and AccountTransfer.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from test_sandbox import Kraken, balances, error, kraken, result
from test_sandbox_hostile import check_invariants

from krakenex.sandbox import Sandbox

__all__ = ['kraken']  # the fixture

ISO_NS = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z')
ORDER_ID = re.compile(r'O[A-Z2-7]{5}-[A-Z2-7]{5}-[A-Z2-7]{6}')


# -- market data -----------------------------------------------------------------------------

def test_grouped_book_adds_levels_into_bands_asks_rounded_up_bids_down(kraken: Kraken) -> None:
    depth = result(kraken.public('Depth', pair='XBTUSD', count=500))['XXBTZUSD']
    grouped = result(kraken.public('GroupedBook', pair='XBTUSD', depth=10, grouping=100))
    assert grouped['pair'] == 'XBT/USD' and grouped['grouping'] == 100
    step = Decimal('10')  # 100 ticks of 0.1
    for side, key in (('asks', 'asks'), ('bids', 'bids')):
        bands = grouped[key]
        assert len(bands) == 10
        assert all(set(band) == {'price', 'qty'} for band in bands)
        first = Decimal(bands[0]['price'])
        assert first % step == 0
        inside = [Decimal(v) for p, v, _ in depth[key]
                  if (first - step < Decimal(p) <= first if side == 'asks'
                      else first <= Decimal(p) < first + step)]
        assert Decimal(bands[0]['qty']) == sum(inside)
    assert Decimal(grouped['asks'][0]['price']) >= Decimal(depth['asks'][0][0])
    assert Decimal(grouped['bids'][0]['price']) <= Decimal(depth['bids'][0][0])
    assert error(kraken.public('GroupedBook', pair='XBTUSD', grouping=3)) == \
        'EGeneral:Invalid arguments:grouping'


def test_pre_trade_lists_the_top_ten_levels_of_a_symbol(kraken: Kraken) -> None:
    data = result(kraken.public('PreTrade', symbol='BTC/USD'))
    assert data['symbol'] == 'BTC/USD' and data['base_asset'] == 'BTC'
    assert len(data['bids']) == len(data['asks']) == 10
    assert data['bids'][0]['side'] == 'BUY' and data['asks'][0]['side'] == 'SELL'
    assert ISO_NS.fullmatch(data['asks'][0]['publication_ts'])
    assert error(kraken.public('PreTrade')) == 'EGeneral:Invalid arguments:symbol'


def test_post_trade_lists_trades_with_iso_times_and_filters_by_time(sandbox: Sandbox,
                                                                    kraken: Kraken) -> None:
    sandbox.set_price('XBTUSD', 61000)
    data = result(kraken.public('PostTrade', symbol='BTC/USD', count=5))
    assert data['count'] == len(data['trades']) == 5
    newest = data['trades'][-1]
    assert newest['price'] == '61000.0' and newest['symbol'] == 'BTC/USD'
    assert ISO_NS.fullmatch(newest['trade_ts']) and data['last_ts'] == newest['trade_ts']
    later = result(kraken.public('PostTrade', symbol='BTC/USD', from_ts=newest['trade_ts']))
    assert later['trades'] == [] and later['last_ts'] is None
    assert error(kraken.public('PostTrade', from_ts='yesterday')) == \
        'EGeneral:Invalid arguments:from_ts'


def test_maintenance_schedule_answers_with_none_planned(kraken: Kraken) -> None:
    assert result(kraken.public('MaintenanceSchedule')) == {'maintenances': []}


def test_level3_lists_the_single_orders_of_depth_levels_with_ids_and_nanosecond_times(
        kraken: Kraken) -> None:
    book = kraken.ok('Level3', {'pair': 'XBTUSD', 'depth': 10})
    depth = result(kraken.public('Depth', pair='XBTUSD', count=10))['XXBTZUSD']
    assert book['pair'] == 'XBT/USD'
    for side in ('bids', 'asks'):
        orders = book[side]
        assert len(orders) > 10, 'orders queue at a level'
        assert all(ORDER_ID.fullmatch(o['order_id']) and o['timestamp'] > 10**18
                   for o in orders)
        assert len({o['order_id'] for o in orders}) == len(orders)
        levels: dict[str, Decimal] = {}
        for order in orders:  # best level first, each level's queue in time order
            levels[order['price']] = levels.get(order['price'], Decimal(0)) + Decimal(
                order['qty'])
        assert [[p, f'{q:.8f}'] for p, q in levels.items()] == [row[:2] for row in depth[side]]
    assert Decimal(book['asks'][0]['price']) > Decimal(book['bids'][0]['price'])
    assert error(kraken.private('Level3', {'pair': 'XBTUSD', 'depth': 7})) == \
        'EGeneral:Invalid arguments:depth'


# -- account data ----------------------------------------------------------------------------

def test_credit_lines_of_an_account_without_one_are_empty(kraken: Kraken) -> None:
    lines = kraken.ok('CreditLines')
    assert lines['asset_details'] == {}
    assert lines['limits_monitor']['total_credit_usd'] == '0.0000'


def test_get_api_key_info_describes_the_key_that_signed(sandbox: Sandbox, kraken: Kraken) -> None:
    info = kraken.ok('GetApiKeyInfo')
    assert info['apiKey'] == sandbox.key
    assert info['nonce'] == str(kraken.nonce)
    assert 'modify-trades' in info['permissions']
    assert re.fullmatch(r'AA\d\d [A-Z2-7]{4} [A-Z2-7]{4} [A-Z2-7]{4}', info['iban'])


def test_list_wallet_accounts_names_the_spot_wallet(kraken: Kraken) -> None:
    accounts = kraken.ok('ListWalletAccounts')['accounts']
    assert accounts[0]['account_id'] == kraken.ok('GetApiKeyInfo')['iban']


def test_order_amends_keep_the_original_then_each_amend_and_misc_says_amended(
        kraken: Kraken) -> None:
    txid = kraken.order(price='50000', volume='0.01')
    assert kraken.ok('QueryOrders', {'txid': txid})[txid]['misc'] == ''
    amend_id = kraken.ok('AmendOrder', {'txid': txid, 'limit_price': '50100'})['amend_id']
    kraken.ok('AmendOrder', {'txid': txid, 'order_qty': '0.02'})
    history = kraken.ok('OrderAmends', {'order_id': txid})
    assert history['count'] == 3
    assert [a['amend_type'] for a in history['amends']] == ['original', 'user', 'user']
    assert history['amends'][1]['amend_id'] == amend_id
    assert [a['limit_price'] for a in history['amends']] == ['50000.0', '50100.0', '50100.0']
    assert history['amends'][2]['order_qty'] == '0.02000000'
    times = [a['timestamp'] for a in history['amends']]
    assert times == sorted(times)
    assert kraken.ok('QueryOrders', {'txid': txid})[txid]['misc'] == 'amended'
    assert error(kraken.private('OrderAmends', {'order_id': 'OAAAAA-AAAAA-AAAAAA'})) == \
        'EOrder:Unknown order'


def test_trade_rows_carry_the_public_trade_id(sandbox: Sandbox, kraken: Kraken) -> None:
    txid = kraken.ok('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'market',
                                  'volume': '0.01'})['txid'][0]
    trade = kraken.ok('QueryOrders', {'txid': txid, 'trades': 'true'})[txid]['trades'][0]
    row = kraken.ok('QueryTrades', {'txid': trade})[trade]
    tape = result(kraken.public('Trades', pair='XBTUSD', count=5))['XXBTZUSD']
    assert row['trade_id'] in [t[6] for t in tape]
    assert kraken.ok('TradesHistory')['trades'][trade]['trade_id'] == row['trade_id']


# -- subaccounts ---------------------------------------------------------------------------

def test_create_subaccount_and_account_transfer_move_funds_with_ledger_rows(
        sandbox: Sandbox) -> None:
    master = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    assert master.ok('CreateSubaccount', {'username': 'desk1', 'email': 'desk1@example.com'}) \
        is True
    assert error(master.private('CreateSubaccount', {'username': 'desk1',
                                                    'email': 'desk1@example.com'})) == \
        'EGeneral:Invalid arguments:username'
    sub = next(a for a in sandbox.exchange.accounts.values() if a.parent is not None)
    mine = master.ok('GetApiKeyInfo')['iban']
    before = balances(master)['ZUSD']
    moved = master.ok('AccountTransfer', {'asset': 'USD', 'amount': '250', 'from': mine,
                                          'to': sub.iiban})
    assert moved['status'] == 'complete'
    assert balances(master)['ZUSD'] == before - 250
    child = Kraken(sandbox.url, sub.key, sub.secret)
    assert balances(child) == {'ZUSD': Decimal('250.0000')}
    rows = child.ok('Ledgers')['ledger'].values()
    assert [(r['type'], r['amount'], r['refid']) for r in rows] == \
        [('transfer', '250.0000', moved['transfer_id'])]
    assert error(master.private('AccountTransfer', {'asset': 'USD', 'amount': '1', 'from': mine,
                                                    'to': 'AA00 AAAA AAAA AAAA'})) == \
        'EGeneral:Invalid arguments:to'
    check_invariants(sandbox)


# -- earn ----------------------------------------------------------------------------------

def strategy(kraken: Kraken, asset: str) -> str:
    items = kraken.ok('Earn/Strategies', {'asset': asset})['items']
    assert len(items) == 1 and items[0]['can_allocate']
    return str(items[0]['id'])


def test_earn_allocate_moves_funds_from_spot_to_earn_in_the_ledger_and_back(
        sandbox: Sandbox, kraken: Kraken) -> None:
    xbt = strategy(kraken, 'XBT')
    before = balances(kraken)
    assert kraken.ok('Earn/Allocate', {'amount': '1.5', 'strategy_id': xbt}) is True
    assert kraken.ok('Earn/AllocateStatus', {'strategy_id': xbt}) == {'pending': False}
    after = balances(kraken)
    assert after['XXBT'] == before['XXBT'] - Decimal('1.5')
    assert after['XBT.B'] == Decimal('1.5')
    allocations = kraken.ok('Earn/Allocations')
    assert allocations['items'][0]['strategy_id'] == xbt
    assert allocations['items'][0]['amount_allocated']['total']['native'] == '1.5000000000'
    rows = list(kraken.ok('Ledgers', {'type': 'earn'})['ledger'].values())
    assert sorted((r['asset'], r['amount']) for r in rows) == \
        [('XBT.B', '1.5000000000'), ('XXBT', '-1.5000000000')]
    assert kraken.ok('Earn/Deallocate', {'amount': '0.5', 'strategy_id': xbt}) is True
    assert kraken.ok('Earn/DeallocateStatus', {'strategy_id': xbt}) == {'pending': False}
    assert balances(kraken)['XBT.B'] == Decimal('1')
    check_invariants(sandbox)


@pytest.mark.parametrize(('params', 'message'), [
    ({'amount': '0.00001'}, 'EEarnings:Below min:(De)allocation operation amount less than '
                            'minimum'),
    ({'amount': '1', 'strategy_id': 'ESNOPE-NOPE-NOPE'},
     'EGeneral:Invalid arguments:Invalid strategy ID'),
])
def test_earn_allocate_refuses_as_kraken_does(kraken: Kraken, params: dict[str, str],
                                              message: str) -> None:
    params = {'strategy_id': strategy(kraken, 'ETH'), **params}
    assert error(kraken.private('Earn/Allocate', params)) == message


def test_an_allocation_beyond_the_balance_fails_in_its_status(kraken: Kraken) -> None:
    eth = strategy(kraken, 'ETH')
    before = balances(kraken)
    assert kraken.ok('Earn/Allocate', {'amount': '1000000', 'strategy_id': eth}) is True
    assert error(kraken.private('Earn/AllocateStatus', {'strategy_id': eth})) == \
        'EEarnings:Insufficient funds:Insufficient funds to complete the (de)allocation request'
    assert balances(kraken) == before
