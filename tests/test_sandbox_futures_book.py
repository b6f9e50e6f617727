"""The futures sandbox's book shows resting limit orders: over Kraken Futures REST
``orderbook`` and the Unified WebSocket's verified book, on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_ws_client import expect, quick_backoff

from krakenex import API
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.ws import WS

#: Futures REST is the witness here: its sunset notice is expected.
pytestmark = pytest.mark.filterwarnings('ignore::krakenex.futures.KrakenSunsetWarning')

SYMBOL = 'PF_XBTUSD'  # mark 60000: best bid 59994, best ask 60006, 20 levels a side
WAIT = 5.0


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def futures(sb: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sb.futures.key, sb.futures.secret, uri=sb.futures_url) as client:
        yield client


def book(futures: FuturesAPI) -> dict[str, dict[Decimal, Decimal]]:
    levels = futures.query_public('orderbook', {'symbol': SYMBOL})['orderBook']
    return {side: {Decimal(str(p)): Decimal(str(q)) for p, q in levels[side]}
            for side in ('bids', 'asks')}


def limit(futures: FuturesAPI, side: str, size: str, price: str) -> str:
    status = futures.query_private('sendorder', {'orderType': 'lmt', 'symbol': SYMBOL,
                                                 'side': side, 'size': size,
                                                 'limitPrice': price})['sendStatus']
    assert status['status'] == 'placed', status
    return str(status['order_id'])


def test_a_resting_order_is_a_level_of_the_rest_book_until_cancelled(futures):
    before = book(futures)
    deep = limit(futures, 'buy', '0.5', '59000')  # below the seeded levels: a level of its own
    limit(futures, 'sell', '0.25', '60003')  # inside the spread: the best ask
    on_level = limit(futures, 'buy', '0.5', '59990')  # on a seeded level: adds to it
    now = book(futures)
    assert now['bids'][Decimal(59000)] == Decimal('0.5')
    assert min(now['asks']) == Decimal(60003) and now['asks'][Decimal(60003)] == Decimal('0.25')
    assert now['bids'][Decimal(59990)] == before['bids'][Decimal(59990)] + Decimal('0.5')
    prices = list(futures.query_public('orderbook', {'symbol': SYMBOL})['orderBook']['bids'])
    assert [p for p, _ in prices] == sorted((p for p, _ in prices), reverse=True)
    for order_id in (deep, on_level):
        futures.query_private('cancelorder', {'order_id': order_id})
    after = book(futures)
    assert Decimal(59000) not in after['bids']
    assert after['bids'][Decimal(59990)] == before['bids'][Decimal(59990)]


def test_a_filled_order_leaves_the_rest_book(sb, futures):
    limit(futures, 'sell', '0.25', '60003')
    assert min(book(futures)['asks']) == Decimal(60003)
    sb.futures.set_price(SYMBOL, '60003')  # the mark reaches it: it fills
    assert futures.query_private('openorders')['openOrders'] == []
    assert Decimal(60003) not in book(futures)['asks']  # the seeded asks start above the mark


@pytest.fixture
def ws(sb: Sandbox) -> Iterator[WS]:
    with API(sb.key, sb.secret, uri=sb.url) as api, \
            WS(api, unified=True, url=sb.unified_url, auth_url=sb.unified_auth_url,
               timeout=WAIT, silence=1.5, backoff=quick_backoff) as client:
        yield client


def update(ws: WS) -> dict[str, Any]:
    return expect(ws, lambda m: m.get('channel') == 'book' and m.get('type') == 'update')


def test_an_order_added_on_the_unified_websocket_shows_in_its_verified_book(sb, ws):
    ws.subscribe('book', symbol=[SYMBOL], depth=10)
    expect(ws, lambda m: m.get('channel') == 'book' and m.get('type') == 'snapshot')
    ws.request('add_order', symbol=SYMBOL, side='sell', order_type='limit',
               order_qty=Decimal('0.25'), limit_price=Decimal(60003), cl_ord_id='in-book-1')
    checksum = update(ws)['data'][0]['checksum']
    assert ws.book(SYMBOL).asks[0] == (Decimal(60003), Decimal('0.25'))
    assert ws.book(SYMBOL).checksum == checksum  # the client checked it against its own book
    sb.futures.set_price(SYMBOL, '60003')  # filled: it leaves the book
    deadline = time.monotonic() + WAIT
    while ws.book(SYMBOL).asks[0][0] == Decimal(60003):
        assert time.monotonic() < deadline, 'the filled order stayed in the book'
        update(ws)
    assert ws.book(SYMBOL).asks[0][0] > Decimal(60003)
