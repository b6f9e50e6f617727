"""ws.subscriptions (what krakenex sends again after a reconnect) and ws.reconnect(), over a
real WebSocket against the sandbox's feed on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_ws_client import FakeKraken, expect, quick_backoff

from krakenex import API, KrakenConnectionError, OutcomeUnknownError
from krakenex.sandbox import Sandbox
from krakenex.ws import WS, AsyncWS

WAIT = 5.0


@pytest.fixture
def ws(sb: Sandbox, api: API) -> Iterator[WS]:
    with WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, timeout=WAIT, silence=1.5,
            backoff=quick_backoff) as client:
        yield client


def channel(name: str, kind: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get('channel') == name and (kind is None or m.get('type') == kind)


def test_subscriptions_lists_what_the_user_asked_for_without_token_or_req_id(ws: WS) -> None:
    assert ws.subscriptions == []
    ws.subscribe('ticker', symbol='BTC/USD', req_id=41)
    ws.subscribe('book', symbol=['ETH/USD', 'SOL/USD'], depth=25)
    ws.subscribe('executions', snap_orders=True)
    assert ws.subscriptions == [
        {'channel': 'ticker', 'symbol': ['BTC/USD']},
        {'channel': 'book', 'symbol': ['ETH/USD', 'SOL/USD'], 'depth': 25},
        {'channel': 'executions', 'snap_orders': True},
    ]
    ws.unsubscribe('book', symbol=['SOL/USD'], depth=25)
    ws.unsubscribe('ticker', symbol=['BTC/USD'])
    assert ws.subscriptions == [
        {'channel': 'book', 'symbol': ['ETH/USD'], 'depth': 25},
        {'channel': 'executions', 'snap_orders': True},
    ]
    listed = ws.subscriptions
    listed[0]['symbol'].append('XBT/EUR')  # a copy: changing it changes nothing
    assert ws.subscriptions[0]['symbol'] == ['ETH/USD']


def test_a_refused_subscription_is_not_listed(ws: WS) -> None:
    with pytest.raises(Exception, match='not supported'):
        ws.subscribe('ticker', symbol=['NOT/APAIR'])
    assert ws.subscriptions == []


def test_reconnect_reopens_every_connection_and_resubscribes_with_the_usual_notices(
        sb: Sandbox, ws: WS) -> None:
    ws.subscribe('book', symbol=['ETH/USD'], depth=10)
    ws.subscribe('executions')
    expect(ws, channel('book', 'snapshot'))
    ws.reconnect()
    seen: list[dict[str, Any]] = []
    snapshot, deadline = False, time.monotonic() + WAIT
    while len(seen) < 4 or not snapshot:  # two of each notice, and the book's new snapshot
        assert time.monotonic() < deadline, f'only {seen} in time'
        message = ws.recv(WAIT)
        snapshot = snapshot or channel('book', 'snapshot')(message)
        if channel('krakenex')(message):
            seen.append(message)
    notices = [n for n in seen if n['type'] == 'reconnected']
    assert {n['url'] for n in notices} == {sb.ws_url, sb.ws_auth_url}
    assert all('asked to reconnect' in n['reason'] for n in notices)
    resubscribed = [n for n in seen if n['type'] == 'resubscribed']
    assert sorted(s['channel'] for n in resubscribed for s in n['subscriptions']) == [
        'book', 'executions']
    assert ws.book('ETH/USD').checksum
    assert ws.subscriptions == [{'channel': 'book', 'symbol': ['ETH/USD'], 'depth': 10},
                                {'channel': 'executions'}]
    assert ws.request('ping')['method'] == 'pong'


def test_reconnect_with_nothing_open_opens_nothing_and_a_closed_client_refuses(
        sb: Sandbox, api: API) -> None:
    with WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, timeout=WAIT,
            backoff=quick_backoff) as client:
        client.reconnect()
        assert repr(client) == '<WS not connected>'
    with pytest.raises(KrakenConnectionError, match='closed'):
        client.reconnect()


def test_reconnect_from_asyncio(sb: Sandbox, api: API) -> None:
    async def main() -> list[dict[str, Any]]:
        async with AsyncWS(api, url=sb.ws_url, timeout=WAIT, backoff=quick_backoff) as ws:
            await ws.subscribe('ticker', symbol=['BTC/USD'])
            await ws.reconnect()
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + WAIT
            while len(seen) < 2:
                assert time.monotonic() < deadline, f'only {seen} in time'
                message = await ws.recv(WAIT)
                if message.get('channel') == 'krakenex':
                    seen.append(message)
            assert ws.subscriptions == [{'channel': 'ticker', 'symbol': ['BTC/USD']}]
            return seen

    seen = asyncio.run(main())
    assert [m['type'] for m in seen] == ['reconnected', 'resubscribed']


def test_an_order_in_flight_at_reconnect_is_an_unknown_outcome_and_never_sent_again(
        sb: Sandbox, api: API) -> None:
    """Kraken (here a scripted server that takes the order and keeps its reply) may have
    placed it: the order is not sent again on the new connection."""
    kraken = FakeKraken()
    kraken.handlers['add_order'] = lambda connection, message: None  # the reply never comes
    try:
        async def main() -> BaseException:
            async with AsyncWS(api, url=kraken.url, auth_url=kraken.url, timeout=WAIT,
                               backoff=quick_backoff) as ws:
                order = asyncio.ensure_future(ws.request(
                    'add_order', symbol='BTC/USD', side='buy', order_type='limit',
                    limit_price=Decimal('40000'), order_qty=Decimal('0.01')))
                while not kraken.sent('add_order'):
                    await asyncio.sleep(0.01)
                await ws.reconnect()
                try:
                    await asyncio.wait_for(order, WAIT)
                except OutcomeUnknownError as exc:
                    assert (await ws.request('ping'))['method'] == 'pong'
                    return exc
                raise AssertionError('the order was answered')

        error = asyncio.run(main())
        assert isinstance(error, OutcomeUnknownError)
        assert 'asked to reconnect' in str(error)
        assert error.cl_ord_id == kraken.sent('add_order')[0]['params']['cl_ord_id']
        assert len(kraken.sent('add_order')) == 1
    finally:
        kraken.stop()
