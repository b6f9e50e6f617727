"""The sandbox's WebSocket v2 feed, used through WS over a real socket on 127.0.0.1."""

from __future__ import annotations

import calendar
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_sandbox_motion import Clock
from test_ws_client import expect, notice, quick_backoff
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from krakenex import API, KrakenError, KrakenUsageError, OutcomeUnknownError
from krakenex.sandbox import Sandbox, market
from krakenex.sandbox.market import PAIRS
from krakenex.sandbox.replies import iso
from krakenex.ws import WS, Backoff

WAIT = 5.0


@pytest.fixture
def ws(sb: Sandbox, api: API) -> Iterator[WS]:
    with WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, l3_url=sb.ws_l3_url, timeout=WAIT,
            silence=1.5, backoff=quick_backoff) as client:
        yield client


@pytest.fixture
def calm_ws(sb: Sandbox, api: API) -> Iterator[WS]:
    """A client that sends no keepalive ping of its own in a test's time, so that every
    request the feed counts against the message rate is one the test made."""
    with WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, timeout=WAIT, silence=600,
            backoff=quick_backoff) as client:
        yield client


def channel(name: str, kind: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get('channel') == name and (kind is None or m.get('type') == kind)


def raw_book(sb: Sandbox, symbol: str, depth: int = 10) -> tuple[str, dict[str, Any]]:
    """The raw text of the feed's book snapshot, read with a bare websockets client."""
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        bare.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'book', 'symbol': [symbol], 'depth': depth}}))
        while True:
            text = bare.recv(WAIT)
            if text.startswith('{"channel": "book", "type": "snapshot"'):
                return str(text), json.loads(text)


@pytest.mark.parametrize('symbol, decimals', [('BTC/USD', 1), ('ETH/USD', 2), ('ETH/BTC', 5),
                                              ('SOL/USD', 2)])
def test_feed_book_numbers_are_at_the_pairs_precision_and_its_checksum_is_krakens(
        sb, symbol, decimals):
    text, _ = raw_book(sb, symbol)
    data = json.loads(text, parse_float=str)['data'][0]  # the numbers' own text
    asks = [(a['price'], a['qty']) for a in data['asks']]
    bids = [(b['price'], b['qty']) for b in data['bids']]
    assert all(len(p.split('.')[1]) == decimals and len(q.split('.')[1]) == 8
               for p, q in asks + bids)
    # Kraken's rule applied to the wire text, written out here
    wire = ''.join(p.replace('.', '').lstrip('0') + q.replace('.', '').lstrip('0')
                   for p, q in asks[:10] + bids[:10])
    assert data['checksum'] == zlib.crc32(wire.encode())


def test_a_book_with_fewer_bids_than_the_depth_is_served_as_it_is(sb):
    sb.set_price('SOLUSD', '0.03')  # two ticks above zero: two bid levels are left
    _, snapshot = raw_book(sb, 'SOL/USD', depth=10)
    data = snapshot['data'][0]
    assert [b['price'] for b in data['bids']] == [0.02, 0.01] and len(data['asks']) == 10


def test_ws_keeps_every_sandbox_book_verified_as_the_market_moves(sb, ws):
    ws.subscribe('book', symbol=['BTC/USD', 'ETH/BTC'], depth=25)
    expect(ws, lambda m: channel('book', 'snapshot')(m) and m['data'][0]['symbol'] == 'ETH/BTC')
    sb.set_price('ETHXBT', '0.05123')
    sb.set_price('XBTUSD', '61234.5')
    for symbol in ('BTC/USD', 'ETH/BTC'):
        expect(ws, lambda m, s=symbol: channel('book', 'update')(m)
               and m['data'][0]['symbol'] == s and m['data'][0]['bids'])
    btc, eth = ws.book('BTC/USD'), ws.book('ETH/BTC')
    assert btc.bids[0][0] < Decimal('61234.5') < btc.asks[0][0]
    assert eth.bids[0][0] < Decimal('0.05123') < eth.asks[0][0]
    assert len(btc.bids) == len(btc.asks) == 25


def test_ticker_trade_ohlc_and_instrument_channels(sb, ws):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    ws.subscribe('trade', symbol=['BTC/USD'], snapshot=True)  # Kraken's default is none
    ws.subscribe('ohlc', symbol=['BTC/USD'], interval=60)
    ws.subscribe('instrument')
    ticker = expect(ws, channel('ticker'))['data'][0]
    assert ticker['bid'] < ticker['ask'] and ticker['symbol'] == 'BTC/USD'
    assert expect(ws, channel('trade', 'snapshot'))['data'][-1]['symbol'] == 'BTC/USD'
    candle = expect(ws, channel('ohlc', 'snapshot'))['data'][-1]
    assert candle['interval'] == 60 and candle['low'] <= candle['close'] <= candle['high']
    pairs = {p['symbol']: p for p in expect(ws, channel('instrument'))['data']['pairs']}
    assert (pairs['ETH/BTC']['price_precision'], pairs['ETH/BTC']['qty_precision']) == (5, 8)
    sb.set_price('XBTUSD', '62000')
    assert expect(ws, channel('trade', 'update'))['data'][-1]['price'] == Decimal('62000.0')


def test_the_trade_channel_sends_every_trade_of_a_burst_once(sb, ws, api):
    ws.subscribe('trade', symbol=['SOL/USD'], snapshot=True)
    snapshot = expect(ws, channel('trade', 'snapshot'))['data']
    for _ in range(300):  # far more trades than a snapshot holds, faster than the feed looks
        sb.move()
    newest = api.query_public('Trades', {'pair': 'SOLUSD', 'count': 1})['result']['SOLUSD']
    ids = [snapshot[-1]['trade_id']]
    while ids[-1] < newest[-1][6]:
        ids += [t['trade_id'] for t in expect(ws, channel('trade', 'update'))['data']]
    assert ids == list(range(ids[0], ids[0] + 301))


def test_a_candle_that_closes_between_two_looks_still_gets_its_last_trade(
        sb, ws, api, monkeypatch: pytest.MonkeyPatch):
    clock = Clock()
    clock.now = clock.now // 60 * 60 + 30  # the middle of a minute, on the market's clock
    monkeypatch.setattr(market, 'time', clock)
    ws.subscribe('ohlc', symbol=['BTC/USD'], interval=1)
    expect(ws, channel('ohlc', 'snapshot'))
    closing = clock.now // 60 * 60
    with sb.exchange.lock:  # two trades, a candle apart, before the feed looks again
        clock.now = closing + 59
        sb.move()
        clock.now = closing + 61
        sb.move()
    sent: dict[str, dict[str, Any]] = {}
    while iso(closing + 60) not in sent:
        for candle in expect(ws, channel('ohlc', 'update'))['data']:
            sent[candle['interval_begin']] = candle
    rows = api.query_public('OHLC', {'pair': 'XBTUSD', 'interval': 1})['result']['XXBTZUSD']
    closed = next(row for row in rows if row[0] == closing)
    last = sent[iso(closing)]
    assert [str(last[k]) for k in ('open', 'high', 'low', 'close', 'vwap', 'volume')] + [
        last['trades']] == closed[1:]


def replies(url: str, request: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    """Send one request over a bare websockets client; the ``count`` replies to its req_id."""
    with connect(url, open_timeout=WAIT) as bare:
        bare.send(json.dumps({**request, 'req_id': 77}))
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = json.loads(bare.recv(WAIT))
            if message.get('req_id') == 77:
                found.append(message)
        return found


@pytest.mark.parametrize('symbol', ['XBT/USD', 'BTCUSD', 'XBTUSD', 'XXBTZUSD'])
def test_v2_refuses_rest_and_v1_pair_names_as_kraken_does(sb, ws, symbol):
    with pytest.raises(KrakenError, match=f'Currency pair not supported {symbol}$'):
        ws.subscribe('ticker', symbol=[symbol])
    with pytest.raises(KrakenError, match=f'Currency pair not supported {symbol}$'):
        ws.request('add_order', symbol=symbol, side='buy', order_type='market',
                   order_qty=Decimal('0.01'))
    assert sb.orders() == []


def test_unsubscribing_from_what_is_not_subscribed_is_refused_as_kraken_refuses_it(sb, api):
    never = {'method': 'unsubscribe', 'params': {'channel': 'ticker', 'symbol': ['BTC/USD']}}
    refused, = replies(sb.ws_url, never)
    # Kraken's reply says "subscribe" here
    assert (refused['success'], refused['error'], refused['method'], refused['symbol']) == (
        False, 'Subscription Not Found', 'subscribe', 'BTC/USD')
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        def ask(method: str, **params: Any) -> dict[str, Any]:
            bare.send(json.dumps({'method': method, 'params': params, 'req_id': 5}))
            return next(m for m in map(json.loads, iter(lambda: bare.recv(WAIT), None))
                        if m.get('req_id') == 5)

        assert ask('subscribe', channel='ohlc', symbol=['ETH/USD'], interval=60)['success']
        assert ask('unsubscribe', channel='ohlc', symbol=['ETH/USD'], interval=5)[
            'error'] == 'Subscription Not Found'  # another interval is another subscription
        assert ask('unsubscribe', channel='ohlc', symbol=['ETH/USD'], interval=60)['success']
        assert ask('unsubscribe', channel='ohlc', symbol=['ETH/USD'], interval=60)[
            'error'] == 'Subscription Not Found'
    token = api.query_private('GetWebSocketsToken')['result']['token']
    refused, = replies(sb.ws_auth_url, {'method': 'unsubscribe', 'params': {
        'channel': 'executions', 'token': token}})
    assert (refused['success'], refused['error']) == (False, 'Subscription Not Found')


def test_cancel_all_orders_after_without_a_timeout_is_refused_not_taken_as_zero(sb, ws):
    ws.request('cancel_all_orders_after', timeout=60)
    with pytest.raises(KrakenError, match='timeout'):
        ws.request('cancel_all_orders_after')  # would have disabled the timer set above
    assert sb.exchange.accounts[sb.key].cancel_at is not None
    with pytest.raises(KrakenError, match='Timeout field must be an integer'):
        ws.request('cancel_all_orders_after', timeout='0')
    assert ws.request('cancel_all_orders_after', timeout=0)['result']['triggerTime'] == '0'
    assert sb.exchange.accounts[sb.key].cancel_at is None


def test_a_request_that_is_not_json_is_answered_as_kraken_answers_it(sb):
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        bare.send('{"method": "ping"')
        reply = next(m for m in map(json.loads, iter(lambda: bare.recv(WAIT), None))
                     if m.get('channel') != 'status')
    assert (reply['method'], reply['success'], reply['error']) == (
        'error', False, 'Malformed request')
    assert reply['time_in'] <= reply['time_out']


def test_fields_a_request_does_not_take_are_refused_not_ignored(sb):
    refused, = replies(sb.ws_url, {'method': 'ping', 'params': {}})
    assert refused['error'] == "Unsupported field: 'params' for the given msg type: ping"
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        bare.send(json.dumps({'method': 'subscribe', 'req_id': 3, 'params': {
            'channel': 'book', 'symbol': ['BTC/USD'], 'interval': 5}}))  # ohlc's, not book's
        bare.send(json.dumps({'method': 'ping', 'req_id': 4}))
        seen = [json.loads(bare.recv(WAIT))]
        while seen[-1].get('method') != 'pong':  # replies come in order: all is seen
            seen.append(json.loads(bare.recv(WAIT)))
    refused = next(m for m in seen if m.get('req_id') == 3)
    assert (refused['success'], refused['error']) == (
        False, "Unsupported field: 'interval' for the given msg type: subscribe")
    assert not [m for m in seen if m.get('channel') == 'book'], 'nothing was subscribed'


def test_params_that_are_not_an_object_are_refused_and_the_connection_lives(sb):
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        bare.send(json.dumps({'method': 'subscribe', 'params': ['ticker'], 'req_id': 1}))
        bare.send(json.dumps({'method': 'ping', 'req_id': 2}))
        seen = [json.loads(bare.recv(WAIT))]
        while seen[-1].get('method') != 'pong':
            seen.append(json.loads(bare.recv(WAIT)))
    refused = next(m for m in seen if m.get('req_id') == 1)
    assert (refused['success'], refused['error']) == (False, 'Params field must be an object')


def test_cancel_order_with_one_id_outside_a_list_is_refused_and_cancels_nothing(sb, ws):
    txid = ws.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                      order_qty=Decimal('0.01'), limit_price=Decimal('40000'))['result'][
        'order_id']
    with pytest.raises(KrakenError, match='Order_id field must be an array'):
        ws.request('cancel_order', order_id=txid)
    with pytest.raises(KrakenError, match='Orders field must be an array'):
        ws.request('batch_cancel', orders=txid)
    assert [o['status'] for o in sb.orders()] == ['open']


@pytest.mark.parametrize('missing', ['order_type', 'side', 'order_qty', 'symbol'])
def test_add_order_without_a_required_field_is_refused(sb, ws, missing):
    order = {'symbol': 'BTC/USD', 'side': 'buy', 'order_type': 'limit',
             'order_qty': Decimal('0.01'), 'limit_price': Decimal('40000')}
    del order[missing]
    with pytest.raises(KrakenError, match=f'Invalid arguments:{missing}$'):
        ws.request('add_order', **order)
    assert sb.orders() == []


def test_quantities_and_prices_sent_as_text_are_refused_as_kraken_refuses_them(sb, ws):
    order = {'symbol': 'BTC/USD', 'side': 'buy', 'order_type': 'limit',
             'order_qty': Decimal('0.01'), 'limit_price': Decimal('40000')}
    with pytest.raises(KrakenError, match='Order_qty field must be a number_float'):
        ws.request('add_order', **{**order, 'order_qty': '0.01'})
    with pytest.raises(KrakenError, match='Limit_price field must be a number_float'):
        ws.request('batch_add', symbol='BTC/USD', orders=[  # the whole batch is refused
            {k: v for k, v in order.items() if k != 'symbol'},
            {k: v for k, v in order.items() if k != 'symbol'} | {'limit_price': '40000'}])
    assert sb.orders() == []


@pytest.mark.parametrize('count', [0, 1, 16])
def test_a_batch_of_fewer_than_2_or_more_than_15_orders_is_refused_and_places_nothing(
        sb, ws, count):
    order = {'side': 'buy', 'order_type': 'limit', 'order_qty': Decimal('0.01'),
             'limit_price': Decimal('40000')}
    with pytest.raises(KrakenError, match='Invalid arguments:orders'):
        ws.request('batch_add', symbol='BTC/USD', orders=[order] * count)
    assert sb.orders() == []
    placed = ws.request('batch_add', symbol='BTC/USD', orders=[order] * 15)['result']
    assert len(placed) == len(sb.orders()) == 15


def test_executions_show_orders_placed_over_rest_and_over_the_socket(sb, ws, api):
    ws.subscribe('executions', snap_orders=True, snap_trades=True)
    expect(ws, channel('executions', 'snapshot'))
    api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                   'price': '50000', 'volume': '0.01', 'userref': '11'})
    rest_order = expect(ws, channel('executions', 'update'))['data'][0]
    assert (rest_order['exec_type'], rest_order['order_userref']) == ('new', 11)
    reply = ws.request('add_order', symbol='BTC/USD', side='buy', order_type='market',
                       order_qty=Decimal('0.001'), cl_ord_id='ws-market-1')
    assert reply['success'] is True and reply['result']['order_id']
    filled = expect(ws, lambda m: channel('executions')(m)
                    and m['data'][0]['exec_type'] == 'filled')['data'][0]
    assert filled['cl_ord_id'] == 'ws-market-1' and filled['cum_qty'] == Decimal('0.001')
    ws.request('cancel_order', order_id=[rest_order['order_id']])
    canceled = expect(ws, lambda m: channel('executions')(m)
                      and m['data'][0]['exec_type'] == 'canceled')
    assert canceled['data'][0]['order_id'] == rest_order['order_id']


def test_balances_follow_paper_trading(sb, ws):
    ws.subscribe('balances')
    snapshot = expect(ws, channel('balances', 'snapshot'))
    usd = {b['asset']: b['balance'] for b in snapshot['data']}['USD']  # v2's name
    ws.request('add_order', symbol='BTC/USD', side='buy', order_type='market',
               order_qty=Decimal('0.01'))
    update = expect(ws, channel('balances', 'update'))
    assert {b['asset']: b['balance'] for b in update['data']}['USD'] < usd


def test_tokens_are_checked_and_expire_15_minutes_after_issue_unless_used(sb, api):
    token = api.query_private('GetWebSocketsToken')['result']['token']
    sb.feed.tokens[token][1] -= 901  # issued more than 15 minutes ago, never used
    with connect(sb.ws_auth_url, open_timeout=WAIT) as bare:
        for attempt in (token, 'made-up-token'):
            bare.send(json.dumps({'method': 'subscribe', 'params': {
                'channel': 'executions', 'token': attempt}, 'req_id': 1}))
            reply = json.loads(next(t for t in iter(lambda: bare.recv(WAIT), None)
                                    if '"subscribe"' in t))
            assert (reply['success'], reply['error']) == (False, 'ESession:Invalid session')
    with connect(sb.ws_url, open_timeout=WAIT) as public:
        fresh = api.query_private('GetWebSocketsToken')['result']['token']
        public.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'executions', 'token': fresh}, 'req_id': 2}))
        reply = json.loads(next(t for t in iter(lambda: public.recv(WAIT), None)
                                if '"subscribe"' in t))
        assert reply['success'] is False  # private channels live on the auth endpoint


# -- faults ------------------------------------------------------------------------------

@pytest.mark.parametrize('fault, reason', [('drop', 'without a close frame'),
                                           ('close1001', '1001'),
                                           ('stall', 'no heartbeat')])
def test_feed_faults_are_survived_with_reconnected_and_resubscribed(sb, ws, fault, reason):
    ws.subscribe('book', symbol=['ETH/USD'], depth=10)
    expect(ws, channel('book', 'snapshot'))
    sb.feed.inject(fault)
    reconnected = expect(ws, notice('reconnected'))
    assert reason in reconnected['reason']
    assert expect(ws, notice('resubscribed'))['subscriptions'] == [
        {'channel': 'book', 'symbol': ['ETH/USD'], 'depth': 10}]
    expect(ws, channel('book', 'snapshot'))
    assert ws.book('ETH/USD').checksum


def test_a_stalled_connection_waits_a_tick_between_looks_instead_of_spinning(sb):
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        bare.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'ticker', 'symbol': ['BTC/USD']}}))
        while '"snapshot"' not in str(bare.recv(WAIT)):
            pass
        sb.feed.inject('stall')
        before = sb.feed.loop.turns
        time.sleep(1.0)
        turns = sb.feed.loop.turns - before
    # one turn a tick (0.05 s) is 20 in the second; a loop that spins makes many thousands
    assert 0 < turns <= 60, turns


def test_wrong_checksum_from_the_feed_gives_book_resync_and_a_verified_book_again(sb, ws):
    ws.subscribe('book', symbol=['SOL/USD'])
    expect(ws, channel('book', 'snapshot'))
    sb.feed.inject('bad_checksum')
    sb.set_price('SOLUSD', '151.37')
    expect(ws, channel('book', 'update'))
    assert expect(ws, notice('book_resync'))['symbol'] == 'SOL/USD'
    expect(ws, channel('book', 'snapshot'))
    assert ws.book('SOL/USD').bids[0][0] < Decimal('151.37')


def test_429_on_the_handshake(sb, ws):
    sb.feed.inject('handshake429')
    with pytest.raises(InvalidStatus, match='429'):
        connect(sb.ws_url, open_timeout=WAIT)
    ws.subscribe('ticker', symbol=['BTC/USD'])
    sb.feed.inject('handshake429', times=2)
    sb.feed.inject('drop')
    assert '429' in expect(ws, notice('reconnected'))['reason']


def test_invalid_session_from_the_feed_gives_token_refreshed(sb, ws):
    sb.feed.inject('invalid_session')
    assert ws.subscribe('executions')[0]['success'] is True
    assert 'Invalid session' in expect(ws, notice('token_refreshed'))['reason']


def test_reply_lost_after_the_order_executed_is_an_unknown_outcome_reconcile_finds(sb, ws, api):
    ws.subscribe('executions')
    sb.feed.inject('reply_lost')
    with pytest.raises(OutcomeUnknownError) as lost:
        ws.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                   limit_price=Decimal('40000'), order_qty=Decimal('0.01'),
                   cl_ord_id='lost-reply-1')
    assert lost.value.req_id and lost.value.cl_ord_id == 'lost-reply-1'
    expect(ws, notice('resubscribed'))
    placed = [o for o in sb.orders() if o['cl_ord_id'] == 'lost-reply-1']
    assert len(placed) == 1, 'placed once, never sent again'
    assert list(api.reconcile(lost.value)) == [placed[0]['txid']]
    # the executions snapshot after the reconnect shows it too
    snapshot = expect(ws, channel('executions', 'snapshot'))
    assert [o['cl_ord_id'] for o in snapshot['data']] == ['lost-reply-1']


def test_an_order_reply_saying_neither_success_nor_failure_is_an_unknown_outcome(sb, ws, api):
    sb.feed.inject('reply_odd')
    with pytest.raises(OutcomeUnknownError, match='neither success nor failure') as odd:
        ws.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                   limit_price=Decimal('40000'), order_qty=Decimal('0.01'),
                   cl_ord_id='odd-reply-1')
    assert odd.value.req_id and odd.value.cl_ord_id == 'odd-reply-1'
    placed = [o for o in sb.orders() if o['cl_ord_id'] == 'odd-reply-1']
    assert len(placed) == 1 and list(api.reconcile(odd.value)) == [placed[0]['txid']]
    assert ws.request('ping')['method'] == 'pong'  # a pong, which says neither, is no order


def test_after_a_reconnect_the_executions_snapshot_shows_what_happened_meanwhile(sb, api):
    with WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, timeout=WAIT, silence=1.5,
            backoff=lambda: Backoff(immediate=0, first=0.3, cap=0.3, jitter=0.0,
                                    throttled=0.3)) as ws:
        ws.subscribe('executions', snap_orders=True)
        assert expect(ws, channel('executions', 'snapshot'))['data'] == []
        before = sb.feed.handshakes
        sb.feed.inject('handshake429', times=2)
        sb.feed.inject('drop')
        deadline = time.monotonic() + WAIT
        while sb.feed.handshakes == before:  # the old connection is gone: it is retrying
            assert time.monotonic() < deadline
            time.sleep(0.01)
        api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                       'price': '45000', 'volume': '0.02',
                                       'cl_ord_id': 'while-away'})
        expect(ws, notice('reconnected'))
        snapshot = expect(ws, channel('executions', 'snapshot'))
        assert [o['cl_ord_id'] for o in snapshot['data']] == ['while-away']


def test_order_requests_over_the_socket_change_the_sandbox_account(sb, ws):
    placed = ws.request('batch_add', symbol='BTC/USD', orders=[
        {'order_type': 'limit', 'side': 'buy', 'limit_price': 40000,
         'order_qty': Decimal('0.01'), 'cl_ord_id': 'b-1'},
        {'order_type': 'limit', 'side': 'buy', 'limit_price': 41000, 'order_qty': Decimal('0.01'),
         'cl_ord_id': 'b-2'}])['result']
    first, second = (o['order_id'] for o in placed)
    ws.request('amend_order', order_id=first, order_qty=Decimal('0.03'))
    edited = ws.request('edit_order', order_id=second, symbol='BTC/USD',
                        limit_price=Decimal('39000'))['result']
    orders = {o['cl_ord_id']: o for o in sb.orders() if o['status'] == 'open'}
    assert Decimal(orders['b-1']['vol']) == Decimal('0.03')
    assert Decimal(orders['b-2']['descr']['price']) == Decimal('39000')
    ws.request('batch_cancel', orders=[first, edited['order_id']])
    assert [o for o in sb.orders() if o['status'] == 'open'] == []
    with pytest.raises(Exception, match='EOrder:Unknown order'):
        ws.request('cancel_order', order_id=[first])


# -- the market moving on its own ----------------------------------------------------------

def test_with_motion_book_ticker_trade_and_ohlc_stream_without_set_price(api):
    with Sandbox(tier=None, motion=0.05) as moving, \
            WS(url=moving.ws_url, auth_url=moving.ws_auth_url, timeout=WAIT,
               backoff=quick_backoff) as ws:
        ws.subscribe('book', symbol=['BTC/USD'], depth=10)
        for name in ('ticker', 'trade', 'ohlc'):
            ws.subscribe(name, symbol=['BTC/USD'])
        seen: dict[str, int] = {}
        deadline = time.monotonic() + WAIT
        while min(seen.get(n, 0) for n in ('book', 'ticker', 'trade', 'ohlc')) < 2:
            assert time.monotonic() < deadline, f'updates seen: {seen}'
            message = ws.recv(timeout=WAIT)
            if message.get('type') == 'update':
                seen[message['channel']] = seen.get(message['channel'], 0) + 1
            assert message.get('type') != 'book_resync'
        book = ws.book('BTC/USD')  # verified against every update's checksum
        mid = moving.exchange.market.mid(PAIRS['XXBTZUSD'])
        assert book.bids[0][0] < book.asks[0][0] and abs(book.bids[0][0] - mid) < 1000


class SteppingLock:
    """The exchange lock, with a step of the market after every outermost release by any
    thread but the stepping one: whatever the feed reads under two holds, a step falls
    between them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox, self.inner = sandbox, sandbox.exchange.lock
        self.local = threading.local()
        self.steps = 0

    def __enter__(self) -> None:
        self.inner.acquire()
        self.local.depth = getattr(self.local, 'depth', 0) + 1

    def __exit__(self, *exc: object) -> None:
        self.local.depth -= 1
        self.inner.release()
        if self.local.depth == 0 and not getattr(self.local, 'stepping', False):
            stepper = threading.Thread(target=self.step)
            stepper.start()
            stepper.join()

    def step(self) -> None:
        self.local.stepping = True
        self.sandbox.move()
        self.steps += 1


def test_the_ticker_last_price_lies_within_its_bid_and_ask_while_the_market_steps(sb, ws):
    sb.exchange.lock = SteppingLock(sb)  # type: ignore[assignment]
    ws.subscribe('ticker', symbol=['BTC/USD', 'ETH/USD', 'ETH/BTC', 'SOL/USD'])
    tickers = [t for _ in range(40) for t in expect(ws, channel('ticker'))['data']]
    outside = [t for t in tickers if not t['bid'] <= t['last'] <= t['ask']]
    assert sb.exchange.lock.steps >= len(tickers) and not outside, outside[:3]


# -- ohlc ----------------------------------------------------------------------------------

def test_ohlc_sends_the_running_candle_on_each_trade_as_rest_ohlc_shows_it(sb, ws, api):
    # daily candles, so that no new candle starts between the update and the REST call
    ws.subscribe('ohlc', symbol=['ETH/USD'], interval=1440)
    snapshot = expect(ws, channel('ohlc', 'snapshot'))
    assert snapshot['data'][-1]['interval'] == 1440
    for price in ('3100.55', '2990.10'):
        sb.set_price('ETHUSD', price)
        update = expect(ws, channel('ohlc', 'update'))
        candle = update['data'][0]
        assert len(update['data']) == 1 and candle['close'] == Decimal(price)
        rows = api.query_public('OHLC', {'pair': 'ETHUSD', 'interval': 1440})['result']
        row = rows['XETHZUSD'][-1]
        begin = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(row[0]))
        assert (candle['symbol'], candle['interval'], candle['interval_begin']) == (
            'ETH/USD', 1440, begin)
        assert [str(candle[k]) for k in ('open', 'high', 'low', 'close', 'vwap', 'volume')] \
            + [candle['trades']] == row[1:]
    assert candle['high'] >= Decimal('3100.55') and candle['low'] <= Decimal('2990.10')


def test_ohlc_sends_no_update_without_a_trade(sb, ws):
    ws.subscribe('ohlc', symbol=['SOL/USD'])
    expect(ws, channel('ohlc', 'snapshot'))
    ws.subscribe('ticker', symbol=['SOL/USD'])
    expect(ws, channel('ticker', 'snapshot'))
    time.sleep(0.3)  # heartbeats only
    while True:
        try:
            message = ws.recv(timeout=0.1)
        except TimeoutError:
            break
        assert message.get('channel') != 'ohlc'
    sb.set_price('SOLUSD', '151.00')
    assert expect(ws, channel('ohlc', 'update'))['data'][0]['close'] == Decimal('151.00')


# -- status --------------------------------------------------------------------------------

def test_a_status_change_reaches_every_connection_and_rest_system_status_agrees(sb, ws, api):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    ws.subscribe('executions')
    first = [expect(ws, channel('status')) for _ in range(2)]
    assert [m['data'][0]['system'] for m in first] == ['online', 'online']
    sb.set_status('maintenance')
    changed = [expect(ws, channel('status')) for _ in range(2)]
    assert [m['data'][0]['system'] for m in changed] == ['maintenance', 'maintenance']
    assert len({m['data'][0]['connection_id'] for m in changed}) == 2, 'public and private'
    assert api.query_public('SystemStatus')['result']['status'] == 'maintenance'
    sb.set_status('online')
    assert expect(ws, channel('status'))['data'][0]['system'] == 'online'
    assert api.query_public('SystemStatus')['result']['status'] == 'online'


def test_subscribing_to_status_is_acknowledged_and_sends_the_status_now(sb, ws):
    sb.set_status('cancel_only')
    assert ws.subscribe('status')[0]['success'] is True
    assert expect(ws, channel('status'))['data'][0]['system'] == 'cancel_only'
    with pytest.raises(ValueError, match='unknown status'):
        sb.set_status('closed')


# -- message rate --------------------------------------------------------------------------

def test_over_the_message_rate_requests_are_refused_not_carried_out_and_the_link_lives(
        sb, calm_ws):
    sb.feed.msg_rate = (3, 0.0)  # three requests a connection, then nothing
    calm_ws.subscribe('executions')
    order = {'symbol': 'BTC/USD', 'side': 'buy', 'order_type': 'limit',
             'limit_price': Decimal('40000'), 'order_qty': Decimal('0.01')}
    for _ in range(2):
        calm_ws.request('add_order', **order)
    with pytest.raises(KrakenError, match='Exceeded msg rate') as refused:
        calm_ws.request('add_order', **order)
    assert not isinstance(refused.value, OutcomeUnknownError)
    assert len(sb.orders()) == 2, 'the refused order was not placed'
    assert calm_ws.request('ping')['method'] == 'pong', 'each connection has its own counter'
    sb.feed.msg_rate = None
    assert calm_ws.request('cancel_all')['result']['count'] == 2, 'the same connection goes on'


def test_an_injected_msg_rate_refuses_one_subscription_with_krakens_text(sb, ws):
    sb.feed.inject('msg_rate')
    with pytest.raises(KrakenError, match='Exceeded msg rate'):
        ws.subscribe('ticker', symbol=['ETH/USD'])
    assert ws.subscribe('ticker', symbol=['ETH/USD'])[0]['success'] is True


def test_the_message_counter_decays_so_a_paced_client_is_never_refused(sb, calm_ws):
    sb.feed.msg_rate = (2, 20.0)
    calm_ws.subscribe('ticker', symbol=['BTC/USD'])
    for _ in range(5):
        time.sleep(0.06)
        calm_ws.request('ping')


# -- level3 --------------------------------------------------------------------------------

class Level3Book:
    """A level3 book kept from the messages, with Kraken's level3 checksum written out here."""

    def __init__(self, depth: int, price_precision: int, qty_precision: int) -> None:
        self.depth, self.pp, self.qp = depth, price_precision, qty_precision
        self.sides: dict[str, dict[Decimal, list[tuple[str, Decimal]]]] = {'bids': {}, 'asks': {}}

    def apply(self, data: dict[str, Any], kinds: set[str]) -> None:
        for name, levels in self.sides.items():
            for order in data[name]:
                kind = order.get('event', 'add')
                kinds.add(kind)
                queue = levels.setdefault(order['limit_price'], [])
                if kind == 'add':
                    queue.append((order['order_id'], order['order_qty']))
                    continue
                at = [oid for oid, _ in queue].index(order['order_id'])
                if kind == 'modify':
                    queue[at] = (order['order_id'], order['order_qty'])
                else:
                    del queue[at]
                if not queue:
                    del levels[order['limit_price']]
            kept = sorted(levels, reverse=name == 'bids')[:self.depth]
            self.sides[name] = {price: levels[price] for price in kept}

    def best(self, name: str) -> list[tuple[Decimal, list[tuple[str, Decimal]]]]:
        return sorted(self.sides[name].items(), reverse=name == 'bids')

    def checksum(self) -> int:
        def text(value: Decimal, places: int) -> str:
            return format(value, f'.{places}f').replace('.', '').lstrip('0')
        return zlib.crc32(''.join(
            text(price, self.pp) + text(qty, self.qp)
            for name in ('asks', 'bids') for price, queue in self.best(name)[:10]
            for _, qty in queue).encode())


def test_level3_snapshot_and_add_modify_delete_updates_keep_krakens_level3_checksum(sb, ws, api):
    replies = ws.subscribe('level3', symbol=['SOL/USD'], depth=10)
    assert [r['result']['symbol'] for r in replies] == ['SOL/USD']
    snapshot = expect(ws, channel('level3', 'snapshot'))['data'][0]
    book, kinds = Level3Book(10, 2, 8), set()
    book.apply(snapshot, kinds)
    assert snapshot['checksum'] == book.checksum()
    assert all(len(queue) > 1 for _, queue in book.best('asks')), 'orders queue at a level'
    for price in ('150.01', '150.03', '149.95', '149.96'):
        sb.set_price('SOLUSD', price)
        update = expect(ws, channel('level3', 'update'))['data'][0]
        book.apply(update, kinds)
        assert update['checksum'] == book.checksum(), f'after the move to {price}'
    assert kinds == {'add', 'modify', 'delete'}
    # order by order, the levels add up to the aggregated book
    depth = api.query_public('Depth', {'pair': 'SOLUSD', 'count': 10})['result']['SOLUSD']
    for name in ('asks', 'bids'):
        assert [[str(p), str(sum(q for _, q in queue))] for p, queue in book.best(name)] == [
            row[:2] for row in depth[name]]


def test_level3_needs_the_authenticated_endpoint_and_a_token(sb):
    with connect(sb.ws_url, open_timeout=WAIT) as public:
        public.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'level3', 'symbol': ['BTC/USD']}, 'req_id': 3}))
        reply = json.loads(next(t for t in iter(lambda: public.recv(WAIT), None)
                                if '"subscribe"' in t))
        assert reply['success'] is False and 'authenticated endpoint' in reply['error']
    with connect(sb.ws_auth_url, open_timeout=WAIT) as private:
        private.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'level3', 'symbol': ['BTC/USD'], 'token': 'made-up'}, 'req_id': 4}))
        reply = json.loads(next(t for t in iter(lambda: private.recv(WAIT), None)
                                if '"subscribe"' in t))
        assert (reply['success'], reply['error']) == (False, 'ESession:Invalid session')


def test_level3_is_served_on_its_own_endpoint_as_kraken_now_serves_it(sb, api):
    assert sb.ws_l3_url.endswith('/l3/v2')
    with WS(api, url=sb.ws_url, auth_url=sb.ws_l3_url, l3_url=sb.ws_l3_url, timeout=WAIT,
            backoff=quick_backoff) as l3:
        l3.subscribe('level3', symbol=['ETH/BTC'], depth=100)
        data = expect(l3, channel('level3', 'snapshot'))['data'][0]
        book = Level3Book(100, 5, 8)
        book.apply(data, set())
        assert len(book.best('bids')) == len(book.best('asks')) == 100
        assert data['checksum'] == book.checksum()


@pytest.mark.parametrize('symbol, pair, depth', [('SOL/USD', 'SOLUSD', 10),
                                                 ('ETH/BTC', 'XETHXXBT', 100)])
def test_rest_level3_and_the_level3_feed_list_the_same_orders(sb, api, symbol, pair, depth):
    def as_rest(order: dict[str, Any], price: str, qty: str) -> tuple[str, str, str, int]:
        return order['order_id'], order[price], order[qty], order['timestamp']

    def iso_ns(text: str) -> int:  # 2026-11-30T07:00:10.123456789Z
        whole, _, fraction = text.rstrip('Z').partition('.')
        seconds = calendar.timegm(time.strptime(whole, '%Y-%m-%dT%H:%M:%S'))
        return seconds * 10**9 + int(fraction.ljust(9, '0'))

    sb.set_price(pair, PAIRS[pair].start_price * Decimal('1.001'))
    with connect(sb.ws_l3_url, open_timeout=WAIT) as l3:
        token = api.query_private('GetWebSocketsToken')['result']['token']
        l3.send(json.dumps({'method': 'subscribe', 'params': {
            'channel': 'level3', 'symbol': [symbol], 'depth': depth, 'token': token}}))
        while True:
            message = json.loads(l3.recv(WAIT), parse_float=str)
            if message.get('channel') == 'level3' and message.get('type') == 'snapshot':
                break
    rest = api.query_private('Level3', {'pair': pair, 'depth': depth})['result']
    feed = message['data'][0]
    for side in ('bids', 'asks'):
        listed = [as_rest(o, 'price', 'qty') for o in rest[side]]
        sent = [(oid, price, qty, iso_ns(when)) for oid, price, qty, when in (
            as_rest(o, 'limit_price', 'order_qty') for o in feed[side])]
        assert sent == listed, side
        assert len({price for _, price, _, _ in listed}) == depth
        assert len(listed) > depth, 'more than one order at a level'


def test_trading_follows_the_system_status_over_rest_and_the_socket(sb, ws, api):
    def add(**extra: str) -> dict[str, Any]:
        return api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                              'ordertype': 'limit', 'price': '59000',
                                              'volume': '0.01', **extra})

    resting = add()['result']['txid'][0]
    sb.set_status('cancel_only')
    assert add()['error'] == ['EService:Market in cancel_only mode']
    with pytest.raises(KrakenError, match='EService:Market in cancel_only mode'):
        ws.request('add_order', symbol='BTC/USD', side='buy', order_type='market',
                   order_qty=Decimal('0.01'))
    sb.set_price('XBTUSD', '58000')  # through the resting buy: no matching in cancel_only
    assert sb.orders()[0]['status'] == 'open'
    sb.set_status('post_only')
    assert add()['error'] == ['EService:Market in post_only mode']
    post = add(oflags='post', price='57000')['result']['txid'][0]
    assert {o['txid']: o['status'] for o in sb.orders()}[post] == 'open'
    sb.set_status('maintenance')
    assert api.query_private('CancelOrder', {'txid': post})['error'] == ['EService:Unavailable']
    sb.set_status('online')
    assert api.query_private('CancelOrder', {'txid': post})['error'] == []
    sb.set_price('XBTUSD', '58500')
    assert {o['txid']: o['status'] for o in sb.orders()}[resting] == 'closed'


def test_a_token_got_elsewhere_opens_private_channels_without_a_key(sb, api):
    token = api.query_private('GetWebSocketsToken')['result']['token']
    with WS(url=sb.ws_url, auth_url=sb.ws_auth_url, token=token, timeout=WAIT) as keyless:
        keyless.subscribe('balances')
        snapshot = expect(keyless, channel('balances', 'snapshot'))
        assert 'USD' in {b['asset'] for b in snapshot['data']}
    fresh = iter([api.query_private('GetWebSocketsToken')['result']['token']])
    with WS(auth_url=sb.ws_auth_url, token=lambda: next(fresh), timeout=WAIT) as called:
        called.subscribe('executions')
        expect(called, channel('executions', 'snapshot'))


def test_an_ohlc_interval_given_as_text_is_refused_with_the_number_to_give(sb, ws):
    with pytest.raises(KrakenUsageError, match=r"not '60', as a number: interval=60"):
        ws.subscribe('ohlc', symbol=['BTC/USD'], interval='60')
    with pytest.raises(KrakenUsageError, match='Kraken takes 1, 5, 15'):
        ws.subscribe('ohlc', symbol=['BTC/USD'], interval=7)
    ws.subscribe('ohlc', symbol=['BTC/USD'], interval=60)  # nothing was left half-subscribed
    assert expect(ws, channel('ohlc', 'snapshot'))['data'][0]['interval'] == 60
