"""A hostile server against WS: the client goes on, stays small and shows no bad book.

Hypothesis draws frames a server could send (nesting deep and unbalanced,
numbers of millions of digits or beyond any price, NaN, wrong types in every
field of book, instrument and reply messages, JSON that is not an object, bytes
that are not text, book levels no exchange can have under a checksum that
matches them, floods of small and of large messages) and sends them to one WS
client over a real WebSocket on 127.0.0.1, while nobody reads. Then the server
states the truth again (the pairs' precisions and the books) and a marker. Each
example checks that:

* nothing hangs: the marker arrives, a ping is answered, on the same connection;
* the client never gives up;
* memory stays bounded: once the frames are read, the process holds fewer new objects
  than a flood of large messages would leave if the queue kept every one
  (``test_ws_hostile`` measures the bytes of one such flood);
* every book ``ws.book()`` shows is one that can exist and matches its checksum
  (recomputed here by Kraken's rule), and each book comes back to the server's.

The budget per test is small in the suite, as for the other fuzz tests;
``KRAKENEX_FUZZ_EXAMPLES=500 pytest tests/test_ws_fuzz.py`` runs longer.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from test_ws_client import WAIT, FakeKraken, book_message, expect, notice, quick_backoff
from test_ws_hostile import numbers, quick_resyncs, served_levels, verified, wire_book

from krakenex.ws import WS, BookUnavailableError
from krakenex.ws.book import LEVEL_LIMIT
from krakenex.ws.protocol import MAX_DEPTH

EXAMPLES = int(os.environ.get('KRAKENEX_FUZZ_EXAMPLES', '40'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize='KRAKENEX_FUZZ_EXAMPLES' not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

SYMBOLS = ('BTC/USD', 'ETH/USD')

#: What the client keeps for a reader that does not read, and the new objects the process may
#: hold once the frames are read (``sys.getallocatedblocks``): each character of a list of
#: numbers becomes about a quarter of an object (a Decimal), so the queue holds at most about
#: QUEUE_BYTES / 4, and a flood of sixteen 256 kB messages kept whole would leave a million.
QUEUE_BYTES = 1 << 20
HELD_LIMIT = QUEUE_BYTES // 2

#: Seconds after which the client is taken to hang (a loaded machine is slow, a hang endless).
HANG = 60.0


@pytest.fixture(scope='module')
def kraken() -> Iterator[FakeKraken]:
    server = FakeKraken()
    yield server
    server.stop()


@pytest.fixture(scope='module')
def ws(kraken: FakeKraken) -> Iterator[WS]:
    with WS(url=kraken.url, timeout=WAIT, silence=5.0, backoff=quick_backoff,
            resync_backoff=quick_resyncs, max_queue_bytes=QUEUE_BYTES) as client:
        client.subscribe('book', symbol=list(SYMBOLS))
        expect(client, book_message(SYMBOLS[-1]))
        yield client


# -- what a hostile server sends -------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
JSON = VALUES.map(json.dumps)

#: Number texts as a server could write them: huge, tiny, long, not JSON, not numbers.
NUMBER = st.one_of(
    st.sampled_from(['1e1000000', '1e10000000', '-1e400', '1e-400', '9' * 5000, '-' + '9' * 1200,
                     '0.' + '0' * 3000 + '1', '1' * 45 + '.5', '1E+18', '1e60', '1e61', '-0',
                     '-0.0', '0', '0.0', '0E-8', 'NaN', 'Infinity', '-Infinity', '1.00000000',
                     '45000.1', '0.10000000', '4294967296', '-1', 'true', 'null', '"1.5"', '[1]',
                     '{}']),
    st.integers().map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
#: Levels no exchange can have, that Decimal still reads (the checksum can match them).
IMPOSSIBLE = st.sampled_from(['-1.00000000', '0.0', '-0.00000001', '1e400', 'NaN', 'Infinity',
                              '-Infinity', '1E+18', '1000000000000000000.00000000'])


def nested(depth: int, kind: str) -> str:
    if kind == 'list':
        return '[' * depth + ']' * depth
    if kind == 'object':
        return '{"a":' * depth + '1' + '}' * depth
    return '[{"data":' * depth  # never closed


@st.composite
def book_frames(draw: Any) -> list[str]:
    """A book message with any value in any field (numbers written as drawn)."""
    level = st.one_of(st.builds(lambda p, q: f'{{"price":{p},"qty":{q}}}', NUMBER, NUMBER),
                      st.builds(lambda p: f'{{"price":{p}}}', NUMBER), JSON)
    side = st.one_of(st.lists(level, max_size=4).map(lambda ls: '[' + ','.join(ls) + ']'), JSON)
    fields = {
        'symbol': draw(st.sampled_from(['"BTC/USD"', '"ETH/USD"', '"DOGE/USD"', '1', 'null',
                                        '["BTC/USD"]'])),
        'bids': draw(side), 'asks': draw(side), 'checksum': draw(NUMBER),
        'timestamp': draw(st.sampled_from(['"2026-11-30T04:00:00Z"', '1', 'null', '[]'])),
    }
    kept = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    item = '{' + ','.join(f'"{name}":{fields[name]}' for name in sorted(kept)) + '}'
    data = draw(st.sampled_from([f'[{item}]', item, f'[{item},{item}]', '[]', 'null']))
    kind = draw(st.sampled_from(['"snapshot"', '"update"', '"other"', '1', 'null']))
    return [f'{{"channel":"book","type":{kind},"data":{data}}}']


def impossible(symbol: str, odd: str, field: str, at: int, side: str) -> Any:
    """A snapshot of a subscribed book with one level no exchange can have, under a checksum
    computed from its text by Kraken's rule: only the level itself gives it away. Written
    when it is sent, from the server's levels then."""
    def write(kraken: FakeKraken) -> str:
        bids, asks = served_levels(kraken, symbol)
        levels = {'bids': bids, 'asks': asks}
        price, qty = levels[side][at]
        levels[side][at] = (odd, qty) if field == 'price' else (price, odd)
        served = kraken.books[symbol]
        return wire_book(symbol, 'snapshot', levels['bids'], levels['asks'], pp=served.pp,
                         qp=served.qp)
    return write


IMPOSSIBLE_BOOKS = st.builds(impossible, st.sampled_from(SYMBOLS), IMPOSSIBLE,
                             st.sampled_from(['price', 'qty']), st.integers(0, 9),
                             st.sampled_from(['bids', 'asks'])).map(lambda write: [write])


@st.composite
def instrument_frames(draw: Any) -> list[str]:
    """Pairs' precisions: anything for other pairs, only values that are no precision for the
    subscribed ones (a valid wrong one would be Kraken's word, and fail every checksum)."""
    other = st.builds(lambda s, p, q: f'{{"symbol":{s},"price_precision":{p},'
                                      f'"qty_precision":{q}}}',
                      st.sampled_from(['"DOGE/USD"', '"XBT/USD"', '1', 'null']), NUMBER, NUMBER)
    wrong = st.sampled_from(['-1', '31', '2.5', '1e400', '"1"', 'null', 'true', '1e1000000', '[1]'])
    ours = st.builds(lambda s, p, q: f'{{"symbol":"{s}","price_precision":{p},'
                                     f'"qty_precision":{q}}}', st.sampled_from(SYMBOLS), wrong,
                     wrong)
    pairs = draw(st.one_of(st.lists(st.one_of(other, ours, JSON), max_size=3)
                           .map(lambda ps: '[' + ','.join(ps) + ']'), JSON))
    return [f'{{"channel":"instrument","type":"update","data":{{"pairs":{pairs}}}}}']


REPLIES = st.builds(lambda m, r, s, e: json.dumps({'method': m, 'req_id': r, 'success': s,
                                                   'error': e}),
                    st.one_of(st.sampled_from(['subscribe', 'unsubscribe', 'pong', 'add_order']),
                              VALUES),
                    VALUES, VALUES, VALUES).map(lambda text: [text])
CHANNELS = st.builds(lambda c, t, d, s: json.dumps({'channel': c, 'type': t, 'data': d,
                                                    'sequence': s}),
                     st.one_of(st.sampled_from(['ticker', 'trade', 'heartbeat', 'status',
                                                'executions', 'level3', 'book', 'instrument']),
                               VALUES),
                     VALUES, VALUES, VALUES).map(lambda text: [text])
NOT_OBJECTS = st.one_of(st.one_of(SCALARS, st.lists(VALUES, max_size=3)).map(json.dumps),
                        st.sampled_from(['NaN', '-Infinity', '1e1000000', '"x"', '[]'])
                        ).map(lambda text: [text])
DEEP = st.builds(nested, st.integers(MAX_DEPTH - 8, 100_000),
                 st.sampled_from(['list', 'object', 'open'])).map(lambda text: [text])
NOT_TEXT = st.one_of(st.binary(max_size=64), st.text(max_size=40)).map(lambda raw: [raw])
FLOOD = st.builds(lambda frames, times: frames * times,
                  st.one_of(CHANNELS, NOT_OBJECTS, book_frames()), st.integers(2, 200))
BIG_FLOOD = st.integers(1, 16).map(lambda n: [numbers(i, 256 << 10) for i in range(n)])

KINDS: dict[str, st.SearchStrategy[list[Any]]] = {
    'book': book_frames(), 'impossible book': IMPOSSIBLE_BOOKS,
    'instrument': instrument_frames(), 'reply': REPLIES, 'channel': CHANNELS,
    'not an object': NOT_OBJECTS, 'deep': DEEP, 'not text': NOT_TEXT, 'flood': FLOOD,
    'flood of large messages': BIG_FLOOD}
#: One group of frames, named for the statistics (pytest --hypothesis-show-statistics).
FRAMES = st.one_of(*[kind.map(lambda frames, name=name: (name, frames))
                     for name, kind in KINDS.items()])


# -- what must hold -------------------------------------------------------------------------

def _crc(view: Any, pp: int, qp: int) -> int:
    """Kraken's checksum of a view's levels at the pair's precisions, written out here."""
    def text(value: Decimal, places: int) -> str:
        return format(value, f'.{places}f').replace('.', '').lstrip('0')
    return zlib.crc32(''.join(text(p, pp) + text(q, qp)
                              for p, q in view.asks[:10] + view.bids[:10]).encode())


def check_books(ws: WS, kraken: FakeKraken) -> None:
    """Every book shown can exist, is in order, and matches its own checksum."""
    for symbol in SYMBOLS:
        try:
            view = ws.book(symbol)
        except BookUnavailableError:
            continue
        for price, qty in view.bids + view.asks:
            assert isinstance(price, Decimal) and isinstance(qty, Decimal), (price, qty)
            assert price.is_finite() and qty.is_finite(), (price, qty)
            assert 0 < price < LEVEL_LIMIT and 0 < qty < LEVEL_LIMIT, (price, qty)
        assert all(a[0] > b[0] for a, b in itertools.pairwise(view.bids)), view.bids
        assert all(a[0] < b[0] for a, b in itertools.pairwise(view.asks)), view.asks
        served = kraken.books[symbol]
        assert view.checksum == _crc(view, served.pp, served.qp), symbol


_markers = itertools.count(1)


#: The probes that once stopped, froze or swelled the client, always among the examples.
PROBES = [
    ('deep', [nested(100_000, 'list')]),
    ('book', [wire_book('BTC/USD', 'snapshot', [('45000.0', '1.00000000')], [],
                        checksum='1e10000000')]),
    ('flood of large messages', [numbers(i, 256 << 10) for i in range(16)]),
    ('not an object', ['[1,2]', '"x"', '5', 'null', 'NaN']),
    *[('impossible book', [impossible('BTC/USD', odd, field, at, 'bids')])
      for odd, field, at in [('-1.00000000', 'qty', 0), ('0.0', 'price', 9),
                             ('-44999.9', 'price', 0), ('NaN', 'qty', 3),
                             ('Infinity', 'price', 0), ('1e400', 'price', 0),
                             ('1000000000000000000.00000000', 'qty', 1)]],
]


@FUZZ
@example(groups=PROBES)
@given(groups=st.lists(FRAMES, min_size=2, max_size=6))
def test_a_hostile_server_never_stops_freezes_or_swells_the_client(kraken, ws, groups):
    frames = []
    for name, group in groups:
        event(name)
        frames.append([frame(kraken) if callable(frame) else frame for frame in group])
    before = sys.getallocatedblocks()
    for group in frames:  # nobody reads meanwhile
        kraken.push_many(group)
        # every frame before it has been read (a generous time: this detects a hang)
        assert ws.request('ping', timeout=HANG)['method'] == 'pong'
        check_books(ws, kraken)  # as the group left them
    held = sys.getallocatedblocks() - before
    marker = next(_markers)
    pairs = [{'symbol': s, 'price_precision': b.pp, 'qty_precision': b.qp}
             for s, b in kraken.books.items()]
    kraken.push_many([json.dumps({'channel': 'instrument', 'type': 'update',
                                  'data': {'pairs': pairs}})]
                     + [kraken.books[s].snapshot(s, 10) for s in SYMBOLS]
                     + [json.dumps({'channel': 'test-marker', 'n': marker})])
    deadline = time.monotonic() + HANG
    while True:  # the stream goes on: every message up to the marker, the books checked
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        assert isinstance(message, dict), message  # JSON that is not an object is bad_message
        check_books(ws, kraken)
        assert not notice('gave_up')(message), message
        if message.get('channel') == 'test-marker' and message.get('n') == marker:
            break
    assert ws.request('ping')['method'] == 'pong'
    assert kraken.handshakes == 1, 'the connection was replaced'
    while any(verified(ws, s) != kraken.books[s].checksum() for s in SYMBOLS):
        assert time.monotonic() < deadline, {s: verified(ws, s) for s in SYMBOLS}
        check_books(ws, kraken)
        time.sleep(0.01)
    assert held < HELD_LIMIT, f'{held} new objects held'
