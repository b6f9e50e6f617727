"""The futures sandbox under hostile and careless input: Kraken's refusal, never a dropped
connection, in bounded memory, with numbers read as Kraken reads them.

Requests are signed by hand (``authent`` over the exact bytes sent) so that any
bytes reach the sandbox, whatever the client would refuse. The property test
runs a small fixed budget in the suite, as the other fuzz tests do; for a
longer run::

    KRAKENEX_FUZZ_EXAMPLES=5000 pytest tests/test_sandbox_futures_hostile.py
"""

from __future__ import annotations

import base64
import json
import logging
import resource
import time
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from hypothesis import event, given
from hypothesis import strategies as st
from test_sandbox_hostile import FUZZ, Watch

from krakenex.futures.protocol import authent
from krakenex.sandbox import Sandbox
from krakenex.sandbox.counter import Counter

WAIT = 10.0
#: Kraken Futures' error codes (kraken-protocol.md, 7.3), and the charts' not-found.
ERROR_CODES = {'accountInactive', 'apiLimitExceeded', 'authenticationError', 'insufficientFunds',
               'invalidAccount', 'invalidAmount', 'invalidArgument', 'invalidUnit',
               'Json Parse Error', 'marketUnavailable', 'nonceBelowThreshold', 'nonceDuplicate',
               'notFound', 'requiredArgumentMissing', 'Unavailable'}
MiB = 1 << 20


def post_data(params: dict[str, str] | list[tuple[str, str]]) -> str:
    """The parameters URL-encoded as sent and signed (spaces as %20)."""
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def call(sandbox: Sandbox, session: requests.Session, verb: str, path: str,
         params: dict[str, str] | list[tuple[str, str]] | None = None, *,
         signed: bool = True, nonce: str | None = None) -> requests.Response:
    """One request to a futures path, signed with the default futures key."""
    data = post_data(params or {})
    headers = {}
    if signed:
        nonce = nonce or str(time.time_ns())
        secret = base64.b64decode(sandbox.futures.secret)
        headers = {'APIKey': sandbox.futures.key, 'Nonce': nonce,
                   'Authent': authent(secret, data, nonce, path)}
    url = sandbox.futures_url + path
    if verb in ('GET', 'DELETE'):
        return session.request(verb, f'{url}?{data}' if data else url, headers=headers,
                               timeout=WAIT)
    headers['Content-Type'] = 'application/x-www-form-urlencoded'
    return session.request(verb, url, data=data.encode(), headers=headers, timeout=WAIT)


def refusal(reply: requests.Response) -> str:
    """Kraken's error code from an error envelope (and only from one)."""
    body = reply.json()
    assert body['result'] == 'error' and set(body) == {'result', 'serverTime', 'error'}, body
    return str(body['error'])


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as opened:
        yield opened


# -- nested and malformed parameters ----------------------------------------------------------

@pytest.mark.parametrize(('ids', 'code'), [
    ('[["s-1"]]', 'invalidArgument'),
    ('[{"a": "s-1"}]', 'invalidArgument'),
    ('["s-1", null]', 'invalidArgument'),
    ('[' * 100_000 + ']' * 100_000, 'Json Parse Error'),
    ('["s-1"', 'Json Parse Error'),
])
def test_orders_status_with_nested_or_broken_json_ids_is_refused_in_krakens_shape(
        sandbox: Sandbox, session: requests.Session, ids: str, code: str) -> None:
    path = '/derivatives/api/v3/orders/status'
    assert refusal(call(sandbox, session, 'POST', path, {'cliOrdIds': ids})) == code
    # the same connection goes on: the plain form of the ids is answered
    reply = call(sandbox, session, 'POST', path, {'cliOrdIds': '["s-1", "s-2"]'})
    assert reply.json()['result'] == 'success' and reply.json()['orders'] == []


@pytest.mark.parametrize(('batch', 'code'), [
    ('{"batchOrder": ' + '[' * 100_000 + ']' * 100_000 + '}', 'Json Parse Error'),
    ('{"batchOrder": []}', 'Json Parse Error'),
    ('{"batchOrder": [{"order": "send", "order_tag": "1", "orderType": "lmt", "symbol": '
     '"PF_XBTUSD", "side": "buy", "size": [1], "limitPrice": 50000}]}', 'invalidArgument'),
    ('{"batchOrder": [{"order": "cancel", "order_id": {"$ne": null}}]}', 'invalidArgument'),
])
def test_a_nested_batch_is_refused_before_anything_is_charged_or_placed(
        sandbox: Sandbox, session: requests.Session, batch: str, code: str) -> None:
    account = sandbox.futures.accounts[sandbox.futures.key]
    spent = account.budget.level
    reply = call(sandbox, session, 'POST', '/derivatives/api/v3/batchorder', {'json': batch})
    assert refusal(reply) == code
    assert sandbox.futures.orders(sandbox.futures.key) == []
    assert account.budget.level <= spent or code != 'Json Parse Error'


def test_thousands_of_repeated_parameters_are_refused(sandbox: Sandbox,
                                                      session: requests.Session) -> None:
    ids = [('orderIds', f'id-{i}') for i in range(50_000)]  # under the 1 MiB a body may be
    reply = call(sandbox, session, 'POST', '/derivatives/api/v3/orders/status', ids)
    assert refusal(reply) == 'invalidArgument'
    few = call(sandbox, session, 'POST', '/derivatives/api/v3/orders/status', ids[:50])
    assert few.json()['orders'] == []


# -- numbers -----------------------------------------------------------------------------------

NOT_NUMBERS = [' 1', '1 ', '1_0', '١', '۱', '１', '1e18', '-1e18', 'NaN', 'Infinity', '0x10',
               '1,0', '', '+', '.', '1e', '1e99999', '²']


@pytest.mark.parametrize('size', NOT_NUMBERS)
def test_a_size_python_would_read_but_kraken_would_not_is_refused(
        sandbox: Sandbox, session: requests.Session, size: str) -> None:
    order = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': size,
             'limitPrice': '50000'}
    reply = call(sandbox, session, 'POST', '/derivatives/api/v3/sendorder', order)
    assert refusal(reply) == 'invalidArgument'
    assert sandbox.futures.orders(sandbox.futures.key) == []


@pytest.mark.parametrize('size', ['1', '0.5', '+1', '1.', '.5', '1E0', '5e-1'])
def test_numbers_as_kraken_writes_them_are_read(sandbox: Sandbox, session: requests.Session,
                                                size: str) -> None:
    order = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': size,
             'limitPrice': '50000'}
    reply = call(sandbox, session, 'POST', '/derivatives/api/v3/sendorder', order)
    assert reply.json()['sendStatus']['status'] == 'placed'
    [order_placed] = sandbox.futures.orders(sandbox.futures.key)
    assert order_placed.size == Decimal(size)


@pytest.mark.parametrize(('verb', 'path', 'params'), [
    ('POST', '/derivatives/api/v3/cancelallordersafter', {'timeout': '٦٠'}),
    ('POST', '/derivatives/api/v3/cancelallordersafter', {'timeout': '6_0'}),
    ('PUT', '/derivatives/api/v3/leveragepreferences',
     {'symbol': 'PF_XBTUSD', 'maxLeverage': ' 5'}),
    ('POST', '/derivatives/api/v3/editorder', {'orderId': 'x', 'limitPrice': '5_0'}),
    ('GET', '/api/history/v3/orders', {'count': '١٠'}),
    ('GET', '/api/history/v3/orders', {'since': ' 1'}),
    ('GET', '/api/history/v3/orders', {'continuation_token': base64.b64encode(b'1_0').decode()}),
])
def test_every_number_parameter_is_read_as_kraken_reads_it(
        sandbox: Sandbox, session: requests.Session, verb: str, path: str,
        params: dict[str, str]) -> None:
    assert refusal(call(sandbox, session, verb, path, params)) == 'invalidArgument'


@pytest.mark.parametrize('nonce', ['²³', '1_0', '-1', '+1', '9' * 30])
def test_a_nonce_that_is_not_ascii_digits_is_refused(sandbox: Sandbox, session: requests.Session,
                                                     nonce: str) -> None:
    path = '/derivatives/api/v3/accounts'  # a header carries Latin-1: '²' is a digit to Python
    assert refusal(call(sandbox, session, 'GET', path, nonce=nonce)) == 'invalidArgument'
    assert call(sandbox, session, 'GET', path).json()['result'] == 'success'


# -- charts ------------------------------------------------------------------------------------

def test_charts_from_1970_answer_2000_candles_in_bounded_memory(
        sandbox: Sandbox, session: requests.Session) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    reply = call(sandbox, session, 'GET', '/api/charts/v1/trade/PF_XBTUSD/1m', {'from': '0'},
                 signed=False)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    body = reply.json()
    assert len(body['candles']) == 2000 and body['more_candles'] is True
    assert body['candles'][0]['time'] == 0
    assert [c['time'] for c in body['candles'][:2]] == [0, 60_000]
    assert grown < 100 * MiB, f'{grown / MiB:.0f} MiB'


def test_the_last_page_of_a_range_says_there_are_no_more_candles(
        sandbox: Sandbox, session: requests.Session) -> None:
    end = int(time.time()) // 60 * 60
    reply = call(sandbox, session, 'GET', '/api/charts/v1/mark/PF_ETHUSD/1m',
                 {'from': str(end - 2999 * 60), 'to': str(end)}, signed=False).json()
    assert len(reply['candles']) == 2000 and reply['more_candles'] is True
    rest = call(sandbox, session, 'GET', '/api/charts/v1/mark/PF_ETHUSD/1m',
                {'from': str(end - 999 * 60), 'to': str(end)}, signed=False).json()
    assert len(rest['candles']) == 1000 and rest['more_candles'] is False
    assert rest['candles'][-1]['time'] == end * 1000


@pytest.mark.parametrize('params', [
    {'from': '-3e9'}, {'from': '-1'}, {'to': '-60'}, {'from': '1e999'}, {'to': 'NaN'},
    {'from': '253402300800'}, {'count': '-5'}, {'count': '1.5'}, {'count': 'x'},
    {'from': '١'}, {'to': ' 1'}, {'from': '1_000'}, {'span': '1'},
    {'from': '2000000000', 'to': '1000000000'},
])
def test_nonsense_chart_ranges_are_refused_in_krakens_shape(
        sandbox: Sandbox, session: requests.Session, params: dict[str, str]) -> None:
    reply = call(sandbox, session, 'GET', '/api/charts/v1/trade/PF_XBTUSD/1h', params,
                 signed=False)
    assert reply.status_code == 400
    assert refusal(reply) == 'invalidArgument'


# -- every endpoint, every parameter --------------------------------------------------------------

ORDER = ['orderType', 'symbol', 'side', 'size', 'limitPrice', 'stopPrice', 'cliOrdId',
         'triggerSignal', 'reduceOnly', 'processBefore']
EDIT = ['orderId', 'cliOrdId', 'size', 'limitPrice', 'stopPrice', 'qtyMode', 'processBefore']
#: (verb, path, signed, the parameters it takes): every path the sandbox serves.
ENDPOINTS = [
    ('GET', '/derivatives/api/v3/instruments', False, ['contractType']),
    ('GET', '/derivatives/api/v3/instruments/status', False, ['contractType']),
    ('GET', '/derivatives/api/v3/tickers', False, ['contractType']),
    ('GET', '/derivatives/api/v3/tickers/PF_XBTUSD', False, []),
    ('GET', '/derivatives/api/v3/orderbook', False, ['symbol']),
    ('GET', '/derivatives/api/v3/history', False, ['symbol', 'lastTime']),
    ('GET', '/derivatives/api/v3/feeschedules', False, []),
    ('GET', '/derivatives/api/v3/accounts', True, []),
    ('GET', '/derivatives/api/v3/openpositions', True, []),
    ('GET', '/derivatives/api/v3/openorders', True, []),
    ('GET', '/derivatives/api/v3/fills', True, ['lastFillTime']),
    ('GET', '/derivatives/api/v3/leveragepreferences', True, []),
    ('PUT', '/derivatives/api/v3/leveragepreferences', True, ['symbol', 'maxLeverage']),
    ('POST', '/derivatives/api/v3/sendorder', True, ORDER),
    ('POST', '/derivatives/api/v3/editorder', True, EDIT),
    ('POST', '/derivatives/api/v3/cancelorder', True, ['order_id', 'cliOrdId', 'processBefore']),
    ('POST', '/derivatives/api/v3/cancelallorders', True, ['symbol']),
    ('POST', '/derivatives/api/v3/cancelallordersafter', True, ['timeout']),
    ('POST', '/derivatives/api/v3/batchorder', True, ['json', 'processBefore']),
    ('POST', '/derivatives/api/v3/orders/status', True, ['orderIds', 'cliOrdIds']),
    ('GET', '/api/history/v3/orders', True, ['since', 'before', 'sort', 'continuation_token',
                                             'count', 'tradeable', 'opened', 'closed']),
    ('GET', '/api/charts/v1/', False, []),
    ('GET', '/api/charts/v1/trade', False, []),
    ('GET', '/api/charts/v1/mark/PF_XBTUSD', False, []),
    ('GET', '/api/charts/v1/trade/PF_XBTUSD/1m', False, ['from', 'to', 'count']),
    ('GET', '/api/charts/v1/spot/FF_XBTUSD_261225/1d', False, ['from', 'to', 'count']),
]
SENSIBLE = {
    'orderType': ['lmt', 'mkt', 'post', 'ioc', 'stp', 'take_profit', 'trailing_stop'],
    'symbol': ['PF_XBTUSD', 'PF_ETHUSD', 'FF_XBTUSD_261225', 'pf_xbtusd', 'PI_XBTUSD'],
    'side': ['buy', 'sell'], 'size': ['0.01', '1', '0.00001', '100000'],
    'limitPrice': ['50000', '61000', '3000.1', '0'], 'stopPrice': ['59000', '62000'],
    'cliOrdId': ['c-1', 'x' * 101], 'triggerSignal': ['mark', 'index', 'last', 'spot'],
    'reduceOnly': ['true', 'false'], 'processBefore': ['2030-01-01T00:00:00.000Z', '2020-01-01'],
    'qtyMode': ['ABSOLUTE', 'RELATIVE'], 'maxLeverage': ['1', '5', '50', '51'],
    'timeout': ['0', '60', '86401'], 'contractType': ['flexible_futures'],
    'lastTime': ['2030-01-01T00:00:00.000Z'], 'lastFillTime': ['2030-01-01T00:00:00.000Z'],
    'sort': ['asc', 'desc'], 'opened': ['true', 'false'], 'closed': ['true', 'false'],
    'count': ['1', '500', '5000'], 'since': ['0'], 'before': ['4102444800000'],
    'tradeable': ['PF_XBTUSD'], 'from': ['0', '1700000000'], 'to': ['1800000000'],
    'orderIds': ['["a", "b"]', 'a,b'], 'cliOrdIds': ['["c-1"]', 'c-1 c-2'],
    'continuation_token': ['MA==', 'MTA=', 'LTE='],
}
HOSTILE = ['1e18', '-1e18', '1e99999', '-3e9', 'NaN', 'Infinity', ' 1', '1 ', '1_0', '١', '١٠',
           '0x10', '', ' ', '-', '+', '.', '-0', '0', '9' * 400, '\x00', 'null', 'true', '[]',
           '{}', '[[["x"]]]', '[' * 3000, '"x"', '2030-13-45T99:99:99Z', '٢٠٢٦-01-01']
BATCH_ITEMS = st.dictionaries(
    st.sampled_from(['order', 'order_tag', 'order_id', *ORDER]),
    st.one_of(st.sampled_from(['send', 'edit', 'cancel', 'PF_XBTUSD', 'lmt', 'buy', '1']),
              st.integers(-10, 10**6), st.floats(), st.booleans(), st.none(),
              st.lists(st.integers(), max_size=2), st.sampled_from(HOSTILE)), max_size=8)
BATCHES = st.one_of(
    st.lists(BATCH_ITEMS, max_size=4).map(lambda items: json.dumps({'batchOrder': items})),
    st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=4)),
                 lambda inner: st.lists(inner, max_size=3), max_leaves=8).map(json.dumps))
TEXT = st.text(st.characters(exclude_categories=['Cs']), max_size=12)
NAMES = sorted({name for *_, names in ENDPOINTS for name in names} | {'x', 'Size', 'json'})


#: What each endpoint needs to get past its first checks, so that calls reach further.
BASE = {
    '/derivatives/api/v3/orderbook': [('symbol', 'PF_XBTUSD')],
    '/derivatives/api/v3/history': [('symbol', 'PF_ETHUSD')],
    '/derivatives/api/v3/sendorder': [('orderType', 'lmt'), ('symbol', 'PF_XBTUSD'),
                                      ('side', 'buy'), ('size', '0.01'), ('limitPrice', '50000')],
    '/derivatives/api/v3/editorder': [('cliOrdId', 'c-1'), ('size', '0.02')],
    '/derivatives/api/v3/cancelorder': [('cliOrdId', 'c-1')],
    '/derivatives/api/v3/leveragepreferences': [('symbol', 'PF_XBTUSD')],
    '/derivatives/api/v3/cancelallordersafter': [('timeout', '60')],
}


@st.composite
def parameters(draw: st.DrawFn, path: str, names: list[str]) -> list[tuple[str, str]]:
    """Mostly the endpoint's own parameters, mostly sensible values; some of anything."""
    own = st.sampled_from(names) if names else st.sampled_from(NAMES)
    chosen = draw(st.lists(st.one_of(own, own, own, st.sampled_from(NAMES)), max_size=5))
    base = dict(BASE.get(path, [])) if draw(st.booleans()) else {}
    for name in chosen:
        sensible = st.sampled_from(SENSIBLE.get(name, ['1']))
        if name == 'json':
            base[name] = draw(st.one_of(BATCHES, BATCHES, st.sampled_from(HOSTILE)))
        else:
            base[name] = draw(st.one_of(sensible, sensible, sensible, st.sampled_from(HOSTILE),
                                        TEXT))
    pairs = list(base.items())
    if pairs and draw(st.integers(0, 9)) == 0:  # a name given twice
        pairs.append(pairs[0])
    return pairs


@pytest.fixture(scope='module')
def fuzzed() -> Iterator[tuple[Sandbox, requests.Session, Watch]]:
    watch = Watch()
    logger = logging.getLogger('krakenex.sandbox')
    logger.addHandler(watch)
    try:
        with Sandbox(seed=5, tier=None) as sandbox, requests.Session() as opened:
            sandbox.futures.budget = None  # calls faster than Kraken's budget allows
            yield sandbox, opened, watch
    finally:
        logger.removeHandler(watch)


@FUZZ
@given(data=st.data())
def test_no_parameters_of_any_endpoint_drop_the_connection_or_leave_krakens_shape(
        fuzzed: tuple[Sandbox, requests.Session, Watch], data: st.DataObject) -> None:
    sandbox, session, watch = fuzzed
    verb, path, signed, names = data.draw(st.sampled_from(ENDPOINTS))
    params = data.draw(parameters(path, names))
    if data.draw(st.integers(0, 3)) == 0:  # move a mark: resting orders and stops execute
        sandbox.futures.set_price(data.draw(st.sampled_from(['PF_XBTUSD', 'PF_ETHUSD'])),
                                  data.draw(st.sampled_from(['40000', '60000', '3000'])))
    account = sandbox.futures.accounts[sandbox.futures.key]
    account.pool = Counter()  # the history pool would refuse most calls otherwise
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reply = call(sandbox, session, verb, path, params, signed=signed)  # raises if dropped
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < 50 * MiB, f'{path} {params!r:.200}: {grown / MiB:.0f} MiB'
    assert reply.status_code in (200, 400, 404, 405), (reply.status_code, reply.text[:200])
    body = reply.json()
    if isinstance(body, dict) and body.get('result') == 'error':
        assert refusal(reply) in ERROR_CODES
        event(f'refused: {body["error"]}')
    elif path.startswith('/api/charts/'):
        assert reply.status_code == 200 and isinstance(body, (list, dict))
        event('charts')
    elif path.startswith('/api/history/'):
        assert 'elements' in body and 'result' not in body
        event('history')
    else:
        assert reply.status_code == 200 and body['result'] == 'success', body
        event('accepted')
    assert watch.records == [], [r.getMessage() for r in watch.records]
