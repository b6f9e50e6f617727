"""The sandbox names assets and refuses calls as Kraken does, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from krakenex import API
from krakenex.sandbox import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: Sandbox) -> Iterator[API]:
    with API(sb.key, sb.secret, uri=sb.url) as client:
        yield client


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
