"""The API class: the krakenex 2.x contract and what it does better, over real HTTP."""

from __future__ import annotations

import io
import itertools
import json
import logging
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

import krakenex
from krakenex import (
    API,
    AuthenticationError,
    InsufficientFundsError,
    InvalidNonceError,
    InvalidOrderError,
    KrakenAPIError,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    RateLimitError,
    ServiceUnavailableError,
    UnknownAssetError,
)
from krakenex.errors import error_class
from krakenex.sandbox import Sandbox

# Kraken's own signing examples: https://docs.kraken.com/api/docs/guides/spot-rest-auth and
# https://docs.kraken.com/api/docs/guides/custody-rest-auth
OFFICIAL_SECRET = ('kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99H'
                   'AZtuZuj6F1huXg==')


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[API]:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=5, backoff=0.01) as client:
        yield client


def market_buy(volume: str = '0.01', **extra: Any) -> dict[str, Any]:
    return {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'market', 'volume': volume, **extra}


# ----------------------------------------------------------- the 2.x contract

def test_a_krakenex_2_script_runs_unchanged(sandbox: Sandbox) -> None:
    k = API()
    k.key, k.secret = sandbox.key, sandbox.secret
    k.uri = sandbox.url
    assert (k.apiversion, isinstance(k.session, requests.Session), k.response) == ('0', True, None)
    assert k.json_options() is k
    time_reply = k.query_public('Time')
    assert time_reply['error'] == [] and 'unixtime' in time_reply['result']
    assert k.response is not None and k.response.request.method == 'GET'
    balance = k.query_private('Balance')
    assert balance['error'] == [] and 'ZUSD' in balance['result']
    assert k.response.request.method == 'POST'
    nonce = k._nonce()
    assert isinstance(nonce, int) and nonce > 0
    data = {'nonce': nonce}
    reply = k._query('/0/private/Balance', data, {'API-Key': k.key,
                                                  'API-Sign': k._sign(data, '/0/private/Balance')})
    assert reply['error'] == []
    k.close()


def test_public_parameters_go_in_the_query_string(api: API) -> None:
    reply = api.query_public('Ticker', {'pair': 'XBTUSD'})
    assert reply['error'] == [] and list(reply['result']) == ['XXBTZUSD']
    assert api.response is not None
    assert api.response.request.url.endswith('/0/public/Ticker?pair=XBTUSD')
    assert api.response.request.body is None


def test_default_uri_and_timeout_are_kraken_and_finite() -> None:
    api = API()
    assert api.uri == 'https://api.kraken.com'
    assert api.timeout == krakenex.DEFAULT_TIMEOUT
    assert all(0 < t < 120 for t in krakenex.DEFAULT_TIMEOUT)


def test_json_options_decode_numbers_as_decimal(api: API) -> None:
    from decimal import Decimal

    reply = api.json_options(parse_float=Decimal).query_public('Trades', {'pair': 'XBTUSD'})
    trade_time = reply['result']['XXBTZUSD'][0][2]  # Kraken sends trade times as JSON floats
    assert isinstance(trade_time, Decimal) and trade_time == Decimal(str(trade_time))
    api.json_options(parse_int=Decimal)
    assert isinstance(api.query_public('Time')['result']['unixtime'], Decimal)


# ------------------------------------------------------------------ signing

def test_official_addorder_vector_reproduces_through_sign() -> None:
    api = API('key', OFFICIAL_SECRET)
    data = {'nonce': '1616492376594', 'ordertype': 'limit', 'pair': 'XBTUSD',
            'price': 37500, 'type': 'buy', 'volume': 1.25}
    assert api._sign(data, '/0/private/AddOrder') == (
        '4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==')


def test_official_json_body_vector_reproduces_through_sign() -> None:
    api = API('key', OFFICIAL_SECRET)
    assert api._sign(b'{"nonce":1616492376594}', '/0/private/GetCustodyTask?id=TGWOJ4JQPOTZT2') == (
        '2rM09q8HG7LvjivBitQUybwZ/DSeO8+i0U/at/wclH2Jma6gMaE/0Nw9dyLR+ykMd5eWCngSL4K58i6uJzXDCw==')


def test_nested_data_goes_as_json_and_the_signature_covers_that_text(
        api: API, sandbox: Sandbox) -> None:
    orders = [{'ordertype': 'limit', 'type': 'buy', 'volume': '0.01', 'price': '1000.0'},
              {'ordertype': 'limit', 'type': 'buy', 'volume': '0.01', 'price': '1001.0'}]
    reply = api.query_private('AddOrderBatch', {'pair': 'XBTUSD', 'orders': orders})
    assert reply['error'] == [], reply
    assert len(reply['result']['orders']) == 2
    assert api.response is not None
    sent = api.response.request
    assert sent.headers['Content-Type'] == 'application/json'
    body = json.loads(sent.body)
    # each order as given, plus the cl_ord_id krakenex names an unnamed order with
    assert [{k: v for k, v in o.items() if k != 'cl_ord_id'} for o in body['orders']] == orders
    assert all(o['cl_ord_id'] for o in body['orders']) and body['pair'] == 'XBTUSD'
    assert api._sign(sent.body, '/0/private/AddOrderBatch') == sent.headers['API-Sign']

    txids = [o['txid'] for o in reply['result']['orders']]
    cancel = api.query_private('CancelOrderBatch', {'orders': txids})
    assert cancel['error'] == [], cancel
    assert api.response.request.headers['Content-Type'] == 'application/json'
    assert all(o['status'] == 'canceled' for o in sandbox.orders() if o['txid'] in txids)


def test_every_kind_of_private_call_is_accepted_by_a_server_that_checks_signatures(
        api: API) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ('Balance', {}), ('BalanceEx', {}), ('TradeBalance', {'asset': 'ZUSD'}),
        ('OpenOrders', {'trades': True}), ('ClosedOrders', {'ofs': 50}),
        ('TradesHistory', {}), ('Ledgers', {'asset': 'XXBT,ZUSD'}), ('TradeVolume', {}),
        ('AddOrder', market_buy(validate=True)), ('GetWebSocketsToken', {}),
        ('AddOrder', {**market_buy(), 'close[ordertype]': 'limit', 'close[price]': '99000'}),
    ]
    for method, data in calls:
        reply = api.query_private(method, data)
        assert not [e for e in reply['error'] if e.startswith('EAPI')], (method, reply)


def test_the_callers_data_is_never_modified(api: API) -> None:
    data = market_buy(userref=7)
    frozen = dict(data)
    api.query_private('AddOrder', data)
    api.query_public('Ticker', {'pair': ['XBTUSD', 'ETHUSD']})
    assert data == frozen and 'nonce' not in data


def test_booleans_are_sent_as_kraken_spells_them(api: API) -> None:
    reply = api.query_private('AddOrder', market_buy(validate=True))
    assert reply['error'] == [] and 'txid' not in reply['result']
    assert api.response is not None and b'validate=true' in api.response.request.body


# ------------------------------------------------------------------- nonces

@pytest.mark.unlimited  # 1600 calls at once: about the nonces, not the rate limits
def test_eight_threads_sharing_one_api_object_get_no_invalid_nonce(
        api: API, sandbox: Sandbox, in_threads: Callable[..., list[Any]]) -> None:
    replies = in_threads(8, 200, lambda _: api.query_private('Balance'))
    assert len(replies) == 1600
    assert [r['error'] for r in replies if r['error']] == []
    arrived = [int(n) for method, n in sandbox.requests_log if method == 'Balance' and n]
    assert len(arrived) == 1600
    assert all(a < b for a, b in itertools.pairwise(arrived)), 'nonces arrived out of order'


@pytest.mark.parametrize(('unit', 'digits'), [('ms', 13), ('us', 16), ('ns', 19)])
def test_nonce_unit_sets_the_magnitude(unit: str, digits: int) -> None:
    assert len(str(API(nonce_unit=unit)._nonce())) == digits


def test_nonces_keep_increasing_when_the_clock_stands_still(
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = API()
    monkeypatch.setattr(time, 'time_ns', lambda: 1_700_000_000_000_000_000)
    nonces = [api._nonce() for _ in range(1000)]
    assert nonces == sorted(set(nonces)) and nonces[0] == 1_700_000_000_000


def test_an_unknown_nonce_unit_is_refused() -> None:
    with pytest.raises(KrakenUsageError, match='nonce_unit'):
        API(nonce_unit='s')


def test_invalid_nonce_says_the_likely_causes(sandbox: Sandbox,
                                              caplog: pytest.LogCaptureFixture) -> None:
    # Another client on the key: it shares no store with krakenex, and its nonces are ahead.
    ahead = API(sandbox.key, sandbox.secret, uri=sandbox.url, nonce_unit='us', share=None)
    assert ahead.query_private('Balance')['error'] == []
    behind = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True)
    with pytest.raises(InvalidNonceError) as caught:
        behind.query_private('Balance')
    message = str(caught.value)
    assert 'EAPI:Invalid nonce' in message
    assert 'another client' in message and 'share=' in message
    assert 'nonce_unit' in message

    behind.raise_errors = False
    with caplog.at_level(logging.WARNING, logger='krakenex'):
        reply = behind.query_private('Balance')
    assert reply['error'] == ['EAPI:Invalid nonce']
    assert 'another client' in caplog.text and 'share=' in caplog.text


def test_a_nonce_that_is_not_a_number_is_refused_before_sending(sandbox: Sandbox) -> None:
    class Broken(API):
        def _nonce(self) -> Any:
            return 'soon'

    api = Broken(sandbox.key, sandbox.secret, uri=sandbox.url)
    before = len(sandbox.requests_log)
    with pytest.raises(KrakenUsageError, match='nonce'):
        api.query_private('Balance')
    assert len(sandbox.requests_log) == before


# ----------------------------------------------------------------- timeouts

@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    yield f'http://127.0.0.1:{listener.getsockname()[1]}'
    listener.close()


def test_a_server_that_never_answers_raises_a_timeout(silent_server: str) -> None:
    api = API(uri=silent_server, timeout=0.3, retries=0)
    started = time.monotonic()
    with pytest.raises(KrakenTimeout) as caught:
        api.query_public('Time')
    assert isinstance(caught.value, requests.Timeout)
    assert 'Time' in str(caught.value)
    assert time.monotonic() - started < 10


def test_a_per_call_timeout_overrides_the_default(silent_server: str) -> None:
    api = API(uri=silent_server, retries=0)
    with pytest.raises(KrakenTimeout):
        api.query_public('Time', timeout=0.2)


# ------------------------------------------------------------------- errors

@pytest.mark.parametrize('status', [520, 502, 504])
def test_cloudflare_pages_raise_an_http_error_that_names_them(
        api: API, sandbox: Sandbox, status: int) -> None:
    api.retries = 0
    sandbox.inject(f'html{status}')
    with pytest.raises(KrakenHTTPError) as caught:
        api.query_public('Ticker', {'pair': 'XBTUSD'})
    error = caught.value
    assert isinstance(error, requests.HTTPError) and isinstance(error, KrakenError)
    assert (error.status, error.method) == (status, 'Ticker')
    assert error.response is not None and error.response.status_code == status
    assert f'HTTP {status}' in str(error) and 'Cloudflare' in str(error)
    assert error.body is not None and '<' in error.body


def test_a_2xx_reply_that_is_not_json_is_a_clear_value_error(api: API, sandbox: Sandbox) -> None:
    api.retries = 0
    sandbox.inject('not_json')
    with pytest.raises(KrakenResponseError) as caught:
        api.query_public('Time')
    error = caught.value
    assert isinstance(error, ValueError) and not isinstance(error, json.JSONDecodeError)
    assert error.status == 200 and 'not JSON' in str(error) and error.body


def test_kraken_errors_are_returned_by_default_as_krakenex_2_did(api: API) -> None:
    reply = api.query_public('Ticker', {'pair': 'NOPE'})
    assert reply['error'] == ['EQuery:Unknown asset pair'] and 'result' not in reply


def test_raise_errors_raises_the_typed_exception(sandbox: Sandbox) -> None:
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True, retries=0)
    with pytest.raises(UnknownAssetError) as caught:
        api.query_public('Ticker', {'pair': 'NOPE'})
    assert caught.value.errors == ['EQuery:Unknown asset pair']
    assert caught.value.method == 'Ticker' and caught.value.status == 200
    with pytest.raises(InsufficientFundsError):
        api.query_private('AddOrder', market_buy('5000'))
    with pytest.raises(InvalidOrderError):
        api.query_private('AddOrder', market_buy('0.00000001'))
    sandbox.inject('unavailable')
    with pytest.raises(ServiceUnavailableError):
        api.query_private('Balance')
    stranger = API('not-a-key', sandbox.secret, uri=sandbox.url, raise_errors=True)
    with pytest.raises(AuthenticationError, match='EAPI:Invalid key'):
        stranger.query_private('Balance')
    forger = API(sandbox.key, OFFICIAL_SECRET, uri=sandbox.url, raise_errors=True)
    with pytest.raises(AuthenticationError, match='EAPI:Invalid signature'):
        forger.query_private('Balance')


def test_a_rate_limit_reply_is_a_rate_limit_error() -> None:
    with Sandbox(tier=(2, 0.01)) as sandbox:
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True, retries=0)
        api.query_private('Balance')
        api.query_private('Balance')
        with pytest.raises(RateLimitError, match='EAPI:Rate limit exceeded'):
            api.query_private('Balance')


@pytest.mark.parametrize(('error', 'cls'), [
    ('EAPI:Invalid nonce', InvalidNonceError),
    ('EAPI:Invalid key', AuthenticationError),
    ('EAPI:Invalid signature', AuthenticationError),
    ('EGeneral:Permission denied', AuthenticationError),
    ('EAPI:Rate limit exceeded', RateLimitError),
    ('EOrder:Rate limit exceeded', RateLimitError),
    ('EGeneral:Too many requests', RateLimitError),
    ('EService: Throttled: 1700000000', RateLimitError),
    ('EGeneral:Temporary lockout', RateLimitError),
    ('EOrder:Insufficient funds', InsufficientFundsError),
    ('EOrder:Order minimum not met', InvalidOrderError),
    ('EGeneral:Invalid arguments:volume', krakenex.InvalidArgumentsError),
    ('EQuery:Unknown asset pair', UnknownAssetError),
    ('EQuery:Unknown asset', UnknownAssetError),
    ('EService:Unavailable', ServiceUnavailableError),
    ('EService:Busy', ServiceUnavailableError),
    ('EGeneral:Internal error', ServiceUnavailableError),
    ('EService:Market in cancel_only mode', ServiceUnavailableError),
    ('EService:Market in post_only mode', ServiceUnavailableError),
    ('EFunding:Max fee exceeded', krakenex.InvalidArgumentsError),
    ('EFunding:Too many addresses', KrakenAPIError),
])
def test_each_kraken_error_string_maps_to_its_class(error: str, cls: type) -> None:
    assert error_class(error) is cls
    with pytest.raises(cls):
        krakenex.unwrap({'error': [error]})


def test_unwrap_returns_the_result_and_warnings_never_raise() -> None:
    assert krakenex.unwrap({'error': [], 'result': {'a': 1}}) == {'a': 1}
    assert krakenex.unwrap({'error': ['WDatabase:No change'], 'result': 5}) == 5
    with pytest.raises(KrakenResponseError):
        krakenex.unwrap('<html>')


def test_no_exception_or_log_line_contains_the_secret(
        sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True, retries=1,
              backoff=0.01)
    texts: list[str] = [repr(api), str(api)]
    with caplog.at_level(logging.DEBUG, logger='krakenex'):
        for kind in ('html520', 'not_json', 'unavailable'):
            sandbox.inject(kind, times=2)
            with pytest.raises(KrakenError) as caught:
                api.query_private('Balance')
            texts += [str(caught.value), repr(caught.value), str(vars(caught.value).get('body'))]
        sandbox.inject('reply_lost')
        with pytest.raises(KrakenError) as caught:
            api.query_private('AddOrder', market_buy(userref=1))
        texts.append(str(caught.value))
    texts += [r.getMessage() for r in caplog.records]
    assert len(caplog.records) >= 3
    for text in texts:
        assert sandbox.secret not in text
        assert sandbox.key not in text


# --------------------------------------------------------------------- keys

@pytest.fixture
def key_file(tmp_path: Any, sandbox: Sandbox) -> Any:
    path = tmp_path / 'kraken.key'
    path.write_bytes(f'  {sandbox.key} \r\n{sandbox.secret}\r\n\r\n'.encode())
    path.chmod(0o600)
    return path


def test_load_key_reads_a_file_with_windows_line_ends_and_spaces(
        key_file: Any, sandbox: Sandbox) -> None:
    api = API(uri=sandbox.url)
    api.load_key(key_file)
    assert (api.key, api.secret) == (sandbox.key, sandbox.secret)
    assert api.query_private('Balance')['error'] == []


def test_load_key_warns_when_others_can_read_the_file(key_file: Any) -> None:
    key_file.chmod(0o644)
    with pytest.warns(UserWarning, match='chmod 600'):
        API().load_key(key_file)


def test_load_key_does_not_warn_about_a_private_file(key_file: Any) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter('error')
        API().load_key(key_file)


def test_load_key_errors_are_clear(tmp_path: Any) -> None:
    with pytest.raises(krakenex.KeyFileError, match='missing.key') as missing:
        API().load_key(tmp_path / 'missing.key')
    assert isinstance(missing.value, KrakenError) and isinstance(missing.value, OSError)
    one_line = tmp_path / 'one.key'
    one_line.write_text('just-a-key\n')
    one_line.chmod(0o600)
    with pytest.raises(KrakenUsageError, match='second'):
        API().load_key(one_line)
    bad = tmp_path / 'bad.key'
    bad.write_text('key\nnot base64 at all!\n')
    bad.chmod(0o600)
    api = API('old', 'b2xk')
    with pytest.raises(KrakenUsageError, match='not valid base64') as caught:
        api.load_key(bad)
    assert 'not base64 at all' not in str(caught.value)
    assert (api.key, api.secret) == ('old', 'b2xk')


def test_key_and_secret_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.setenv('KRAKEN_API_KEY', sandbox.key)
    monkeypatch.setenv('KRAKEN_API_SECRET', sandbox.secret)
    api = API(uri=sandbox.url)
    assert api.query_private('Balance')['error'] == []


def test_a_private_call_without_a_key_fails_before_sending(
        monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.delenv('KRAKEN_API_KEY', raising=False)
    monkeypatch.delenv('KRAKEN_API_SECRET', raising=False)
    api = API(uri=sandbox.url)
    before = len(sandbox.requests_log)
    with pytest.raises(KrakenUsageError, match='load_key'):
        api.query_private('Balance')
    api.key, api.secret = sandbox.key, 'not base64!'
    with pytest.raises(KrakenUsageError, match='base64'):
        api.query_private('Balance')
    assert len(sandbox.requests_log) == before


def test_repr_shows_neither_the_secret_nor_the_whole_key() -> None:
    api = API('ABCDEFGHIJKLMNOP', OFFICIAL_SECRET)
    assert OFFICIAL_SECRET not in repr(api) and 'ABCDEFGHIJKLMNOP' not in repr(api)


# ----------------------------------------------------------------------- otp

def test_otp_as_a_string_or_a_function(sandbox: Sandbox) -> None:
    account = sandbox.add_account(otp='424242')
    without = API(account.key, account.secret, uri=sandbox.url)
    assert without.query_private('Balance')['error'] != []
    fixed = API(account.key, account.secret, uri=sandbox.url, otp='424242')
    assert fixed.query_private('Balance')['error'] == []
    codes: list[str] = []

    def fresh_code() -> str:
        codes.append('424242')
        return codes[-1]

    generated = API(account.key, account.secret, uri=sandbox.url, otp=fresh_code)
    assert generated.query_private('Balance')['error'] == []
    assert generated.query_private('Balance')['error'] == []
    assert len(codes) == 2


# ------------------------------------------------------------ binary replies

def test_retrieve_export_returns_the_zip_as_bytes(api: API) -> None:
    added = api.query_private('AddExport', {'report': 'ledgers', 'description': 'all'})
    assert added['error'] == [], added
    for _ in range(50):
        status = api.query_private('ExportStatus', {'report': 'ledgers'})['result']
        if status and status[0]['status'] == 'Processed':
            break
        time.sleep(0.05)
    archive = api.query_private('RetrieveExport', {'id': added['result']['id']})
    assert isinstance(archive, bytes)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        names = z.namelist()
        assert names and z.read(names[0]).count(b'\n') > 10


# -------------------------------------------------------------- method names

@pytest.mark.parametrize('name', ['../Balance', 'Ticker?pair=X', 'Bal ance', '', 'Earn/', '/x',
                                  'Earn/../Balance', 'Ticker\n'])
def test_a_bad_method_name_is_refused_before_sending(
        api: API, sandbox: Sandbox, name: str) -> None:
    before = len(sandbox.requests_log)
    with pytest.raises(KrakenUsageError, match='not a Kraken method name'):
        api.query_public(name)
    with pytest.raises(KrakenUsageError, match='not a Kraken method name'):
        api.query_private(name)
    assert len(sandbox.requests_log) == before


def test_earn_methods_with_a_slash_are_accepted(api: API) -> None:
    reply = api.query_private('Earn/Strategies')
    assert reply['error'] == [] and 'items' in reply['result']


# ------------------------------------------------------- lifecycle, logging

def test_with_block_closes_the_session(sandbox: Sandbox) -> None:
    closed: list[bool] = []
    with API(uri=sandbox.url) as api:
        api.query_public('Time')
        original = api.session.close
        api.session.close = lambda: (closed.append(True), original())  # type: ignore[method-assign]
    assert closed == [True]


def test_log_lines_name_method_status_and_duration_but_no_parameters(
        api: API, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger='krakenex'):
        api.query_private('AddOrder', market_buy(userref=123456789))
    lines = [r.getMessage() for r in caplog.records if r.name == 'krakenex']
    assert any('AddOrder' in line and '200' in line and 'ms' in line for line in lines)
    assert not any('123456789' in line or 'XBTUSD' in line for line in lines)


# -------------------------------------------------------------- lean path

def test_the_environment_is_read_once_not_on_every_call(
        api: API, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    original = requests.utils.get_environ_proxies
    monkeypatch.setattr(requests.utils, 'get_environ_proxies',
                        lambda url, no_proxy=None: reads.append(url) or original(url, no_proxy))

    merges: list[str] = []
    merge = api.session.merge_environment_settings
    monkeypatch.setattr(api.session, 'merge_environment_settings',
                        lambda url, *rest: merges.append(url) or merge(url, *rest))
    for _ in range(5):
        assert api.query_public('Time')['error'] == []
        assert api.query_private('Balance')['error'] == []
    assert len(reads) <= 1 and merges == []


def test_proxies_from_the_environment_still_apply(
        monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    dead = socket.socket()
    dead.bind(('127.0.0.1', 0))
    port = dead.getsockname()[1]
    dead.close()
    for name in ('NO_PROXY', 'no_proxy'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HTTP_PROXY', f'http://127.0.0.1:{port}')
    api = API(uri=sandbox.url, retries=0)
    monkeypatch.delenv('HTTP_PROXY')
    with pytest.raises(krakenex.KrakenConnectionError, match='Time'):
        api.query_public('Time')
    direct = API(uri=sandbox.url)
    assert direct.query_public('Time')['error'] == []


def test_session_customisation_applies(api: API) -> None:
    api.session.headers['X-Trace'] = 'abc'
    api.query_public('Time')
    assert api.response is not None
    assert api.response.request.headers['X-Trace'] == 'abc'
    assert api.response.request.headers['User-Agent'].startswith('krakenex/')


@pytest.mark.slow
def test_the_built_package_ships_every_module_and_the_type_hints(tmp_path: Any) -> None:
    import pathlib
    import shutil
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    source = tmp_path / 'source'  # a clean copy: setuptools would reuse an old build/ folder
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(
        '.*', 'build', 'dist', '*.egg-info', '__pycache__', 'doc', 'examples', 'benchmarks'))
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w',
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob('krakenex-*.whl')
    shipped = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(root)) for p in (root / 'krakenex').rglob('*.py')}
    assert modules <= shipped, sorted(modules - shipped)
    assert 'krakenex/py.typed' in shipped


@pytest.mark.parametrize('fault', ['refused', 'reply_lost'])
def test_a_failing_script_shows_the_krakenex_error_and_its_direct_cause_only(
        sandbox: Sandbox, fault: str) -> None:
    import subprocess
    import sys

    if fault == 'refused':
        probe = socket.socket()
        probe.bind(('127.0.0.1', 0))
        uri = f'http://127.0.0.1:{probe.getsockname()[1]}'
        probe.close()
        call = "api.query_public('Time')"
    else:
        sandbox.inject('reply_lost', method='AddOrder')
        uri = sandbox.url
        call = "api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', " \
               "'ordertype': 'market', 'volume': '0.01', 'userref': 5})"
    script = (f'from krakenex import API\n'
              f'api = API({sandbox.key!r}, {sandbox.secret!r}, uri={uri!r}, retries=0)\n{call}\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=60)
    last = result.stderr.strip().splitlines()[-1]
    assert result.stderr.count('Traceback (most recent call last)') == 2, result.stderr
    assert last.startswith('krakenex.errors.' + ('NotSentError' if fault == 'refused' else
                                                  'OutcomeUnknownConnectionError')), last
    assert len(result.stderr.splitlines()) < 50


@pytest.mark.parametrize('uri', ['http://[::1', 'http://127.0.0.1:99999', 'api.kraken.com'])
def test_a_bad_uri_is_a_usage_error_from_the_first_call_not_the_constructor(uri: str) -> None:
    api = API(uri=uri, retries=0)
    with pytest.raises(KrakenUsageError, match='not a server address'):
        api.query_public('Time')
