"""One message from a server never stops, freezes or swells WS: over a real WebSocket on 127.0.0.1.

Each test is one of the probes that once did (a message nested 100,000 deep, a
checksum of a million digits, a flood while the reader is idle, a book that keeps
failing, levels no exchange can have, a token in the frame log), sent by the
scripted Kraken server of ``test_ws_client``. Every wait has a timeout.
"""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_ws_client import (
    WAIT,
    FakeKraken,
    book_message,
    eventually,
    expect,
    notice,
    quick_backoff,
)

from krakenex import API, KrakenAPIError, KrakenTimeout, KrakenUsageError
from krakenex.sandbox import Sandbox
from krakenex.ws import WS, BookUnavailableError, ResyncBackoff
from krakenex.ws.protocol import MAX_DEPTH


def quick_resyncs() -> ResyncBackoff:
    return ResyncBackoff(first=0.01, cap=0.05)


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    server = FakeKraken()
    yield server
    server.stop()


@pytest.fixture
def ws(kraken: FakeKraken) -> Iterator[WS]:
    with WS(url=kraken.url, auth_url=kraken.url, timeout=WAIT, silence=2.0,
            backoff=quick_backoff, resync_backoff=quick_resyncs) as client:
        yield client


def ticker(n: int) -> str:
    """A message that marks a point in the stream."""
    return json.dumps({'channel': 'ticker', 'type': 'update', 'data': [{'symbol': 'BTC/USD',
                                                                         'marker': n}]})


def is_ticker(n: int) -> Any:
    return lambda m: m.get('channel') == 'ticker' and m['data'][0].get('marker') == n


def the_stream_goes_on(ws: WS, kraken: FakeKraken, marker: int = 1) -> list[dict[str, Any]]:
    """Read up to a marker sent now, over the same connection; return what came before it."""
    kraken.push(ticker(marker))
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT
    while True:
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        if is_ticker(marker)(message):
            break
        seen.append(message)
    assert ws.request('ping')['method'] == 'pong'
    assert kraken.handshakes == 1, 'the connection was replaced'
    assert not [m for m in seen if notice('gave_up')(m)]
    return seen


def verified(ws: WS, symbol: str) -> int | None:
    """The checksum of the verified book, or None while there is none."""
    try:
        return ws.book(symbol).checksum
    except BookUnavailableError:
        return None


def wire_book(symbol: str, kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
              checksum: str | None = None, pp: int = 1, qp: int = 8) -> str:
    """A book message with the levels written as given, and a checksum that matches them by
    Kraken's rule at the precisions (unless given): what a server could send."""
    if checksum is None:
        def order(side: list[tuple[str, str]], best_high: bool) -> list[tuple[str, str]]:
            def value(level: tuple[str, str]) -> Decimal:
                price = Decimal(level[0])
                return Decimal(0) if price.is_nan() else price
            return sorted(side, key=value, reverse=best_high)[:10]

        def text(number: str, places: int) -> str:
            return format(Decimal(number), f'.{places}f').replace('.', '').lstrip('0')
        checksum = str(zlib.crc32(''.join(
            text(p, pp) + text(q, qp)
            for p, q in order(asks, False) + order(bids, True)).encode()))

    def levels(side: list[tuple[str, str]]) -> str:
        return ','.join(f'{{"price":{p},"qty":{q}}}' for p, q in side)
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
            f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],"checksum":{checksum},'
            f'"timestamp":"2026-11-30T04:00:00.000000Z"}}]}}')


def served_levels(kraken: FakeKraken, symbol: str) -> tuple[list[tuple[str, str]],
                                                            list[tuple[str, str]]]:
    """The server's ten best bids and asks of a book as wire text."""
    book = kraken.books[symbol]
    bids = sorted(book.bids, reverse=True)[:10]
    asks = sorted(book.asks)[:10]
    return ([(book.text(p, book.pp), book.text(book.bids[p], book.qp)) for p in bids],
            [(book.text(p, book.pp), book.text(book.asks[p], book.qp)) for p in asks])


# -- unreadable messages -------------------------------------------------------------------

@pytest.mark.parametrize('text', [
    '[' * 100_000 + ']' * 100_000,  # 200 kB nested 100,000 deep
    '{"channel":' * 50_000 + '1' + '}' * 50_000,
])
def test_a_message_nested_100000_deep_is_a_bad_message_and_the_stream_goes_on(ws, kraken, text):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.push(text)
    bad = expect(ws, notice('bad_message'))
    assert f'nested deeper than {MAX_DEPTH} levels' in bad['reason']
    assert bad['text'].endswith('...') and len(bad['text']) == 203
    the_stream_goes_on(ws, kraken)
    assert ws.subscribe('trade', symbol=['BTC/USD'])[0]['success'] is True


@pytest.mark.parametrize('checksum', ['1e1000000', '1e10000000', '9' * 5000])
def test_a_checksum_of_millions_of_digits_is_a_bad_message_at_once_and_the_book_resyncs(
        ws, kraken, checksum):
    ws.subscribe('book', symbol=['BTC/USD'])
    expect(ws, book_message('BTC/USD'))
    bids, asks = served_levels(kraken, 'BTC/USD')
    kraken.push(wire_book('BTC/USD', 'snapshot', bids, asks, checksum=checksum))
    bad = expect(ws, notice('bad_message'))
    assert 'digits' in bad['reason']
    expect(ws, notice('book_resync'))
    expect(ws, book_message('BTC/USD'))  # the snapshot of the resync
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()
    the_stream_goes_on(ws, kraken)


@pytest.mark.parametrize('text, called', [
    ('[{"channel":"ticker"}]', 'an array'), ('"online"', 'a string'), ('5', 'a number'),
    ('1.5', 'a number'), ('null', 'null'), ('true', 'true or false'),
])
def test_json_that_is_not_an_object_is_a_bad_message_never_a_message(ws, kraken, text, called):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.push(text)
    bad = expect(ws, notice('bad_message'))
    assert bad['reason'] == f'ValueError: {called} where Kraken always sends a JSON object'
    assert bad['text'] == text
    seen = the_stream_goes_on(ws, kraken)
    assert all(isinstance(m, dict) for m in seen)


def test_nan_where_a_number_belongs_is_a_bad_message(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.push('NaN')
    kraken.push('{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":NaN}]}')
    for _ in range(2):
        assert 'NaN is not a JSON number' in expect(ws, notice('bad_message'))['reason']
    the_stream_goes_on(ws, kraken)


@pytest.mark.parametrize('reply', [{'req_id': 'one'}, {'req_id': 1.0}, {'success': 'yes'},
                                   {'success': None}])
def test_a_reply_krakenex_cannot_trust_is_a_bad_message_and_settles_nothing(ws, kraken, reply):
    ws.connect()  # the 0.5 s below is for the reply alone
    kraken.handlers['ping'] = lambda connection, message: {'method': 'pong', **reply}
    with pytest.raises(KrakenTimeout):
        ws.request('ping', timeout=0.5)
    bad = expect(ws, notice('bad_message'))
    assert 'a reply whose' in bad['reason']
    del kraken.handlers['ping']
    assert ws.request('ping')['method'] == 'pong'


# -- books: never a level that cannot exist --------------------------------------------------

def test_a_book_message_neither_snapshot_nor_update_is_a_bad_message_and_resyncs(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD'])
    expect(ws, book_message('BTC/USD'))
    bids, asks = served_levels(kraken, 'BTC/USD')
    kraken.push(wire_book('BTC/USD', 'delta', bids, asks))
    assert 'neither snapshot nor update' in expect(ws, notice('bad_message'))['reason']
    assert expect(ws, notice('book_resync'))['symbol'] == 'BTC/USD'
    expect(ws, book_message('BTC/USD'))
    assert verified(ws, 'BTC/USD') == kraken.books['BTC/USD'].checksum()


@pytest.mark.parametrize('price, qty', [
    (None, '-1.00000000'), ('-45000.1', None), ('0.0', None),  # Book refuses them
    (None, 'NaN'), ('NaN', None), (None, 'Infinity'), ('-Infinity', None),  # not JSON
    ('1e400', None),  # beyond the numbers krakenex reads
    (None, '1000000000000000000.00000000'),  # 10^18 of anything
])
def test_levels_that_cannot_exist_never_show_even_when_the_checksum_matches_their_text(
        ws, kraken, price, qty):
    ws.subscribe('book', symbol=['BTC/USD', 'ETH/USD'])
    expect(ws, book_message('ETH/USD'))
    kraken.hold_snapshots()
    bids, asks = served_levels(kraken, 'BTC/USD')
    best = bids[0]
    bids[0] = (price or best[0], qty or best[1])
    kraken.push(wire_book('BTC/USD', 'snapshot', bids, asks))
    bad = expect(ws, notice('bad_message'))
    assert 'cannot exist' in bad['reason'] or 'not a JSON number' in bad['reason'] \
        or 'lies beyond' in bad['reason']
    assert expect(ws, notice('book_resync'))['symbol'] == 'BTC/USD'
    with pytest.raises(BookUnavailableError):
        ws.book('BTC/USD')
    kraken.release_snapshots()
    expect(ws, book_message('BTC/USD'))
    view = ws.book('BTC/USD')
    assert view.checksum == kraken.books['BTC/USD'].checksum()
    assert all(p > 0 and q > 0 for p, q in view.bids + view.asks)
    # a message krakenex could not decode may have been any book's: ETH/USD resyncs then too
    eventually(lambda: verified(ws, 'ETH/USD') == kraken.books['ETH/USD'].checksum())


def test_a_book_whose_checksum_keeps_failing_is_subscribed_again_further_and_further_apart(
        kraken):
    kraken.books['BTC/USD'].checksum = lambda: 12345  # every snapshot fails its checksum
    pacing = lambda: ResyncBackoff(first=0.1, factor=2.0, cap=0.4)  # noqa: E731
    with WS(url=kraken.url, timeout=WAIT, silence=2.0, backoff=quick_backoff,
            resync_backoff=pacing) as ws:
        ws.subscribe('book', symbol=['BTC/USD'])
        waits = [expect(ws, notice('book_resync'))['wait'] for _ in range(6)]
        assert waits == [0.0, 0.1, 0.2, 0.4, 0.4, 0.4]
        eventually(lambda: len(kraken.sent('subscribe', 'book')) >= 7)
        sent = [at for at, m in zip(kraken.received_at, kraken.received, strict=False)
                if m.get('method') == 'subscribe' and m['params'].get('channel') == 'book']
        gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
        # each subscribe waited at least what its notice said (unpaced: ~270 a second)
        paced = zip(gaps, waits, strict=False)
        assert all(gap >= wait - 0.01 for gap, wait in paced), (gaps, waits)
        with pytest.raises(BookUnavailableError):
            ws.book('BTC/USD')


def test_a_resync_still_waiting_when_a_snapshot_verifies_the_book_sends_nothing(kraken):
    with WS(url=kraken.url, timeout=WAIT, silence=2.0, backoff=quick_backoff,
            resync_backoff=lambda: ResyncBackoff(first=2.0)) as ws:
        ws.subscribe('book', symbol=['BTC/USD'])
        expect(ws, book_message('BTC/USD'))
        kraken.book_update('BTC/USD', bids={'44999.8': '3'}, checksum=1)
        assert expect(ws, notice('book_resync'))['wait'] == 0.0  # the first goes at once
        expect(ws, book_message('BTC/USD'))
        kraken.book_update('BTC/USD', bids={'44999.8': '4'}, checksum=1)
        assert expect(ws, notice('book_resync'))['wait'] == 2.0  # the second waits
        kraken.push(kraken.books['BTC/USD'].snapshot('BTC/USD', 10))  # Kraken's own snapshot
        expect(ws, book_message('BTC/USD'))
        assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()
        before = len(kraken.sent('subscribe', 'book'))
        time.sleep(2.3)  # past the wait: the book is good, so nothing is sent
        assert len(kraken.sent('subscribe', 'book')) == before == 2
        assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()


# -- the queue: bounded in bytes -------------------------------------------------------------

def numbers(n: int, size: int) -> str:
    """A message of about ``size`` characters that decodes to many Decimals (~28 bytes each
    character): the shape that swells most."""
    return ('{"channel":"flood","type":"update","marker":' + str(n) + ',"data":['
            + ','.join(['1.1'] * (size // 4)) + ']}')


def test_a_reader_idle_through_a_flood_keeps_at_most_max_queue_bytes_and_says_overflow(kraken):
    size, limit = 256 << 10, 600 << 10  # two of these messages fit, a third does not
    with WS(url=kraken.url, timeout=WAIT, silence=5.0, backoff=quick_backoff,
            max_queue_bytes=limit) as ws:
        ws.subscribe('ticker', symbol=['BTC/USD'])
        tracemalloc.start()
        try:
            kraken.push_many([numbers(n, size) for n in range(12)])
            # every message before its reply has been read and queued (slowly, traced)
            ws.request('ping', timeout=120)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # twelve kept would take about 12 x 7 MB decoded; two take about 14 MB
        assert held < 30 << 20, f'{held / 2**20:.0f} MB held'
        overflow = expect(ws, notice('overflow'))
        assert overflow['dropped'] >= 10
        kept = []
        message = ws.recv(timeout=WAIT)
        while message.get('channel') == 'flood':
            kept.append(message['marker'])
            message = ws.recv(timeout=WAIT)
        assert kept == [10, 11]  # the newest are kept, in order
        the_stream_goes_on(ws, kraken)


@pytest.mark.parametrize('options', [{'max_queue_bytes': 0}, {'max_queue_bytes': 1.5},
                                     {'max_queue': 0}, {'max_queue_bytes': True}])
def test_a_queue_bound_that_is_not_a_whole_number_above_zero_is_a_usage_error(options):
    name = next(iter(options))
    with pytest.raises(KrakenUsageError, match=f'{name} must be a whole number above 0'):
        WS(**options)


# -- tokens never in a log -------------------------------------------------------------------

@pytest.fixture
def rest() -> Iterator[API]:
    with Sandbox() as sandbox, API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
        yield api


def test_frames_logged_at_debug_show_no_part_of_a_token(kraken, rest, caplog):
    frames = logging.getLogger('krakenex.ws.frames')
    caplog.set_level(logging.DEBUG)
    frames.setLevel(logging.DEBUG)  # a user debugging the frames themselves
    try:
        with WS(rest, url=kraken.url, auth_url=kraken.url, timeout=WAIT, silence=2.0,
                backoff=quick_backoff) as ws:
            ws.subscribe('executions')
            orders = [{'order_type': 'limit', 'side': 'buy', 'order_qty': Decimal('0.01'),
                       'limit_price': 40000 + i} for i in range(20)]
            with pytest.raises(KrakenAPIError):  # long: websockets logs its start and end
                ws.request('batch_add', symbol='BTC/USD', orders=orders)
            ws.subscribe('ticker', symbol=['BTC/USD'])  # public: its frames show in full
    finally:
        frames.setLevel(logging.INFO)
    # every log of the client's process; websockets.server is the scripted Kraken's own
    logged = '\n'.join(caplog.handler.format(r) for r in caplog.records
                        if not r.name.startswith('websockets.server'))
    assert '> TEXT \'{"method":"subscribe"' in logged  # public frames show in full
    assert kraken.tokens
    for token in kraken.tokens:
        parts = {token[i:i + 8] for i in range(len(token) - 7)}
        assert not [part for part in parts if part in logged]


def test_a_bad_message_quoting_the_token_shows_it_hidden(kraken, rest):
    with WS(rest, url=kraken.url, auth_url=kraken.url, timeout=WAIT, silence=2.0,
            backoff=quick_backoff) as ws:
        ws.subscribe('executions')
        token = kraken.tokens[-1]
        kraken.push('{"echo":"' + token + '"')
        bad = expect(ws, notice('bad_message'))
        assert token not in json.dumps(bad) and '[token]' in bad['text']
