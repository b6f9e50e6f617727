"""Kraken's protocol rules on their own, with no server: signing, numbers, retries, replies."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from krakenex import core, protocol
from krakenex.errors import (
    InsufficientFundsError,
    KeyFileError,
    KrakenConnectionError,
    KrakenConnectTimeout,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownResponseError,
    OutcomeUnknownTimeout,
)
from krakenex.protocol import Reply, Retry

# Kraken's own signing examples: https://docs.kraken.com/api/docs/guides/spot-rest-auth and
# https://docs.kraken.com/api/docs/guides/custody-rest-auth
SECRET = protocol.decode_secret(
    'kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==')


# ---------------------------------------------------------------- signing

def test_kraken_addorder_vector_reproduces() -> None:
    data = {'nonce': '1616492376594', 'ordertype': 'limit', 'pair': 'XBTUSD',
            'price': 37500, 'type': 'buy', 'volume': 1.25}
    body, content_type = protocol.encode(data)
    assert content_type == 'application/x-www-form-urlencoded'
    assert body == (b'nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy'
                    b'&volume=1.25')
    assert protocol.sign(SECRET, '/0/private/AddOrder', '1616492376594', body) == (
        '4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==')


def test_kraken_json_body_vector_reproduces() -> None:
    body = b'{"nonce":1616492376594}'
    assert protocol.nonce_in(body) == '1616492376594'
    assert protocol.sign(SECRET, '/0/private/GetCustodyTask?id=TGWOJ4JQPOTZT2',
                         1616492376594, body) == (
        '2rM09q8HG7LvjivBitQUybwZ/DSeO8+i0U/at/wclH2Jma6gMaE/0Nw9dyLR+ykMd5eWCngSL4K58i6uJzXDCw==')


def test_a_private_request_signs_its_exact_body_and_leaves_the_data_alone() -> None:
    data = {'pair': 'XBTUSD', 'volume': 1e-08, 'nonce': 'ignored'}
    request = protocol.private_request('0', 'AddOrder', data, key='k', secret=SECRET,
                                       nonce=42, otp='123456')
    assert request.body == b'nonce=42&pair=XBTUSD&volume=0.00000001&otp=123456'
    assert request.headers['API-Sign'] == protocol.sign(SECRET, '/0/private/AddOrder', 42,
                                                        request.body)
    assert (request.verb, request.path, request.nonce) == ('POST', '/0/private/AddOrder', 42)
    assert data == {'pair': 'XBTUSD', 'volume': 1e-08, 'nonce': 'ignored'}


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize(('value', 'text'), [
    (1e-08, '0.00000001'),
    (0.1 + 0.2, '0.3'),
    (37500.0, '37500'),
    (3.75e4, '37500'),
    (1e20, '100000000000000000000'),
    (Decimal('1E-8'), '0.00000001'),
    (Decimal('3.75E+4'), '37500'),
    (Decimal('0.10'), '0.1'),
    (Decimal('100'), '100'),
    (12, 12),
    ('1e-8', '1e-8'),
    (True, 'true'),
    (False, 'false'),
])
def test_numbers_go_on_the_wire_in_plain_positional_notation(value: Any, text: Any) -> None:
    assert protocol.render(value) == text


@pytest.mark.parametrize('value', [float('nan'), float('inf'), float('-inf'), Decimal('NaN'),
                                   Decimal('sNaN'), Decimal('Infinity')])
def test_nan_and_infinities_are_refused_before_sending(value: Any) -> None:
    with pytest.raises(KrakenUsageError, match='not a number Kraken accepts'):
        protocol.encode({'volume': value})
    with pytest.raises(KrakenUsageError):
        protocol.query_string({'since': value})
    with pytest.raises(KrakenUsageError):
        protocol.encode({'orders': [{'volume': value}]})


def test_json_bodies_render_numbers_too_and_keep_integers() -> None:
    body, content_type = protocol.encode({'nonce': 1, 'orders': [
        {'volume': 1e-08, 'price': Decimal('3.75E+4'), 'userref': 7, 'post': True}]})
    assert content_type == 'application/json'
    assert json.loads(body) == {'nonce': 1, 'orders': [
        {'volume': '0.00000001', 'price': '37500', 'userref': 7, 'post': True}]}


def test_lists_in_a_query_string_are_comma_separated() -> None:
    assert protocol.query_string({'pair': ['XBTUSD', 'ETHUSD'], 'since': None}) == (
        'pair=XBTUSD%2CETHUSD')


@pytest.mark.parametrize('timeout', [0, -1, float('nan'), float('inf'), (5, 0), (1, 2, 3),
                                     (5,), (), 'soon', True])
def test_timeouts_must_be_finite_seconds_above_zero(timeout: Any) -> None:
    with pytest.raises(KrakenUsageError, match='timeout'):
        protocol.check_timeout(timeout)


@pytest.mark.parametrize('name', ['Ticker', 'AddOrder', 'Earn/Allocate'])
def test_method_names_of_kraken_pass(name: str) -> None:
    assert protocol.check_method(name) == name


@pytest.mark.parametrize('name', ['', '../Balance', 'Ticker?x=1', 'Earn/', '/Time', 'Add Order',
                                  'A/B/C', 3, None])
def test_other_method_names_are_refused(name: Any) -> None:
    with pytest.raises(KrakenUsageError, match='not a Kraken method name'):
        protocol.check_method(name)


def test_the_clock_nonce_counts_in_its_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol.time, 'time_ns', lambda: 1_700_000_000_123_456_789)
    assert [protocol.clock_nonce(unit) for unit in ('ms', 'us', 'ns')] == [
        1_700_000_000_123, 1_700_000_000_123_456, 1_700_000_000_123_456_789]


# ----------------------------------------------------------------- replies

def reply(status: int = 200, content: bytes = b'{"error":[],"result":{}}', reason: str = 'OK',
          **headers: str) -> Reply:
    return Reply(status, reason, {k.replace('_', '-'): v for k, v in headers.items()}, content)


CLOUDFLARE_520 = (b'<!DOCTYPE html><html><head><title>api.kraken.com | 520: Web server is '
                  b'returning an unknown error</title></head><body>...</body></html>')


def zipped() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        archive.writestr('ledgers.csv', 'txid,refid\n')
    return buffer.getvalue()


def test_cloudflare_520_is_an_http_error_that_names_the_page() -> None:
    with pytest.raises(KrakenHTTPError, match='520.*Cloudflare.*Web server is returning') as caught:
        protocol.read_reply('Balance', reply(520, CLOUDFLARE_520, '', Server='cloudflare',
                                             Content_Type='text/html'), {})
    assert caught.value.status == 520 and caught.value.body.startswith('<!DOCTYPE')


@pytest.mark.parametrize('status', [301, 302, 307, 308])
def test_a_redirect_is_an_http_error_naming_its_target(status: int) -> None:
    with pytest.raises(KrakenHTTPError, match='redirects to https://api.kraken.com/0/public/Time'):
        protocol.read_reply('Time', reply(status, b'', 'Moved',
                                          Location='https://api.kraken.com/0/public/Time'), {})


def test_a_200_that_is_not_json_is_a_response_error_showing_the_body() -> None:
    with pytest.raises(KrakenResponseError, match="200.*text/html.*'<html>maintenance"):
        protocol.read_reply('Time', reply(200, b'<html>maintenance</html>',
                                          Content_Type='text/html'), {})


def test_a_zip_reply_is_returned_as_bytes() -> None:
    content = zipped()
    assert protocol.read_reply('RetrieveExport', reply(
        200, content, Content_Type='application/zip'), {}) == content


def test_json_options_reach_the_decoder() -> None:
    decoded = protocol.read_reply('Ticker', reply(content=b'{"error":[],"result":{"p":0.1}}'),
                                  {'parse_float': Decimal})
    assert decoded['result']['p'] == Decimal('0.1')


def test_an_envelope_with_errors_raises_only_when_asked() -> None:
    envelope = {'error': ['EOrder:Insufficient funds'], 'result': {}}
    assert protocol.checked('AddOrder', envelope, raise_errors=False) is envelope
    with pytest.raises(InsufficientFundsError, match='AddOrder answered EOrder:Insufficient'):
        protocol.checked('AddOrder', envelope, raise_errors=True)


def test_warnings_alone_never_raise() -> None:
    envelope = {'error': ['WGeneral:Deprecated'], 'result': {'x': 1}}
    assert protocol.checked('Balance', envelope, raise_errors=True) is envelope


# ------------------------------------------------------------------- retry

TRANSIENT: list[KrakenError] = [
    KrakenConnectionError('dropped'), KrakenTimeout('late'), KrakenResponseError('html'),
    KrakenHTTPError('520', status=520), KrakenHTTPError('429', status=429),
    KrakenHTTPError('502', status=502)]
FINAL: list[KrakenError] = [KrakenHTTPError('404', status=404),
                            KrakenHTTPError('301', status=301), KrakenUsageError('bad')]


@pytest.mark.parametrize('error', TRANSIENT, ids=lambda e: type(e).__name__ + str(e))
def test_a_read_retries_a_transient_fault_and_a_state_change_does_not(error: KrakenError) -> None:
    assert Retry(3, 0.01, 30, at_most_once=False).after_error(error) is not None
    assert Retry(3, 0.01, 30, at_most_once=True).after_error(error) is None


@pytest.mark.parametrize('error', FINAL, ids=lambda e: type(e).__name__ + str(e))
def test_a_final_fault_is_never_retried(error: KrakenError) -> None:
    assert Retry(3, 0.01, 30, at_most_once=False).after_error(error) is None


@pytest.mark.parametrize('error', [NotSentError('refused'), KrakenConnectTimeout('no line')])
def test_a_call_that_never_left_is_retried_even_when_it_changes_state(error: KrakenError) -> None:
    assert Retry(3, 0.01, 30, at_most_once=True).after_error(error) is not None


@pytest.mark.parametrize(('errors', 'retried'), [
    (['EService:Unavailable'], True),
    (['EService:Busy'], True),
    (['EGeneral:Internal error'], True),
    (['EAPI:Rate limit exceeded'], True),
    (['EGeneral:Too many requests', 'WGeneral:Deprecated'], True),
    (['EOrder:Insufficient funds'], False),
    (['EService:Unavailable', 'EOrder:Insufficient funds'], False),
    (['WGeneral:Deprecated'], False),
    ([], False),
])
def test_which_replies_are_retried(errors: list[str], retried: bool) -> None:
    envelope = {'error': errors, 'result': {}}
    assert (Retry(3, 0.01, 30, at_most_once=False).after_reply(envelope) is not None) is retried
    assert Retry(3, 0.01, 30, at_most_once=True).after_reply(envelope) is None


def test_retries_stop_at_their_count_with_growing_waits() -> None:
    retry = Retry(3, 0.1, 30, at_most_once=False)
    waits = [retry.after_error(KrakenTimeout('late')) for _ in range(4)]
    assert waits[3] is None
    assert all(w is not None for w in waits[:3])
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2 and 0.2 <= waits[2] <= 0.4  # type: ignore[operator]


def test_throttled_waits_until_the_time_kraken_names() -> None:
    until = int(time.time()) + 2
    throttled = {'error': [f'EService: Throttled: {until}']}
    wait = Retry(3, 0.01, 30, at_most_once=False).after_reply(throttled)
    assert wait is not None and 1 < wait <= 2.01
    assert Retry(3, 0.01, 0.5, at_most_once=False).after_reply(
        {'error': [f'EService: Throttled: {until}']}) is None


# --------------------------------------------------------- unknown outcomes

@pytest.mark.parametrize(('error', 'unknown'), [
    (KrakenHTTPError('520', status=520), OutcomeUnknownHTTPError),
    (KrakenResponseError('html'), OutcomeUnknownResponseError),
    (KrakenTimeout('late'), OutcomeUnknownTimeout),
    (KrakenConnectionError('dropped'), OutcomeUnknownConnectionError),
])
def test_a_failure_after_a_state_change_left_is_an_unknown_outcome_with_its_evidence(
        error: KrakenError, unknown: type[KrakenError]) -> None:
    request = protocol.private_request('0', 'AddOrder', {'userref': 7, 'cl_ord_id': 'a-1'},
                                       key='k', secret=SECRET, nonce=99)
    raised = protocol.after_sending(error, request, at_most_once=True)
    assert type(raised) is unknown and isinstance(raised, type(error))
    assert (raised.nonce, raised.userref, raised.cl_ord_id) == (99, '7', 'a-1')  # type: ignore[attr-defined]
    assert 'AddOrder was sent (nonce 99)' in str(raised) and 'cl_ord_id a-1' in str(raised)
    assert protocol.after_sending(error, request, at_most_once=False) is error
    refused = NotSentError('refused')
    assert protocol.after_sending(refused, request, at_most_once=True) is refused


# --------------------------------------------------------------- key files

def key_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / 'kraken.key'
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def test_a_key_file_with_a_byte_order_mark_reads_as_notepad_meant_it(tmp_path: Path) -> None:
    path = key_file(tmp_path, '\ufeffmy-key\r\nb2xk\r\n'.encode())
    assert core.read_key_file(path) == ('my-key', 'b2xk')


@pytest.mark.parametrize(('content', 'message'), [
    (bytes(range(256)) * 4, 'not text'),
    (b'k\xc3\xa9y\nb2xk\n', 'not plain ASCII'),
    (b'key\n' + b'A' * 5000, 'too large'),
    (b'', "0 non-empty line"),
])
def test_a_key_file_that_is_not_one_is_a_clear_error(tmp_path: Path, content: bytes,
                                                     message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        core.read_key_file(key_file(tmp_path, content))


def test_a_huge_key_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / 'huge.key'
    with open(path, 'wb') as f:
        f.truncate(2 * 1024 ** 3)  # 2 GB, sparse: no disk used
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match='too large'):
        core.read_key_file(path)


@pytest.mark.parametrize('text', ['\ud800', 'abc\udfff'])
def test_text_that_is_not_unicode_is_refused_before_sending(text: str) -> None:
    with pytest.raises(KrakenUsageError, match='not valid Unicode'):
        protocol.encode({'pair': text})
    with pytest.raises(KrakenUsageError, match='not valid Unicode'):
        protocol.query_string({'pair': text})
    body, _ = protocol.encode({'orders': [{'pair': text}]})  # JSON writes it as an escape
    assert json.loads(body) == {'orders': [{'pair': text}]}


# ------------------------------------------------------- the same bytes, sooner

@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(
    st.text(max_size=8) | st.sampled_from(['pair', 'nonce', 'ofs', 'a_b.c~d-e']),
    st.text(max_size=12) | st.integers() | st.booleans() | st.floats(allow_nan=False)
    | st.sampled_from(['XBTUSD', '0.01', 'a b', 'a+b', 'é', 'x\ny'])),
    max_size=5))
def test_form_writes_exactly_what_urlencode_writes(pairs: list[tuple[str, object]]) -> None:
    import urllib.parse

    try:
        expected = urllib.parse.urlencode(pairs)
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        with pytest.raises(UnicodeEncodeError):
            protocol.form(pairs)
        return
    assert protocol.form(pairs) == expected  # the signature covers these exact bytes


@settings(max_examples=200, deadline=None, database=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8),
       st.sampled_from(['utf-8', 'utf-8-sig', 'utf-16', 'utf-16-le', 'utf-16-be', 'utf-32',
                        'utf-32-le', 'utf-32-be']),
       st.sampled_from(['', ' ', '\n', ' x', '}']), st.sampled_from(['', ' \r\n', '\t']))
def test_a_reply_decodes_as_json_loads_decodes_it_in_every_encoding_json_reads(
        value: Any, encoding: str, after: str, before: str) -> None:
    text = before + json.dumps({'error': [], 'result': value}, ensure_ascii=False) + after
    content = text.encode(encoding, 'surrogatepass')
    try:
        expected = json.loads(content)
    except ValueError as exc:  # text after the value: both refuse it, as json.loads words it
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            protocol.loads(content)
        return
    assert protocol.loads(content) == expected


def test_each_secret_signs_with_itself_when_clients_with_different_secrets_take_turns() -> None:
    import base64
    import hashlib
    import hmac

    def by_hand(secret: bytes, body: bytes) -> str:
        message = b'/0/private/Balance' + hashlib.sha256(b'1' + body).digest()
        return base64.b64encode(hmac.new(secret, message, hashlib.sha512).digest()).decode()

    other = bytes(reversed(SECRET))
    for secret in (SECRET, other, SECRET, bytearray(other), other, bytes(SECRET)):
        assert protocol.sign(secret, '/0/private/Balance', 1, b'nonce=1') == \
            by_hand(secret, b'nonce=1')
