"""Kraken's WebSocket rules without a socket: reconnect pacing, kept requests, numbers."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from krakenex import InvalidOrderError, KrakenAPIError, RateLimitError
from krakenex.ws.protocol import (
    AUTH,
    LEVEL3,
    MAX_DEPTH,
    ORDER_METHODS,
    PRIVATE_CHANNELS,
    PUBLIC,
    Backoff,
    ResyncBackoff,
    SequenceCheck,
    Subscriptions,
    decode,
    encode,
    endpoint,
    is_private,
    reply_error,
)


def run_failures(backoff: Backoff, seconds: float) -> list[float]:
    """Attempt times when every attempt fails for ``seconds``, following the backoff."""
    now, attempts = 0.0, []
    while now < seconds:
        backoff.attempted(now)
        attempts.append(now)
        backoff.failed()
        now += backoff.delay(now)
    return attempts


def test_reconnects_are_immediate_a_few_times_then_back_off_exponentially_to_a_cap():
    backoff = Backoff(immediate=3, first=1.0, factor=2.0, cap=60.0, jitter=0.25,
                      random=lambda: 0.5)
    waits = []
    for _ in range(12):
        waits.append(backoff.delay(0.0))
        backoff.failed()
    assert all(w <= 0.25 for w in waits[:3])
    assert waits[3:9] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert waits[9:] == [60.0, 60.0, 60.0]


def test_jitter_spreads_the_waits():
    low = Backoff(jitter=0.25, random=lambda: 0.0)
    high = Backoff(jitter=0.25, random=lambda: 0.999)
    for b in (low, high):
        for _ in range(5):
            b.failed()
    assert low.delay(0.0) < high.delay(0.0)


def test_attempts_stay_under_cloudflares_150_per_10_minutes_even_with_no_backoff():
    # a server that accepts and drops at once: every attempt "connects" but never lasts
    backoff = Backoff(immediate=1000, first=0.0, cap=0.0, jitter=0.0)
    attempts = run_failures(backoff, 3600)
    worst = max(sum(1 for t in attempts if start <= t < start + 600) for start in attempts)
    assert worst <= 120 < 150


def test_a_429_waits_at_least_the_throttle_time():
    backoff = Backoff(throttled=10.0, random=lambda: 0.0)
    assert backoff.delay(0.0) == 0.0
    assert backoff.delay(0.0, throttled=True) == 10.0


def test_give_up_after_consecutive_failures_and_a_stable_connection_starts_again():
    backoff = Backoff(give_up_after=3, stable=60.0)
    for _ in range(2):
        backoff.failed()
    backoff.connected(0.0)
    backoff.dropped(5.0)  # short-lived: counts as a failure
    assert backoff.delay(5.0) is None
    backoff = Backoff(give_up_after=3, stable=60.0)
    for _ in range(2):
        backoff.failed()
    backoff.connected(0.0)
    backoff.dropped(61.0)
    assert backoff.failures == 0 and backoff.delay(61.0) is not None


def test_kept_subscriptions_are_the_users_requests_minus_what_was_unsubscribed():
    subs = Subscriptions()
    subs.add('book', {'symbol': ['BTC/USD', 'ETH/USD'], 'depth': 25, 'token': 'secret'})
    subs.add('executions', {'snap_orders': True, 'snap_trades': True})
    subs.remove('book', {'symbol': ['ETH/USD'], 'depth': 25})
    assert subs.requests() == [('book', {'symbol': ['BTC/USD'], 'depth': 25}),
                               ('executions', {'snap_orders': True, 'snap_trades': True})]
    assert subs.params_for('book', 'BTC/USD') == {'symbol': ['BTC/USD'], 'depth': 25}
    subs.remove('executions', {})
    subs.remove('book', {'symbol': ['BTC/USD']})
    assert subs.requests() == []


def test_sequence_gaps_are_found_and_a_new_connection_starts_over():
    check = SequenceCheck()
    assert check.check('executions', 1) is None
    assert check.check('executions', 2) is None
    assert check.check('executions', 5) == (3, 5)
    check.reset()
    assert check.check('executions', 1) is None


def test_numbers_go_out_as_plain_json_numbers_never_exponents():
    text = encode({'method': 'add_order', 'params': {
        'order_qty': Decimal('1E-8'), 'limit_price': 0.00001234, 'post_only': True,
        'orders': [{'order_qty': Decimal('0.10000000')}]}})
    assert '0.00000001' in text and '0.00001234' in text and 'e-' not in text.lower()
    assert json.loads(text)['params']['post_only'] is True


@pytest.mark.parametrize('text', [
    '{"channel":"book","data":[{"price":0.00001230,"qty":5}]}',
    ' {"channel":"book","data":[{"price":0.00001230,"qty":5}]}\n',
    b'{"channel":"book","data":[{"price":0.00001230,"qty":5}]}',
])
def test_messages_decode_with_decimal_numbers_whatever_the_whitespace_or_type(text):
    message = decode(text)
    assert message == {'channel': 'book', 'data': [{'price': Decimal('0.00001230'), 'qty': 5}]}
    assert str(message['data'][0]['price']) == '0.00001230'  # the wire's zeros, for the checksum


@pytest.mark.parametrize('text, error', [
    ('', 'Expecting value'),
    ('   ', 'Expecting value'),
    ('{"a":1}{"b":2}', 'Extra data'),
    ('{"a":1} x', 'Extra data'),
    ('{"a":', 'Expecting value'),
    ('[1,]', 'Expecting value|Illegal trailing comma'),  # Python 3.13 names the comma
    ('{"a":1', "Expecting ',' delimiter"),
])
def test_text_that_is_not_one_json_value_is_a_json_error_naming_what_is_wrong(text, error):
    with pytest.raises(json.JSONDecodeError, match=error):
        decode(text)


def test_bytes_that_are_not_utf8_are_a_value_error():
    with pytest.raises(ValueError):
        decode(b'{"a":"\xff"}')


def test_each_channel_and_method_goes_to_its_endpoint():
    assert {name: endpoint(name) for name in ('book', 'ticker', 'trade', 'ohlc', 'instrument',
                                              'status', 'ping', 'executions', 'balances',
                                              'level3')} == {
        'book': PUBLIC, 'ticker': PUBLIC, 'trade': PUBLIC, 'ohlc': PUBLIC, 'instrument': PUBLIC,
        'status': PUBLIC, 'ping': PUBLIC, 'executions': AUTH, 'balances': AUTH, 'level3': LEVEL3}
    assert {endpoint(method) for method in ORDER_METHODS} == {AUTH}
    assert {'executions', 'balances', 'level3'} == PRIVATE_CHANNELS
    assert all(is_private(name) for name in PRIVATE_CHANNELS | ORDER_METHODS)
    assert not is_private('book')


def test_exceeded_msg_rate_is_a_rate_limit_error_that_says_nothing_was_done():
    error = reply_error(['Exceeded msg rate'], 'add_order')
    assert isinstance(error, RateLimitError) and error.errors == ['Exceeded msg rate']
    assert 'did not carry it out' in str(error)
    assert isinstance(reply_error(['EOrder:Insufficient funds'], 'add_order'), KrakenAPIError)
    assert not isinstance(reply_error(['EOrder:Unknown order'], 'cancel_order'), RateLimitError)
    assert isinstance(reply_error(['EOrder:Invalid price'], 'add_order'), InvalidOrderError)


# -- bounds: a message from a server never costs more than its size ------------------------

@pytest.mark.parametrize('text', [
    '[' * 100_000 + ']' * 100_000,  # 200 kB, deeper than Python's recursion limit
    '{"a":' * 100_000 + '1' + '}' * 100_000,
    '[' * 100_000,  # never closed
    '[' * (MAX_DEPTH + 1) + ']' * (MAX_DEPTH + 1),
    '{"data":[{"bids":' + '[' * MAX_DEPTH + ']' * MAX_DEPTH + '}]}',
])
def test_nesting_deeper_than_max_depth_is_a_value_error_never_a_recursion_error(text):
    with pytest.raises(ValueError, match=f'nested deeper than {MAX_DEPTH}|Expecting'):
        decode(text)


def test_nesting_up_to_max_depth_decodes():
    assert decode('[' * MAX_DEPTH + ']' * MAX_DEPTH) is not None
    long = '{"data":[' + ','.join(['{"price":1.5,"qty":[1]}'] * 500) + ']}'  # many brackets
    assert len(decode(long)['data']) == 500


def test_nesting_is_found_however_lists_objects_and_values_mix_on_the_way_down():
    inner = '[1,"x",{"a":null}]'
    for _ in range(MAX_DEPTH - 2):  # each level holds a number, text, an object and the next
        inner = f'[2,"y",{{"b":true}},{inner}]'
    assert decode(inner) is not None
    with pytest.raises(ValueError, match='nested deeper'):
        decode(f'{{"c":[{inner},{{}}]}}')


@pytest.mark.parametrize('number', [
    '1e1000000', '1e10000000', '-1e400', '1e-400', '1E+61', '1e-61',
    '1' * 41 + '.5',  # 42 significant digits
    '0.' + '0' * 5000 + '1',
])
def test_a_number_beyond_the_bounds_is_refused_before_it_is_converted(number):
    with pytest.raises(ValueError, match=r'the number .* has more than 40 digits or lies beyond'):
        decode(f'{{"channel":"book","data":[{{"checksum":{number}}}]}}')


def test_a_whole_number_of_more_than_1000_digits_is_refused_in_a_message_of_any_length():
    with pytest.raises(ValueError, match='1001 digits is longer than the 1000'):
        decode('{"checksum":' + '9' * 1001 + '}')
    padded = '{"pad":"' + 'x' * 5000 + '","checksum":' + '9' * 1000 + '}'
    assert decode(padded)['checksum'] == 10 ** 1000 - 1


@pytest.mark.parametrize('constant', ['NaN', 'Infinity', '-Infinity'])
def test_nan_and_infinity_are_refused_they_are_not_json(constant):
    with pytest.raises(ValueError, match='not a JSON number'):
        decode(f'{{"price":{constant}}}')


def test_numbers_within_the_bounds_keep_their_text():
    message = decode('{"a":0.10000000,"b":1e5,"c":1E+60,"d":-0.0,"e":'
                     + '9' * 39 + '.5,"f":1.5e-60}')
    assert [str(v) for v in message.values()] == [
        '0.10000000', '1E+5', '1E+60', '-0.0', '9' * 39 + '.5', '1.5E-60']


def test_a_message_longer_than_max_size_is_refused_unread():
    assert decode('[1]', max_size=3) == [1]
    with pytest.raises(ValueError, match='4 characters is longer than the 3'):
        decode('[10]', max_size=3)
    with pytest.raises(ValueError, match='longer than the 3'):
        decode(b'\xff\xff\xff\xff', max_size=3)


# -- pacing of resyncs ----------------------------------------------------------------------

def test_a_failing_book_is_subscribed_again_at_once_then_further_and_further_apart():
    pacing = ResyncBackoff(first=1.0, factor=2.0, cap=60.0, stable=60.0)
    now, waits = 0.0, []
    for _ in range(10):  # every resync fails again as soon as it is sent
        wait = pacing.delay('BTC/USD', now)
        waits.append(wait)
        now += wait + 0.01
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert pacing.delay('ETH/USD', now) == 0.0  # each symbol on its own


def test_a_book_that_stayed_good_for_a_while_is_subscribed_again_at_once():
    pacing = ResyncBackoff(first=1.0, stable=60.0)
    assert pacing.delay('BTC/USD', 0.0) == 0.0
    assert pacing.delay('BTC/USD', 30.0) == 1.0
    assert pacing.delay('BTC/USD', 31.0 + 60.0) == 0.0


def test_pacing_never_overflows_after_days_of_failures():
    pacing = ResyncBackoff(first=1.0, cap=60.0)
    now = 0.0
    for _ in range(5000):  # three and a half days at the cap
        now += pacing.delay('BTC/USD', now) + 0.01
    assert pacing.delay('BTC/USD', now) == 60.0
    backoff = Backoff(immediate=3, first=1.0, cap=60.0, jitter=0.0)
    for _ in range(5000):
        backoff.failed()
    assert backoff.delay(0.0) == 60.0
    steep = ResyncBackoff(first=1.0, factor=1e10, cap=60.0)
    assert [steep.delay('BTC/USD', 0.0) for _ in range(80)][-1] == 60.0
