"""The sandbox answers as Kraken does: every field honoured or refused by name, never dropped.

Each test talks to the sandbox over a real socket on 127.0.0.1: WebSocket v2
``add_order`` with a bare websockets client (so that nothing on the client's side
checks the fields first), REST through :class:`krakenex.API`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from krakenex import API
from krakenex.sandbox import Sandbox

WAIT = 5.0


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def trader(sb: Sandbox, api: API) -> Iterator[Any]:
    """Send one v2 request on the authenticated feed and return Kraken's reply to it."""
    token = api.query_private('GetWebSocketsToken')['result']['token']
    with connect(sb.ws_auth_url, open_timeout=WAIT) as socket:
        def send(method: str, **params: Any) -> dict[str, Any]:
            return _request(socket, method, {**params, 'token': token})
        yield send


def _request(socket: ClientConnection, method: str, params: dict[str, Any]) -> dict[str, Any]:
    socket.send(json.dumps({'method': method, 'params': params, 'req_id': 7}))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(WAIT))
        if message.get('req_id') == 7:
            return dict(message)
    raise AssertionError(f'no reply to {method}')


def last_price(api: API, pair: str = 'XBTUSD') -> Decimal:
    result = api.query_public('Ticker', {'pair': pair})['result']
    return Decimal(next(iter(result.values()))['c'][0])


LIMIT = {'symbol': 'BTC/USD', 'side': 'buy', 'order_type': 'limit', 'order_qty': 0.01}


# -- WebSocket v2 add_order ----------------------------------------------------------------

def test_a_crossing_post_only_order_is_cancelled_and_never_takes(sb, api, trader):
    ask = last_price(api) * 2  # far through the book: without post_only it would fill
    reply = trader('add_order', **LIMIT, limit_price=float(ask), post_only=True)
    assert reply['success'] is True
    (order,) = sb.orders()
    assert (order['status'], order['reason'], order['vol_exec']) == (
        'canceled', 'Post only order', '0.00000000')
    assert 'post' in order['oflags'].split(',')


def test_a_resting_post_only_order_stays_open_with_the_post_flag(sb, api, trader):
    bid = (last_price(api) * Decimal('0.9')).quantize(Decimal('1'))
    assert trader('add_order', **LIMIT, limit_price=float(bid), post_only=True)['success']
    (order,) = sb.orders()
    assert order['status'] == 'open' and 'post' in order['oflags'].split(',')


@pytest.mark.parametrize('field', ['hidden', 'leverage', 'trigger'])
def test_a_field_kraken_does_not_document_is_refused_by_name_and_places_nothing(
        sb, api, trader, field):
    bid = float((last_price(api) * Decimal('0.9')).quantize(Decimal('1')))
    reply = trader('add_order', **LIMIT, limit_price=bid, **{field: 1})
    assert (reply['success'], reply['error']) == (
        False, f"Unsupported field: '{field}' for the given msg type: add_order")
    assert sb.orders() == []


@pytest.mark.parametrize('field, value', [('reduce_only', True), ('margin', True),
                                          ('stp_type', 'cancel_both'),
                                          ('fee_preference', 'base'),
                                          ('cash_order_qty', 100), ('display_qty', 0.005)])
def test_a_documented_field_the_sandbox_does_not_model_is_refused_naming_it(
        sb, api, trader, field, value):
    bid = float((last_price(api) * Decimal('0.9')).quantize(Decimal('1')))
    reply = trader('add_order', **LIMIT, limit_price=bid, **{field: value})
    assert (reply['success'], reply['error']) == (False, f'EGeneral:Invalid arguments:{field}')
    assert sb.orders() == []


def test_reduce_only_false_is_the_default_and_is_accepted(sb, api, trader):
    bid = float((last_price(api) * Decimal('0.9')).quantize(Decimal('1')))
    assert trader('add_order', **LIMIT, limit_price=bid, reduce_only=False)['success']
    assert len(sb.orders()) == 1


def test_a_stop_loss_takes_its_trigger_from_triggers(sb, api, trader):
    stop = (last_price(api) * Decimal('1.1')).quantize(Decimal('1'))
    reply = trader('add_order', **{**LIMIT, 'order_type': 'stop-loss'},
                   triggers={'reference': 'last', 'price': float(stop), 'price_type': 'static'})
    assert reply['success'] is True
    (order,) = sb.orders()
    assert (order['descr']['ordertype'], Decimal(order['descr']['price'])) == (
        'stop-loss', stop)


def test_a_stop_loss_limit_reads_limit_price_as_its_limit(sb, api, trader):
    stop = (last_price(api) * Decimal('1.1')).quantize(Decimal('1'))
    assert trader('add_order', **{**LIMIT, 'order_type': 'stop-loss-limit'},
                  limit_price=float(stop + 10), triggers={'price': float(stop)})['success']
    (order,) = sb.orders()
    assert (Decimal(order['descr']['price']), Decimal(order['descr']['price2'])) == (
        stop, stop + 10)


def test_a_trailing_stop_over_the_socket_trails_by_its_percent(sb, api, trader):
    reply = trader('add_order', **{**LIMIT, 'side': 'sell', 'order_type': 'trailing-stop'},
                   triggers={'price': 2, 'price_type': 'pct'})
    assert reply['success'] is True
    (order,) = sb.orders()
    assert order['descr']['order'].endswith('@ trailing stop +2%')


def test_a_triggered_order_without_triggers_is_refused_naming_triggers(sb, trader):
    reply = trader('add_order', **{**LIMIT, 'order_type': 'stop-loss'})
    assert (reply['success'], reply['error']) == (False, 'EGeneral:Invalid arguments:triggers')
    reply = trader('add_order', **{**LIMIT, 'order_type': 'trailing-stop'},
                   triggers={'price': 100, 'price_type': 'static'})
    assert reply['error'] == 'EGeneral:Invalid arguments:triggers.price_type'
    assert sb.orders() == []


def test_an_iceberg_shows_display_qty(sb, api, trader):
    bid = float((last_price(api) * Decimal('0.9')).quantize(Decimal('1')))
    assert trader('add_order', **{**LIMIT, 'order_type': 'iceberg', 'order_qty': 0.1},
                  limit_price=bid, display_qty=0.01)['success']
    (order,) = sb.orders()
    assert order['descr']['ordertype'] == 'iceberg'
    reply = trader('add_order', **{**LIMIT, 'order_type': 'iceberg', 'order_qty': 0.1},
                   limit_price=bid, display_qty=0.001)  # under a fifteenth: Kraken refuses it
    assert reply['error'] == 'EGeneral:Invalid arguments:display_qty'


def test_expire_time_is_the_orders_expiry(sb, api, trader):
    bid = float((last_price(api) * Decimal('0.9')).quantize(Decimal('1')))
    expiry = int(time.time()) + 3600
    stamp = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expiry))
    assert trader('add_order', **LIMIT, limit_price=bid, time_in_force='gtd',
                  expire_time=stamp)['success']
    (order,) = sb.orders()
    assert int(float(order['expiretm'])) == expiry
    reply = trader('add_order', **LIMIT, limit_price=bid, expire_time=stamp)  # not gtd
    assert reply['error'] == 'EGeneral:Invalid arguments:expire_time'
    reply = trader('add_order', **LIMIT, limit_price=bid, time_in_force='gtd',
                   expire_time='tomorrow')
    assert reply['error'] == 'EGeneral:Invalid arguments:expire_time'


def test_conditional_places_the_close_order_once_the_order_fills(sb, api, trader):
    price = last_price(api)
    stop = (price * Decimal('0.8')).quantize(Decimal('1'))
    reply = trader('add_order', **LIMIT, limit_price=float(price * 2),
                   conditional={'order_type': 'stop-loss', 'trigger_price': float(stop)})
    assert reply['success'] is True
    first, close = sb.orders()
    assert first['status'] == 'closed'
    assert (close['descr']['type'], close['descr']['ordertype']) == ('sell', 'stop-loss')
    assert Decimal(close['descr']['price']) == stop
    reply = trader('add_order', **LIMIT, limit_price=float(price * 2),
                   conditional={'order_type': 'stop-loss'})
    assert reply['error'] == 'EGeneral:Invalid arguments:conditional.trigger_price'


# -- REST funding --------------------------------------------------------------------------

def test_deposit_status_for_an_asset_it_does_not_know_is_refused(api):
    refused = api.query_private('DepositStatus', {'asset': 'DOGE'})
    assert refused == {'error': ['EFunding:Unknown asset']}
    deposits = api.query_private('DepositStatus', {'asset': 'XBT'})['result']
    assert deposits and {d['asset'] for d in deposits} == {'XXBT'}


def test_funding_methods_and_networks_carry_krakens_names(api):
    (method,) = api.query_private('DepositMethods', {'asset': 'XBT'})['result']
    assert method['method'] == 'Bitcoin'
    (address,) = api.query_private('DepositAddresses', {'asset': 'XBT',
                                                        'method': 'Bitcoin'})['result']
    assert address['address']
    withdrawals = api.query_private('WithdrawMethods', {'asset': 'ETH'})['result']
    assert [(w['method'], w['network']) for w in withdrawals] == [('Ether (Hex)', 'Ethereum')]
    only = api.query_private('WithdrawMethods', {'network': 'Bitcoin'})['result']
    assert [w['asset'] for w in only] == ['XXBT']
    deposits = api.query_private('DepositStatus', {'asset': 'XBT'})['result']
    assert {d['method'] for d in deposits} == {'Bitcoin'}


@pytest.mark.parametrize('cursor, paged', [('False', False), ('false', False), ('0', False),
                                           ('True', True), ('true', True)])
def test_deposit_status_reads_cursor_as_a_boolean_in_any_case(api, cursor, paged):
    """python-kraken-sdk sends Python's ``False``; Kraken reads it as false."""
    result = api.query_private('DepositStatus', {'cursor': cursor})['result']
    assert isinstance(result, dict) == paged
    assert (result['deposit'] if paged else result)


# -- REST orders ---------------------------------------------------------------------------

def test_trailing_stop_limit_takes_its_limit_offset_in_percent(sb, api):
    sb.set_price('XBTUSD', 60000)
    placed = api.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'trailing-stop-limit', 'volume': '0.1',
        'price': '+1%', 'price2': '+0.5%'})
    assert placed['error'] == []
    assert placed['result']['descr']['order'].endswith('-> limit +0.5%')
    txid = placed['result']['txid'][0]
    sb.set_price('XBTUSD', 59000)  # the low: the trigger is now 59590
    sb.set_price('XBTUSD', 59600)
    order = api.query_private('QueryOrders', {'txid': txid})['result'][txid]
    # 59590 + 0.5 % of it = 59887.95, at the pair's tick
    assert (order['stopprice'], order['limitprice']) == ('59590.0', '59888.0')
    refused = api.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'trailing-stop-limit', 'volume': '0.1',
        'price': '+1%', 'price2': '+100%'})
    assert refused['error'] == ['EGeneral:Invalid arguments:price2']


def test_edit_order_changes_a_stop_loss_limits_limit_with_price2(sb, api):
    sb.set_price('XBTUSD', 60000)
    txid = api.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'sell', 'ordertype': 'stop-loss-limit', 'volume': '0.1',
        'price': '55000', 'price2': '54900'})['result']['txid'][0]
    edited = api.query_private('EditOrder', {'txid': txid, 'pair': 'XBTUSD',
                                             'price2': '54500'})
    assert edited['error'] == []
    assert edited['result']['price2'] == '54500.0'
    new = edited['result']['txid']
    order = api.query_private('QueryOrders', {'txid': new})['result'][new]
    assert (order['descr']['price'], order['descr']['price2']) == ('55000.0', '54500.0')


def test_edit_order_keeps_a_trailing_stops_offsets(sb, api):
    txid = api.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'sell', 'ordertype': 'trailing-stop-limit', 'volume': '0.1',
        'price': '+2%', 'price2': '-0.5%'})['result']['txid'][0]
    edited = api.query_private('EditOrder', {'txid': txid, 'pair': 'XBTUSD', 'volume': '0.2'})
    assert edited['error'] == []
    assert edited['result']['descr']['order'] == (
        'sell 0.20000000 XBTUSD @ trailing stop +2% -> limit -0.5%')


def _export_rows(api: API, **params: str) -> list[dict[str, str]]:
    import csv
    import io
    import zipfile

    added = api.query_private('AddExport', {'report': 'ledgers', 'description': 'span',
                                            **params})
    assert added['error'] == []
    status = api.query_private('ExportStatus', {'report': 'ledgers'})['result']
    mine = next(s for s in status if s['id'] == added['result']['id'])
    archive = api.query_private('RetrieveExport', {'id': added['result']['id']})
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        (name,) = opened.namelist()
        rows = list(csv.DictReader(io.StringIO(opened.read(name).decode())))
    return [{**row, 'datastarttm': mine['datastarttm']} for row in rows]


def test_add_export_covers_starttm_to_endtm(api):
    everything = _export_rows(api)
    times = sorted(row['time'] for row in everything)
    middle = times[len(times) // 2]
    cut = calendar_time(middle)
    later = _export_rows(api, starttm=str(cut))
    assert later and len(later) < len(everything)
    assert all(calendar_time(row['time']) >= cut for row in later)
    assert later[0]['datastarttm'] == str(cut)
    earlier = _export_rows(api, endtm=str(cut - 1))
    assert earlier and all(calendar_time(row['time']) < cut for row in earlier)
    backwards = api.query_private('AddExport', {'report': 'ledgers', 'description': 'none',
                                                'starttm': str(cut), 'endtm': str(cut - 1)})
    assert backwards['error'] == ['EGeneral:Invalid arguments:starttm']


def calendar_time(stamp: str) -> int:
    import calendar

    return calendar.timegm(time.strptime(stamp.split('.')[0], '%Y-%m-%d %H:%M:%S'))


# -- WebSocket v2 payloads -----------------------------------------------------------------

@pytest.fixture
def public(sb: Sandbox) -> Iterator[ClientConnection]:
    with connect(sb.ws_url, open_timeout=WAIT) as socket:
        yield socket


def _next(socket: ClientConnection, wanted: Any) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(WAIT), parse_float=Decimal)
        if wanted(message):
            return dict(message)
    raise AssertionError('no such message')


def _subscribe(socket: ClientConnection, **params: Any) -> str:
    """Subscribe; the acknowledgement's raw text."""
    socket.send(json.dumps({'method': 'subscribe', 'params': params, 'req_id': 3}))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = str(socket.recv(WAIT))
        if json.loads(text).get('req_id') == 3:
            return text
    raise AssertionError('no acknowledgement')


def test_the_ticker_carries_krakens_fields_and_its_ack_krakens_keys_in_order(public):
    ack = json.loads(_subscribe(public, channel='ticker', symbol=['BTC/USD']))
    assert list(ack) == ['method', 'result', 'success', 'time_in', 'time_out', 'req_id']
    assert ack['result'] == {'channel': 'ticker', 'event_trigger': 'trades', 'snapshot': True,
                             'symbol': 'BTC/USD'}
    assert list(ack['result']) == sorted(ack['result'])
    row = _next(public, lambda m: m.get('channel') == 'ticker')['data'][0]
    assert list(row) == ['symbol', 'bid', 'bid_qty', 'ask', 'ask_qty', 'last', 'volume', 'vwap',
                         'low', 'high', 'change', 'change_pct']
    assert row['low'] <= row['vwap'] <= row['high'] and row['volume'] > 0
    assert row['low'] <= row['last'] <= row['high']


def test_the_tickers_last_is_the_last_paper_trade(sb, api, public):
    _subscribe(public, channel='ticker', symbol=['ETH/USD'])
    _next(public, lambda m: m.get('channel') == 'ticker')
    bought = api.query_private('AddOrder', {'pair': 'ETHUSD', 'type': 'buy',
                                            'ordertype': 'market', 'volume': '5'})
    txid = bought['result']['txid'][0]
    order = api.query_private('QueryOrders', {'txid': txid, 'trades': 'true'})['result'][txid]
    fills = api.query_private('QueryTrades', {'txid': ','.join(order['trades'])})['result']
    newest = fills[order['trades'][-1]]  # a market order walks the book: its last fill
    update = _next(public, lambda m: m.get('channel') == 'ticker' and m['type'] == 'update')
    assert update['data'][0]['last'] == Decimal(newest['price'])


def test_a_bbo_ticker_is_acknowledged_as_bbo_and_an_unknown_trigger_refused(public):
    ack = json.loads(_subscribe(public, channel='ticker', symbol=['BTC/USD'],
                                event_trigger='bbo'))
    assert ack['result']['event_trigger'] == 'bbo'
    refused = json.loads(_subscribe(public, channel='ticker', symbol=['ETH/USD'],
                                    event_trigger='often'))
    assert refused['success'] is False and 'event_trigger' in refused['error']


def test_candles_carry_interval_begin_and_timestamp(public):
    ack = json.loads(_subscribe(public, channel='ohlc', symbol=['BTC/USD'], interval=5))
    assert ack['result'] == {'channel': 'ohlc', 'interval': 5, 'snapshot': True,
                             'symbol': 'BTC/USD'}
    candle = _next(public, lambda m: m.get('channel') == 'ohlc')['data'][-1]
    assert candle['interval_begin'] <= candle['timestamp']
    assert candle['interval_begin'].endswith('Z') and candle['timestamp'].endswith('Z')


def test_the_trade_channel_sends_no_snapshot_unless_asked_as_kraken_documents(sb, public):
    ack = json.loads(_subscribe(public, channel='trade', symbol=['BTC/USD']))
    assert ack['result']['snapshot'] is False
    sb.set_price('XBTUSD', 61000)
    first = _next(public, lambda m: m.get('channel') == 'trade')
    assert first['type'] == 'update'
    asked = json.loads(_subscribe(public, channel='trade', symbol=['ETH/USD'], snapshot=True))
    assert asked['result']['snapshot'] is True
    assert _next(public, lambda m: m.get('channel') == 'trade')['type'] == 'snapshot'


def test_balances_carry_v2_names_asset_class_and_wallets(api, trader_socket):
    strategy = api.query_private('Earn/Strategies')['result']['items'][0]['id']
    assert api.query_private('Earn/Allocate', {'amount': '0.01', 'strategy_id': strategy})[
        'result'] is True
    socket, token = trader_socket
    _request(socket, 'subscribe', {'channel': 'balances', 'token': token})
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(WAIT), parse_float=Decimal)
        if message.get('channel') == 'balances':
            break
    assert list(message) == ['channel', 'type', 'data', 'sequence']
    rows = {row['asset']: row for row in message['data']}
    assert set(rows) == {'USD', 'BTC', 'ETH'}
    btc = rows['BTC']
    assert btc['asset_class'] == 'currency'
    assert sorted((w['type'], w['id']) for w in btc['wallets']) == [('earn', 'flex'),
                                                                      ('spot', 'main')]
    assert btc['balance'] == sum(w['balance'] for w in btc['wallets']) == Decimal(10)


@pytest.fixture
def trader_socket(sb: Sandbox, api: API) -> Iterator[tuple[ClientConnection, str]]:
    token = api.query_private('GetWebSocketsToken')['result']['token']
    with connect(sb.ws_auth_url, open_timeout=WAIT) as socket:
        yield socket, token


def test_the_instrument_channel_lists_assets_and_pairs_with_krakens_fields(public):
    ack = json.loads(_subscribe(public, channel='instrument'))
    assert ack['success'] is True
    data = _next(public, lambda m: m.get('channel') == 'instrument')['data']
    assets = {a['id']: a for a in data['assets']}
    assert set(assets) == {'BTC', 'ETH', 'SOL', 'USD'}
    assert set(assets['BTC']) == {'id', 'status', 'precision', 'precision_display',
                                  'borrowable', 'collateral_value', 'margin_rate'}
    assert (assets['BTC']['precision'], assets['USD']['precision_display']) == (10, 2)
    pairs = {p['symbol']: p for p in data['pairs']}
    btc = pairs['BTC/USD']
    assert (btc['base'], btc['quote']) == ('BTC', 'USD')
    assert {'qty_increment', 'cost_precision', 'marginable', 'has_index', 'price_increment',
            'qty_min', 'cost_min', 'price_precision', 'qty_precision'} <= set(btc)
    assert btc['qty_increment'] == Decimal('0.00000001')
    assert pairs['ETH/BTC']['quote'] == 'BTC'


def test_trade_volume_takes_fee_info_and_fee_schedule(api):
    asked = api.query_private('TradeVolume', {'pair': 'XBTUSD', 'fee-info': 'true'})
    assert asked['error'] == []
    assert asked['result']['fees']['XXBTZUSD']['fee'] == '0.2600'
    assert 'schedules' not in asked['result']
    bare = api.query_private('TradeVolume', {'pair': 'XBTUSD', 'fee-info': 'false'})['result']
    assert set(bare) == {'currency', 'volume'}
    full = api.query_private('TradeVolume', {'pair': 'XBTUSD', 'fee_schedule': 'true'})['result']
    taker = full['schedules']['XXBTZUSD']['fees']
    assert taker[0] == {'volume': '0.0000', 'fee': '0.2600'}
    assert [Decimal(t['volume']) for t in taker] == sorted(Decimal(t['volume']) for t in taker)
    assert full['schedules']['XXBTZUSD']['fees_maker'][-1]['fee'] == '0.0000'


def test_a_conditional_close_is_in_add_orders_descr_and_names_its_parent(sb, api):
    sb.set_price('XBTUSD', 60000)
    placed = api.query_private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.1',
        'price': '61000', 'close[ordertype]': 'stop-loss-limit', 'close[price]': '55000',
        'close[price2]': '54900'})
    assert placed['error'] == []
    assert placed['result']['descr'] == {
        'order': 'buy 0.10000000 XBTUSD @ limit 61000.0',
        'close': 'close position @ stop loss 55000.0 -> limit 54900.0'}
    parent = placed['result']['txid'][0]
    opened = api.query_private('OpenOrders')['result']['open']
    (close,) = [o for o in opened.values() if o['descr']['ordertype'] == 'stop-loss-limit']
    assert close['refid'] == parent
    plain = api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                           'ordertype': 'limit', 'volume': '0.1',
                                           'price': '50000'})
    assert list(plain['result']['descr']) == ['order']


# -- Kraken Futures ------------------------------------------------------------------------

@pytest.mark.parametrize('path', ['/derivatives/api/v4/openorders', '/api/history/v1/orders',
                                  '/api/history/v3/accountlogcsv', '/derivatives/nothing'])
def test_an_unmodelled_futures_path_gets_krakens_json_not_found(sb, path):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(sb.url + path, timeout=WAIT)
    assert refused.value.code == 404
    assert refused.value.headers['Content-Type'].startswith('application/json')
    body = json.loads(refused.value.read())
    assert (body['result'], body['error']) == ('error', 'notFound') and 'serverTime' in body


def test_futures_order_history_answers_on_v2_as_on_v3(sb):
    from krakenex.futures import FuturesAPI

    with FuturesAPI(sb.futures.key, sb.futures.secret, uri=sb.url) as futures:
        futures.query_private('sendorder', {'orderType': 'lmt', 'symbol': 'PF_XBTUSD',
                                            'side': 'buy', 'size': '0.01',
                                            'limitPrice': '50000'})
        events = {version: requests_get(sb, futures, f'/api/history/{version}/orders')
                  for version in ('v2', 'v3')}
    assert events['v2']['elements'] and events['v2']['elements'] == events['v3']['elements']


def requests_get(sb: Sandbox, futures: Any, path: str) -> dict[str, Any]:
    """GET a history path signed as Kraken Futures signs: Authent over the path, no nonce."""
    import base64
    import hashlib
    import hmac
    import urllib.request

    digest = hashlib.sha256(path.encode()).digest()
    authent = base64.b64encode(hmac.new(base64.b64decode(sb.futures.secret), digest,
                                        hashlib.sha512).digest()).decode()
    request = urllib.request.Request(sb.url + path, headers={'APIKey': sb.futures.key,
                                                              'Authent': authent})
    with urllib.request.urlopen(request, timeout=WAIT) as reply:
        return dict(json.loads(reply.read()))


@pytest.mark.parametrize('params', [
    {'orderType': 'limit', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': '1'},
    {'orderType': 'lmt', 'symbol': 'PF_NOPE', 'side': 'buy', 'size': '1'},
    {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': '1', 'colour': 'red'},
])
def test_futures_arguments_are_checked_before_credentials(sb, params):
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(sb.url + '/derivatives/api/v3/sendorder', data=body,
                                     headers={'APIKey': 'unknown', 'Authent': 'bad'})
    with urllib.request.urlopen(request, timeout=WAIT) as reply:
        answer = json.loads(reply.read())
    assert (answer['result'], answer['error']) == ('error', 'invalidArgument')
    good = urllib.parse.urlencode({'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy',
                                   'size': '1', 'limitPrice': '50000'}).encode()
    request = urllib.request.Request(sb.url + '/derivatives/api/v3/sendorder', data=good,
                                     headers={'APIKey': 'unknown', 'Authent': 'bad'})
    with urllib.request.urlopen(request, timeout=WAIT) as reply:
        assert json.loads(reply.read())['error'] == 'authenticationError'


@pytest.mark.parametrize('method, params, error', [
    ('amend_order', {'order_id': 'X', 'order_qty': 0.02, 'display_qty': 0.01},
     'EGeneral:Invalid arguments:display_qty'),
    ('amend_order', {'order_id': 'X', 'trigger_price': 100},
     'EGeneral:Invalid arguments:trigger_price'),
    ('amend_order', {'order_id': 'X', 'limit_price': 10, 'colour': 1},
     "Unsupported field: 'colour' for the given msg type: amend_order"),
    ('edit_order', {'order_id': 'X', 'symbol': 'BTC/USD', 'post_only': True},
     'EGeneral:Invalid arguments:post_only'),
    ('cancel_order', {'order_id': ['X'], 'order_userref': [1]},
     'EGeneral:Invalid arguments:order_userref'),
    ('cancel_all', {'symbol': 'BTC/USD'},
     "Unsupported field: 'symbol' for the given msg type: cancel_all"),
])
def test_the_other_trading_requests_refuse_what_they_would_drop(sb, trader, method, params,
                                                                 error):
    reply = trader(method, **params)
    assert (reply['success'], reply['error']) == (False, error)
