"""Kraken's Unified WebSocket rules as the session and the client apply them, with plain messages.

No socket: each test tells a :class:`Session` for the Unified WebSocket what arrived and what
the user asked, or asks an unconnected :class:`AsyncWS` to send something Kraken refuses for
derivatives, and reads what krakenex decided.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal
from typing import Any

import pytest

from krakenex import API, KrakenUsageError
from krakenex.ws import UNIFIED_AUTH_URL, UNIFIED_URL, WS, AsyncWS, ResyncBackoff
from krakenex.ws.book import checksum
from krakenex.ws.client import endpoint_urls
from krakenex.ws.protocol import AUTH, PUBLIC
from krakenex.ws.session import Deliver, Precisions, Session
from krakenex.ws.unified import REFUSED_FOR_DERIVATIVES, Unified

D = Decimal
PUBLIC_URL = 'ws://127.0.0.1:1/uws/v2/public'


def session(private: bool = False, asset_class: str = 'derivatives') -> Session:
    return Session(PUBLIC_URL, private=private, precisions=Precisions(),
                   resync_backoff=ResyncBackoff(), ids=itertools.count(1),
                   unified=Unified(asset_class))


def sent(s: Session, method: str, params: dict[str, Any]) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(s.sending(s.prepare(method, params, now=0.0)))
    return frame.get('params', {})


def delivered(events: list[Any]) -> list[dict[str, Any]]:
    return [e.message for e in events if isinstance(e, Deliver)]


def notices(events: list[Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in delivered(events) if m.get('channel') == 'krakenex' and m['type'] == kind]


def text(message: dict[str, Any]) -> str:
    return json.dumps(message)


# -- endpoints ---------------------------------------------------------------------------------

def test_unified_picks_krakens_uws_endpoints_unless_the_environment_names_others(monkeypatch):
    for name in ('KRAKEN_UWS_URL', 'KRAKEN_UWS_AUTH_URL', 'KRAKEN_WS_URL', 'KRAKEN_WS_AUTH_URL'):
        monkeypatch.delenv(name, raising=False)
    assert endpoint_urls(None, None, None, unified=True)[:2] == (UNIFIED_URL, UNIFIED_AUTH_URL)
    assert UNIFIED_URL == 'wss://uws.kraken.com/v2/public'
    assert UNIFIED_AUTH_URL == 'wss://uws.kraken.com/v2/private'
    monkeypatch.setenv('KRAKEN_UWS_URL', 'ws://127.0.0.1:9/uws/v2/public')
    monkeypatch.setenv('KRAKEN_UWS_AUTH_URL', 'ws://127.0.0.1:9/uws/v2/private')
    monkeypatch.setenv('KRAKEN_WS_URL', 'ws://127.0.0.1:9/ws')
    assert endpoint_urls(None, None, None, unified=True)[:2] == (
        'ws://127.0.0.1:9/uws/v2/public', 'ws://127.0.0.1:9/uws/v2/private')
    assert endpoint_urls(None, None, None)[0] == 'ws://127.0.0.1:9/ws'  # spot keeps its own
    assert endpoint_urls('ws://h/given', None, None, unified=True)[0] == 'ws://h/given'


def test_the_sync_and_async_clients_take_unified_and_asset_class_and_spot_refuses_it(monkeypatch):
    monkeypatch.delenv('KRAKEN_UWS_URL', raising=False)

    async def make() -> AsyncWS:
        return AsyncWS(unified=True, asset_class='derivatives')

    client = asyncio.run(make())
    assert client.url == UNIFIED_URL and client.unified is not None
    with WS(unified=True) as ws:
        assert ws._ws.url == UNIFIED_URL and ws._ws.unified.asset_class == 'derivatives'
    with pytest.raises(KrakenUsageError, match='unified=True'):
        WS(asset_class='derivatives')


@pytest.mark.parametrize(('name', 'where'), [
    ('book', PUBLIC), ('ticker', PUBLIC), ('instrument', PUBLIC), ('ping', PUBLIC),
    ('executions', AUTH), ('positions', AUTH), ('margin', AUTH), ('ledgers', AUTH),
    ('balances', AUTH), ('preferences', AUTH), ('add_order', AUTH), ('set_preference', AUTH),
    ('cancel_all_orders_after', AUTH)])
def test_private_channels_and_trading_go_to_v2_private_and_market_data_to_v2_public(name, where):
    assert Unified.endpoint(name) == where


def test_level3_is_refused_on_the_unified_websocket_before_anything_connects():
    with pytest.raises(KrakenUsageError, match='level3'):
        Unified.endpoint('level3')


# -- asset_class -------------------------------------------------------------------------------

@pytest.mark.parametrize('channel', ['ticker', 'book', 'trade', 'ohlc', 'instrument',
                                     'executions', 'margin', 'positions'])
@pytest.mark.parametrize('method', ['subscribe', 'unsubscribe'])
def test_asset_class_is_added_to_every_channel_that_takes_it(channel, method):
    assert sent(session(), method, {'channel': channel})['asset_class'] == 'derivatives'


@pytest.mark.parametrize('method', ['add_order', 'batch_add', 'amend_order', 'cancel_order',
                                    'cancel_all', 'batch_cancel', 'set_preference'])
def test_asset_class_is_added_to_every_method_that_takes_it_with_the_token(method):
    s = session(private=True)
    s.opened('T0KEN')
    params = sent(s, method, {'symbol': 'PF_XBTUSD'})
    assert params['asset_class'] == 'derivatives' and params['token'] == 'T0KEN'


@pytest.mark.parametrize(('method', 'params'), [
    ('subscribe', {'channel': 'ledgers'}), ('subscribe', {'channel': 'balances'}),
    ('subscribe', {'channel': 'preferences'}), ('ping', {}),
    ('cancel_all_orders_after', {'timeout': 60})])
def test_asset_class_is_never_added_where_kraken_refuses_or_ignores_it(method, params):
    assert 'asset_class' not in sent(session(private=True), method, params)


def test_an_asset_class_the_user_gives_wins_and_is_kept_for_reconnects():
    s = session()
    assert sent(s, 'subscribe', {'channel': 'ticker', 'asset_class': 'spot'})['asset_class'] \
        == 'spot'
    s.subscribing('ticker', {'symbol': ['PF_XBTUSD']}, 0)
    [again] = s.reconnect_requests()
    assert sent(s, again.method, again.params)['asset_class'] == 'derivatives'
    assert sent(session(asset_class='spot'), 'add_order', {})['asset_class'] == 'spot'


# -- derivatives rules, refused before sending -------------------------------------------------

@pytest.mark.parametrize('field', sorted(REFUSED_FOR_DERIVATIVES))
def test_an_order_field_kraken_refuses_for_derivatives_is_refused_by_name(field):
    order = {'order_type': 'limit', 'side': 'buy', 'order_qty': 1, 'symbol': 'PF_XBTUSD',
             'limit_price': 61000, field: 1}
    with pytest.raises(KrakenUsageError, match=f'{field} for derivatives'):
        Unified().check_request('add_order', order)
    with pytest.raises(KrakenUsageError, match=field):
        Unified().check_request('batch_add', {'symbol': 'PF_XBTUSD',
                                              'orders': [{'order_qty': 1}, order]})
    Unified().check_request('add_order', {**order, 'asset_class': 'spot'})  # spot takes it


def test_cancel_order_by_order_userref_is_refused_and_cl_ord_id_goes_through():
    with pytest.raises(KrakenUsageError, match='use cl_ord_id'):
        Unified().check_request('cancel_order', {'order_userref': [7]})
    Unified().check_request('cancel_order', {'cl_ord_id': ['mine-1']})


def test_the_client_refuses_a_derivatives_order_field_before_it_connects_or_sends():
    async def place() -> int:
        async with AsyncWS(API('key', 'c2VjcmV0'), unified=True,
                           url='ws://127.0.0.1:1/p', auth_url='ws://127.0.0.1:1/q') as ws:
            with pytest.raises(KrakenUsageError, match='order_userref'):
                await ws.request('add_order', symbol='PF_XBTUSD', order_userref=5)
            with pytest.raises(KrakenUsageError, match='asset_class'):
                await ws.subscribe('ledgers', asset_class='derivatives')
            return ws.orders_sent + len(ws._connections[AUTH].session.subs)

    assert asyncio.run(place()) == 0


@pytest.mark.parametrize(('channel', 'params', 'says'), [
    ('ledgers', {'asset_class': 'derivatives'}, 'not valid for the ledgers channel'),
    ('margin', {'snapshot': True}, 'not valid for the margin channel'),
    ('positions', {'snapshot': False, 'with_margin': True}, 'never both')])
def test_a_subscription_kraken_refuses_is_refused_before_sending(channel, params, says):
    with pytest.raises(KrakenUsageError, match=says):
        session(private=True).check_subscription(channel, params)


def test_positions_with_margin_alone_is_sent_without_snapshot():
    s = session(private=True)
    s.check_subscription('positions', {'with_margin': True})
    assert 'snapshot' not in sent(s, 'subscribe', {'channel': 'positions', 'with_margin': True})


@pytest.mark.parametrize('channel', ['positions', 'margin'])
def test_a_second_positions_or_margin_subscription_on_a_connection_is_refused(channel):
    s = session(private=True)
    s.check_subscription(channel, {})
    s.subscribing(channel, {}, 0)
    with pytest.raises(KrakenUsageError, match=f'one {channel} subscription per connection'):
        s.check_subscription(channel, {})
    s.unsubscribing(channel, {})
    s.check_subscription(channel, {})  # once unsubscribed, it may come again


# -- positions and margin ----------------------------------------------------------------------

def positions(kind: str, *entries: dict[str, Any]) -> str:
    return text({'channel': 'positions', 'type': kind,
                 'data': {'futures': list(entries), 'options': []}})


def test_positions_fold_the_snapshot_and_the_deltas_and_a_size_of_zero_closes_one():
    s = session(private=True)
    s.receive(positions('update', {'symbol': 'PF_SOLUSD', 'size': 3}), 0.0)
    assert s.positions.current is None  # an update before the snapshot shows nothing
    s.receive(positions('snapshot', {'symbol': 'PF_XBTUSD', 'size': 0.5, 'entry_price': 61000.5},
                        {'symbol': 'PF_ETHUSD', 'size': -2, 'entry_price': 3000}), 0.0)
    events = s.receive(positions('update', {'symbol': 'PF_ETHUSD', 'size': 0},
                                 {'symbol': 'PF_SOLUSD', 'size': 10, 'entry_price': 150}), 0.0)
    assert delivered(events)[0]['channel'] == 'positions'  # the user sees Kraken's message
    assert s.positions.current == {
        'PF_XBTUSD': {'symbol': 'PF_XBTUSD', 'size': D('0.5'), 'entry_price': D('61000.5')},
        'PF_SOLUSD': {'symbol': 'PF_SOLUSD', 'size': 10, 'entry_price': 150}}
    s.receive(positions('snapshot'), 0.0)
    assert s.positions.current == {}


def test_positions_and_margin_wait_for_a_new_snapshot_once_the_socket_is_lost():
    s = session(private=True)
    s.receive(positions('snapshot', {'symbol': 'PF_XBTUSD', 'size': 1}), 0.0)
    s.receive(text({'channel': 'margin', 'type': 'snapshot',
                    'data': [{'available_margin': 10}]}), 0.0)
    s.lost(KrakenUsageError('gone'))
    assert s.positions.current is None and s.margin.current is None
    s.receive(positions('update', {'symbol': 'PF_XBTUSD', 'size': 2}), 0.0)
    assert s.positions.current is None


def test_unsubscribing_positions_or_margin_drops_the_view_until_the_next_subscription_speaks():
    s = session(private=True)
    s.subscribing('positions', {}, 10)
    s.subscribing('margin', {}, 10)
    s.receive(positions('snapshot', {'symbol': 'PF_XBTUSD', 'size': 1},
                        {'symbol': 'PF_ETHUSD', 'size': 2}), 0.0)
    s.receive(text({'channel': 'margin', 'type': 'snapshot',
                    'data': [{'available_margin': 10, 'pnl': 1}]}), 0.0)
    s.unsubscribing('positions', {})
    s.unsubscribing('margin', {})
    assert s.positions.current is None and s.margin.current is None
    # subscribed again without a snapshot: updates alone never show the old positions
    s.subscribing('positions', {'snapshot': False}, 10)
    s.receive(positions('update', {'symbol': 'PF_SOLUSD', 'size': 3}), 0.0)
    assert s.positions.current is None
    s.subscribing('margin', {}, 10)
    s.receive(text({'channel': 'margin', 'type': 'snapshot', 'data': [{'available_margin': 7}]}),
              0.0)
    assert s.margin.current == {'available_margin': 7}


def test_a_positions_message_krakenex_cannot_read_is_a_bad_message_and_the_view_waits():
    s = session(private=True)
    s.receive(positions('snapshot', {'symbol': 'PF_XBTUSD', 'size': 1}), 0.0)
    events = s.receive(positions('update', {'size': 1}), 0.0)
    assert notices(events, 'bad_message') and s.positions.current is None


def test_margin_is_the_latest_state_each_message_over_the_ones_before():
    s = session(private=True)
    s.receive(text({'channel': 'margin', 'type': 'snapshot', 'data': [
        {'portfolio_value': 1000, 'available_margin': 900, 'pnl': 0}]}), 0.0)
    s.receive(text({'channel': 'margin', 'type': 'update', 'data': [
        {'available_margin': 850.5, 'pnl': -3}]}), 0.0)
    assert s.margin.current == {'portfolio_value': 1000, 'available_margin': D('850.5'),
                                'pnl': -3}


def test_the_client_views_say_what_is_missing():
    async def look() -> None:
        async with AsyncWS(API('key', 'c2VjcmV0'), unified=True,
                           url='ws://127.0.0.1:1/p', auth_url='ws://127.0.0.1:1/q') as ws:
            with pytest.raises(KrakenUsageError, match="subscribe\\('positions'\\)"):
                ws.positions()
            with pytest.raises(KrakenUsageError, match="subscribe\\('margin'\\)"):
                ws.margin()

    asyncio.run(look())


# -- ledgers and executions: sequence per connection -------------------------------------------

def ledger(sequence: int) -> str:
    return text({'channel': 'ledgers', 'type': 'update', 'sequence': sequence,
                 'data': [{'asset_class': 'derivatives', 'asset': 'USD', 'amount': 1}]})


def test_a_skipped_ledgers_number_is_a_gap_and_a_new_connection_counts_afresh():
    s = session(private=True)
    assert notices(s.receive(ledger(1), 0.0), 'gap') == []
    assert notices(s.receive(ledger(2), 0.0), 'gap') == []
    assert notices(s.receive(ledger(4), 0.0), 'gap') == [
        {'channel': 'krakenex', 'type': 'gap', 'feed': 'ledgers', 'expected': 3, 'received': 4}]
    s.opened('new token')
    assert notices(s.receive(ledger(1), 0.0), 'gap') == []


@pytest.mark.parametrize('feed', ['executions', 'balances'])
def test_a_skipped_executions_or_balances_number_is_a_gap_on_the_unified_websocket_too(feed):
    s = session(private=True)
    s.receive(text({'channel': feed, 'type': 'update', 'data': [], 'sequence': 7}), 0.0)
    events = s.receive(text({'channel': feed, 'type': 'update', 'data': [], 'sequence': 9}), 0.0)
    assert notices(events, 'gap')[0]['feed'] == feed


# -- books at derivatives precision ------------------------------------------------------------

BIDS = [(D('61000.5'), D('1.2500')), (D('61000.0'), D('0.0100'))]
ASKS = [(D('61001.0'), D('0.5000')), (D('61001.5'), D('3.0000'))]


def book(crc: int, kind: str = 'snapshot') -> str:
    """A book message as Kraken writes it: numbers with their trailing zeros."""
    side = lambda levels: ','.join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)  # noqa: E731
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"PF_XBTUSD",'
            f'"bids":[{side(BIDS)}],"asks":[{side(ASKS)}],"checksum":{crc}}}]}}')


def test_a_derivatives_book_is_verified_at_the_precision_the_instrument_channel_gives():
    s = session()
    assert s.needs_instrument('book', {'symbol': ['PF_XBTUSD']})
    instrument = s.instrument_request()
    assert instrument is not None
    assert sent(s, instrument.method, instrument.params)['asset_class'] == 'derivatives'
    s.receive(text({'channel': 'instrument', 'type': 'snapshot', 'data': {'assets': [], 'pairs': [
        {'symbol': 'PF_XBTUSD', 'base': 'XBT', 'quote': 'USD', 'price_precision': 1,
         'qty_precision': 4, 'price_increment': '0.5', 'qty_increment': '0.0001'}]}}), 0.0)
    s.subscribing('book', {'symbol': ['PF_XBTUSD'], 'depth': 10}, 10)
    s.receive(book(checksum(ASKS, BIDS, 1, 4)), 0.0)
    assert s.books['PF_XBTUSD'].verified
    # the checksum at spot's precision of 8 decimals for quantities is not this book's
    events = s.receive(book(checksum(ASKS, BIDS, 1, 8), 'update'), 0.0)
    assert notices(events, 'book_resync')[0]['symbol'] == 'PF_XBTUSD'
    assert not s.books['PF_XBTUSD'].verified
