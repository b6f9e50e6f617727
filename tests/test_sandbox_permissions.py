"""A sandbox key holds Kraken's API key permissions; a call outside them is denied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from krakenex import API
from krakenex.sandbox import Sandbox
from krakenex.sandbox.permissions import PERMISSIONS

pytest.importorskip('websockets')

WAIT = 10
DENIED = 'EGeneral:Permission denied'
LIMIT = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
         'price': '50000'}


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(tier=None) as running:
        yield running


def client(sb: Sandbox, *permissions: str) -> API:
    """A client of a new key, funded with 10000 USD, that holds only ``permissions``."""
    account = sb.add_account({'ZUSD': '10000'}, permissions=permissions)
    return API(account.key, account.secret, uri=sb.url)


def errors(api: API, method: str, params: dict[str, str] | None = None) -> list[str]:
    """The ``error`` list of one private call, as it came over HTTP."""
    return list(api.query_private(method, params or {})['error'])


def test_a_read_only_key_reads_funds_but_may_not_trade_or_withdraw(sb: Sandbox) -> None:
    with client(sb, 'query-funds', 'query-open-trades', 'query-closed-trades') as api:
        assert api.query_private('Balance')['result']['ZUSD'] == '10000.0000'
        assert api.query_private('OpenOrders')['result'] == {'open': {}}
        assert errors(api, 'AddOrder', LIMIT) == [DENIED]
        assert errors(api, 'CancelAll') == [DENIED]
        assert errors(api, 'Withdraw', {'asset': 'XBT', 'key': 'x', 'amount': '1'}) == [DENIED]
        assert errors(api, 'Ledgers') == [DENIED]
        assert errors(api, 'GetWebSocketsToken') == [DENIED]
    assert sb.orders() == []


def test_a_trading_key_trades_but_may_not_read_its_ledger_or_export(sb: Sandbox) -> None:
    with client(sb, 'modify-trades', 'close-trades') as api:
        placed = api.query_private('AddOrder', LIMIT)['result']['txid'][0]
        assert api.query_private('CancelOrder', {'txid': placed})['result']['count'] == 1
        assert errors(api, 'Balance') == [DENIED]
        assert errors(api, 'OpenOrders') == [DENIED]
        assert errors(api, 'QueryLedgers', {'id': 'L'}) == [DENIED]
        assert errors(api, 'AddExport', {'report': 'trades', 'description': 'x'}) == [DENIED]
        assert errors(api, 'DepositMethods', {'asset': 'XBT'}) == [DENIED]


def test_earn_asks_what_krakens_earn_guide_asks(sb: Sandbox) -> None:
    with client(sb, 'query-funds') as api:
        assert api.query_private('Earn/Strategies')['error'] == []
        assert api.query_private('Earn/Allocations')['error'] == []
        assert errors(api, 'Earn/Allocate', {'amount': '1', 'strategy_id': 'S'}) == [DENIED]
    with client(sb) as api:
        assert api.query_private('Earn/Strategies')['error'] == []  # no permission at all
        assert errors(api, 'Earn/Allocations') == [DENIED]
        assert errors(api, 'Earn/AllocateStatus', {'strategy_id': 'S'}) == [DENIED]


def test_either_query_permission_opens_query_orders(sb: Sandbox) -> None:
    with client(sb, 'query-closed-trades') as api:
        assert api.query_private('QueryOrders', {'txid': 'OABCDE-FGHIJ-KLMNOP'})['error'] == []
        assert errors(api, 'OpenOrders') == [DENIED]


def test_a_key_lists_its_own_permissions_and_the_default_key_holds_them_all(
        sb: Sandbox) -> None:
    with client(sb, 'websocket-access', 'query-funds') as api:
        assert api.query_private('GetApiKeyInfo')['result']['permissions'] == [
            'query-funds', 'websocket-access']
    with API(sb.key, sb.secret, uri=sb.url) as api:
        assert api.query_private('GetApiKeyInfo')['result']['permissions'] == list(PERMISSIONS)
        assert api.query_private('AddOrder', {**LIMIT, 'validate': 'true'})['error'] == []


def test_an_unknown_permission_is_refused_when_the_key_is_made(sb: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown permission 'trade'"):
        sb.add_account(permissions=['trade'])
    with pytest.raises(TypeError):
        sb.add_account(permissions='query-funds')


def new_token(sb: Sandbox, *permissions: str) -> tuple[str, str]:
    """A new key that holds ``permissions``, and a WebSocket token of it."""
    account = sb.add_account({'ZUSD': '10000'}, permissions=permissions)
    with API(account.key, account.secret, uri=sb.url) as api:
        return account.key, api.query_private('GetWebSocketsToken')['result']['token']


def ask(url: str, request: dict[str, Any]) -> dict[str, Any]:
    """One request over a bare WebSocket; the reply to it."""
    with connect(url, open_timeout=WAIT) as bare:
        bare.send(json.dumps({**request, 'req_id': 9}))
        while True:
            message = json.loads(bare.recv(WAIT))
            if message.get('req_id') == 9:
                return dict(message)


def test_over_websocket_each_method_and_channel_checks_its_permission(sb: Sandbox) -> None:
    key, ws_token = new_token(sb, 'websocket-access', 'query-open-trades')
    order = {'order_type': 'limit', 'side': 'buy', 'symbol': 'BTC/USD', 'order_qty': 0.01,
             'limit_price': 50000, 'token': ws_token}
    refused = ask(sb.ws_auth_url, {'method': 'add_order', 'params': order})
    assert (refused['success'], refused['error']) == (False, DENIED)
    refused = ask(sb.ws_auth_url, {'method': 'cancel_all', 'params': {'token': ws_token}})
    assert (refused['success'], refused['error']) == (False, DENIED)
    refused = ask(sb.ws_auth_url, {'method': 'subscribe', 'params': {
        'channel': 'balances', 'token': ws_token}})
    assert (refused['success'], refused['error']) == (False, DENIED)
    granted = ask(sb.ws_auth_url, {'method': 'subscribe', 'params': {
        'channel': 'executions', 'token': ws_token}})
    assert granted['success'] is True
    assert sb.orders(key) == []


def test_over_websocket_a_trading_key_trades_but_may_not_watch_executions(sb: Sandbox) -> None:
    key, ws_token = new_token(sb, 'websocket-access', 'modify-trades')
    order = {'order_type': 'limit', 'side': 'buy', 'symbol': 'BTC/USD', 'order_qty': 0.01,
             'limit_price': 50000, 'token': ws_token}
    assert ask(sb.ws_auth_url, {'method': 'add_order', 'params': order})['success'] is True
    refused = ask(sb.ws_auth_url, {'method': 'subscribe', 'params': {
        'channel': 'executions', 'token': ws_token}})
    assert (refused['success'], refused['error']) == (False, DENIED)
    assert len(sb.orders(key)) == 1
