"""Every order is reconcilable by default: krakenex names an order sent without an id.

Over real HTTP and a real WebSocket against the sandbox on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_ws_client import expect, notice, quick_backoff

from krakenex import API, AsyncAPI, KrakenUsageError, OutcomeUnknownError
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.ws import WS

WAIT = 5.0
LONG_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


def limit(**extra: Any) -> dict[str, Any]:
    return {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '40000',
            'volume': '0.01', **extra}


def kraken_format(value: str | None) -> bool:
    """A long UUID, one of the formats Kraken documents for ``cl_ord_id``."""
    return value is not None and LONG_UUID.fullmatch(value) is not None \
        and str(uuid.UUID(value)) == value


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[API]:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, retries=0) as client:
        yield client


# -- REST ---------------------------------------------------------------------------------

def test_an_add_order_without_ids_whose_reply_is_lost_carries_krakenexs_id_and_reconcile_finds_it(
        sandbox: Sandbox, api: API) -> None:
    data = limit()
    sandbox.inject('reply_lost', method='AddOrder')
    with pytest.raises(OutcomeUnknownError) as lost:
        api.query_private('AddOrder', data)
    error = lost.value
    assert kraken_format(error.cl_ord_id)
    assert f'cl_ord_id {error.cl_ord_id}' in str(error)
    assert data == limit()  # the caller's parameters are not changed
    [placed] = sandbox.orders()
    assert placed['cl_ord_id'] == error.cl_ord_id
    assert list(api.reconcile(error)) == [placed['txid']]


def test_the_id_is_on_the_order_at_kraken_and_each_call_gets_its_own(
        sandbox: Sandbox, api: API) -> None:
    first = api.query_private('AddOrder', limit())['result']['txid'][0]
    second = api.query_private('AddOrder', limit())['result']['txid'][0]
    orders = api.query_private('QueryOrders', {'txid': f'{first},{second}'})['result']
    ids = [orders[txid].get('cl_ord_id') for txid in (first, second)]
    assert all(kraken_format(i) for i in ids) and ids[0] != ids[1]


def test_a_retried_call_keeps_the_id_of_its_first_attempt(sandbox: Sandbox) -> None:
    """A call whose first attempt never left (connection refused) is sent again: with the
    same id. Kraken's server comes up on the port only between the two attempts."""
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    later: list[Sandbox] = []
    signed: list[Any] = []
    with API(sandbox.key, sandbox.secret, uri=f'http://127.0.0.1:{port}', retries=2,
             backoff=0.01) as api:
        sign = api._private_request

        def attempt(method: str, data: Any) -> Any:
            signed.append(data.get('cl_ord_id'))
            if len(signed) == 2:
                later.append(Sandbox(port).start())
            return sign(method, data)
        api._private_request = attempt  # type: ignore[method-assign]
        try:
            api.query_private('AddOrder', limit())
            [placed] = later[0].orders()
        finally:
            for server in later:
                server.stop()
    assert signed == [placed['cl_ord_id'], placed['cl_ord_id']]
    assert kraken_format(placed['cl_ord_id'])


@pytest.mark.parametrize('given', [{'userref': 17}, {'cl_ord_id': 'mine-1'}])
def test_an_id_the_user_gave_is_left_alone(sandbox: Sandbox, api: API,
                                           given: dict[str, Any]) -> None:
    sandbox.inject('reply_lost', method='AddOrder')
    with pytest.raises(OutcomeUnknownError) as lost:
        api.query_private('AddOrder', limit(**given))
    [placed] = sandbox.orders()
    assert placed['cl_ord_id'] == given.get('cl_ord_id')
    assert (lost.value.cl_ord_id, lost.value.userref) == (
        given.get('cl_ord_id'), None if 'userref' not in given else '17')
    assert len(api.reconcile(lost.value)) == 1


def test_switched_off_no_id_is_added_and_reconcile_says_there_is_nothing_to_look_for(
        sandbox: Sandbox) -> None:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, retries=0,
             client_order_ids=False) as api:
        sandbox.inject('reply_lost', method='AddOrder')
        with pytest.raises(OutcomeUnknownError) as lost:
            api.query_private('AddOrder', limit())
        assert lost.value.cl_ord_id is None
        assert [o['cl_ord_id'] for o in sandbox.orders()] == [None]
        with pytest.raises(KrakenUsageError, match='carried no userref or cl_ord_id'):
            api.reconcile(lost.value)


def test_client_order_ids_must_be_true_or_false(sandbox: Sandbox) -> None:
    with pytest.raises(KrakenUsageError, match='client_order_ids must be True or False'):
        API(sandbox.key, sandbox.secret, uri=sandbox.url, client_order_ids='no')  # type: ignore


def test_each_order_of_a_batch_gets_an_id_and_a_lost_batch_names_them_all(
        sandbox: Sandbox, api: API) -> None:
    orders = [{'type': 'buy', 'ordertype': 'limit', 'price': '40000', 'volume': '0.01'},
              {'type': 'buy', 'ordertype': 'limit', 'price': '39000', 'volume': '0.01',
               'userref': 5}]
    sandbox.inject('reply_lost', method='AddOrderBatch')
    with pytest.raises(OutcomeUnknownError) as lost:
        api.query_private('AddOrderBatch', {'pair': 'XBTUSD', 'orders': orders})
    placed = sorted(sandbox.orders(), key=lambda o: o['descr']['price'], reverse=True)
    assert kraken_format(placed[0]['cl_ord_id']) and placed[1]['cl_ord_id'] is None
    assert lost.value.cl_ord_id == placed[0]['cl_ord_id']
    assert 'userref' not in orders[0] and 'cl_ord_id' not in orders[0]
    with pytest.raises(KrakenUsageError, match='look each up with find_order'):
        api.reconcile(lost.value)
    assert list(api.find_order(cl_ord_id=lost.value.cl_ord_id)) == [placed[0]['txid']]


def test_async_api_names_orders_too_and_reconcile_finds_them(sandbox: Sandbox) -> None:
    async def main() -> tuple[OutcomeUnknownError, dict[str, Any]]:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url, retries=0) as api:
            try:
                await api.query_private('AddOrder', limit())
            except OutcomeUnknownError as exc:
                return exc, await api.reconcile(exc)
            raise AssertionError('the reply was not lost')

    sandbox.inject('reply_lost', method='AddOrder')
    error, found = asyncio.run(main())
    assert kraken_format(error.cl_ord_id)
    assert [o['cl_ord_id'] for o in found.values()] == [error.cl_ord_id]


# -- WebSocket v2 ---------------------------------------------------------------------------

def ws_client(sandbox: Sandbox, api: API, **options: Any) -> WS:
    return WS(api, url=sandbox.ws_url, auth_url=sandbox.ws_auth_url, timeout=WAIT,
              silence=1.5, backoff=quick_backoff, **options)


def ws_order(**extra: Any) -> dict[str, Any]:
    return {'symbol': 'BTC/USD', 'side': 'buy', 'order_type': 'limit',
            'limit_price': Decimal('40000'), 'order_qty': Decimal('0.01'), **extra}


def test_a_ws_add_order_without_ids_is_named_and_kraken_echoes_the_id(
        sandbox: Sandbox, api: API) -> None:
    with ws_client(sandbox, api) as ws:
        reply = ws.request('add_order', **ws_order())
    named = reply['result']['cl_ord_id']
    assert kraken_format(named)
    assert [o['cl_ord_id'] for o in sandbox.orders()] == [named]


def test_a_ws_add_order_whose_reply_is_lost_carries_the_id_and_reconcile_finds_it(
        sandbox: Sandbox, api: API) -> None:
    assert sandbox.feed is not None
    with ws_client(sandbox, api) as ws:
        ws.subscribe('executions')
        sandbox.feed.inject('reply_lost')
        with pytest.raises(OutcomeUnknownError) as lost:
            ws.request('add_order', **ws_order())
        expect(ws, notice('resubscribed'))
    assert kraken_format(lost.value.cl_ord_id)
    [placed] = sandbox.orders()
    assert placed['cl_ord_id'] == lost.value.cl_ord_id
    assert list(api.reconcile(lost.value)) == [placed['txid']]


def test_ws_ids_the_user_gave_are_left_alone_and_switched_off_none_is_added(
        sandbox: Sandbox, api: API) -> None:
    with ws_client(sandbox, api) as ws:
        ws.request('add_order', **ws_order(order_userref=3))
        ws.request('add_order', **ws_order(cl_ord_id='mine-ws', limit_price=Decimal('39000')))
    with ws_client(sandbox, api, client_order_ids=False) as ws:
        ws.request('add_order', **ws_order(limit_price=Decimal('38000')))
    assert sorted((o['cl_ord_id'] or '') for o in sandbox.orders()) == ['', '', 'mine-ws']


def test_each_order_of_a_ws_batch_gets_an_id(sandbox: Sandbox, api: API) -> None:
    orders = [{'side': 'buy', 'order_type': 'limit', 'limit_price': Decimal(p),
               'order_qty': Decimal('0.01')} for p in ('40000', '39000')]
    with ws_client(sandbox, api) as ws:
        ws.request('batch_add', symbol='BTC/USD', orders=orders)
    ids = [o['cl_ord_id'] for o in sandbox.orders()]
    assert len(ids) == 2 and all(kraken_format(i) for i in ids) and ids[0] != ids[1]


def test_a_unified_websocket_order_whose_reply_is_lost_is_reconciled_by_krakenexs_id(
        sandbox: Sandbox, api: API) -> None:
    assert sandbox.feed is not None
    with WS(api, unified=True, url=sandbox.unified_url, auth_url=sandbox.unified_auth_url,
            timeout=WAIT, silence=1.5, backoff=quick_backoff) as ws, \
            FuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                       uri=sandbox.futures_url) as futures:
        ws.subscribe('executions')
        sandbox.feed.inject('reply_lost')
        with pytest.raises(OutcomeUnknownError) as lost:
            ws.request('add_order', symbol='PF_XBTUSD', side='buy', order_type='limit',
                       order_qty=Decimal('0.5'), limit_price=Decimal('50000'))
        expect(ws, notice('resubscribed'))
        assert kraken_format(lost.value.cl_ord_id)
        listed = futures.query_private('openorders')['openOrders']
        assert [o['cliOrdId'] for o in listed] == [lost.value.cl_ord_id]
        found = futures.reconcile(lost.value)
        assert [o['order']['cliOrdId'] for o in found['orders']] == [lost.value.cl_ord_id]


# -- Kraken Futures -------------------------------------------------------------------------

@pytest.fixture
def futures(sandbox: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    timeout=WAIT, backoff=0.01) as client:
        yield client


def futures_order(**extra: Any) -> dict[str, Any]:
    return {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01,
            'limitPrice': 50000, **extra}


def test_a_sendorder_without_cli_ord_id_whose_reply_is_lost_is_reconciled_by_krakenexs_id(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.inject('reply_lost', method='sendorder')
    with pytest.raises(OutcomeUnknownError) as lost:
        futures.query_private('sendorder', futures_order())
    assert kraken_format(lost.value.cl_ord_id)
    assert [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)] == [
        lost.value.cl_ord_id]
    found = futures.reconcile(lost.value)
    assert [o['order']['cliOrdId'] for o in found['orders']] == [lost.value.cl_ord_id]


def test_futures_ids_given_are_kept_batches_are_named_and_switched_off_adds_none(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    futures.query_private('sendorder', futures_order(cliOrdId='mine-f'))
    batch = {'batchOrder': [{'order': 'send', 'order_tag': str(n), 'orderType': 'lmt',
                             'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01,
                             'limitPrice': 49000 - n} for n in range(2)]}
    futures.query_private('batchorder', {'json': batch})
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    timeout=WAIT, client_order_ids=False) as plain:
        plain.query_private('sendorder', futures_order(limitPrice=48000))
    ids = [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)]
    assert ids[0] == 'mine-f' and ids[3] is None
    assert all(kraken_format(i) for i in ids[1:3]) and ids[1] != ids[2]
    assert 'cliOrdId' not in batch['batchOrder'][0]
