"""WS on Kraken's Unified WebSocket (derivatives), over a real socket to the sandbox on 127.0.0.1.

The sandbox serves the Unified WebSocket over its futures market and accounts, so what WS
does shows in futures REST (``FuturesAPI`` against ``sb.futures_url``), and the reverse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_ws_client import expect, notice, quick_backoff

from krakenex import API, KrakenUsageError, OutcomeUnknownError
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.ws import WS, AsyncWS, ViewUnavailableError

WAIT = 5.0
SYMBOL = 'PF_XBTUSD'


@pytest.fixture
def futures(sb: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sb.futures.key, sb.futures.secret, uri=sb.futures_url) as client:
        yield client


@pytest.fixture
def ws(sb: Sandbox, api: API) -> Iterator[WS]:
    with WS(api, unified=True, url=sb.unified_url, auth_url=sb.unified_auth_url,
            timeout=WAIT, silence=1.5, backoff=quick_backoff) as client:
        yield client


def channel(name: str, kind: str | None = None) -> Any:
    return lambda m: m.get('channel') == name and (kind is None or m.get('type') == kind)


def market(ws: WS, side: str, qty: str, **fields: Any) -> dict[str, Any]:
    return ws.request('add_order', symbol=SYMBOL, side=side, order_type='market',
                      order_qty=Decimal(qty), **fields)


def expect_all(ws: WS, *matches: Any) -> list[dict[str, Any]]:
    """Read messages until each of ``matches`` has taken one, in whatever order they come."""
    left, seen = list(matches), []
    deadline = time.monotonic() + WAIT
    while left:
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        match = next((m for m in left if m(message)), None)
        if match is not None:
            left.remove(match)
            seen.append(message)
    return seen


def unavailable(view: Any) -> bool:
    try:
        view()
    except ViewUnavailableError:
        return True
    return False


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_environment_variables_pick_the_sandboxs_unified_websocket(sb, api, monkeypatch):
    monkeypatch.setenv('KRAKEN_UWS_URL', sb.unified_url)
    monkeypatch.setenv('KRAKEN_UWS_AUTH_URL', sb.unified_auth_url)
    with WS(api, unified=True, timeout=WAIT) as ws:
        assert ws.request('ping')['method'] == 'pong'
        assert ws.subscribe('margin')[0]['success'] is True


# -- books -------------------------------------------------------------------------------------

@pytest.mark.parametrize(('symbol', 'precisions'), [('PF_XBTUSD', (0, 4)), ('PF_ETHUSD', (1, 3))])
def test_a_derivatives_book_is_verified_at_the_contracts_precision(sb, ws, futures, symbol,
                                                                   precisions):
    ws.subscribe('book', symbol=[symbol], depth=10)
    expect(ws, channel('book', 'snapshot'))
    assert ws._ws.precisions[symbol] == precisions  # the contract's, from instrument
    rest = futures.query_public('orderbook', {'symbol': symbol})['orderBook']
    assert [p for p, _ in ws.book(symbol).bids] == [Decimal(str(p)) for p, _ in rest['bids'][:10]]
    sb.futures.set_price(symbol, '3100' if symbol == 'PF_ETHUSD' else '61000')
    checksum = expect(ws, channel('book', 'update'))['data'][0]['checksum']
    assert ws.book(symbol).checksum == checksum


def test_a_derivatives_book_that_fails_its_checksum_is_subscribed_again(sb, ws):
    ws.subscribe('book', symbol=[SYMBOL], depth=10)
    expect(ws, channel('book', 'snapshot'))
    sb.feed.inject('bad_checksum')
    sb.futures.set_price(SYMBOL, 58000)
    assert expect(ws, notice('book_resync'))['symbol'] == SYMBOL
    expect(ws, channel('book', 'snapshot'))
    assert ws.book(SYMBOL).checksum


# -- reconnects and tokens ---------------------------------------------------------------------

def test_a_dropped_connection_is_reconnected_and_resubscribed_and_the_views_wait_for_it(
        sb, ws):
    ws.subscribe('book', symbol=[SYMBOL], depth=10)
    ws.subscribe('positions')
    ws.subscribe('margin')
    expect_all(ws, channel('positions', 'snapshot'), channel('margin', 'snapshot'))
    assert ws.positions() == {}
    tokens = len(sb.feed.tokens)
    sb.feed.inject('handshake429', times=2)  # the new connection opens a little later
    sb.feed.inject('drop')
    until(lambda: unavailable(ws.positions) and unavailable(ws.margin),
          'the views wait for the new connection')
    seen = expect_all(ws, notice('reconnected'), notice('reconnected'),
                      notice('resubscribed'), notice('resubscribed'),
                      channel('positions', 'snapshot'), channel('margin', 'snapshot'))
    assert sorted((m['subscriptions'] for m in seen if m.get('type') == 'resubscribed'),
                  key=len) == [[{'channel': 'book', 'symbol': [SYMBOL], 'depth': 10}],
                               [{'channel': 'positions'}, {'channel': 'margin'}]]
    until(lambda: ws._ws.books[SYMBOL].verified, 'the book came back')
    assert ws.positions() == {} and 'available_margin' in ws.margin()
    assert len(sb.feed.tokens) > tokens  # a fresh token for the new private connection


def test_a_refused_token_is_fetched_afresh_and_never_shown(sb, ws):
    sb.feed.inject('invalid_session')
    assert ws.subscribe('margin')[0]['success'] is True
    refreshed = expect(ws, notice('token_refreshed'))
    assert 'Invalid session' in refreshed['reason']
    shown = repr(refreshed) + repr(ws.margin())
    assert not any(token in shown for token in sb.feed.tokens)


# -- orders ------------------------------------------------------------------------------------

def test_an_order_over_the_unified_websocket_is_in_futures_rest_openorders(ws, futures):
    placed = ws.request('add_order', symbol=SYMBOL, side='buy', order_type='limit',
                        order_qty=Decimal('0.5'), limit_price=Decimal('50000'),
                        cl_ord_id='uws-1')
    listed = futures.query_private('openorders')['openOrders']
    assert [(o['order_id'], o['cliOrdId']) for o in listed] == [
        (placed['result']['order_id'], 'uws-1')]
    assert ws.request('cancel_order', cl_ord_id=['uws-1'])['success'] is True
    assert futures.query_private('openorders')['openOrders'] == []


def test_a_field_kraken_refuses_for_derivatives_never_leaves_and_order_userref_names_cl_ord_id(
        ws, futures):
    with pytest.raises(KrakenUsageError, match='use cl_ord_id'):
        ws.request('add_order', symbol=SYMBOL, side='buy', order_type='limit',
                   order_qty=Decimal('0.5'), limit_price=Decimal('50000'), order_userref=7)
    assert not ws.may_have_sent_orders()
    assert futures.query_private('openorders')['openOrders'] == []


def test_an_order_whose_reply_is_lost_is_an_unknown_outcome_and_placed_once(sb, ws, futures):
    ws.subscribe('executions')
    sb.feed.inject('reply_lost')
    with pytest.raises(OutcomeUnknownError) as lost:
        ws.request('add_order', symbol=SYMBOL, side='buy', order_type='limit',
                   order_qty=Decimal('0.5'), limit_price=Decimal('50000'),
                   cl_ord_id='lost-uws-1')
    assert lost.value.req_id and lost.value.cl_ord_id == 'lost-uws-1'
    expect(ws, notice('resubscribed'))
    listed = futures.query_private('openorders')['openOrders']
    assert [o['cliOrdId'] for o in listed] == ['lost-uws-1'], 'placed once, never sent again'


# -- positions and margin ----------------------------------------------------------------------

def test_positions_and_margin_views_follow_the_account(ws, futures):
    ws.subscribe('positions')
    ws.subscribe('margin')
    with pytest.raises(KrakenUsageError, match='one positions subscription per connection'):
        ws.subscribe('positions')
    expect_all(ws, channel('positions', 'snapshot'), channel('margin', 'snapshot'))
    assert ws.positions() == {}
    before = ws.margin()['available_margin']
    market(ws, 'buy', '0.2')
    expect(ws, channel('positions', 'update'))
    assert ws.positions()[SYMBOL]['size'] == Decimal('0.2')
    held = futures.query_private('openpositions')['openPositions']
    assert [(p['symbol'].upper(), Decimal(str(p['size']))) for p in held] == [
        (SYMBOL, Decimal('0.2'))]
    until(lambda: ws.margin()['available_margin'] != before, 'the margin moved')
    market(ws, 'sell', '0.5')
    expect(ws, channel('positions', 'update'))
    assert ws.positions()[SYMBOL]['size'] == Decimal('-0.3')
    market(ws, 'buy', '0.3')
    expect(ws, channel('positions', 'update'))
    assert ws.positions() == {}


def test_positions_unsubscribed_and_subscribed_again_never_show_the_old_state(ws):
    ws.subscribe('positions')
    expect(ws, channel('positions', 'snapshot'))
    market(ws, 'buy', '0.2')
    expect(ws, channel('positions', 'update'))
    assert ws.positions()[SYMBOL]['size'] == Decimal('0.2')
    ws.unsubscribe('positions')
    market(ws, 'sell', '0.2')  # closed while nobody listens
    ws.subscribe('positions', snapshot=False)
    market(ws, 'buy', '0.1')
    expect(ws, channel('positions', 'update'))
    assert unavailable(ws.positions)  # no snapshot: neither the closed position nor a mix


def test_asyncws_speaks_the_unified_websocket_inside_a_running_loop(sb, api):
    async def run() -> tuple[dict[str, Any], dict[str, Any], str]:
        async with AsyncWS(api, unified=True, asset_class='derivatives', url=sb.unified_url,
                           auth_url=sb.unified_auth_url, timeout=WAIT) as ws:
            await ws.subscribe('positions')
            await ws.request('add_order', symbol=SYMBOL, side='buy', order_type='market',
                             order_qty=Decimal('0.1'))
            async for message in ws:
                if message.get('channel') == 'positions' and message['type'] == 'update':
                    break
            await ws.subscribe('book', symbol=[SYMBOL])
            async for message in ws:
                if message.get('channel') == 'book':
                    break
            return ws.positions(), ws.book(SYMBOL).bids[0], ws.unified.asset_class

    positions, best_bid, asset_class = asyncio.run(run())
    assert positions[SYMBOL]['size'] == Decimal('0.1') and best_bid[1] > 0
    assert asset_class == 'derivatives'


# -- ledgers -----------------------------------------------------------------------------------

def skip_a_ledgers_number(sb: Sandbox) -> None:
    """Make the sandbox's open private connections skip their next ledgers number."""
    for session in list(sb.feed._sessions):
        channels = getattr(session, 'account_channels', None)
        if channels is not None and 'ledgers' in channels.sequences:
            channels.sequences['ledgers'] += 1


def test_ledgers_in_order_give_no_gap_a_skipped_number_does_and_a_new_connection_starts_at_1(
        sb, ws):
    ws.subscribe('ledgers')
    market(ws, 'buy', '0.1')
    assert expect(ws, channel('ledgers'))['sequence'] == 1
    market(ws, 'buy', '0.1')
    assert expect(ws, channel('ledgers'))['sequence'] == 2
    skip_a_ledgers_number(sb)
    market(ws, 'buy', '0.1')
    assert expect(ws, notice('gap')) | {'channel': None} == {
        'channel': None, 'type': 'gap', 'feed': 'ledgers', 'expected': 3, 'received': 4}
    sb.feed.inject('drop')
    expect(ws, notice('resubscribed'))  # one private connection: ledgers and orders
    market(ws, 'buy', '0.1')
    message = expect(ws, lambda m: channel('ledgers')(m) or notice('gap')(m))
    assert (message['channel'], message['sequence']) == ('ledgers', 1)  # no gap: it starts anew
