"""The sandbox's Kraken Futures: auth, market data, the flex account and paper trading.

Requests go over real HTTP to ``Sandbox.futures_url``; a few are built by hand
with requests to show exactly what the sandbox checks.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from krakenex.futures import FuturesAPI
from krakenex.futures.protocol import authent, encode
from krakenex.sandbox import Sandbox
from krakenex.sandbox.market import TAPE_TRADES, TRIM_BATCH


@pytest.fixture
def futures(sandbox: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                    uri=sandbox.futures_url) as client:
        yield client


def send(futures: FuturesAPI, **order: Any) -> dict[str, Any]:
    base = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01}
    return futures.query_private('sendorder', {**base, **order})['sendStatus']  # type: ignore


def signed(sandbox: Sandbox, verb: str, name: str, post_data: str, nonce: str,
           signed_data: str | None = None) -> dict[str, Any]:
    """Send ``post_data`` by hand, signed over ``signed_data`` (the same by default)."""
    path = '/derivatives/api/v3/' + name
    secret = base64.b64decode(sandbox.futures.secret)
    headers = {'APIKey': sandbox.futures.key, 'Nonce': nonce,
               'Authent': authent(secret, post_data if signed_data is None else signed_data,
                                  nonce, path)}
    if verb == 'GET':
        reply = requests.get(f'{sandbox.futures_url}{path}?{post_data}', headers=headers,
                             timeout=5)
    else:
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
        reply = requests.post(sandbox.futures_url + path, data=post_data, headers=headers,
                              timeout=5)
    return reply.json()  # type: ignore[no-any-return]


# -- authentication ----------------------------------------------------------------------

def test_authent_must_cover_the_url_encoded_parameters_as_sent(sandbox: Sandbox) -> None:
    order = encode({'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01,
                    'limitPrice': 50000, 'cliOrdId': 'a b'})
    decoded = order.replace('%20', ' ')  # the form Kraken stopped accepting in 2025
    assert signed(sandbox, 'POST', 'sendorder', order, '1', decoded)['error'] == \
        'authenticationError'
    assert signed(sandbox, 'POST', 'sendorder', order, '2')['sendStatus']['status'] == 'placed'


def test_nonces_are_checked_exactly(sandbox: Sandbox) -> None:
    assert signed(sandbox, 'GET', 'accounts', '', '100')['result'] == 'success'
    assert signed(sandbox, 'GET', 'accounts', '', '100')['error'] == 'nonceDuplicate'
    assert signed(sandbox, 'GET', 'accounts', '', '99')['error'] == 'nonceBelowThreshold'
    assert signed(sandbox, 'GET', 'accounts', '', '101')['result'] == 'success'


def test_an_unknown_key_or_a_missing_authent_is_refused(sandbox: Sandbox) -> None:
    url = sandbox.futures_url + '/derivatives/api/v3/accounts'
    assert requests.get(url, timeout=5).json()['error'] == 'authenticationError'
    assert requests.get(url, headers={'APIKey': 'nobody', 'Authent': 'eA=='},
                        timeout=5).json()['error'] == 'authenticationError'


def test_each_key_has_its_own_flex_account(sandbox: Sandbox) -> None:
    other = sandbox.futures.add_account({'USD': '1000'})
    with FuturesAPI(other.key, other.secret, uri=sandbox.futures_url) as client:
        flex = client.query_private('accounts')['accounts']['flex']
    assert flex['balanceValue'] == 1000 and flex['availableMargin'] == 1000


# -- market data -------------------------------------------------------------------------

def test_instruments_list_perpetuals_and_a_fixed_maturity(futures: FuturesAPI) -> None:
    instruments = futures.query_public('instruments')['instruments']
    symbols = {i['symbol']: i for i in instruments}
    assert {'PF_XBTUSD', 'PF_ETHUSD'} <= set(symbols)
    fixed = [i for i in instruments if 'lastTradingTime' in i]
    assert len(fixed) == 1 and fixed[0]['symbol'].startswith('FF_XBTUSD_')
    assert symbols['PF_XBTUSD']['tickSize'] == 1 and symbols['PF_XBTUSD']['tradeable']


def test_tickers_and_orderbook_agree(futures: FuturesAPI) -> None:
    tickers = {t['symbol']: t for t in futures.query_public('tickers')['tickers']}
    xbt = tickers['PF_XBTUSD']
    assert xbt['bid'] < xbt['markPrice'] < xbt['ask'] and xbt['tag'] == 'perpetual'
    assert futures.query_public('tickers/PF_XBTUSD')['ticker']['ask'] == xbt['ask']
    book = futures.query_public('orderbook', {'symbol': 'PF_XBTUSD'})['orderBook']
    assert book['bids'][0][0] == xbt['bid'] and book['asks'][0][0] == xbt['ask']
    assert [b[0] for b in book['bids']] == sorted((b[0] for b in book['bids']), reverse=True)
    assert [a[0] for a in book['asks']] == sorted(a[0] for a in book['asks'])


def test_trade_history_is_newest_first_and_pages_by_last_time(futures: FuturesAPI) -> None:
    history = futures.query_public('history', {'symbol': 'PF_ETHUSD'})['history']
    assert len(history) == 100
    assert [h['time'] for h in history] == sorted((h['time'] for h in history), reverse=True)
    older = futures.query_public('history', {'symbol': 'PF_ETHUSD',
                                             'lastTime': history[-1]['time']})['history']
    assert older and all(h['time'] < history[-1]['time'] for h in older)


def test_the_trade_tape_stays_bounded_and_the_ticker_still_counts_every_trade(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    def ticker() -> dict[str, Any]:
        return futures.query_public('tickers/PF_ETHUSD')['ticker']  # type: ignore[no-any-return]

    before = ticker()
    fills = TAPE_TRADES + 2 * TRIM_BATCH
    for i in range(fills):  # each move trades one contract at the new mark
        sandbox.futures.set_price('PF_ETHUSD', 3000 + i % 7)
    tape = sandbox.futures.market.trades['PF_ETHUSD']
    assert len(tape) < TAPE_TRADES + TRIM_BATCH
    after = ticker()
    assert after['vol24h'] == pytest.approx(before['vol24h'] + fills, abs=1e-6)
    assert after['open24h'] == before['open24h']  # the opening trade has left the tape
    assert after['high24h'] == max(before['high24h'], 3006)
    assert after['low24h'] == min(before['low24h'], 3000)
    history = futures.query_public('history', {'symbol': 'PF_ETHUSD'})['history']
    newest = 150 + fills  # after the 150 seeded trades
    assert [h['trade_id'] for h in history] == list(range(newest, newest - 100, -1))


def test_candles_cover_the_range_asked(futures: FuturesAPI) -> None:
    end = int(time.time()) // 3600 * 3600
    candles = futures.query_charts('trade/PF_XBTUSD/1h', {'from': end - 5 * 3600, 'to': end})
    assert [c['time'] for c in candles['candles']] == [
        (end - i * 3600) * 1000 for i in range(5, -1, -1)]
    assert all(float(c['low']) <= float(c['open']) <= float(c['high'])
               for c in candles['candles'])
    assert 'PF_XBTUSD' in futures.query_charts('trade')


def test_a_parameter_the_endpoint_does_not_know_is_refused(futures: FuturesAPI) -> None:
    assert futures.query_public('tickers', {'symbol': 'PF_XBTUSD'})['error'] == \
        'invalidArgument'
    assert futures.query_private('openpositions', {'symbol': 'x'})['error'] == 'invalidArgument'
    reply = futures.query_private('sendorder', {'orderType': 'lmt', 'symbol': 'PF_XBTUSD',
                                                'side': 'buy', 'size': 1, 'limitPrice': 1,
                                                'trailingStopMaxDeviation': 5})
    assert reply['error'] == 'invalidArgument'
    assert futures.query_private('sendorder', {'symbol': 'PF_XBTUSD'})['error'] == \
        'requiredArgumentMissing'


# -- trading -----------------------------------------------------------------------------

def test_a_market_order_opens_a_position_with_pnl_from_the_mark(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    ask = futures.query_public('tickers/PF_XBTUSD')['ticker']['ask']
    status = send(futures, orderType='mkt', size=0.5)
    assert status['status'] == 'placed' and status['orderEvents'][0]['type'] == 'EXECUTION'
    assert status['orderEvents'][0]['price'] == ask
    position = futures.query_private('openpositions')['openPositions'][0]
    assert (position['side'], position['size'], position['price']) == ('long', 0.5, ask)
    sandbox.futures.set_price('PF_XBTUSD', 61000)
    flex = futures.query_private('accounts')['accounts']['flex']
    assert flex['pnl'] == pytest.approx(0.5 * (61000 - ask))
    assert flex['initialMargin'] == pytest.approx(0.5 * 61000 * 0.02)
    fills = futures.query_private('fills')['fills']
    assert fills[0]['fillType'] == 'taker' and fills[0]['size'] == 0.5


def test_a_resting_limit_order_fills_when_the_mark_reaches_it(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    status = send(futures, limitPrice=59000, cliOrdId='rest-1')
    assert status['orderEvents'][0]['type'] == 'PLACE'
    opened = futures.query_private('openorders')['openOrders']
    assert [(o['cliOrdId'], o['status'], o['unfilledSize']) for o in opened] == [
        ('rest-1', 'untouched', 0.01)]
    sandbox.futures.set_price('PF_XBTUSD', 58990)
    assert futures.query_private('openorders')['openOrders'] == []
    fill = futures.query_private('fills')['fills'][0]
    assert (fill['cliOrdId'], fill['price'], fill['fillType']) == ('rest-1', 59000, 'maker')


def test_stop_and_take_profit_orders_trigger_on_the_mark(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    send(futures, orderType='mkt', size=0.1)
    stop = send(futures, orderType='stp', side='sell', size=0.1, stopPrice=55000,
                reduceOnly=True)
    assert stop['status'] == 'placed' and 'orderTrigger' in stop['orderEvents'][0]
    profit = send(futures, orderType='take_profit', side='sell', size=0.1, stopPrice=65000,
                  limitPrice=64000, reduceOnly=True)
    assert profit['status'] == 'placed'
    kinds = sorted(o['orderType'] for o in futures.query_private('openorders')['openOrders'])
    assert kinds == ['stop', 'take_profit']
    sandbox.futures.set_price('PF_XBTUSD', 54000)
    assert futures.query_private('openpositions')['openPositions'] == []
    assert len(futures.query_private('openorders')['openOrders']) == 1


def test_order_refusals_use_krakens_statuses(sandbox: Sandbox, futures: FuturesAPI) -> None:
    assert send(futures, orderType='post', limitPrice=70000)['status'] == 'postWouldExecute'
    assert send(futures, orderType='ioc', limitPrice=40000)['status'] == 'iocWouldNotExecute'
    assert send(futures, limitPrice=50000, size=1000)['status'] == 'insufficientAvailableFunds'
    assert send(futures, limitPrice=50000, size=0.00001)['status'] == 'invalidSize'
    assert send(futures, limitPrice=50000.5)['status'] == 'invalidPrice'
    assert send(futures, limitPrice=50000, reduceOnly=True)['status'] == \
        'wouldNotReducePosition'
    assert send(futures, limitPrice=50000, cliOrdId='x' * 101)['status'] == \
        'clientOrderIdTooBig'
    send(futures, limitPrice=50000, cliOrdId='dup')
    assert send(futures, limitPrice=50000, cliOrdId='dup')['status'] == \
        'clientOrderIdAlreadyExist'
    sandbox.futures.suspend('PF_ETHUSD')
    assert send(futures, symbol='PF_ETHUSD', limitPrice=2000)['status'] == 'marketSuspended'


def test_a_reduce_only_order_is_cut_to_the_position(futures: FuturesAPI) -> None:
    send(futures, orderType='mkt', size=0.2)
    status = send(futures, orderType='mkt', side='sell', size=0.5, reduceOnly=True)
    assert status['orderEvents'][0]['takerReducedQuantity'] == pytest.approx(0.3)
    assert futures.query_private('openpositions')['openPositions'] == []


def test_edit_cancel_and_cancel_all(futures: FuturesAPI) -> None:
    first = send(futures, limitPrice=50000, cliOrdId='e-1')
    edit = futures.query_private('editorder', {'cliOrdId': 'e-1', 'size': 0.02,
                                               'limitPrice': 49000})['editStatus']
    assert edit['status'] == 'edited' and edit['orderEvents'][0]['new']['limitPrice'] == 49000
    opened = futures.query_private('openorders')['openOrders'][0]
    assert (opened['unfilledSize'], opened['limitPrice']) == (0.02, 49000)
    cancel = futures.query_private('cancelorder', {'order_id': first['order_id']})
    assert cancel['cancelStatus']['status'] == 'cancelled'
    assert futures.query_private('editorder', {'orderId': first['order_id'], 'size': 1})[
        'editStatus']['status'] == 'orderForEditNotFound'
    send(futures, limitPrice=50000)
    send(futures, symbol='PF_ETHUSD', limitPrice=2000)
    only = futures.query_private('cancelallorders', {'symbol': 'PF_ETHUSD'})['cancelStatus']
    assert only['cancelOnly'] == 'PF_ETHUSD' and len(only['cancelledOrders']) == 1
    rest = futures.query_private('cancelallorders')['cancelStatus']
    assert rest['cancelOnly'] == 'all' and len(rest['cancelledOrders']) == 1
    assert futures.query_private('openorders')['openOrders'] == []


def test_the_dead_mans_switch_cancels_every_order(sandbox: Sandbox, futures: FuturesAPI) -> None:
    send(futures, limitPrice=50000)
    status = futures.query_private('cancelallordersafter', {'timeout': 1})['status']
    assert status['triggerTime'] > status['currentTime']
    time.sleep(1.1)
    assert futures.query_private('openorders')['openOrders'] == []
    send(futures, limitPrice=50000)
    off = futures.query_private('cancelallordersafter', {'timeout': 0})['status']
    assert off['triggerTime'] == '0'


def test_batchorder_sends_edits_and_cancels(futures: FuturesAPI) -> None:
    kept = send(futures, limitPrice=50000, cliOrdId='k-1')
    batch = {'json': {'batchOrder': [
        {'order': 'send', 'order_tag': 't1', 'orderType': 'lmt', 'symbol': 'PF_ETHUSD',
         'side': 'sell', 'size': 1, 'limitPrice': 4000},
        {'order': 'edit', 'order_id': kept['order_id'], 'limitPrice': 49500},
        {'order': 'cancel', 'cliOrdId': 'k-1'}]}}
    statuses = futures.query_private('batchorder', batch)['batchStatus']
    assert [s['status'] for s in statuses] == ['placed', 'edited', 'cancelled']
    assert statuses[0]['order_tag'] == 't1'
    opened = futures.query_private('openorders')['openOrders']
    assert [o['symbol'] for o in opened] == ['PF_ETHUSD']


def test_orders_status_reports_open_and_just_finished_orders(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    resting = send(futures, limitPrice=50000, cliOrdId='s-1')
    send(futures, orderType='mkt', cliOrdId='s-2')
    found = futures.query_private('orders/status', {'cliOrdIds': ['s-1', 's-2', 's-3']})
    assert sorted((o['order']['cliOrdId'], o['status']) for o in found['orders']) == [
        ('s-1', 'ENTERED_BOOK'), ('s-2', 'FULLY_EXECUTED')]
    by_id = futures.query_private('orders/status', {'orderIds': [resting['order_id']]})
    assert [o['order']['orderId'] for o in by_id['orders']] == [resting['order_id']]


def test_leverage_preferences_set_the_margin_rate(futures: FuturesAPI) -> None:
    assert futures.query_private('leveragepreferences', {'symbol': 'PF_XBTUSD',
                                                         'maxLeverage': 5},
                                 verb='PUT')['result'] == 'success'
    prefs = futures.query_private('leveragepreferences')['leveragePreferences']
    assert prefs == [{'symbol': 'PF_XBTUSD', 'maxLeverage': 5}]
    send(futures, orderType='mkt', size=0.1)
    flex = futures.query_private('accounts')['accounts']['flex']
    mark = futures.query_public('tickers/PF_XBTUSD')['ticker']['markPrice']
    assert flex['initialMargin'] == pytest.approx(0.1 * mark / 5)


def test_the_budget_refuses_calls_beyond_500_per_10_seconds(futures: FuturesAPI) -> None:
    replies = [futures.query_private('cancelallorders') for _ in range(30)]  # 25 each
    assert [r['result'] for r in replies].count('error') >= 1
    assert {r['error'] for r in replies if r['result'] == 'error'} == {'apiLimitExceeded'}


def test_faults_apply_to_futures_endpoints(sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.inject('html520', method='tickers')
    futures.retries = 0
    with pytest.raises(requests.HTTPError, match='520'):
        futures.query_public('tickers')


def test_order_history_records_every_order_event(sandbox: Sandbox, futures: FuturesAPI) -> None:
    placed = send(futures, limitPrice=50000, cliOrdId='h-1')
    futures.query_private('editorder', {'orderId': placed['order_id'], 'limitPrice': 49000})
    futures.query_private('cancelorder', {'order_id': placed['order_id']})
    send(futures, orderType='post', limitPrice=70000, cliOrdId='h-2')
    send(futures, orderType='mkt', cliOrdId='h-3')
    history = futures.query_history('orders', {'sort': 'asc'})
    assert 'result' not in history and history['len'] == 6
    kinds = [(next(iter(e['event'])), _client(e)) for e in history['elements']]
    assert kinds == [('OrderPlaced', 'h-1'), ('OrderUpdated', 'h-1'), ('OrderCancelled', 'h-1'),
                     ('OrderRejected', 'h-2'), ('OrderPlaced', 'h-3'), ('OrderUpdated', 'h-3')]
    stamps = [e['timestamp'] for e in history['elements']]
    assert stamps == sorted(stamps)
    opened = futures.query_history('orders', {'closed': False})['elements']
    assert [_client(e) for e in opened] == ['h-3', 'h-1']  # newest first by default


def test_order_history_pages_with_a_continuation_token(futures: FuturesAPI) -> None:
    for i in range(5):
        send(futures, limitPrice=50000 + i, cliOrdId=f'p-{i}')
    first = futures.query_history('orders', {'count': 3})
    second = futures.query_history('orders', {'count': 3,
                                              'continuation_token': first['continuationToken']})
    assert [_client(e) for e in first['elements'] + second['elements']] == [
        'p-4', 'p-3', 'p-2', 'p-1', 'p-0']
    assert 'continuationToken' not in second


def test_the_history_pool_allows_100_calls(futures: FuturesAPI) -> None:
    futures.retries = 0  # the client would wait and retry a refused read
    replies = [futures.query_history('orders', {'count': 1}) for _ in range(103)]
    assert all('elements' in r for r in replies[:100])
    assert 'apiLimitExceeded' in [r.get('error') for r in replies[100:]]


def _client(element: dict[str, Any]) -> str:
    event = next(iter(element['event'].values()))
    return str((event.get('order') or event['newOrder'])['clientId'])


def test_malformed_parameters_are_refused_not_crashed_on(sandbox: Sandbox) -> None:
    hypothesis = pytest.importorskip('hypothesis')
    from hypothesis import strategies as st

    values = st.one_of(st.text(max_size=12), st.sampled_from(
        ['NaN', 'Infinity', '-1', '1e999999', '0.' + '0' * 40 + '1', '9' * 400, '', ' ']))
    names = st.sampled_from(['orderType', 'symbol', 'side', 'size', 'limitPrice', 'stopPrice',
                             'reduceOnly', 'cliOrdId', 'processBefore', 'triggerSignal'])

    @hypothesis.settings(max_examples=150, deadline=None, database=None)
    @hypothesis.given(st.dictionaries(names, values, max_size=6))
    def check(params: dict[str, str]) -> None:
        base = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': '0.01',
                'limitPrice': '50000'}
        reply = signed(sandbox, 'POST', 'sendorder', encode({**base, **params}),
                       str(time.time_ns()))
        assert reply['result'] in ('success', 'error')
        if reply['result'] == 'success':
            assert isinstance(reply['sendStatus']['status'], str)

    check()
    url = sandbox.futures_url + '/api/charts/v1/trade/PF_XBTUSD/1h'
    for bad in ({'count': 'x'}, {'to': 'NaN'}, {'from': '1e999'}, {'count': '-5'}):
        reply = requests.get(url, params=bad, timeout=5)
        assert reply.status_code in (200, 400)
        assert reply.json().get('error') == 'invalidArgument' or 'candles' in reply.json()


# -- the package's shape ----------------------------------------------------------------

def test_futures_modules_hold_the_exchange_by_composition_and_import_no_client_tables() -> None:
    import ast
    import inspect
    from pathlib import Path

    from krakenex.sandbox import futures as package
    from krakenex.sandbox.futures import account_data, endpoints, trading
    from krakenex.sandbox.futures.exchange import FuturesExchange

    for path in Path(package.__file__).parent.glob('*.py'):
        tree = ast.parse(path.read_text())
        assert (ast.get_docstring(tree) or '').strip(), path.name  # its responsibility, first
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert not [a.name for a in node.names if a.name.startswith('_')], path.name
                assert node.level < 3, (path.name, node.module)  # nothing of the client's
    for module in (account_data, trading, endpoints):
        assert len(inspect.getsource(module).splitlines()) < 500, module.__name__
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                assert not issubclass(cls, FuturesExchange)


def test_the_route_tables_built_once_are_the_ones_requests_go_through(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    from krakenex.sandbox.futures import FUTURES_PATHS, FuturesEndpoints
    from krakenex.sandbox.futures.account_data import FuturesAccountData
    from krakenex.sandbox.futures.trading import FuturesTrading

    served = FuturesEndpoints(sandbox.futures)
    for prefix in FUTURES_PATHS:
        sandbox.add_route(prefix, served.route, unavailable=served.unavailable)
    owners = {type(h.__self__) for h in served.private.values()}
    assert owners == {FuturesAccountData, FuturesTrading}
    assert served.trading.exchange is served.account_data.exchange is sandbox.futures
    assert futures.query_private('openorders')['openOrders'] == []
    served.private[('GET', 'openorders')] = lambda account, params: {'openOrders': ['kept']}
    assert futures.query_private('openorders')['openOrders'] == ['kept']
