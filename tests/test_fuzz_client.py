"""Hostile and careless input to the client: a clear krakenex error or a Kraken reply, never worse.

Hypothesis draws method names, parameter values of every type, timeouts, tiers
and key files, and sends what the client accepts to a sandbox over real HTTP.
Every outcome must be one of: Kraken's envelope (with no internal error), a
:class:`~krakenex.KrakenUsageError` raised before sending, or ``TypeError``
for an argument of the wrong type. The budget per test is small in the suite;
``KRAKENEX_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_client.py`` runs longer.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sandbox_hostile import check_invariants

from krakenex import (
    API,
    KeyFileError,
    KrakenConnectionError,
    KrakenError,
    KrakenHTTPError,
    KrakenTimeout,
    KrakenUsageError,
    methods,
    protocol,
)
from krakenex.sandbox import Sandbox

EXAMPLES = int(os.environ.get('KRAKENEX_FUZZ_EXAMPLES', '40'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope='module')
def exchange() -> Iterator[Sandbox]:
    with Sandbox(tier=None) as running:
        yield running


@pytest.fixture(scope='module')
def api(exchange: Sandbox) -> Iterator[API]:
    with API(exchange.key, exchange.secret, uri=exchange.url, timeout=10, retries=0) as client:
        yield client


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.binary(max_size=12),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
    st.sampled_from(['1e-8', '1E+400', '+100', '#5', '²', 'NaN', 'sNaN', '0x10', '-0', ' 1 ',
                     '1' * 400, '\x00', '\u202e', 'XBTUSD', 'buy', 'limit']),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
                   st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=2), max_leaves=6))
PARAMS = st.dictionaries(
    st.one_of(st.sampled_from(['pair', 'volume', 'price', 'price2', 'ordertype', 'type', 'txid',
                               'userref', 'cl_ord_id', 'ofs', 'start', 'end', 'since', 'count',
                               'asset', 'amount', 'timeout', 'max_fee', 'orders', 'validate',
                               'interval', 'oflags', 'nonce', 'otp']),
              st.text(string.ascii_letters + '[]_', min_size=1, max_size=12)),
    VALUES, max_size=5)
KNOWN = sorted(methods.METHODS)
NAMES = st.one_of(st.sampled_from(KNOWN), st.text(max_size=20),
                  st.sampled_from(['../Balance', 'Balance/../x', 'Earn/', 'A' * 300, 'Ticker?x=1']))


def outcome(call: Any) -> Any:
    """What a call gave, checked: a Kraken envelope, bytes, or an allowed exception."""
    try:
        reply = call()
    except (KrakenUsageError, TypeError) as exc:
        assert str(exc), 'an error must say what was wrong'
        return exc
    except KrakenHTTPError as exc:  # a path the sandbox does not serve, as Kraken would
        assert exc.status in (404, 405), exc
        return exc
    except KrakenError as exc:
        raise AssertionError(f'the call failed below Kraken: {exc!r}') from exc
    if isinstance(reply, bytes):
        return reply
    assert isinstance(reply, dict) and isinstance(reply.get('error'), list), reply
    assert not any('Internal error' in e for e in reply['error']), reply
    return reply


@FUZZ
@given(method=NAMES, data=PARAMS)
def test_any_public_call_gets_a_reply_or_a_clear_error(api: API, method: Any,
                                                       data: dict[str, Any]) -> None:
    outcome(lambda: api.query_public(method, data))


@FUZZ
@given(method=st.sampled_from([m for m in KNOWN if methods.METHODS[m].private]), data=PARAMS)
def test_any_private_call_gets_a_reply_or_a_clear_error(api: API, exchange: Sandbox, method: str,
                                                        data: dict[str, Any]) -> None:
    outcome(lambda: api.query_private(method, data))
    check_invariants(exchange)


@FUZZ
@given(timeout=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                         st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)),
                         st.text(max_size=5), st.none(), st.booleans()))
def test_any_timeout_is_used_or_refused_in_one_sentence(api: API, timeout: Any) -> None:
    parts = timeout if isinstance(timeout, tuple) else (timeout,)
    valid = timeout is None or all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= protocol.MAX_TIMEOUT
        for p in parts)
    try:
        reply = api.query_public('Time', timeout=timeout)
    except KrakenUsageError as exc:
        assert not valid and 'timeout' in str(exc)
        return
    except (KrakenTimeout, KrakenConnectionError):
        assert valid and min(parts) < 2, 'only a short timeout may expire on loopback'
        return
    assert valid and reply['error'] == []


@FUZZ
@given(tier=st.one_of(st.text(max_size=12), st.tuples(st.floats(allow_nan=True),
                                                      st.floats(allow_nan=True)),
                      st.tuples(st.integers(), st.integers()), st.lists(st.integers(), max_size=3),
                      st.sampled_from(['starter', 'pro', 'intermediate', '15,0.33', 'nan,1',
                                       '1,inf', '0,1', '-1,1'])))
def test_any_tier_is_kept_or_refused_at_once(tier: Any) -> None:
    try:
        api = API(tier=tier)
    except (KrakenUsageError, TypeError) as exc:
        assert str(exc)
        return
    counter = api.counter
    assert counter is not None
    assert math.isfinite(counter.maximum) and counter.maximum > 0
    assert math.isfinite(counter.decay) and counter.decay > 0


@FUZZ
@given(cost=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.integers(min_value=-5, max_value=100)))
def test_any_cost_is_paced_or_refused_and_never_waits_forever(exchange: Sandbox,
                                                             cost: float) -> None:
    api = API(exchange.key, exchange.secret, uri=exchange.url, tier=(10, 100),
              costs={'Balance': cost}, retries=0)
    if not cost <= 10:
        with pytest.raises(KrakenUsageError, match='can never fit'):
            api.query_private('Balance')
    else:
        assert api.query_private('Balance')['error'] == []


@FUZZ
@given(content=st.one_of(st.binary(max_size=200),
                         st.text(max_size=200).map(lambda t: t.encode('utf-8')),
                         st.builds(lambda key, bom, end: (bom + key + end + 'b2xk' + end).encode(),
                                   st.text(string.printable, max_size=20),
                                   st.sampled_from(['', '\ufeff']),
                                   st.sampled_from(['\n', '\r\n', '\n\n']))))
def test_any_key_file_loads_or_is_refused_in_one_sentence(tmp_path_factory: pytest.TempPathFactory,
                                                         content: bytes) -> None:
    path = tmp_path_factory.mktemp('keys') / 'kraken.key'
    path.write_bytes(content)
    path.chmod(0o600)
    api = API()
    try:
        api.load_key(path)
    except KeyFileError as exc:
        assert '\n' not in str(exc) and str(exc)
        assert (api.key, api.secret) == ('', '')
        return
    assert api.key and api.key.isascii() and api.key.isprintable()
    assert api.secret and '\n' not in api.secret


def test_a_missing_key_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match='No such file'):
        API().load_key(tmp_path / 'absent.key')


@pytest.mark.parametrize('value', [float('nan'), float('inf'), Decimal('-Infinity'),
                                   Decimal('sNaN')])
def test_non_finite_numbers_never_leave_the_client(api: API, exchange: Sandbox,
                                                   value: Any) -> None:
    sent = len(exchange.requests_log)
    with pytest.raises(KrakenUsageError, match='not a number Kraken accepts'):
        api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                       'price': '1000', 'volume': value})
    assert len(exchange.requests_log) == sent
