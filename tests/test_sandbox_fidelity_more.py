"""The sandbox names assets, refuses calls and sends tickers as Kraken does.

Each test talks to the sandbox over real HTTP or a real WebSocket on 127.0.0.1.
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


def test_earn_names_assets_as_krakens_examples_do(api: API) -> None:
    strategies = api.query_private('Earn/Strategies', {'asset': 'XBT'})['result']['items']
    assert [s['asset'] for s in strategies] == ['XBT']
    allocate = {'strategy_id': strategies[0]['id'], 'amount': '0.01'}
    assert api.query_private('Earn/Allocate', allocate)['result'] is True
    allocations = api.query_private('Earn/Allocations')['result']['items']
    assert [a['native_asset'] for a in allocations] == ['XBT']


def test_only_a_master_account_creates_subaccounts_and_moves_funds_between_them(
        sb: Sandbox, api: API) -> None:
    subaccount = {'username': 'desk1', 'email': 'desk1@example.com'}
    assert api.query_private('CreateSubaccount', subaccount)['result'] is True
    plain = sb.add_account({'USD': '100'})
    with API(plain.key, plain.secret, uri=sb.url) as client:
        refused = client.query_private('CreateSubaccount', {**subaccount, 'username': 'desk2'})
        assert refused['error'] == ['EGeneral:Permission denied']
        mine = client.query_private('GetApiKeyInfo')['result']['iban']
        transfer = {'asset': 'USD', 'amount': '1', 'from': mine, 'to': mine}
        refused = client.query_private('AccountTransfer', transfer)
        assert refused['error'] == ['EGeneral:Permission denied']
    assert len(sb.exchange.accounts) == 3  # the sandbox's key, its subaccount, the plain key


def _ticker(socket: ClientConnection, trigger: str) -> None:
    socket.send(json.dumps({'method': 'subscribe', 'req_id': 1, 'params': {
        'channel': 'ticker', 'symbol': ['BTC/USD'], 'event_trigger': trigger}}))
    assert _next(socket, 'snapshot')['data'][0]['symbol'] == 'BTC/USD'


def _next(socket: ClientConnection, kind: str, wait: float = WAIT) -> dict[str, Any]:
    """The next ticker message of ``kind``; TimeoutError if none comes within ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        message = json.loads(socket.recv(max(deadline - time.monotonic(), 0.01)))
        if message.get('channel') == 'ticker' and message.get('type') == kind:
            return dict(message)


def test_a_bbo_ticker_is_sent_when_the_best_bid_or_ask_moves_not_on_a_trade_that_leaves_it(
        sb: Sandbox, api: API) -> None:
    with connect(sb.ws_url, open_timeout=WAIT) as bbo, \
            connect(sb.ws_url, open_timeout=WAIT) as trades:
        _ticker(bbo, 'bbo')
        _ticker(trades, 'trades')
        bought = api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                                'ordertype': 'market', 'volume': '0.0001'})
        assert bought['error'] == []
        assert _next(trades, 'update')['data'][0]['last']  # a trade: the trades ticker hears
        with pytest.raises(TimeoutError):
            _next(bbo, 'update', wait=1.0)  # the best bid and ask stayed: bbo stays quiet
        before = api.query_public('Ticker', {'pair': 'XBTUSD'})['result']['XXBTZUSD']['a'][0]
        sb.set_price('XBTUSD', str(Decimal(before) + 500))
        moved = _next(bbo, 'update')['data'][0]
        assert Decimal(str(moved['ask'])) > Decimal(before)


@pytest.mark.parametrize('method', ['Ticker', 'AssetPairs'])
@pytest.mark.parametrize('name', ['BTC/USD', 'XBT/USD', 'XBTUSD', 'XXBTZUSD'])
def test_a_pair_asked_by_any_of_its_names_answers_under_krakens_pair_name(
        api: API, method: str, name: str) -> None:
    reply = api.query_public(method, {'pair': f'{name},ETH/USD'})
    assert reply['error'] == [] and list(reply['result']) == ['XXBTZUSD', 'XETHZUSD']
