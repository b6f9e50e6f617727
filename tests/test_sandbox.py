"""The sandbox behaves like Kraken, over real HTTP on 127.0.0.1.

These tests talk to the sandbox with ``requests`` and the signing rule from
Kraken's documentation, not with krakenex, so they also hold while the client
changes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import http.client
import io
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from krakenex.sandbox import TIERS, Sandbox

ROOT = Path(__file__).resolve().parent.parent
DOC_SECRET = ('kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZu'
              'j6F1huXg==')


def sign(secret: str, path: str, nonce: str, body: bytes) -> str:
    """Kraken's API-Sign: HMAC-SHA512 over path + SHA256(nonce + body)."""
    digest = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class Kraken:
    """A minimal Kraken client: one session, a counter nonce, form or JSON bodies."""

    def __init__(self, url: str, key: str, secret: str) -> None:
        self.url, self.key, self.secret = url, key, secret
        self.session = requests.Session()
        self.nonce = 0

    def public(self, method: str, **params: Any) -> Any:
        return self.session.get(f'{self.url}/0/public/{method}', params=params, timeout=10).json()

    def post(self, method: str, params: dict[str, Any] | None = None, *, as_json: bool = False,
             nonce: Any = None, key: str | None = None, api_sign: str | None = None,
             timeout: float = 10) -> requests.Response:
        """Sign and send; the nonce goes first in the body, as clients usually do."""
        if nonce is None:
            self.nonce += 1
            nonce = str(self.nonce)
        body_params = {'nonce': nonce, **(params or {})} if nonce != '' else dict(params or {})
        if as_json:
            body = json.dumps(body_params, separators=(',', ':')).encode()
            content_type = 'application/json'
        else:
            body = urllib.parse.urlencode(body_params).encode()
            content_type = 'application/x-www-form-urlencoded'
        path = f'/0/private/{method}'
        headers = {'API-Key': self.key if key is None else key, 'Content-Type': content_type,
                   'API-Sign': api_sign if api_sign is not None
                   else sign(self.secret, path, str(nonce), body)}
        return self.session.post(self.url + path, data=body, headers=headers, timeout=timeout)

    def private(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.post(method, params, **kw).json()

    def ok(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The result of a private call that must succeed."""
        reply = self.private(method, params, **kw)
        assert reply['error'] == [], reply
        return reply['result']

    def order(self, **params: Any) -> str:
        """Place an order (XBTUSD unless said otherwise); its txid."""
        params = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.1',
                  'price': '59000', **params}
        params = {k: v for k, v in params.items() if v is not None}  # price=None: no price
        return str(self.ok('AddOrder', params)['txid'][0])


def result(reply: Any) -> Any:
    assert reply['error'] == [], reply
    return reply['result']


def error(reply: Any) -> str:
    assert 'result' not in reply, reply
    assert len(reply['error']) == 1, reply
    return str(reply['error'][0])


@pytest.fixture
def kraken(sandbox: Sandbox) -> Iterator[Kraken]:
    client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    yield client
    client.session.close()


@pytest.fixture
def market(market_sandbox: Sandbox) -> Iterator[Kraken]:
    client = Kraken(market_sandbox.url, market_sandbox.key, market_sandbox.secret)
    yield client
    client.session.close()


def balances(kraken: Kraken) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in kraken.ok('Balance').items()}


def all_pages(kraken: Kraken, method: str, key: str, **params: Any) -> list[tuple[str, Any]]:
    """Every row of a paged private method, following ``ofs`` until the count is reached."""
    rows: list[tuple[str, Any]] = []
    while True:
        page = kraken.ok(method, {**params, 'ofs': len(rows)})
        assert len(page[key]) <= 50
        rows += list(page[key].items())
        if len(rows) >= page['count'] or not page[key]:
            assert len(rows) == page['count']
            return rows


# -- routes and HTTP --------------------------------------------------------------------

def test_public_time_is_a_kraken_envelope(market: Kraken) -> None:
    reply = market.public('Time')
    assert reply['error'] == []
    assert abs(reply['result']['unixtime'] - time.time()) < 5
    assert reply['result']['rfc1123'].endswith('+0000')
    assert result(market.public('SystemStatus'))['status'] == 'online'


def test_post_to_a_public_path_is_http_405(market: Kraken) -> None:
    response = market.session.post(f'{market.url}/0/public/Time', timeout=5)
    assert response.status_code == 405
    assert response.headers['Allow'] == 'GET'


def test_get_to_a_private_path_is_http_405(market: Kraken) -> None:
    response = market.session.get(f'{market.url}/0/private/Balance', timeout=5)
    assert response.status_code == 405


def test_unknown_methods_are_http_200_with_unknown_method(market: Kraken) -> None:
    assert error(market.public('NoSuchThing')) == 'EGeneral:Unknown method'
    assert error(market.private('NoSuchThing')) == 'EGeneral:Unknown method'


def test_paths_outside_the_api_are_http_404(market: Kraken) -> None:
    assert market.session.get(f'{market.url}/1/public/Time', timeout=5).status_code == 404
    assert market.session.get(f'{market.url}/', timeout=5).status_code == 404


def test_oversized_bodies_are_refused_with_http_413(market: Kraken) -> None:
    host, port = market.url.removeprefix('http://').split(':')
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.putrequest('POST', '/0/private/Balance')
        connection.putheader('Content-Length', str(10**9))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_earn_methods_with_a_slash_are_served(kraken: Kraken) -> None:
    assert isinstance(kraken.ok('Earn/Strategies')['items'], list)
    assert kraken.ok('Earn/Allocations')['items'] == []


def test_replies_keep_the_connection_alive_with_content_length(market: Kraken) -> None:
    host, port = market.url.removeprefix('http://').split(':')
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            connection.request('GET', '/0/public/Time')
            response = connection.getresponse()
            body = response.read()
            assert int(response.headers['Content-Length']) == len(body)
            assert not response.will_close
        assert connection.sock is not None  # the same socket served all three
    finally:
        connection.close()


@pytest.mark.unlimited  # 50 private calls at once
def test_loopback_requests_take_milliseconds_not_nagle_stalls(kraken: Kraken) -> None:
    public, private = [], []
    for _ in range(50):
        started = time.perf_counter()
        kraken.public('Time')
        public.append(time.perf_counter() - started)
        started = time.perf_counter()
        kraken.ok('Balance')
        private.append(time.perf_counter() - started)
    assert statistics.median(public) < 0.020
    assert statistics.median(private) < 0.020


# -- authentication -------------------------------------------------------------------------

def test_unknown_key_is_invalid_key(kraken: Kraken) -> None:
    assert error(kraken.private('Balance', key='bm90IGEga2V5')) == 'EAPI:Invalid key'


def test_signature_made_with_another_secret_is_invalid(kraken: Kraken) -> None:
    kraken.secret = base64.b64encode(b'x' * 64).decode()
    assert error(kraken.private('Balance')) == 'EAPI:Invalid signature'


@pytest.mark.parametrize('api_sign', ['', 'not base64!', base64.b64encode(b'short').decode()])
def test_missing_or_garbage_signature_is_invalid(kraken: Kraken, api_sign: str) -> None:
    assert error(kraken.private('Balance', api_sign=api_sign)) == 'EAPI:Invalid signature'


def test_signature_covers_the_exact_body_bytes(sandbox: Sandbox, kraken: Kraken) -> None:
    body = b'nonce=5&asset=ZUSD'
    path = '/0/private/TradeBalance'
    headers = {'API-Key': sandbox.key, 'API-Sign': sign(sandbox.secret, path, '5', body)}
    tampered = kraken.session.post(sandbox.url + path, data=b'nonce=5&asset=XXBT',
                                   headers=headers, timeout=5).json()
    assert error(tampered) == 'EAPI:Invalid signature'
    assert 'eb' in result(kraken.session.post(sandbox.url + path, data=body, headers=headers,
                                              timeout=5).json())


def test_krakens_published_addorder_vector_is_accepted(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.exchange.accounts[sandbox.key].secret = DOC_SECRET
    body = b'nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25'
    headers = {'API-Key': sandbox.key, 'Content-Type': 'application/x-www-form-urlencoded',
               'API-Sign': '4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32b'
                           'Ab0nmbRn6H8ndwLUQ=='}
    reply = kraken.session.post(f'{sandbox.url}/0/private/AddOrder', data=body, headers=headers,
                                timeout=5).json()
    assert result(reply)['descr']['order'] == 'buy 1.25000000 XBTUSD @ limit 37500.0'


@pytest.mark.parametrize('nonce', ['7', 7])
def test_json_bodies_are_signed_with_string_or_integer_nonces(kraken: Kraken, nonce: Any) -> None:
    assert 'ZUSD' in kraken.ok('Balance', as_json=True, nonce=nonce)


def test_json_content_type_with_charset_is_accepted(sandbox: Sandbox, kraken: Kraken) -> None:
    body = b'{"nonce": "9", "asset": "XBT"}'
    path = '/0/private/TradeBalance'
    headers = {'API-Key': sandbox.key, 'API-Sign': sign(sandbox.secret, path, '9', body),
               'Content-Type': 'application/json; charset=utf-8'}
    reply = kraken.session.post(sandbox.url + path, data=body, headers=headers, timeout=5).json()
    assert Decimal(result(reply)['eb']) > 0


def test_nonce_must_exceed_the_last_accepted_one(kraken: Kraken) -> None:
    kraken.ok('Balance', nonce='100')
    assert error(kraken.private('Balance', nonce='100')) == 'EAPI:Invalid nonce'
    assert error(kraken.private('Balance', nonce='99')) == 'EAPI:Invalid nonce'
    kraken.ok('Balance', nonce='101')


def test_missing_nonce_and_non_integer_nonce_are_rejected(kraken: Kraken) -> None:
    assert error(kraken.private('Balance', nonce='')) == 'EGeneral:Invalid arguments:nonce'
    assert error(kraken.private('Balance', nonce='12.5')) == 'EAPI:Invalid nonce'
    assert error(kraken.private('Balance', nonce='-3')) == 'EAPI:Invalid nonce'


def test_nonce_window_accepts_late_nonces_once(sandbox: Sandbox) -> None:
    account = sandbox.add_account(nonce_window=10)
    client = Kraken(sandbox.url, account.key, account.secret)
    client.ok('Balance', nonce='100')
    client.ok('Balance', nonce='95')  # late but within the window
    assert error(client.private('Balance', nonce='95')) == 'EAPI:Invalid nonce'  # reused
    assert error(client.private('Balance', nonce='90')) == 'EAPI:Invalid nonce'  # too late
    client.ok('Balance', nonce='101')


def test_each_key_has_its_own_nonce(sandbox: Sandbox, kraken: Kraken) -> None:
    other = sandbox.add_account()
    kraken.ok('Balance', nonce='1000')
    Kraken(sandbox.url, other.key, other.secret).ok('Balance', nonce='1')


def test_otp_is_required_when_the_key_has_one(sandbox: Sandbox) -> None:
    account = sandbox.add_account(otp='123456')
    client = Kraken(sandbox.url, account.key, account.secret)
    assert error(client.private('Balance')) == 'EGeneral:Permission denied'
    assert error(client.private('Balance', {'otp': '654321'})) == 'EGeneral:Permission denied'
    assert 'ZUSD' in client.ok('Balance', {'otp': '123456'})


def test_requests_log_lists_authenticated_requests_in_order(sandbox: Sandbox,
                                                            kraken: Kraken) -> None:
    kraken.public('Time')
    kraken.ok('Balance', nonce='42')
    kraken.private('Balance', nonce='43', key='bm8=')
    kraken.ok('OpenOrders', nonce='44')
    assert sandbox.requests_log == [('Time', None), ('Balance', '42'), ('OpenOrders', '44')]


# -- rate limits ----------------------------------------------------------------------------

def test_tier_names_map_to_krakens_counters() -> None:
    assert TIERS == {'starter': (15, 0.33), 'intermediate': (20, 0.5), 'pro': (20, 1.0)}
    with pytest.raises(ValueError, match='is not a rate tier'):
        Sandbox(tier='platinum')


def test_rate_counter_rejects_over_the_maximum_and_recovers_after_decay() -> None:
    with Sandbox(tier=(3, 1.0)) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        for _ in range(3):
            client.ok('Balance')
        assert error(client.private('Balance')) == 'EAPI:Rate limit exceeded'
        time.sleep(1.2)  # 1.2 units decayed
        client.ok('Balance')


def test_rejected_calls_add_nothing_and_history_calls_cost_two() -> None:
    with Sandbox(tier=(3, 0.001)) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        client.ok('Ledgers')  # counter 2
        for _ in range(3):
            assert error(client.private('TradesHistory')) == 'EAPI:Rate limit exceeded'
        client.ok('Balance')  # counter 3: the rejected calls added nothing
        assert error(client.private('Balance')) == 'EAPI:Rate limit exceeded'
        for _ in range(5):  # AddOrder and CancelOrder cost nothing
            client.ok('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'market',
                                   'volume': '0.001', 'validate': 'true'})


def test_rate_counters_are_per_key_and_costs_can_be_overridden() -> None:
    with Sandbox(tier=(2, 0.001), costs={'Balance': 2}) as sandbox:
        first = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        other = sandbox.add_account()
        second = Kraken(sandbox.url, other.key, other.secret)
        first.ok('Balance')
        assert error(first.private('OpenOrders')) == 'EAPI:Rate limit exceeded'
        second.ok('Balance')


def test_public_calls_are_limited_per_client_address() -> None:
    with Sandbox(public_rate=1) as sandbox:
        client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
        replies = [client.public('Time') for _ in range(2)]
        assert replies[0]['error'] == []
        assert error(replies[1]) == 'EGeneral:Too many requests'
        time.sleep(1.1)
        assert result(client.public('Time'))


# -- market data ---------------------------------------------------------------------------

def test_assets_lists_kraken_names_and_filters_by_altname(market: Kraken) -> None:
    everything = result(market.public('Assets'))
    assert {'XXBT', 'XETH', 'ZUSD'} <= set(everything)
    assert everything['ZUSD'] == {'aclass': 'currency', 'altname': 'USD', 'decimals': 4,
                                  'display_decimals': 2, 'status': 'enabled'}
    assert set(result(market.public('Assets', asset='XBT,ETH'))) == {'XXBT', 'XETH'}
    assert error(market.public('Assets', asset='DOGE')) == 'EQuery:Unknown asset'


def test_asset_pairs_are_keyed_by_kraken_name_whatever_name_is_asked(market: Kraken) -> None:
    for name in ('XXBTZUSD', 'XBTUSD', 'XBT/USD', 'xbtusd'):
        assert list(result(market.public('AssetPairs', pair=name))) == ['XXBTZUSD']
    pair = result(market.public('AssetPairs', pair='ETHXBT'))['XETHXXBT']
    assert (pair['altname'], pair['wsname'], pair['base'], pair['quote']) == (
        'ETHXBT', 'ETH/XBT', 'XETH', 'XXBT')
    for field in ('pair_decimals', 'cost_decimals', 'lot_decimals', 'lot_multiplier',
                  'leverage_buy', 'fees', 'fees_maker', 'fee_volume_currency', 'margin_call',
                  'ordermin', 'costmin', 'tick_size', 'status', 'aclass_base', 'aclass_quote'):
        assert field in pair
    fees = result(market.public('AssetPairs', pair='XBTUSD', info='fees'))['XXBTZUSD']
    assert set(fees) == {'fees', 'fees_maker', 'fee_volume_currency'}
    assert error(market.public('AssetPairs', pair='DOGEUSD')) == 'EQuery:Unknown asset pair'


def test_ticker_serves_one_several_or_all_pairs(market: Kraken) -> None:
    assert list(result(market.public('Ticker', pair='XBTUSD'))) == ['XXBTZUSD']
    assert set(result(market.public('Ticker', pair='XBTUSD,ETH/USD'))) == {'XXBTZUSD', 'XETHZUSD'}
    everything = result(market.public('Ticker'))
    assert set(everything) >= {'XXBTZUSD', 'XETHZUSD', 'XETHXXBT'}
    ticker = everything['XXBTZUSD']
    assert Decimal(ticker['a'][0]) > Decimal(ticker['b'][0])
    assert len(ticker['a']) == len(ticker['b']) == 3 and len(ticker['c']) == 2
    assert len(ticker['a'][0].split('.')[1]) == 1  # XBTUSD's pair_decimals
    assert all(isinstance(n, int) for n in ticker['t'])
    assert Decimal(ticker['l'][1]) <= Decimal(ticker['c'][0]) <= Decimal(ticker['h'][1])
    assert error(market.public('Ticker', pair='XBTUSD,NOPE')) == 'EQuery:Unknown asset pair'


def test_ohlc_serves_at_most_720_rows_and_a_last_cursor(market: Kraken) -> None:
    for interval in (1, 60, 21600):
        data = result(market.public('OHLC', pair='XBTUSD', interval=interval))
        rows = data['XXBTZUSD']
        assert len(rows) == 720
        assert [r[0] for r in rows] == list(range(rows[0][0], rows[-1][0] + 1, interval * 60))
        assert data['last'] == rows[-2][0]  # the last committed candle
        assert all(Decimal(r[3]) <= min(Decimal(r[1]), Decimal(r[4])) for r in rows)
        assert all(Decimal(r[2]) >= max(Decimal(r[1]), Decimal(r[4])) for r in rows)
    for _attempt in range(3):  # a new candle may open between the two calls
        data = result(market.public('OHLC', pair='XBTUSD', interval=5))
        since = result(market.public('OHLC', pair='XBTUSD', interval=5, since=data['last']))
        if since['last'] == data['last']:
            break
    assert since['XXBTZUSD'] == data['XXBTZUSD'][-2:]  # the last committed one, the current one
    for interval in (7, 99999):
        assert error(market.public('OHLC', pair='XBTUSD', interval=interval)) == (
            'EGeneral:Invalid arguments')


def test_depth_is_a_sorted_ladder_of_count_levels(market: Kraken) -> None:
    book = result(market.public('Depth', pair='XBTUSD', count=5))['XXBTZUSD']
    asks = [Decimal(a[0]) for a in book['asks']]
    bids = [Decimal(b[0]) for b in book['bids']]
    assert len(asks) == len(bids) == 5
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True)
    assert bids[0] < asks[0]
    assert all(a % Decimal('0.1') == 0 for a in asks + bids)
    assert len(result(market.public('Depth', pair='XBTUSD'))['XXBTZUSD']['asks']) == 100
    assert error(market.public('Depth', pair='XBTUSD', count=501)).startswith(
        'EGeneral:Invalid arguments')


def test_trades_page_with_since_and_last_through_the_whole_history(market: Kraken) -> None:
    seen: list[int] = []
    since, pages = '0', 0
    while True:
        data = result(market.public('Trades', pair='ETHUSD', since=since, count=1000))
        rows = data['XETHZUSD']
        if not rows:
            break
        pages += 1
        seen += [r[6] for r in rows]
        assert all(r[3] in 'bs' and r[4] in 'ml' for r in rows)
        since = data['last']
    assert pages > 3
    assert len(seen) == len(set(seen)) > 3000
    assert seen == sorted(seen)
    newest = result(market.public('Trades', pair='ETHUSD', count=10))['XETHZUSD']
    assert [r[6] for r in newest] == seen[-10:]


def test_spread_serves_recent_rows_and_polls_with_last(market: Kraken) -> None:
    data = result(market.public('Spread', pair='XBTUSD'))
    rows = data['XXBTZUSD']
    assert 0 < len(rows) <= 200
    assert all(Decimal(bid) < Decimal(ask) for _, bid, ask in rows)
    assert result(market.public('Spread', pair='XBTUSD', since=data['last']))['XXBTZUSD'] == []


def test_a_price_of_one_tick_leaves_no_bids_and_the_market_data_still_answers(
        sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.set_price('SOLUSD', '0.01')
    ticker = result(kraken.public('Ticker', pair='SOLUSD'))['SOLUSD']
    assert ticker['b'][0] == '0.00' and ticker['c'][0] == '0.01'
    depth = result(kraken.public('Depth', pair='SOLUSD'))['SOLUSD']
    assert depth['bids'] == [] and depth['asks'][0][0] == '0.02'
    assert result(kraken.public('GroupedBook', pair='SOLUSD'))['bids'] == []


def test_market_data_is_reproducible_from_the_seed() -> None:
    def sample(seed: int) -> Any:
        with Sandbox(seed=seed) as sandbox:
            client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
            trades = result(client.public('Trades', pair='XBTUSD', count=50))['XXBTZUSD']
            book = result(client.public('Depth', pair='XBTUSD', count=5))
            return [t[:2] + t[3:] for t in trades], book['XXBTZUSD']['asks'][0][:2], sandbox.key

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_set_price_moves_the_book_ticker_and_tape(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.set_price('XBTUSD', '61000')
    ticker = result(kraken.public('Ticker', pair='XBTUSD'))['XXBTZUSD']
    assert ticker['c'][0] == '61000.0'
    assert Decimal(ticker['b'][0]) < 61000 < Decimal(ticker['a'][0])
    with pytest.raises(ValueError, match='unknown pair'):
        sandbox.set_price('DOGEUSD', 1)


# -- trading ---------------------------------------------------------------------------------

def test_limit_order_below_the_market_rests_and_holds_funds(kraken: Kraken) -> None:
    txid = kraken.order(price='59000', volume='0.1', userref=7)
    assert len(txid) == 19 and txid[6] == '-' and txid[12] == '-' and txid[0] == 'O'
    order = kraken.ok('OpenOrders')['open'][txid]
    assert order['status'] == 'open' and order['userref'] == 7
    assert order['descr']['order'] == 'buy 0.10000000 XBTUSD @ limit 59000.0'
    held = kraken.ok('BalanceEx')['ZUSD']['hold_trade']
    assert Decimal(held) == Decimal('5915.3400')  # 5900 plus the 0.26 % taker fee


def test_market_buy_walks_the_book_and_pays_the_taker_fee(kraken: Kraken) -> None:
    before = balances(kraken)
    asks = result(kraken.public('Depth', pair='XBTUSD', count=3))['XXBTZUSD']['asks']
    volume = Decimal(asks[0][1]) + Decimal('0.01')  # more than the best level holds
    txid = kraken.order(ordertype='market', volume=str(volume), price=None)
    order = kraken.ok('QueryOrders', {'txid': txid, 'trades': 'true'})[txid]
    assert order['status'] == 'closed' and len(order['trades']) == 2
    cost = Decimal(asks[0][0]) * Decimal(asks[0][1]) + Decimal(asks[1][0]) * Decimal('0.01')
    fills = kraken.ok('QueryTrades', {'txid': ','.join(order['trades'])})
    fee = sum(Decimal(t['fee']) for t in fills.values())
    assert abs(fee - cost * Decimal('0.0026')) < Decimal('0.0002')
    after = balances(kraken)
    assert after['XXBT'] - before['XXBT'] == volume
    assert before['ZUSD'] - after['ZUSD'] == cost.quantize(Decimal('0.0001')) + fee


def test_limit_order_that_crosses_fills_at_once(kraken: Kraken) -> None:
    txid = kraken.order(type='sell', price='59000', volume='0.05')
    assert kraken.ok('QueryOrders', {'txid': txid})[txid]['status'] == 'closed'
    assert kraken.ok('OpenOrders')['open'] == {}


def test_set_price_fills_a_resting_order_as_maker(sandbox: Sandbox, kraken: Kraken) -> None:
    txid = kraken.order(price='59000', volume='0.1')
    before = balances(kraken)
    sandbox.set_price('XBTUSD', '59500')
    assert kraken.ok('OpenOrders')['open'] != {}
    sandbox.set_price('XBTUSD', '58990')
    order = kraken.ok('QueryOrders', {'txid': txid})[txid]
    assert order['status'] == 'closed' and order['price'] == '59000.0'
    assert Decimal(order['fee']) == Decimal('9.44')  # 0.16 % maker fee on 5900
    after = balances(kraken)
    assert after['XXBT'] - before['XXBT'] == Decimal('0.1')
    assert before['ZUSD'] - after['ZUSD'] == Decimal('5909.44')
    assert [o['txid'] for o in sandbox.orders()] == [txid]


def test_validate_describes_the_order_and_places_nothing(sandbox: Sandbox,
                                                         kraken: Kraken) -> None:
    reply = kraken.ok('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                   'volume': '1.25', 'price': '37500', 'validate': 'true'})
    assert reply == {'descr': {'order': 'buy 1.25000000 XBTUSD @ limit 37500.0'}}
    assert sandbox.orders() == []


def test_validate_false_as_text_still_places(sandbox: Sandbox, kraken: Kraken) -> None:
    kraken.order(validate='False')  # python-kraken-sdk sends validate=False
    assert len(sandbox.orders()) == 1


@pytest.mark.parametrize(('params', 'message'), [
    ({'volume': '0.00001'}, 'EOrder:Order minimum not met'),
    ({'pair': 'ETHXBT', 'volume': '0.002', 'price': '0.00500'}, 'EOrder:Cost minimum not met'),
    ({'price': '59000.05'}, 'EOrder:Tick size check failed'),
    ({'volume': '2', 'price': '59000'}, 'EOrder:Insufficient funds'),
    ({'type': 'sell', 'volume': '11', 'price': '70000'}, 'EOrder:Insufficient funds'),
    ({'ordertype': 'settle-position'}, 'EGeneral:Invalid arguments:ordertype'),
    ({'ordertype': 'market'}, 'EGeneral:Invalid arguments:price'),
    ({'type': 'hold'}, 'EGeneral:Invalid arguments:type'),
    ({'volume': 'lots'}, 'EGeneral:Invalid arguments:volume'),
    ({'price': ''}, 'EGeneral:Invalid arguments:price'),
    ({'userref': '1', 'cl_ord_id': 'a'}, 'EGeneral:Invalid arguments'),
    ({'userref': str(2**31)}, 'EGeneral:Invalid arguments:userref'),
    ({'oflags': 'viqc'}, 'EGeneral:Invalid arguments:oflags'),
    ({'pair': 'XBTEUR'}, 'EQuery:Unknown asset pair'),
])
def test_addorder_rejects_what_kraken_rejects(sandbox: Sandbox, params: dict[str, str],
                                              message: str) -> None:
    client = Kraken(sandbox.url, *_small_account(sandbox))
    assert error(client.private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                             'ordertype': 'limit', 'volume': '0.1',
                                             'price': '59000', **params})) == message
    assert sandbox.orders(client.key) == []


def _small_account(sandbox: Sandbox) -> tuple[str, str]:
    account = sandbox.add_account({'ZUSD': '10000', 'XXBT': '10', 'XETH': '10'})
    return account.key, account.secret


def test_funds_held_by_open_orders_are_not_available(sandbox: Sandbox) -> None:
    client = Kraken(sandbox.url, *_small_account(sandbox))
    client.order(volume='0.1', price='59000')  # holds 5915.34 of 10000
    reply = client.private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                        'volume': '0.07', 'price': '59000'})
    assert error(reply) == 'EOrder:Insufficient funds'


def test_custom_balances_start_with_deposits_only(sandbox: Sandbox) -> None:
    client = Kraken(sandbox.url, *_small_account(sandbox))
    assert balances(client) == {'ZUSD': Decimal('10000'), 'XXBT': 10, 'XETH': 10}
    ledger = client.ok('Ledgers')['ledger'].values()
    assert sorted(e['type'] for e in ledger) == ['deposit'] * 3
    assert client.ok('TradesHistory')['count'] == 0


def test_cl_ord_id_must_be_unique_among_open_orders(sandbox: Sandbox, kraken: Kraken) -> None:
    txid = kraken.order(cl_ord_id='my-order-1')
    duplicate = kraken.private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                            'ordertype': 'limit', 'volume': '0.1',
                                            'price': '58000', 'cl_ord_id': 'my-order-1'})
    assert error(duplicate) == 'EOrder:Duplicate order'
    assert [o['txid'] for o in sandbox.orders()] == [txid]
    kraken.ok('CancelOrder', {'cl_ord_id': 'my-order-1'})
    kraken.order(cl_ord_id='my-order-1')  # Kraken checks open orders only


def test_cancel_order_by_txid_userref_and_cl_ord_id(kraken: Kraken) -> None:
    first = kraken.order()
    kraken.order(userref=5)
    kraken.order(userref=5, price='58000')
    kraken.order(cl_ord_id='abc')
    assert kraken.ok('CancelOrder', {'txid': first}) == {'count': 1}
    assert kraken.ok('CancelOrder', {'txid': '5'}) == {'count': 2}
    assert kraken.ok('CancelOrder', {'cl_ord_id': 'abc'}) == {'count': 1}
    assert kraken.ok('OpenOrders')['open'] == {}
    assert error(kraken.private('CancelOrder', {'txid': first})) == 'EOrder:Unknown order'
    closed = kraken.ok('ClosedOrders')['closed'][first]
    assert closed['status'] == 'canceled' and closed['reason'] == 'User requested'


def test_cancel_all_and_cancel_order_batch(kraken: Kraken) -> None:
    ids = [kraken.order(price=str(58000 + i)) for i in range(4)]
    kraken.order(cl_ord_id='batch-x')
    batch = kraken.ok('CancelOrderBatch', {'orders': ids[:2], 'cl_ord_ids': ['batch-x']},
                      as_json=True)
    assert batch == {'count': 3}
    assert set(kraken.ok('OpenOrders')['open']) == set(ids[2:])
    assert kraken.ok('CancelAll') == {'count': 2}
    assert kraken.ok('OpenOrders')['open'] == {}


def test_cancel_all_orders_after_fires_when_the_timeout_passes(kraken: Kraken) -> None:
    kraken.order()
    armed = kraken.ok('CancelAllOrdersAfter', {'timeout': '1'})
    assert armed['triggerTime'] != '0' and armed['currentTime'].endswith('Z')
    assert len(kraken.ok('OpenOrders')['open']) == 1
    time.sleep(1.1)
    assert kraken.ok('OpenOrders')['open'] == {}
    assert kraken.ok('CancelAllOrdersAfter', {'timeout': '0'})['triggerTime'] == '0'


def test_add_order_batch_drops_refused_orders_and_places_the_rest(sandbox: Sandbox,
                                                                  kraken: Kraken) -> None:
    orders = [{'ordertype': 'limit', 'type': 'buy', 'volume': '0.1', 'price': '58000'},
              {'ordertype': 'limit', 'type': 'sell', 'volume': 0.1, 'price': 62000,
               'cl_ord_id': 'b-2'}]
    placed = kraken.ok('AddOrderBatch', {'pair': 'XBTUSD', 'orders': orders}, as_json=True)
    assert [o['descr']['order'] for o in placed['orders']] == [
        'buy 0.10000000 XBTUSD @ limit 58000.0', 'sell 0.10000000 XBTUSD @ limit 62000.0']
    bad = [{'ordertype': 'limit', 'type': 'buy', 'volume': '0.1', 'price': '56000.05'},
           {'ordertype': 'limit', 'type': 'buy', 'volume': '0.1', 'price': '56000'},
           {'ordertype': 'limit', 'type': 'buy', 'volume': '1000', 'price': '56000'}]
    mixed = kraken.ok('AddOrderBatch', {'pair': 'XBTUSD', 'orders': bad}, as_json=True)
    assert mixed['orders'][0] == {'error': 'EOrder:Tick size check failed'}
    assert mixed['orders'][1]['descr']['order'] == 'buy 0.10000000 XBTUSD @ limit 56000.0'
    assert mixed['orders'][2] == {'error': 'EOrder:Insufficient funds'}
    assert len(sandbox.orders()) == 3
    form = {'pair': 'XBTUSD', 'orders[0][ordertype]': 'limit', 'orders[0][type]': 'buy',
            'orders[0][volume]': '0.1', 'orders[0][price]': '57000',
            'orders[1][ordertype]': 'limit', 'orders[1][type]': 'buy',
            'orders[1][volume]': '0.1', 'orders[1][price]': '57100'}
    assert len(kraken.ok('AddOrderBatch', form)['orders']) == 2
    assert len(sandbox.orders()) == 5
    assert error(kraken.private('AddOrderBatch', {'pair': 'XBTUSD', 'orders': orders[:1]},
                                as_json=True)) == 'EGeneral:Invalid arguments:orders'


def test_amend_order_changes_price_and_quantity_in_place(kraken: Kraken) -> None:
    txid = kraken.order(cl_ord_id='amend-me')
    assert kraken.ok('AmendOrder', {'txid': txid, 'limit_price': '58500'})['amend_id']
    kraken.ok('AmendOrder', {'cl_ord_id': 'amend-me', 'order_qty': '0.2'})
    order = kraken.ok('OpenOrders')['open'][txid]
    assert (order['descr']['price'], order['vol']) == ('58500.0', '0.20000000')
    kraken.ok('AmendOrder', {'txid': txid, 'limit_price': '61000'})  # now crosses: fills
    assert kraken.ok('QueryOrders', {'txid': txid})[txid]['status'] == 'closed'


def test_edit_order_replaces_the_order_with_a_new_txid(kraken: Kraken) -> None:
    old = kraken.order(userref=3)
    edited = kraken.ok('EditOrder', {'txid': old, 'pair': 'XBTUSD', 'price': '58000'})
    assert edited['originaltxid'] == old and edited['txid'] != old
    open_ = kraken.ok('OpenOrders')['open']
    assert list(open_) == [edited['txid']] and open_[edited['txid']]['userref'] == 3


def test_open_and_query_orders_filter_by_userref_and_cl_ord_id(kraken: Kraken) -> None:
    a = kraken.order(userref=1)
    b = kraken.order(cl_ord_id='bee')
    assert list(kraken.ok('OpenOrders', {'userref': 1})['open']) == [a]
    assert list(kraken.ok('OpenOrders', {'cl_ord_id': 'bee'})['open']) == [b]
    assert set(kraken.ok('QueryOrders', {'txid': f'{a},{b}'})) == {a, b}
    assert error(kraken.private('QueryOrders', {'txid': ','.join([a] * 51)})).startswith(
        'EGeneral:Invalid arguments')


def test_post_only_order_that_would_cross_is_canceled(kraken: Kraken) -> None:
    txid = kraken.order(price='61000', oflags='post')
    order = kraken.ok('QueryOrders', {'txid': txid})[txid]
    assert (order['status'], order['vol_exec']) == ('canceled', '0.00000000')


# -- history and paging ----------------------------------------------------------------------

def test_default_account_has_a_long_seeded_history(sandbox: Sandbox, kraken: Kraken) -> None:
    assert kraken.ok('Ledgers')['count'] > 150
    assert kraken.ok('TradesHistory')['count'] > 100
    assert kraken.ok('ClosedOrders')['count'] > 100
    assert balances(kraken) == {'ZUSD': 100000, 'XXBT': 10, 'XETH': 100}
    assert sandbox.orders() == []  # the made-up history is not 'accepted over the API'
    with pytest.raises(ValueError, match='no account'):
        sandbox.orders('no such key')


def test_every_balance_is_the_sum_of_its_ledger(sandbox: Sandbox, kraken: Kraken) -> None:
    kraken.order(ordertype='market', volume='0.3', price=None)
    kraken.order(pair='ETHXBT', type='sell', ordertype='market', volume='1.5', price=None)
    kraken.order(price='59000')
    sandbox.set_price('XBTUSD', '58000')
    kraken.ok('Withdraw', {'asset': 'XBT', 'key': 'sandbox', 'amount': '0.5'})
    sums: dict[str, Decimal] = {}
    running: dict[str, Decimal] = {}
    for _, entry in reversed(all_pages(kraken, 'Ledgers', 'ledger')):
        change = Decimal(entry['amount']) - Decimal(entry['fee'])
        sums[entry['asset']] = sums.get(entry['asset'], Decimal(0)) + change
        running[entry['asset']] = Decimal(entry['balance'])
        assert running[entry['asset']] == sums[entry['asset']]  # the balance column runs
    assert sums == balances(kraken)


@pytest.mark.parametrize(('method', 'key'), [
    ('Ledgers', 'ledger'), ('TradesHistory', 'trades'), ('ClosedOrders', 'closed')])
def test_history_pages_hold_50_rows_newest_first_each_row_once(kraken: Kraken, method: str,
                                                               key: str) -> None:
    rows = all_pages(kraken, method, key)
    ids = [i for i, _ in rows]
    assert len(ids) == len(set(ids)) > 100
    times = [r.get('closetm', r.get('time')) for _, r in rows]
    assert times == sorted(times, reverse=True)
    page = kraken.ok(method, {'ofs': 100})
    assert list(page[key]) == ids[100:150]


def test_ledgers_filter_by_asset_type_and_time(kraken: Kraken) -> None:
    rows = all_pages(kraken, 'Ledgers', 'ledger', asset='XBT')
    assert {e['asset'] for _, e in rows} == {'XXBT'}
    deposits = kraken.ok('Ledgers', {'type': 'deposit'})['ledger']
    assert {e['type'] for e in deposits.values()} == {'deposit'} and len(deposits) == 3
    newest = [e for _, e in rows][:5]
    window = kraken.ok('Ledgers', {'asset': 'XXBT', 'start': newest[-1]['time'],
                                   'end': newest[0]['time']})
    assert window['count'] == 4
    ids = [i for i, _ in rows[:3]]
    assert set(kraken.ok('QueryLedgers', {'id': ','.join(ids)})) == set(ids)
    assert all(i.startswith('L') and len(i) == 19 for i in ids)


def test_trades_history_rows_match_their_orders_and_ledgers(kraken: Kraken) -> None:
    trades = kraken.ok('TradesHistory', {'ledgers': 'true'})['trades']
    txid, trade = next(iter(trades.items()))
    assert kraken.ok('QueryTrades', {'txid': txid})[txid]['ordertxid'] == trade['ordertxid']
    ledger = kraken.ok('QueryLedgers', {'id': ','.join(trade['ledgers'])})
    assert {e['refid'] for e in ledger.values()} == {txid}
    order = kraken.ok('QueryOrders', {'txid': trade['ordertxid'], 'trades': 'true'})
    assert txid in order[trade['ordertxid']]['trades']


def test_retrieve_export_is_a_zip_holding_a_csv(kraken: Kraken) -> None:
    export_id = kraken.ok('AddExport', {'report': 'trades', 'description': 'mine'})['id']
    status = kraken.ok('ExportStatus', {'report': 'trades'})
    assert [s['id'] for s in status] == [export_id] and status[0]['status'] == 'Processed'
    response = kraken.post('RetrieveExport', {'id': export_id})
    assert response.headers['Content-Type'] == 'application/zip'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        (name,) = archive.namelist()
        rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    assert name == 'trades.csv'
    assert len(rows) == kraken.ok('TradesHistory')['count']
    assert set(rows[0]) >= {'txid', 'ordertxid', 'pair', 'time', 'price', 'fee', 'vol'}
    assert kraken.ok('RemoveExport', {'id': export_id, 'type': 'delete'}) == {'delete': True}
    assert error(kraken.private('RetrieveExport', {'id': export_id})).startswith('EGeneral:')


def test_withdraw_debits_the_balance_and_writes_a_ledger_row(kraken: Kraken) -> None:
    before = balances(kraken)['XXBT']
    info = kraken.ok('WithdrawInfo', {'asset': 'XBT', 'key': 'sandbox', 'amount': '1'})
    refid = kraken.ok('Withdraw', {'asset': 'XBT', 'key': 'sandbox', 'amount': '1'})['refid']
    assert balances(kraken)['XXBT'] == before - 1 - Decimal(info['fee'])
    entry = next(iter(kraken.ok('Ledgers', {'type': 'withdrawal'})['ledger'].values()))
    assert (entry['refid'], entry['amount']) == (refid, '-1.0000000000')
    assert kraken.ok('WithdrawStatus', {'asset': 'XBT'})[0]['refid'] == refid
    assert error(kraken.private('Withdraw', {'asset': 'XBT', 'key': 'elsewhere',
                                             'amount': '1'})) == 'EFunding:Unknown withdraw key'
    assert error(kraken.private('Withdraw', {'asset': 'XBT', 'key': 'sandbox',
                                             'amount': '100'})) == 'EFunding:Insufficient funds'


def test_funding_and_account_helpers_answer_plausibly(kraken: Kraken) -> None:
    assert kraken.ok('DepositMethods', {'asset': 'XBT'})[0]['gen-address'] is True
    method = kraken.ok('DepositMethods', {'asset': 'XBT'})[0]['method']
    assert kraken.ok('DepositAddresses', {'asset': 'XBT', 'method': method})[0]['address']
    assert error(kraken.private('DepositAddresses', {'asset': 'XBT', 'method': 'x'})) == \
        'EFunding:Unknown method'
    assert len(kraken.ok('DepositStatus')) == 3
    assert kraken.ok('GetWebSocketsToken')['expires'] == 900
    assert kraken.ok('OpenPositions') == {}
    volume = kraken.ok('TradeVolume', {'pair': 'XBTUSD'})
    assert volume['fees']['XXBTZUSD']['fee'] == '0.2600'
    assert error(kraken.private('DepositMethods', {'asset': 'DOGE'})) == 'EFunding:Unknown asset'


# -- faults --------------------------------------------------------------------------------

@pytest.mark.parametrize('status', [520, 502, 504])
def test_html_faults_are_cloudflare_pages_and_nothing_is_placed(sandbox: Sandbox, kraken: Kraken,
                                                                status: int) -> None:
    sandbox.inject(f'html{status}', method='AddOrder')
    response = kraken.post('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                        'volume': '0.1', 'price': '59000'})
    assert response.status_code == status
    assert response.headers['Content-Type'] == 'text/html; charset=UTF-8'
    assert response.headers['Server'] == 'cloudflare'
    assert response.headers['CF-RAY'].endswith('-AMS')
    assert f'api.kraken.com | {status}:' in response.text
    assert sandbox.orders() == [] and sandbox.requests_log == []
    kraken.order()  # the next request is served normally
    assert len(sandbox.orders()) == 1


def raw_get(url: str, path: str) -> bytes:
    """One GET on a fresh socket; what came back (ConnectionResetError on a TCP RST)."""
    host, port = url.removeprefix('http://').split(':')
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(f'GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n'.encode())
        return connection.recv(65536)


def test_reset_sends_a_tcp_rst_before_processing(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.inject('reset')
    with pytest.raises(ConnectionResetError):
        raw_get(sandbox.url, '/0/public/Time')
    sandbox.inject('reset')
    with pytest.raises(requests.ConnectionError):
        kraken.post('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'market',
                                 'volume': '0.1'})
    assert sandbox.orders() == [] and sandbox.requests_log == []
    assert result(kraken.public('Time'))


def test_reply_lost_addorder_did_place_the_order(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.inject('reply_lost', method='Time')
    with pytest.raises(ConnectionResetError):
        raw_get(sandbox.url, '/0/public/Time')
    sandbox.inject('reply_lost', method='AddOrder')
    with pytest.raises(requests.ConnectionError):
        kraken.post('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                 'volume': '0.1', 'price': '59000', 'userref': 99})
    placed = sandbox.orders()
    assert [(o['userref'], o['status']) for o in placed] == [(99, 'open')]
    assert sandbox.requests_log == [('Time', None), ('AddOrder', '1')]
    assert error(kraken.private('Balance', nonce='1')) == 'EAPI:Invalid nonce'  # consumed


def test_delay_waits_then_processes(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.inject('delay', seconds=0.3)
    started = time.monotonic()
    assert result(kraken.public('Time'))
    assert time.monotonic() - started >= 0.3


def test_reply_delayed_processes_first_then_waits(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.inject('reply_delayed', seconds=2, method='AddOrder')
    with pytest.raises(requests.ReadTimeout):
        kraken.post('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                 'volume': '0.1', 'price': '59000'}, timeout=0.3)
    assert len(sandbox.orders()) == 1  # placed although the caller gave up


def test_not_json_processes_and_replies_with_text(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.inject('not_json', method='AddOrder')
    response = kraken.post('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                        'volume': '0.1', 'price': '59000'})
    assert response.status_code == 200 and response.headers['Content-Type'] == 'text/plain'
    with pytest.raises(ValueError):
        response.json()
    assert len(sandbox.orders()) == 1


def test_unavailable_answers_eservice_without_processing(sandbox: Sandbox,
                                                         kraken: Kraken) -> None:
    sandbox.inject('unavailable', times=2)
    assert error(kraken.private('Balance')) == 'EService:Unavailable'
    assert error(kraken.public('Time')) == 'EService:Unavailable'
    assert sandbox.requests_log == []
    assert result(kraken.public('Time'))


def test_faults_match_their_method_and_queue_in_order(sandbox: Sandbox, kraken: Kraken) -> None:
    sandbox.inject('unavailable', method='Balance')
    sandbox.inject('html502', method='Balance')
    sandbox.inject('html504')
    time_reply = kraken.session.get(f'{kraken.url}/0/public/Time', timeout=5)
    assert time_reply.status_code == 504  # only the fault for any method matches Time
    assert error(kraken.private('Balance')) == 'EService:Unavailable'
    assert kraken.post('Balance').status_code == 502
    assert result(kraken.private('Balance'))
    sandbox.inject('html520', method='Ledgers')
    sandbox.clear_faults()
    assert result(kraken.private('Ledgers'))
    with pytest.raises(ValueError, match='unknown fault'):
        sandbox.inject('explode')


# -- life cycle ------------------------------------------------------------------------------

def test_stop_closes_idle_keepalive_connections_and_joins_threads() -> None:
    before = set(threading.enumerate())
    sandbox = Sandbox().start()
    clients = [Kraken(sandbox.url, sandbox.key, sandbox.secret) for _ in range(3)]
    for client in clients:
        assert result(client.public('Time'))  # leaves an idle keep-alive connection each
    assert len(set(threading.enumerate()) - before) >= 4
    sandbox.stop()
    sandbox.stop()  # idempotent
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(requests.ConnectionError):
        clients[0].public('Time')


def test_stop_interrupts_a_delay_fault() -> None:
    before = set(threading.enumerate())
    sandbox = Sandbox().start()
    sandbox.inject('delay', seconds=60)
    client = Kraken(sandbox.url, sandbox.key, sandbox.secret)
    outcome: queue.Queue[BaseException | object] = queue.Queue()

    def call() -> None:
        try:
            outcome.put(client.public('Time'))
        except BaseException as exc:  # handed to the main thread to assert on
            outcome.put(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    sandbox.stop()
    caller.join(5)
    assert time.monotonic() - started < 2
    assert isinstance(outcome.get(timeout=1), requests.ConnectionError)
    assert set(threading.enumerate()) - before == set()


def test_a_stopped_sandbox_says_so_and_restarts_on_its_url_with_its_state() -> None:
    sandbox = Sandbox(balances={'ZUSD': '1000'})
    assert repr(sandbox) == '<Sandbox not started>'
    with sandbox:
        url = sandbox.url
        assert repr(sandbox) == f'<Sandbox {url}>'
        client = Kraken(url, sandbox.key, sandbox.secret)
        txid = client.order(volume='0.0001', price='50000')
    assert repr(sandbox) == f'<Sandbox {url} stopped>'
    assert not sandbox.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url + '/0/public/Time', timeout=2)
    with sandbox:
        assert sandbox.url == url
        client = Kraken(url, sandbox.key, sandbox.secret)
        client.nonce = 10
        assert txid in client.ok('OpenOrders')['open']
    with pytest.raises(RuntimeError, match='running already'), sandbox:
        sandbox.start()


def test_routes_added_by_another_module_share_the_state_and_take_faults() -> None:
    from krakenex.sandbox import Request, envelope

    seen: list[str] = []
    with Sandbox(balances={'ZUSD': '1000'}) as sandbox:
        def route(request: Request) -> Any:
            seen.append(request.method)
            with sandbox.exchange.lock:
                usd = sandbox.exchange.accounts[sandbox.key].balances['ZUSD']
            return envelope({'result': {'usd': str(usd)}, 'path': request.path})

        sandbox.add_route('/derivatives/api/v3/', route)
        reply = requests.get(sandbox.url + '/derivatives/api/v3/accounts', timeout=5)
        assert reply.json() == {'result': {'usd': '1000'},
                                'path': '/derivatives/api/v3/accounts'}
        sandbox.inject('html502', method='accounts')
        assert requests.get(sandbox.url + '/derivatives/api/v3/accounts',
                            timeout=5).status_code == 502
        assert seen == ['accounts']
        assert requests.get(sandbox.url + '/0/public/Time', timeout=5).json()['error'] == []


def test_command_line_serves_until_sigint_and_exits_zero() -> None:
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    process = subprocess.Popen([sys.executable, '-m', 'krakenex.sandbox', '--port', '0',
                                '--tier', 'pro'], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or []:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        printed = dict(lines.get(timeout=20).strip().partition(': ')[::2] for _ in range(3))
        assert set(printed) == {'url', 'key', 'secret'}
        client = Kraken(printed['url'], printed['key'], printed['secret'])
        assert result(client.public('Time'))
        assert 'ZUSD' in client.ok('Balance')
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_the_command_prints_every_address_and_key_a_client_needs_all_on_one_port() -> None:
    from krakenex import API
    from krakenex.futures import FuturesAPI
    from krakenex.ws import WS

    process = subprocess.Popen([sys.executable, '-m', 'krakenex', 'sandbox'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []],
                     daemon=True).start()
    try:
        printed: dict[str, str] = {}
        while 'futures_secret' not in printed:
            name, _, value = lines.get(timeout=20).strip().partition(': ')
            printed[name] = value
        addresses = {name for name in dir(Sandbox) if name.endswith('_url')} | {'url'}
        assert addresses <= set(printed), 'an address the sandbox serves is not printed'
        port = printed['url'].rsplit(':', 1)[1]
        assert all(printed[name].startswith(('http://127.0.0.1:' + port,
                                             'ws://127.0.0.1:' + port + '/'))
                   for name in addresses)
        with API(printed['key'], printed['secret'], uri=printed['url']) as api, \
                WS(api, url=printed['ws_url'], auth_url=printed['ws_auth_url'],
                   l3_url=printed['ws_l3_url'], timeout=10) as ws:
            ws.subscribe('ticker', symbol=['BTC/USD'])
            ws.subscribe('balances')
            ws.subscribe('level3', symbol=['BTC/USD'])
            seen = {ws.recv(timeout=10).get('channel') for _ in range(12)}
            assert {'ticker', 'balances', 'level3'} <= seen
        with FuturesAPI(printed['futures_key'], printed['futures_secret'],
                        uri=printed['futures_url'], raise_errors=True) as futures:
            assert 'flex' in futures.query_private('accounts')['accounts']
    finally:
        process.terminate()
        process.communicate(timeout=10)


def sandbox_command(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    return subprocess.run([sys.executable, '-m', 'krakenex', 'sandbox', *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


@pytest.mark.parametrize('port', ['70000', '-1', 'abc', '²'])
def test_command_line_port_out_of_range_is_one_line_and_exit_2(port: str) -> None:
    done = sandbox_command('--port', port)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert 'Traceback' not in done.stderr and 'port' in done.stderr


def test_command_line_busy_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        done = sandbox_command('--port', str(taken.getsockname()[1]))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert 'cannot listen on 127.0.0.1' in done.stderr


def test_command_line_takes_a_tier_as_max_and_decay_like_the_client() -> None:
    from krakenex.cli.sandbox import main

    assert main(['--tier', 'nan,1'], prog='krakenex sandbox') == 2
    sandbox = Sandbox(tier='10,1')
    assert sandbox.exchange.tier == (10.0, 1.0)
    done = sandbox_command('--tier', '10,1', '--port', '70000')  # parsed, then refused port
    assert 'tier' not in done.stderr and 'port' in done.stderr


def test_sandbox_modules_import_no_private_names_and_hold_the_exchange_by_composition() -> None:
    import ast
    import inspect
    from pathlib import Path

    import krakenex.sandbox as package
    from krakenex.sandbox import account_data, funding, market_data, trading
    from krakenex.sandbox.exchange import Exchange

    folder = Path(package.__file__).parent
    for path in folder.glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                private = [a.name for a in node.names if a.name.startswith('_')]
                assert private == [], (path.name, node.module, private)
    for module in (market_data, account_data, trading, funding):
        assert len(inspect.getsource(module).splitlines()) < 500, module.__name__
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                assert not issubclass(cls, Exchange)
    with Sandbox(tier=None) as sandbox:
        handlers = {**sandbox.endpoints.public, **sandbox.endpoints.private}
        assert {getattr(h, '__self__', None).__class__.__module__ for h in handlers.values()} \
            >= {m.__name__ for m in (market_data, account_data, trading, funding)}
        assert sandbox.endpoints.trading.exchange is sandbox.exchange
