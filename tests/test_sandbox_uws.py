"""The sandbox's Unified WebSocket (derivatives), spoken to with a bare WebSocket client.

The market and the accounts are the futures sandbox's: what is done over one of
Kraken Futures' REST paths shows on the Unified WebSocket, and the reverse.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from krakenex import API
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox

WAIT = 5.0
Message = dict[str, Any]


class Peer:
    """One connection: requests answered by ``req_id``, everything else kept in order."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.seen: list[Message] = []
        self.texts: list[str] = []
        self.req_id = 0

    def read(self) -> Message:
        text = self.socket.recv(WAIT)
        assert isinstance(text, str)
        self.texts.append(text)
        message: Message = json.loads(text, parse_float=Decimal)
        return message

    def request(self, method: str, **params: Any) -> Message:
        """Send one request; its reply (what came meanwhile is kept for :meth:`wait`)."""
        self.req_id += 1
        request = {'method': method, 'req_id': self.req_id}
        if params:
            request['params'] = {k: v for k, v in params.items() if v is not None}
        self.socket.send(json.dumps(request, default=str))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = self.read()
            if message.get('req_id') == self.req_id:
                return message
            self.seen.append(message)
        raise AssertionError(f'no reply to {method}')

    def wait(self, found: Callable[[Message], bool]) -> Message:
        """The first message (kept or new) ``found`` accepts; it is used up."""
        for message in self.seen:
            if found(message):
                self.seen.remove(message)
                return message
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = self.read()
            if found(message):
                return message
            self.seen.append(message)
        raise AssertionError('the message never came')

    def alive(self) -> None:
        """The connection still answers."""
        assert self.request('ping')['method'] == 'pong'


def channel(name: str, kind: str | None = None) -> Callable[[Message], bool]:
    return lambda m: m.get('channel') == name and (kind is None or m.get('type') == kind)


@pytest.fixture
def public(sb: Sandbox) -> Iterator[Peer]:
    with connect(sb.unified_url, open_timeout=WAIT) as socket:
        peer = Peer(socket)
        assert peer.read()['channel'] == 'status'
        yield peer


@pytest.fixture
def token(sb: Sandbox) -> str:
    with API(sb.key, sb.secret, uri=sb.url) as api:
        return str(api.query_private('GetWebSocketsToken')['result']['token'])


@pytest.fixture
def private(sb: Sandbox) -> Iterator[Peer]:
    with connect(sb.unified_auth_url, open_timeout=WAIT) as socket:
        peer = Peer(socket)
        assert peer.read()['channel'] == 'status'
        yield peer


@pytest.fixture
def futures(sb: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sb.futures.key, sb.futures.secret, uri=sb.futures_url) as client:
        yield client


D = 'derivatives'


def order(private: Peer, token: str, **fields: Any) -> Message:
    base = {'order_type': 'limit', 'side': 'buy', 'order_qty': 0.5, 'symbol': 'PF_XBTUSD',
            'limit_price': 59000, 'asset_class': D, 'token': token}
    return private.request('add_order', **{**base, **fields})


def crc(book: dict[str, dict[str, str]], pp: int, qp: int) -> int:
    """Kraken's book checksum, computed here from the levels a client keeps."""
    def text(price: str, qty: str) -> str:
        return (f'{Decimal(price):.{pp}f}'.replace('.', '').lstrip('0')
                + f'{Decimal(qty):.{qp}f}'.replace('.', '').lstrip('0'))

    asks = sorted(book['asks'].items(), key=lambda level: Decimal(level[0]))[:10]
    bids = sorted(book['bids'].items(), key=lambda level: -Decimal(level[0]))[:10]
    return zlib.crc32(''.join(text(p, q) for p, q in asks + bids).encode())


# -- addresses -------------------------------------------------------------------------------

def test_unified_urls_are_served_on_the_sandbox_port_and_listed_with_its_other_addresses(sb):
    port = sb.url.rsplit(':', 1)[1]
    assert sb.unified_url == f'ws://127.0.0.1:{port}/uws/v2/public'
    assert sb.unified_auth_url == f'ws://127.0.0.1:{port}/uws/v2/private'
    listed = sb.connection()
    assert listed['unified_url'] == sb.unified_url
    assert listed['unified_auth_url'] == sb.unified_auth_url


def test_connect_gives_status_and_a_subscriber_gets_heartbeats_and_pings_are_answered(
        sb, public):
    public.alive()
    public.request('subscribe', channel='ticker', symbol=['PF_XBTUSD'], asset_class=D)
    assert public.wait(channel('heartbeat')) == {'channel': 'heartbeat'}


# -- public channels -------------------------------------------------------------------------

def test_instrument_lists_the_futures_contracts_with_their_tick_and_size_precisions(
        public, futures):
    reply = public.request('subscribe', channel='instrument', asset_class=D)
    assert reply['success'] is True
    snapshot = public.wait(channel('instrument', 'snapshot'))['data']
    pairs = {p['symbol']: p for p in snapshot['pairs']}
    contracts = futures.query_public('instruments')['instruments']
    assert set(pairs) == {c['symbol'] for c in contracts}
    for contract in contracts:
        pair = pairs[contract['symbol']]
        tick = Decimal(str(contract['tickSize']))
        assert Decimal(pair['price_increment']) == tick
        assert pair['price_precision'] == max(0, -tick.normalize().as_tuple().exponent)
        assert pair['qty_precision'] == contract['contractValueTradePrecision']
        assert (pair['base'], pair['quote'], pair['status']) == (contract['base'], 'USD',
                                                                 'online')


@pytest.mark.parametrize('symbol, pp, qp', [('PF_XBTUSD', 0, 4), ('PF_ETHUSD', 1, 3)])
def test_book_is_the_futures_order_book_at_the_contract_precisions_with_krakens_checksum(
        sb, public, futures, symbol, pp, qp):
    reply = public.request('subscribe', channel='book', symbol=[symbol], asset_class=D)
    assert reply['result'] == {'channel': 'book', 'symbol': symbol, 'depth': 10,
                               'snapshot': True}
    snapshot = public.wait(channel('book', 'snapshot'))
    text = next(t for t in public.texts if t.startswith('{"channel": "book"'))
    data = json.loads(text, parse_float=str, parse_int=str)['data'][0]  # the numbers as written
    for level in data['bids'] + data['asks']:
        decimals = level['price'].partition('.')[2], level['qty'].partition('.')[2]
        assert tuple(map(len, decimals)) == (pp, qp)
    rest = futures.query_public('orderbook', {'symbol': symbol})['orderBook']
    assert [Decimal(b['price']) for b in snapshot['data'][0]['bids']] == \
        [Decimal(str(p)) for p, _ in rest['bids'][:10]]
    book = {side: {b['price']: b['qty'] for b in data[side]} for side in ('bids', 'asks')}
    assert int(data['checksum']) == crc(book, pp, qp)
    sb.futures.set_price(symbol, '3100' if symbol == 'PF_ETHUSD' else '61000')
    update = public.wait(channel('book', 'update'))['data'][0]
    for side in ('bids', 'asks'):
        for level in update[side]:
            if Decimal(level['qty']) == 0:
                book[side].pop(str(level['price']), None)
            else:
                book[side][str(level['price'])] = str(level['qty'])
    assert update['checksum'] == crc(book, pp, qp)
    moved = futures.query_public('orderbook', {'symbol': symbol})['orderBook']
    assert sorted(Decimal(p) for p in book['bids']) == sorted(
        Decimal(str(p)) for p, _ in moved['bids'][:10])  # still the REST book
    public.alive()


def test_ticker_carries_spot_fields_and_the_mark_index_funding_and_open_interest(
        sb, public, futures):
    public.request('subscribe', channel='ticker', symbol=['PF_XBTUSD'], asset_class=D)
    ticker = public.wait(channel('ticker', 'snapshot'))['data'][0]
    rest = futures.query_public('tickers/PF_XBTUSD')['ticker']
    assert ticker['symbol'] == 'PF_XBTUSD'
    assert {'bid', 'bid_qty', 'ask', 'ask_qty', 'last', 'volume', 'vwap', 'low', 'high',
            'change', 'change_pct'} <= set(ticker)
    assert (ticker['bid'], ticker['ask']) == (Decimal(str(rest['bid'])),
                                              Decimal(str(rest['ask'])))
    assert ticker['mark_price'] == Decimal(str(rest['markPrice']))
    assert ticker['index_price'] == Decimal(str(rest['indexPrice']))
    assert ticker['funding_rate'] == Decimal(str(rest['fundingRate']))
    assert ticker['open_interest'] == Decimal(str(rest['openInterest']))
    sb.futures.set_price('PF_XBTUSD', 62000)
    assert public.wait(channel('ticker', 'update'))['data'][0]['mark_price'] == 62000


def test_a_trade_over_futures_rest_shows_on_the_trade_channel(public, futures):
    reply = public.request('subscribe', channel='trade', symbol=['PF_XBTUSD'], asset_class=D,
                           snapshot=True)
    assert reply['success'] is True
    tape = public.wait(channel('trade', 'snapshot'))['data']
    assert len(tape) == 50 and tape[-1]['symbol'] == 'PF_XBTUSD'
    futures.query_private('sendorder', {'orderType': 'mkt', 'symbol': 'PF_XBTUSD',
                                        'side': 'sell', 'size': '0.0123'})
    trade = public.wait(channel('trade', 'update'))['data'][-1]
    bid = futures.query_public('tickers/PF_XBTUSD')['ticker']['bid']  # a sale takes the bid
    assert (trade['side'], trade['qty'], trade['price']) == ('sell', Decimal('0.0123'),
                                                             Decimal(str(bid)))
    assert trade['trade_id'] == tape[-1]['trade_id'] + 1


def test_ohlc_takes_a_tick_type_and_shows_the_futures_charts_candles(public, futures):
    reply = public.request('subscribe', channel='ohlc', symbol=['PF_XBTUSD'], interval=60,
                           tick_type='mark', asset_class=D)
    assert reply['result'] == {'channel': 'ohlc', 'symbol': 'PF_XBTUSD', 'interval': 60,
                               'tick_type': 'mark', 'snapshot': True}
    candles = public.wait(channel('ohlc', 'snapshot'))['data']
    chart = futures.query_charts('mark/PF_XBTUSD/1h', {'count': 10})['candles']
    assert [c['open'] for c in candles] == [Decimal(c['open']) for c in chart]
    assert {c['tick_type'] for c in candles} == {'mark'}
    assert {'open', 'high', 'low', 'close', 'vwap', 'volume', 'trades', 'interval',
            'interval_begin'} <= set(candles[0])
    default = public.request('subscribe', channel='ohlc', symbol=['PF_ETHUSD'], asset_class=D)
    assert default['result']['tick_type'] == 'trade'


# -- bad public requests: refused, the connection kept ---------------------------------------

@pytest.mark.parametrize('params, error', [
    ({'channel': 'book', 'symbol': ['PF_XBTUSD']}, 'EGeneral:Invalid arguments:asset_class'),
    ({'channel': 'book', 'symbol': ['PF_XBTUSD'], 'asset_class': 'spot'},
     'EGeneral:Invalid arguments:asset_class spot is not available yet'),
    ({'channel': 'book', 'symbol': ['PF_XBTUSD'], 'asset_class': 'options'},
     'EGeneral:Invalid arguments:asset_class'),
    ({'channel': 'book', 'symbol': ['BTC/USD'], 'asset_class': D},
     'Currency pair not supported BTC/USD'),
    ({'channel': 'book', 'symbol': 'PF_XBTUSD', 'asset_class': D},
     'Symbol field must be an array'),
    ({'channel': 'book', 'symbol': ['PF_XBTUSD'], 'depth': 7, 'asset_class': D}, 'Invalid depth 7'),
    ({'channel': 'book', 'symbol': ['PF_XBTUSD'], 'asset_class': D, 'snapshot': 'yes'},
     'Snapshot field must be a boolean'),
    ({'channel': 'ohlc', 'symbol': ['PF_XBTUSD'], 'interval': 21600, 'asset_class': D},
     'Invalid interval 21600'),
    ({'channel': 'ohlc', 'symbol': ['PF_XBTUSD'], 'tick_type': 'last', 'asset_class': D},
     'Invalid tick_type last'),
    ({'channel': 'trade', 'symbol': ['PF_XBTUSD'], 'depth': 10, 'asset_class': D},
     "Unsupported field: 'depth' for the given msg type: subscribe"),
    ({'channel': 'level2', 'symbol': ['PF_XBTUSD'], 'asset_class': D}, 'Channel level2 not found'),
    ({'channel': 'executions', 'asset_class': D, 'token': 'x'},
     'EGeneral:Permission denied: use the authenticated endpoint'),
])
def test_bad_subscriptions_are_refused_with_a_clear_error_and_the_connection_kept(
        public, params, error):
    reply = public.request('subscribe', **params)
    assert (reply['success'], reply['error']) == (False, error)
    public.alive()


def test_unsubscribing_what_was_never_subscribed_is_refused(public):
    reply = public.request('unsubscribe', channel='ticker', symbol=['PF_XBTUSD'], asset_class=D)
    assert (reply['success'], reply['error']) == (False, 'Subscription Not Found')
    public.request('subscribe', channel='ticker', symbol=['PF_XBTUSD'], asset_class=D)
    assert public.request('unsubscribe', channel='ticker', symbol=['PF_XBTUSD'],
                          asset_class=D)['success'] is True


def test_text_that_is_not_json_is_answered_and_the_connection_kept(public):
    public.socket.send('{not json')
    assert public.read()['error'] == 'Malformed request'
    public.alive()


# -- tokens ----------------------------------------------------------------------------------

def test_a_token_from_spot_getwebsocketstoken_opens_the_private_channels(private, token):
    assert private.request('subscribe', channel='preferences', token=token)['success'] is True
    assert private.wait(channel('preferences', 'snapshot'))['data'] == [
        {'derivatives_permission': 'enabled'}]


def test_an_invalid_or_expired_token_is_refused_as_the_spot_feed_refuses_it(sb, private, token):
    reply = private.request('subscribe', channel='margin', asset_class=D, token='made-up')
    assert (reply['success'], reply['error']) == (False, 'ESession:Invalid session')
    assert sb.feed is not None
    sb.feed.tokens[token][1] -= 901  # issued over 15 minutes ago and never used
    reply = private.request('subscribe', channel='margin', asset_class=D, token=token)
    assert reply['error'] == 'ESession:Invalid session'
    bad = order(private, 'made-up')
    assert (bad['success'], bad['error']) == (False, 'ESession:Invalid session')
    private.alive()


# -- executions: the same orders as futures REST ---------------------------------------------

def test_an_order_placed_over_uws_is_a_futures_order_in_openorders_and_its_fill_in_fills(
        sb, private, token, futures):
    private.request('subscribe', channel='executions', asset_class=D, token=token)
    assert private.wait(channel('executions', 'snapshot'))['data'] == []
    placed = order(private, token, cl_ord_id='my-1')
    order_id = placed['result']['order_id']
    assert placed['result'] == {'order_id': order_id, 'cl_ord_id': 'my-1'}
    assert str(uuid.UUID(order_id)) == order_id
    listed = futures.query_private('openorders')['openOrders']
    assert [(o['order_id'], o['cliOrdId'], Decimal(str(o['unfilledSize']))) for o in listed] \
        == [(order_id, 'my-1', Decimal('0.5'))]
    new = private.wait(channel('executions', 'update'))
    assert new['data'][0] | {'timestamp': None} == {
        'order_id': order_id, 'exec_type': 'new', 'order_status': 'new', 'symbol': 'PF_XBTUSD',
        'side': 'buy', 'order_type': 'limit', 'order_qty': Decimal('0.5'), 'cum_qty': 0,
        'limit_price': 59000, 'time_in_force': 'gtc', 'post_only': False,
        'reduce_only': False, 'cl_ord_id': 'my-1', 'timestamp': None}
    sb.futures.set_price('PF_XBTUSD', 58900)  # the order fills
    trade = private.wait(channel('executions', 'update'))['data'][0]
    fills = futures.query_private('fills')['fills']
    assert (trade['exec_type'], trade['exec_id'], trade['last_qty']) == (
        'trade', fills[0]['fill_id'], Decimal('0.5'))
    assert fills[0]['order_id'] == order_id
    filled = private.wait(channel('executions', 'update'))
    assert filled['data'][0]['exec_type'] == 'filled'
    assert [new['sequence'], filled['sequence']] == [2, 4]


def test_an_order_placed_over_futures_rest_shows_on_the_executions_channel(
        private, token, futures):
    private.request('subscribe', channel='executions', asset_class=D, token=token)
    private.wait(channel('executions', 'snapshot'))
    status = futures.query_private('sendorder', {'orderType': 'lmt', 'symbol': 'PF_ETHUSD',
                                                 'side': 'sell', 'size': '1.5',
                                                 'limitPrice': '3100'})['sendStatus']
    report = private.wait(channel('executions', 'update'))['data'][0]
    assert (report['order_id'], report['exec_type'], report['symbol'], report['side'],
            report['order_qty']) == (status['order_id'], 'new', 'PF_ETHUSD', 'sell',
                                     Decimal('1.5'))
    futures.query_private('cancelorder', {'order_id': status['order_id']})
    assert private.wait(channel('executions', 'update'))['data'][0]['exec_type'] == 'canceled'


def test_the_executions_snapshot_holds_the_open_orders_and_with_snap_trades_the_fills(
        private, token, futures):
    resting = order(private, token)['result']['order_id']
    order(private, token, order_type='market', limit_price=None, order_qty=0.1)
    private.request('subscribe', channel='executions', asset_class=D, token=token,
                    snap_trades=True)
    data = private.wait(channel('executions', 'snapshot'))['data']
    assert [(r['exec_type'], r['order_status']) for r in data] == [('new', 'new'),
                                                                  ('trade', 'filled')]
    assert data[0]['order_id'] == resting


# -- positions, margin, ledgers, balances ----------------------------------------------------

def test_positions_give_one_snapshot_then_the_changed_positions_and_size_zero_once_closed(
        private, token):
    order(private, token, order_type='market', limit_price=None, order_qty=0.2)
    reply = private.request('subscribe', channel='positions', asset_class=D, token=token)
    assert reply['success'] is True
    snapshot = private.wait(channel('positions', 'snapshot'))['data']
    assert snapshot['options'] == []
    assert [(p['symbol'], p['size']) for p in snapshot['futures']] == [('PF_XBTUSD',
                                                                       Decimal('0.2'))]
    order(private, token, order_type='market', limit_price=None, order_qty=0.5, side='sell',
          symbol='PF_XBTUSD')
    short = private.wait(channel('positions', 'update'))['data']['futures']
    assert [(p['symbol'], p['size']) for p in short] == [('PF_XBTUSD', Decimal('-0.3'))]
    order(private, token, order_type='market', limit_price=None, order_qty=0.3)
    closed = private.wait(channel('positions', 'update'))['data']['futures']
    assert [(p['symbol'], p['size']) for p in closed] == [('PF_XBTUSD', 0)]
    again = private.request('subscribe', channel='positions', asset_class=D, token=token)
    assert (again['success'], again['error']) == (False,
                                                  'Already subscribed to positions channel')
    private.alive()


def test_positions_refuse_snapshot_with_with_margin_and_with_margin_adds_margins(
        private, token):
    both = private.request('subscribe', channel='positions', asset_class=D, token=token,
                           snapshot=True, with_margin=True)
    assert both['error'] == ('EGeneral:Invalid arguments:snapshot and with_margin cannot be '
                             'combined')
    assert private.request('subscribe', channel='positions', asset_class=D, token=token,
                           with_margin=True)['success'] is True
    order(private, token, order_type='market', limit_price=None, order_qty=0.2)
    position = private.wait(channel('positions'))
    assert position['type'] == 'update'  # with_margin: no snapshot
    assert {'initial_margin', 'maintenance_margin'} <= set(position['data']['futures'][0])


def test_margin_is_the_futures_accounts_margin_once_per_connection_and_takes_no_snapshot(
        private, token, futures):
    refused = private.request('subscribe', channel='margin', asset_class=D, token=token,
                              snapshot=True)
    assert refused['error'] == "'params.snapshot' is not valid for the margin channel"
    private.request('subscribe', channel='margin', asset_class=D, token=token)
    margin = private.wait(channel('margin', 'snapshot'))['data'][0]
    flex = futures.query_private('accounts')['accounts']['flex']
    assert margin['portfolio_value'] == Decimal(str(flex['portfolioValue']))
    assert margin['available_margin'] == Decimal(str(flex['availableMargin']))
    assert set(margin) == {'portfolio_value', 'collateral_value', 'initial_margin',
                           'maintenance_margin', 'available_margin', 'pnl',
                           'unrealized_funding'}
    again = private.request('subscribe', channel='margin', asset_class=D, token=token)
    assert again['error'] == 'Already subscribed to margin channel'
    order(private, token)  # a resting order takes margin
    assert private.wait(channel('margin', 'update'))['data'][0]['available_margin'] < \
        margin['available_margin']


def test_ledgers_refuse_asset_class_and_number_their_updates_per_connection(
        sb, private, token):
    refused = private.request('subscribe', channel='ledgers', asset_class=D, token=token)
    assert refused['error'] == "'params.asset_class' is not valid for the ledgers channel"
    assert private.request('subscribe', channel='ledgers', token=token)['success'] is True
    order(private, token, order_type='market', limit_price=None, order_qty=0.1)
    first = private.wait(channel('ledgers'))
    assert (first['type'], first['sequence']) == ('update', 1)
    entry = first['data'][0]
    assert (entry['asset_class'], entry['asset'], entry['type'], entry['symbol']) == (
        D, 'USD', 'trade', 'PF_XBTUSD')
    assert entry['amount'] < 0  # the fee
    order(private, token, order_type='market', limit_price=None, order_qty=0.1)
    assert private.wait(channel('ledgers'))['sequence'] == 2
    with connect(sb.unified_auth_url, open_timeout=WAIT) as socket:
        other = Peer(socket)
        other.request('subscribe', channel='ledgers', token=token)
        order(private, token, order_type='market', limit_price=None, order_qty=0.1)
        assert other.wait(channel('ledgers'))['sequence'] == 1


def test_balances_show_the_futures_accounts_funds_without_asset_class(private, token, futures):
    refused = private.request('subscribe', channel='balances', asset_class=D, token=token)
    assert refused['error'] == "Unsupported field: 'asset_class' for the given msg type: subscribe"
    private.request('subscribe', channel='balances', token=token)
    balances = {b['asset']: b['balance']
                for b in private.wait(channel('balances', 'snapshot'))['data']}
    currencies = futures.query_private('accounts')['accounts']['flex']['currencies']
    assert balances == {c: Decimal(str(v['quantity'])) for c, v in currencies.items()}


# -- trading methods -------------------------------------------------------------------------

@pytest.mark.parametrize('field, value', [('display_qty', 0.1), ('expire_time', '2027-01-01'),
                                          ('fee_preference', 'quote'), ('margin', True),
                                          ('order_userref', 7)])
def test_order_fields_derivatives_do_not_take_are_refused_naming_the_field(
        private, token, futures, field, value):
    reply = order(private, token, **{field: value})
    assert (reply['success'], reply['error']) == (
        False, f'EGeneral:Invalid arguments:{field} is not supported for derivatives')
    assert futures.query_private('openorders')['openOrders'] == []
    private.alive()


@pytest.mark.parametrize('fields, error', [
    ({'asset_class': None}, 'EGeneral:Invalid arguments:asset_class'),
    ({'asset_class': 'spot'}, 'EGeneral:Invalid arguments:asset_class spot is not available yet'),
    ({'order_qty': '0.5'}, 'Order_qty field must be a number_float'),
    ({'order_qty': None}, 'EGeneral:Invalid arguments:order_qty'),
    ({'limit_price': -1}, 'EOrder:Invalid price:Invalid price argument'),
    ({'order_type': 'iceberg'}, 'EGeneral:Invalid arguments:order_type'),
    ({'side': 'up'}, 'EGeneral:Invalid arguments:side'),
    ({'symbol': 'BTC/USD'}, 'EGeneral:Invalid arguments:invalidArgument'),
    ({'order_qty': 0.00001}, 'EOrder:invalidSize'),
    ({'limit_price': 59000.5}, 'EOrder:invalidPrice'),
    ({'order_qty': 1000}, 'EOrder:insufficientAvailableFunds'),
    ({'post_only': 'yes'}, 'Post_only field must be a boolean'),
    ({'time_in_force': 'gtd'},
     'EGeneral:Invalid arguments:time_in_force gtd is not supported for derivatives'),
    ({'order_type': 'stop-loss', 'limit_price': None}, 'EGeneral:Invalid arguments:triggers'),
    ({'colour': 'red'}, "Unsupported field: 'colour' for the given msg type: add_order"),
])
def test_bad_orders_are_refused_with_a_clear_error_place_nothing_and_keep_the_connection(
        private, token, futures, fields, error):
    reply = order(private, token, **fields)
    assert (reply['success'], reply['error']) == (False, error)
    assert futures.query_private('openorders')['openOrders'] == []
    private.alive()


def test_batch_add_places_every_order_of_one_contract_or_none_of_a_bad_batch(
        private, token, futures):
    two = [{'order_type': 'limit', 'side': 'buy', 'order_qty': 0.1, 'limit_price': 58000},
           {'order_type': 'limit', 'side': 'sell', 'order_qty': 0.2, 'limit_price': 62000,
            'cl_ord_id': 'b'}]
    bad = private.request('batch_add', symbol='PF_XBTUSD', token=token,
                          orders=two, asset_class='spot')
    assert bad['success'] is False
    worse = private.request('batch_add', symbol='PF_XBTUSD', token=token, asset_class=D,
                            orders=[two[0], {**two[1], 'margin': True}])
    assert worse['error'] == 'EGeneral:Invalid arguments:margin is not supported for derivatives'
    assert futures.query_private('openorders')['openOrders'] == []
    reply = private.request('batch_add', symbol='PF_XBTUSD', token=token, asset_class=D,
                            orders=two)
    ids = {o['order_id'] for o in futures.query_private('openorders')['openOrders']}
    assert {r['order_id'] for r in reply['result']} == ids and len(ids) == 2
    assert reply['result'][1]['cl_ord_id'] == 'b'


def test_amend_cancel_and_cancel_all_act_on_the_futures_orders(private, token, futures):
    first = order(private, token)['result']['order_id']
    amended = private.request('amend_order', order_id=first, order_qty=0.7, limit_price=58500,
                              asset_class=D, token=token)
    assert amended['result']['order_id'] == first and uuid.UUID(amended['result']['amend_id'])
    listed = futures.query_private('openorders')['openOrders'][0]
    assert (Decimal(str(listed['unfilledSize'])), Decimal(str(listed['limitPrice']))) == (
        Decimal('0.7'), Decimal(58500))
    assert private.request('cancel_order', order_id=[first], asset_class=D,
                           token=token)['result'] == {'order_id': first}
    gone = private.request('cancel_order', order_id=[first], asset_class=D, token=token)
    assert gone['error'] == 'EOrder:Unknown order'
    bad_id = private.request('cancel_order', order_id=['OABC-123'], asset_class=D, token=token)
    assert bad_id['error'] == 'EGeneral:Invalid arguments:order_id'
    for _ in range(3):
        order(private, token)
    ids = [o['order_id'] for o in futures.query_private('openorders')['openOrders']]
    assert private.request('batch_cancel', orders=ids[:2], asset_class=D,
                           token=token)['result'] == {'count': 2}
    assert private.request('cancel_all', asset_class=D, token=token)['result'] == {'count': 1}
    assert futures.query_private('openorders')['openOrders'] == []


def test_cancel_all_orders_after_and_set_preference_reach_the_futures_account(
        private, token, futures):
    armed = private.request('cancel_all_orders_after', timeout=60, token=token)['result']
    assert set(armed) == {'currentTime', 'triggerTime'} and armed['triggerTime'] > \
        armed['currentTime']
    assert private.request('cancel_all_orders_after', timeout=-1,
                           token=token)['error'] == 'EGeneral:Invalid arguments:timeout'
    reply = private.request('set_preference', asset_class=D, token=token,
                            leverage_mode={'symbol': 'PF_XBTUSD', 'max_leverage': 10})
    assert reply['success'] is True
    assert futures.query_private('leveragepreferences')['leveragePreferences'] == [
        {'symbol': 'PF_XBTUSD', 'maxLeverage': 10}]
    private.request('set_preference', asset_class=D, token=token,
                    leverage_mode={'symbol': 'PF_XBTUSD', 'max_leverage': None})
    assert futures.query_private('leveragepreferences')['leveragePreferences'] == []
    refused = private.request('set_preference', token=token,
                              leverage_mode={'symbol': 'PF_XBTUSD', 'max_leverage': 10})
    assert refused['error'] == 'EGeneral:Invalid arguments:asset_class'


def test_trading_on_the_public_endpoint_is_refused(public, token):
    reply = order(public, token)
    assert reply['error'] == 'EGeneral:Permission denied: use the authenticated endpoint'


# -- the spot feed's faults apply ------------------------------------------------------------

def test_the_feeds_faults_reach_unified_connections(sb, public):
    assert sb.feed is not None
    sb.feed.inject('bad_checksum')
    public.request('subscribe', channel='book', symbol=['PF_XBTUSD'], asset_class=D)
    data = public.wait(channel('book', 'snapshot'))['data'][0]
    book = {side: {str(b['price']): str(b['qty']) for b in data[side]}
            for side in ('bids', 'asks')}
    assert data['checksum'] != crc(book, 0, 4)
    sb.feed.inject('drop')
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            public.read()


def test_a_private_channel_unsubscribes_once_and_then_is_not_subscribed(private, token):
    private.request('subscribe', channel='margin', asset_class=D, token=token)
    assert private.request('unsubscribe', channel='margin', asset_class=D,
                           token=token)['success'] is True
    again = private.request('unsubscribe', channel='margin', asset_class=D, token=token)
    assert (again['success'], again['error']) == (False, 'Subscription Not Found')
    assert private.request('subscribe', channel='margin', asset_class=D,
                           token=token)['success'] is True  # once more, after unsubscribing


@pytest.mark.parametrize('fields', [{}, {'order_id': 'ID', 'cl_ord_id': 'x'},
                                    {'order_id': 'not-a-uuid'}])
def test_amend_order_needs_exactly_one_good_order_id_or_cl_ord_id(private, token, fields):
    placed = order(private, token, cl_ord_id='x')['result']['order_id']
    fields = {k: placed if v == 'ID' else v for k, v in fields.items()}
    reply = private.request('amend_order', asset_class=D, token=token, order_qty=0.6, **fields)
    assert (reply['success'], reply['error']) == (False, 'EGeneral:Invalid arguments:order_id')
    by_cl = private.request('amend_order', asset_class=D, token=token, order_qty=0.6,
                            cl_ord_id='x')
    assert by_cl['result']['order_id'] == placed


HOSTILE = [
    ('subscribe', {'channel': 'book', 'symbol': ['PF_XBTUSD'], 'depth': 10.0}),
    ('subscribe', {'channel': 'book', 'symbol': ['PF_XBTUSD'], 'depth': '10'}),
    ('subscribe', {'channel': 'book', 'symbol': ['PF_XBTUSD'], 'depth': True}),
    ('subscribe', {'channel': 'ohlc', 'symbol': ['PF_XBTUSD'], 'interval': 1.0}),
    ('subscribe', {'channel': 'ohlc', 'symbol': ['PF_XBTUSD'], 'interval': '1'}),
    ('subscribe', {'channel': 'ohlc', 'symbol': ['PF_XBTUSD'], 'tick_type': 5}),
    ('subscribe', {'channel': 'ohlc', 'symbol': ['PF_XBTUSD'], 'tick_type': ['mark']}),
    ('subscribe', {'channel': 'trade', 'symbol': [1, None, {}, []]}),
    ('subscribe', {'channel': 'trade', 'symbol': ['PF_XBTUSD'], 'snapshot': 1}),
    ('subscribe', {'channel': 'instrument', 'snapshot': 'no'}),
    ('subscribe', {'channel': 'ticker', 'symbol': ['PF_XBTUSD'], 'event_trigger': 'often'}),
    ('subscribe', {'channel': 'ticker', 'symbol': ['PF_XBTUSD'], 'event_trigger': ['bbo']}),
    ('subscribe', {'channel': 5}),
    ('subscribe', {'channel': ['book']}),
    ('subscribe', {}),
    ('subscribe', {'channel': 'executions', 'snap_orders': 'no'}),
    ('subscribe', {'channel': 'positions', 'with_margin': 1}),
    ('subscribe', {'channel': 'executions', 'token': 5}),
    ('subscribe', {'channel': 'executions', 'token': ['t']}),
    ('add_order', {'order_qty': True}),
    ('add_order', {'order_qty': Decimal('1E+400')}),
    ('add_order', {'order_qty': -1}),
    ('add_order', {'order_qty': 0}),
    ('add_order', {'limit_price': 'abc'}),
    ('add_order', {'limit_price': Decimal('1E+400')}),
    ('add_order', {'symbol': 5}),
    ('add_order', {'symbol': ['PF_XBTUSD']}),
    ('add_order', {'side': None, 'order_type': 5}),
    ('add_order', {'order_type': 'stop-loss', 'limit_price': None, 'triggers': []}),
    ('add_order', {'order_type': 'stop-loss', 'limit_price': None, 'triggers': {'price': 'x'}}),
    ('add_order', {'order_type': 'stop-loss', 'limit_price': None,
                   'triggers': {'price': 60000, 'reference': 'mark'}}),
    ('add_order', {'order_type': 'stop-loss', 'limit_price': None,
                   'triggers': {'price': 60000, 'price_type': 'pct'}}),
    ('add_order', {'triggers': {'price': 60000}}),
    ('add_order', {'limit_price_type': 'pct'}),
    ('add_order', {'cl_ord_id': 5}),
    ('add_order', {'cl_ord_id': 'x' * 200}),
    ('add_order', {'time_in_force': 'ioc', 'post_only': True}),
    ('add_order', {'order_type': 'market', 'post_only': True, 'limit_price': None}),
    ('add_order', {'reduce_only': 'true'}),
    ('add_order', {'reduce_only': True}),
    ('add_order', {'validate': 'yes'}),
    ('batch_add', {'symbol': 'PF_XBTUSD', 'orders': 'x'}),
    ('batch_add', {'symbol': 'PF_XBTUSD', 'orders': [1, 2]}),
    ('batch_add', {'symbol': 'PF_XBTUSD', 'orders': [{}]}),
    ('batch_add', {'symbol': 5, 'orders': [{}, {}]}),
    ('batch_add', {'orders': [{'symbol': 'PF_ETHUSD'}, {}], 'symbol': 'PF_XBTUSD'}),
    ('amend_order', {'order_id': 5, 'order_qty': 1}),
    ('amend_order', {'cl_ord_id': 'nobody', 'order_qty': 1}),
    ('amend_order', {'cl_ord_id': 'nobody'}),
    ('amend_order', {'cl_ord_id': 'nobody', 'order_qty': 'x'}),
    ('cancel_order', {'order_id': 'x'}),
    ('cancel_order', {'order_id': [5]}),
    ('cancel_order', {'cl_ord_id': ['']}),
    ('cancel_order', {}),
    ('cancel_order', {'order_userref': [1]}),
    ('batch_cancel', {'orders': [str(uuid.UUID(int=1))]}),
    ('batch_cancel', {'orders': 'x'}),
    ('batch_cancel', {'orders': [str(uuid.UUID(int=n)) for n in range(51)]}),
    ('cancel_all', {'symbol': 'PF_XBTUSD'}),
    ('cancel_all_orders_after', {'timeout': 1.5}),
    ('cancel_all_orders_after', {'timeout': True}),
    ('cancel_all_orders_after', {'timeout': 86401}),
    ('cancel_all_orders_after', {}),
    ('set_preference', {'leverage_mode': 'x'}),
    ('set_preference', {'leverage_mode': {'symbol': 'PF_XBTUSD'}}),
    ('set_preference', {'leverage_mode': {'symbol': 'PF_XBTUSD', 'max_leverage': 'x'}}),
    ('set_preference', {'leverage_mode': {'symbol': 'PF_XBTUSD', 'max_leverage': 500}}),
    ('set_preference', {'leverage_mode': {'symbol': 'NOPE', 'max_leverage': 5}}),
    ('edit_order', {}),
    ('level3', {}),
]


def test_hostile_requests_are_each_refused_with_an_error_and_the_connection_kept(
        private, token, futures):
    orders = {'order_type': 'limit', 'side': 'buy', 'order_qty': 0.1, 'symbol': 'PF_XBTUSD',
              'limit_price': 59000}
    for method, params in HOSTILE:
        base = {'token': token, 'asset_class': D} | (orders if method == 'add_order' else {})
        if method == 'subscribe' and params.get('channel') not in ('executions', 'positions'):
            base.pop('token')
        reply = private.request(method, **(base | params))
        assert reply['success'] is False and reply['error'], (method, params, reply)
    private.alive()
    assert futures.query_private('openorders')['openOrders'] == []


def test_cancel_all_orders_after_cancels_when_the_timer_runs_out_and_executions_say_so(
        private, token, futures):
    placed = order(private, token)['result']['order_id']
    private.request('subscribe', channel='executions', asset_class=D, token=token)
    private.wait(channel('executions', 'snapshot'))
    private.request('cancel_all_orders_after', timeout=1, token=token)
    report = private.wait(lambda m: m.get('channel') == 'executions'
                          and m['data'][0]['exec_type'] == 'canceled')['data'][0]
    assert report['order_id'] == placed
    assert futures.query_private('openorders')['openOrders'] == []
