"""FuturesAPI: Kraken Futures' signing, nonces, errors, at-most-once, retries and pacing.

Every test but the pure ones runs over real HTTP against the sandbox's futures
exchange on 127.0.0.1.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from krakenex import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidNonceError,
    InvalidOrderError,
    KrakenAPIError,
    KrakenError,
    KrakenResponseError,
    KrakenUsageError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownResponseError,
    OutcomeUnknownTimeout,
    RateLimitError,
    ServiceUnavailableError,
)
from krakenex.futures import FuturesAPI
from krakenex.futures import protocol as fp
from krakenex.sandbox import ODD_REPLIES, Sandbox

TIMEOUT = 1.0  # a loaded machine can take half a second to answer on 127.0.0.1
SLOW = 2.0


@pytest.fixture
def futures(sandbox: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    timeout=TIMEOUT, backoff=0.01) as client:
        yield client


def limit_buy(cli: str | None = None, price: int = 50000, **extra: Any) -> dict[str, Any]:
    order: dict[str, Any] = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy',
                             'size': 0.01, 'limitPrice': price, **extra}
    if cli is not None:
        order['cliOrdId'] = cli
    return order


def sent(sandbox: Sandbox, name: str) -> list[str | None]:
    """The nonces of the ``name`` requests the futures exchange carried out, in order."""
    return [nonce for endpoint, nonce in sandbox.futures.requests_log if endpoint == name]


# -- signing -----------------------------------------------------------------------------

def test_authent_reproduces_the_published_futures_vector() -> None:
    secret = base64.b64decode('cHl0aG9uLWtyYWtlbi1zZGsgdW5pdC10ZXN0IHNlY3JldCB2YWx1ZQ==')
    assert fp.authent(secret, 'orderType=lmt&symbol=PI_XBTUSD', '1616492376594',
                      '/derivatives/api/v3/sendorder') == (
        'Txi+gJVXe3EN1brXYQ46FuV6UVtEVSKhc6dYMhPb7a/HXZLGvO6m9UUg+KVKqhLxrbllOPI7qRkHYmPfJZZSGA==')


def test_authent_of_the_inputs_in_krakens_futures_guide() -> None:
    # The guide's secret lacks its base64 padding; with it the inputs give this value.
    secret = base64.b64decode('rttp4AzwRfYEdQ7R7X8Z/04Y4TZPa97pqCypi3xXxAqftygftnI6H9yGV+OcU'
                              'OOJeFtZkr8mVwbAndU3Kz4Q+eG=')
    assert fp.authent(secret, 'symbol=fi_xbtusd_180615', '1415957147987',
                      '/api/v3/orderbook') == (
        'DqUyz8Wh/72af7dimSXHw91IFxrAriTgVodyg2s67PU2mVStwLDQak+uIoCtfb43XONq0xVAp+vm5dqnhFAB1Q==')


def test_post_data_is_url_encoded_as_sent_with_plain_numbers() -> None:
    assert fp.encode({'cliOrdId': 'a b&c', 'size': 1e-8, 'reduceOnly': True, 'x': None}) == \
        'cliOrdId=a%20b%26c&size=0.00000001&reduceOnly=true'
    assert fp.encode({'json': {'batchOrder': [{'order': 'cancel', 'order_id': 'x'}]}}) == \
        'json=%7B%22batchOrder%22%3A%5B%7B%22order%22%3A%22cancel%22%2C%22order_id%22%3A%22x%22%7D%5D%7D'
    assert fp.encode({'orderIds': ['a', 'b']}) == 'orderIds=a&orderIds=b'
    batch = {'batchOrder': [{'size': 1e-8, 'limitPrice': Decimal('1E+3'), 'reduceOnly': True,
                             'cliOrdId': 'ü', 'stopPrice': None}]}
    assert urllib.parse.unquote(fp.encode({'json': batch})) == \
        'json={"batchOrder":[{"size":0.00000001,"limitPrice":1000,"reduceOnly":true,' \
        '"cliOrdId":"\\u00fc"}]}'


def test_endpoint_table_gives_verbs_and_costs() -> None:
    assert fp.ENDPOINTS['tickers'].verb == 'GET' and not fp.ENDPOINTS['tickers'].private
    assert fp.ENDPOINTS['sendorder'].verb == 'POST' and fp.ENDPOINTS['sendorder'].changes_state
    assert not fp.ENDPOINTS['orders/status'].changes_state
    assert fp.cost(fp.ENDPOINTS['fills'], 'GET', {}) == 2
    assert fp.cost(fp.ENDPOINTS['fills'], 'GET', {'lastFillTime': 'x'}) == 25
    batch = {'json': {'batchOrder': [{'order': 'cancel'}] * 3}}
    assert fp.cost(fp.ENDPOINTS['batchorder'], 'POST', batch) == 12
    assert fp.cost(fp.ENDPOINTS['leveragepreferences'], 'PUT', {}) == 10
    unknown = fp.lookup('assignmentprogram/add')
    assert unknown.changes_state and unknown.verb == 'POST'


def test_every_private_call_is_signed_over_the_exact_bytes_sent(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    awkward = limit_buy('spaces & symbols/ü')
    assert futures.query_private('sendorder', awkward)['sendStatus']['status'] == 'placed'
    assert futures.query_private('openorders')['openOrders'][0]['cliOrdId'] == \
        'spaces & symbols/ü'
    batch = {'json': {'batchOrder': [
        {'order': 'send', 'order_tag': '1', 'orderType': 'lmt', 'symbol': 'PF_ETHUSD',
         'side': 'buy', 'size': 0.5, 'limitPrice': 2000.5, 'cliOrdId': 'b 1'}]}}
    assert futures.query_private('batchorder', batch)['batchStatus'][0]['status'] == 'placed'
    assert len(sent(sandbox, 'batchorder')) == 1


def test_a_wrong_secret_is_an_authentication_error(sandbox: Sandbox) -> None:
    wrong = base64.b64encode(b'not the secret').decode()
    with FuturesAPI(sandbox.futures.key, wrong, uri=sandbox.futures_url) as client:
        assert client.query_private('accounts') == {
            'result': 'error', 'serverTime': client.response.json()['serverTime'],
            'error': 'authenticationError'}
        client.raise_errors = True
        with pytest.raises(AuthenticationError, match='authenticationError'):
            client.query_private('accounts')


def test_private_call_without_a_key_is_refused_before_sending(sandbox: Sandbox) -> None:
    with FuturesAPI(uri=sandbox.futures_url) as client, \
            pytest.raises(KrakenUsageError, match='KRAKEN_FUTURES_KEY'):
        client.query_private('accounts')
    assert sandbox.futures.requests_log == []


def test_keys_come_from_the_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('KRAKEN_FUTURES_KEY', sandbox.futures.key)
    monkeypatch.setenv('KRAKEN_FUTURES_SECRET', sandbox.futures.secret)
    with FuturesAPI(uri=sandbox.futures_url, raise_errors=True) as client:
        assert 'flex' in client.query_private('accounts')['accounts']
    assert sandbox.futures.secret not in repr(client)


def test_nonces_reach_kraken_in_order_across_threads(
        sandbox: Sandbox, futures: FuturesAPI, in_threads: Any) -> None:
    replies = in_threads(8, 10, lambda i: futures.query_private('openpositions'))
    assert [r['result'] for r in replies] == ['success'] * 80
    nonces = [int(n) for n in sent(sandbox, 'openpositions') if n is not None]
    assert len(nonces) == 80
    assert nonces == sorted(nonces) and len(set(nonces)) == 80


# -- the spot key ------------------------------------------------------------------------

def holds(obj: object, text: str, depth: int = 3) -> bool:
    """Whether ``text`` is an attribute of ``obj`` or of krakenex's objects inside it."""
    if depth == 0 or not hasattr(obj, '__dict__'):
        return False
    for value in vars(obj).values():
        if value == text or (type(value).__module__.startswith('krakenex')
                             and holds(value, text, depth - 1)):
            return True
    return False


def test_a_spot_key_in_the_environment_changes_nothing_for_futures(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('KRAKEN_API_KEY', 'spot garbage')
    monkeypatch.setenv('KRAKEN_API_SECRET', 'not base64!')
    monkeypatch.setenv('KRAKEN_API_URL', 'ftp://nowhere')
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    raise_errors=True) as futures:
        assert futures.query_public('tickers')['result'] == 'success'
        assert futures.query_private('accounts')['result'] == 'success'
        assert not holds(futures, 'spot garbage') and not holds(futures, 'not base64!')
    keyless = FuturesAPI(uri=sandbox.futures_url)
    assert keyless.key == '' and not holds(keyless, 'spot garbage')
    with pytest.raises(KrakenUsageError, match='KRAKEN_FUTURES_KEY'):
        keyless.query_private('accounts')
    keyless.close()


# -- errors ------------------------------------------------------------------------------

def test_error_replies_are_returned_or_raised_as_typed_errors(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    bad = limit_buy(unknownParameter='1')
    assert futures.query_private('sendorder', bad)['error'] == 'invalidArgument'
    futures.raise_errors = True
    with pytest.raises(InvalidOrderError, match='invalidArgument') as caught:
        futures.query_private('sendorder', bad)
    assert caught.value.errors == ['invalidArgument'] and caught.value.method == 'sendorder'
    assert caught.value.status == 200 and caught.value.response is futures.response
    assert caught.value.request is futures.response.request  # type: ignore[union-attr]
    with pytest.raises(InsufficientFundsError) as funds:  # refused inside a success reply
        futures.query_private('sendorder', {**limit_buy(), 'size': 1000})
    assert funds.value.status == 200 and funds.value.response is futures.response
    assert funds.value.request is futures.response.request  # type: ignore[union-attr]


def test_a_nonce_below_the_last_one_is_an_invalid_nonce_error(sandbox: Sandbox) -> None:
    key, secret = sandbox.futures.key, sandbox.futures.secret
    # Another client on the key: it shares no store with krakenex, and its nonces are ahead.
    with FuturesAPI(key, secret, uri=sandbox.futures_url, nonce_unit='us', share=None) as ahead:
        ahead.query_private('accounts')
    with FuturesAPI(key, secret, uri=sandbox.futures_url, raise_errors=True) as behind, \
            pytest.raises(InvalidNonceError, match='nonceBelowThreshold.*another client.*share='):
        behind.query_private('accounts')


@pytest.mark.parametrize(('order', 'status', 'error'), [
    (limit_buy(price=70000, orderType='post'), 'postWouldExecute', InvalidOrderError),
    ({**limit_buy(), 'size': 1000}, 'insufficientAvailableFunds', InsufficientFundsError),
    ({**limit_buy(), 'size': 0.00001}, 'invalidSize', InvalidOrderError),
    ({**limit_buy(), 'limitPrice': 50000.5}, 'invalidPrice', InvalidOrderError),
    (limit_buy(price=40000, orderType='ioc'), 'iocWouldNotExecute', InvalidOrderError),
    (limit_buy(reduceOnly=True), 'wouldNotReducePosition', InvalidOrderError),
])
def test_an_order_refused_inside_a_success_reply_raises_with_raise_errors(
        futures: FuturesAPI, order: dict[str, Any], status: str,
        error: type[KrakenAPIError]) -> None:
    reply = futures.query_private('sendorder', order)
    assert reply['result'] == 'success' and reply['sendStatus']['status'] == status
    futures.raise_errors = True
    with pytest.raises(error, match=status) as caught:
        futures.query_private('sendorder', order)
    assert caught.value.errors == [status]


def test_an_order_on_a_suspended_market_is_a_service_error(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.futures.suspend('PF_XBTUSD')
    futures.raise_errors = True
    with pytest.raises(ServiceUnavailableError, match='marketSuspended'):
        futures.query_private('sendorder', limit_buy())


def test_a_batch_with_one_refused_instruction_raises_with_raise_errors(
        futures: FuturesAPI) -> None:
    futures.raise_errors = True
    batch = {'json': {'batchOrder': [
        {'order': 'send', 'order_tag': 'ok', **limit_buy()},
        {'order': 'send', 'order_tag': 'bad', **limit_buy(), 'size': 1000}]}}
    with pytest.raises(InsufficientFundsError, match='insufficientAvailableFunds'):
        futures.query_private('batchorder', batch)


def test_cancelling_an_unknown_order_raises_with_raise_errors(futures: FuturesAPI) -> None:
    assert futures.query_private('cancelorder', {'cliOrdId': 'nope'})['cancelStatus'][
        'status'] == 'notFound'
    futures.raise_errors = True
    with pytest.raises(InvalidOrderError, match='notFound'):
        futures.query_private('cancelorder', {'cliOrdId': 'nope'})
    # Nothing to cancel is not an error.
    assert futures.query_private('cancelallorders')['cancelStatus']['status'] == \
        'noOrdersToCancel'


# -- at most once ------------------------------------------------------------------------

#: Each fault, whether the sandbox carries the request out anyway, and what sendorder raises.
FAULTS: list[tuple[str, bool, type[OutcomeUnknownError]]] = [
    ('html520', False, OutcomeUnknownHTTPError),
    ('html502', False, OutcomeUnknownHTTPError),
    ('reset', False, OutcomeUnknownConnectionError),
    ('delay', True, OutcomeUnknownTimeout),
    ('reply_lost', True, OutcomeUnknownConnectionError),
    ('reply_delayed', True, OutcomeUnknownTimeout),
    ('not_json', True, OutcomeUnknownResponseError),
    # 2xx replies that are not Kraken Futures' envelope, or a success with no sendStatus
    *[(kind, True, OutcomeUnknownResponseError) for kind in sorted(ODD_REPLIES)],
]


@pytest.mark.parametrize(('fault', 'processed', 'raised'), FAULTS)
def test_sendorder_under_each_fault_is_placed_at_most_once_and_reconciles(
        sandbox: Sandbox, futures: FuturesAPI, fault: str, processed: bool,
        raised: type[OutcomeUnknownError]) -> None:
    sandbox.inject(fault, method='sendorder', seconds=SLOW)
    with pytest.raises(raised) as caught:
        futures.query_private('sendorder', limit_buy('once-1'))
    error = caught.value
    assert error.cl_ord_id == 'once-1' and error.nonce is not None
    assert f'nonce {error.nonce}' in str(error)
    if fault in ('delay', 'reply_delayed'):
        time.sleep(SLOW)  # let the held request finish at the exchange
    placed = [o for o in sandbox.futures.orders(sandbox.futures.key) if o.cli_ord_id == 'once-1']
    assert len(placed) == (1 if processed else 0)
    found = futures.reconcile(error)
    assert [o['order']['cliOrdId'] for o in found['orders']] == (['once-1'] if processed else [])


@pytest.mark.parametrize('fault', ['json_list', 'json_null', 'no_result'])
def test_a_read_answered_every_time_with_something_not_futures_envelope_is_a_clear_error(
        sandbox: Sandbox, futures: FuturesAPI, fault: str) -> None:
    sandbox.inject(fault, method='accounts', times=futures.retries + 1)
    with pytest.raises(KrakenResponseError, match='^Kraken Futures accounts answered HTTP 200 '
                                                  'with ') as caught:
        futures.query_private('accounts')
    assert not isinstance(caught.value, OutcomeUnknownError)


def test_sendorder_while_futures_is_unavailable_is_refused_in_futures_shape_and_not_placed(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.inject('unavailable', method='sendorder')
    reply = futures.query_private('sendorder', limit_buy('down-1'))
    assert (reply['result'], reply['error']) == ('error', 'Unavailable')
    futures.raise_errors = True
    sandbox.inject('unavailable', method='sendorder')
    with pytest.raises(ServiceUnavailableError, match='Kraken Futures sendorder answered '
                                                      'Unavailable') as caught:
        futures.query_private('sendorder', limit_buy('down-2'))
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert sandbox.futures.orders(sandbox.futures.key) == []
    assert sent(sandbox, 'sendorder') == []  # neither reached the exchange


def test_reconcile_raises_when_kraken_refuses_the_lookup_rather_than_saying_no_order(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.inject('reply_lost', method='sendorder')
    with pytest.raises(OutcomeUnknownError) as caught:
        futures.query_private('sendorder', limit_buy('refused-lookup'))
    assert [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)] == \
        ['refused-lookup']
    stranger = FuturesAPI(sandbox.futures.key, 'c2VjcmV0', uri=sandbox.futures_url)
    with pytest.raises(AuthenticationError):
        stranger.reconcile(caught.value)
    found = futures.reconcile(caught.value)
    assert [o['order']['cliOrdId'] for o in found['orders']] == ['refused-lookup']


@pytest.mark.parametrize('name', ['editorder', 'cancelorder', 'cancelallorders',
                                  'cancelallordersafter', 'batchorder', 'transfer',
                                  'withdrawal'])
def test_state_changing_endpoints_are_never_resent(
        sandbox: Sandbox, futures: FuturesAPI, name: str) -> None:
    sandbox.inject('html520', method=name, times=5)
    with pytest.raises(OutcomeUnknownHTTPError):
        futures.query_private(name, {'cliOrdId': 'x'} if name == 'cancelorder' else {})
    assert sandbox.futures.requests_log == []  # the 520 stopped the only attempt
    sandbox.clear_faults()


def test_setting_a_preference_is_never_resent_but_reading_it_is(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.inject('reply_lost', method='leveragepreferences', times=2)
    with pytest.raises(OutcomeUnknownConnectionError):
        futures.query_private('leveragepreferences', {'symbol': 'PF_XBTUSD', 'maxLeverage': 5},
                              verb='PUT')
    assert futures.query_private('leveragepreferences')['leveragePreferences'] == [
        {'symbol': 'PF_XBTUSD', 'maxLeverage': 5}]  # the PUT had landed; the GET was retried
    assert len(sent(sandbox, 'leveragepreferences')) == 3


def test_a_batch_unknown_outcome_carries_every_cli_ord_id(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    batch = {'json': {'batchOrder': [
        {'order': 'send', 'order_tag': '1', **limit_buy('b-1')},
        {'order': 'send', 'order_tag': '2', **limit_buy('b-2', price=49000)}]}}
    sandbox.inject('reply_lost', method='batchorder')
    with pytest.raises(OutcomeUnknownConnectionError) as caught:
        futures.query_private('batchorder', batch)
    assert caught.value.cl_ord_id == 'b-1,b-2'
    found = futures.reconcile(caught.value)
    assert sorted(o['order']['cliOrdId'] for o in found['orders']) == ['b-1', 'b-2']


def test_reconcile_finds_a_finished_order_in_the_history(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    sandbox.futures.status_window = 0.0  # orders/status forgets finished orders at once
    sandbox.inject('reply_lost', method='sendorder')
    market = {'orderType': 'mkt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01,
              'cliOrdId': 'filled-1'}
    with pytest.raises(OutcomeUnknownConnectionError) as caught:
        futures.query_private('sendorder', market)
    found = futures.reconcile(caught.value)
    assert found['orders'] == []
    events = [(next(iter(e['event'])), e['event'][next(iter(e['event']))].get('reason'))
              for e in found['history']]
    assert events == [('OrderUpdated', 'full_fill'), ('OrderPlaced', 'new_placed_order_by_user')]


def test_reconcile_needs_a_cli_ord_id(sandbox: Sandbox) -> None:
    sandbox.inject('reply_lost', method='sendorder')
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    timeout=TIMEOUT, client_order_ids=False) as futures, \
            pytest.raises(OutcomeUnknownError) as caught:
        futures.query_private('sendorder', limit_buy())
    assert 'next time give it a cliOrdId' in str(caught.value)
    with pytest.raises(KrakenUsageError, match='no cliOrdId'):
        futures.reconcile(caught.value)


# -- retries -----------------------------------------------------------------------------

@pytest.mark.parametrize('fault', ['html520', 'reset', 'reply_lost', 'not_json', 'unavailable'])
def test_reads_retry_transient_faults(sandbox: Sandbox, futures: FuturesAPI, fault: str) -> None:
    sandbox.inject(fault, method='openorders', times=2)
    assert futures.query_private('openorders')['result'] == 'success'
    assert len(sent(sandbox, 'openorders')) == (3 if fault in ('reply_lost', 'not_json') else 1)
    sandbox.inject(fault, method='tickers', times=2)
    assert futures.query_public('tickers')['result'] == 'success'


def test_reads_retry_rate_limit_replies_and_give_up_after_retries(sandbox: Sandbox) -> None:
    sandbox.futures.budget = (Decimal(4), Decimal(4))  # two openorders, refilled in 0.5 s
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    backoff=0.3, retries=3) as client:
        assert client.query_private('openorders')['result'] == 'success'
        assert client.query_private('openorders')['result'] == 'success'
        started = time.monotonic()
        assert client.query_private('openorders')['result'] == 'success'  # after a wait
        assert time.monotonic() - started > 0.1
        sandbox.futures.budget = (Decimal(4), Decimal('0.001'))  # now it hardly refills
        client.retries, client.raise_errors = 0, True
        with pytest.raises(RateLimitError, match='apiLimitExceeded'):
            for _ in range(3):  # two at most fit in a budget of 4 that hardly refills
                client.query_private('openorders')


# -- pacing ------------------------------------------------------------------------------

def test_pacing_keeps_a_burst_under_the_futures_budget(sandbox: Sandbox) -> None:
    orders = [limit_buy(f'p-{i}', price=40000 + i) for i in range(55)]  # 550 of 500
    other = sandbox.futures.add_account()
    sandbox.futures.budget = (Decimal(500), Decimal(1))  # however slow the machine
    with FuturesAPI(other.key, other.secret, uri=sandbox.futures_url, retries=0) as unpaced:
        statuses = [unpaced.query_private('sendorder', o).get('error') for o in orders]
    assert 'apiLimitExceeded' in statuses
    sandbox.futures.budget = (Decimal(500), Decimal(50))  # Kraken's, as the client paces
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    retries=0, pace=True, raise_errors=True) as paced:
        started = time.monotonic()
        for order in orders:
            paced.query_private('sendorder', order)
        assert time.monotonic() - started > 0.5  # it waited for the budget to refill
    assert len(sandbox.futures.orders(sandbox.futures.key)) == 55


@pytest.mark.parametrize(('query', 'name', 'suggested'), [
    ('query_private', 'acounts', 'accounts'), ('query_public', 'tikers', 'tickers'),
    ('query_private', 'Sendorder', 'sendorder'), ('query_history', 'ordrs', 'orders'),
])
def test_a_misspelt_endpoint_is_refused_before_anything_is_sent(
        sandbox: Sandbox, futures: FuturesAPI, query: str, name: str, suggested: str) -> None:
    sandbox.inject('reset')  # waits for the first request of any kind
    with pytest.raises(KrakenUsageError, match=f"'{name}' is not one of Kraken Futures' "
                                               f'endpoints .*did you mean {suggested}') as caught:
        getattr(futures, query)(name)
    assert f"{query}('{name}', verb='POST')" in str(caught.value)  # how to send it anyway
    with pytest.raises(KrakenError):  # the fault was still waiting: nothing had been sent
        FuturesAPI(uri=sandbox.futures_url, retries=0).query_public('tickers')


def test_an_endpoint_not_in_the_table_is_sent_with_its_verb_and_at_most_once(
        sandbox: Sandbox, futures: FuturesAPI) -> None:
    with pytest.raises(OutcomeUnknownHTTPError, match='HTTP 404'):  # may be a change
        futures.query_private('assignmentprogram/add', {'x': 1}, verb='POST')
    ticker = futures.query_public('tickers/PF_XBTUSD')  # below a public endpoint: known
    assert ticker['ticker']['symbol'] == 'PF_XBTUSD'


def test_usage_errors_come_before_anything_is_sent(sandbox: Sandbox, futures: FuturesAPI) -> None:
    for bad in ('/derivatives/api/v3/tickers', '../x', '', 'tickers?x=1'):
        with pytest.raises(KrakenUsageError):
            futures.query_public(bad)
    with pytest.raises(KrakenUsageError, match='verb'):
        futures.query_private('accounts', verb='PATCH')
    with pytest.raises(KrakenUsageError):
        futures.query_private('sendorder', {'size': float('nan')})
    assert sandbox.futures.requests_log == []


def test_errors_are_kraken_errors(futures: FuturesAPI) -> None:
    futures.raise_errors = True
    with pytest.raises(KrakenError):
        futures.query_private('sendorder', {'orderType': 'lmt'})


def test_json_options_reach_the_decoder(sandbox: Sandbox, futures: FuturesAPI) -> None:
    from decimal import Decimal

    tickers = futures.json_options(parse_float=Decimal).query_public('tickers')['tickers']
    volumes = [t['vol24h'] for t in tickers]  # Kraken sends these as JSON floats
    assert volumes and all(isinstance(v, Decimal) for v in volumes), volumes


@pytest.mark.parametrize('verb', [5, 'FETCH', b'GET'])
def test_a_verb_that_is_not_http_is_a_usage_error(futures: FuturesAPI, verb: Any) -> None:
    with pytest.raises(KrakenUsageError, match='verb must be'):
        futures.query_public('tickers', verb=verb)
