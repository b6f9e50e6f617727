"""The sandbox's WebSocket feed as a server: idle, silent, slow and hostile clients cost
only themselves.

Connections here are bare sockets that do the WebSocket handshake by hand (cheap
enough to open hundreds) or ``websockets``' own client; the reading client that
must not suffer is krakenex's :class:`~krakenex.ws.WS`, which verifies every book.
Speed figures are in ``benchmarks/sandbox_server.py``, not here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from test_sandbox_hostile import FUZZ, JSON_VALUES, Watch
from test_ws_client import expect, notice, quick_backoff
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from krakenex import API
from krakenex.sandbox import Sandbox, links
from krakenex.sandbox.feed import INVALID_PRICE
from krakenex.sandbox.links import BACKLOG, MAX_MESSAGE
from krakenex.ws import WS

WAIT = 5.0
HANDSHAKE = ('GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
             'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
             'Sec-WebSocket-Version: 13\r\n\r\n')


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(tier=None) as sandbox:
        assert sandbox.feed is not None
        sandbox.feed.heartbeat = 0.2
        yield sandbox


def port(sb: Sandbox) -> int:
    return int(sb.url.rsplit(':', 1)[1])


def frame(text: str) -> bytes:
    """One masked text frame, as a client sends it."""
    data, mask = text.encode(), os.urandom(4)
    size = (bytes([0x80 | len(data)]) if len(data) < 126
            else bytes([0x80 | 126]) + struct.pack('!H', len(data)))
    return b'\x81' + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def open_raw(sb: Sandbox, path: str = '/v2', *, extra: bytes = b'',
             receive_buffer: int | None = None) -> socket.socket:
    """A WebSocket connection by hand: the handshake (and ``extra`` in the same write)."""
    sock = socket.create_connection(('127.0.0.1', port(sb)), timeout=WAIT)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.sendall(HANDSHAKE.format(path=path).encode() + extra)
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = sock.recv(1)  # byte by byte: what follows the head stays in the socket
        assert chunk, 'closed during the handshake'
        head += chunk
    assert head.startswith(b'HTTP/1.1 101'), head[:60]
    return sock


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (what it sent before is read and dropped)."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(1 << 16):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def received(sock: socket.socket, wanted: bytes, wait: float = WAIT) -> bytes:
    """Read until ``wanted`` shows up in what the server sent; fail after ``wait`` s."""
    data, deadline = b'', time.monotonic() + wait
    sock.settimeout(0.2)
    while wanted not in data:
        assert time.monotonic() < deadline, f'{wanted!r} never came: {data[-200:]!r}'
        with contextlib.suppress(TimeoutError):
            chunk = sock.recv(1 << 16)
            assert chunk, f'closed before {wanted!r} came'
            data += chunk
    return data


def wait_for(condition: Callable[[], bool], wait: float = WAIT) -> bool:
    deadline = time.monotonic() + wait
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def open_files(needed: int) -> None:
    """Let this process open ``needed`` files (both ends of every connection are here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, \
            f'this test needs {needed} open files; the hard limit is {hard} (ulimit -Hn)'
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def subscribe(channel: str, **params: Any) -> str:
    return json.dumps({'method': 'subscribe', 'params': {'channel': channel, **params}})


# -- idle and silent connections -------------------------------------------------------------

def test_idle_connections_get_no_thread_of_their_own_and_wake_nothing(sb: Sandbox) -> None:
    assert sb.feed is not None
    threads = threading.active_count()
    idle = [open_raw(sb) for _ in range(200)]
    try:
        assert wait_for(lambda: len(sb.feed.loop.links) == 200)  # type: ignore[union-attr]
        # the handshakes' threads end; the feed's one thread serves all 200
        assert wait_for(lambda: threading.active_count() <= threads + 1)
        turns = sb.feed.loop.turns
        time.sleep(1.0)
        # a turn a tick (20 a second) and one sweep, whatever the number of connections
        assert sb.feed.loop.turns - turns <= 30
    finally:
        for sock in idle:
            sock.close()


def test_a_silent_connection_that_listens_to_nothing_is_closed_after_the_idle_timeout(
        sb: Sandbox) -> None:
    assert sb.feed is not None
    sb.feed.idle_timeout = 0.5
    with connect(sb.ws_url, open_timeout=WAIT) as silent, \
            connect(sb.ws_url, open_timeout=WAIT) as listener:
        listener.send(subscribe('ticker', symbol=['BTC/USD']))
        with pytest.raises(ConnectionClosed) as ended:
            while True:
                silent.recv(WAIT)
        assert ended.value.rcvd is not None and ended.value.rcvd.code == 1000
        # a connection that listens is Kraken's to keep: it still gets its heartbeats
        deadline = time.monotonic() + 1.5
        beats = 0
        while time.monotonic() < deadline:
            beats += '"heartbeat"' in str(listener.recv(WAIT))
        assert beats >= 2
    assert wait_for(lambda: sb.open_connections() == 0)


def test_silent_connections_at_the_cap_make_room_for_rest_and_new_websocket_clients() -> None:
    with Sandbox(max_connections=10) as sb:
        silent = [open_raw(sb) for _ in range(10)]
        try:
            assert wait_for(lambda: sb.open_connections() == 10)
            reply = requests.get(sb.url + '/0/public/Time', timeout=WAIT)
            assert reply.status_code == 200 and reply.json()['error'] == []
            with connect(sb.ws_url, open_timeout=WAIT) as newcomer:
                assert '"status"' in str(newcomer.recv(WAIT))
            assert wait_for(lambda: sum(closed(sock) for sock in silent) >= 2)
            assert sb.open_connections() <= 10
        finally:
            for sock in silent:
                sock.close()


def test_room_is_made_by_closing_a_connection_that_listens_to_nothing_first() -> None:
    with Sandbox(max_connections=4) as sb:
        listening = [open_raw(sb, extra=frame(subscribe('ticker', symbol=['BTC/USD'])))
                     for _ in range(2)]  # idle the longest, but they listen
        for sock in listening:
            received(sock, b'"snapshot"')
        silent = [open_raw(sb) for _ in range(2)]
        try:
            assert wait_for(lambda: sb.open_connections() == 4)
            assert requests.get(sb.url + '/0/public/Time', timeout=WAIT).status_code == 200
            assert wait_for(lambda: any(closed(sock) for sock in silent))
            assert not any(closed(sock) for sock in listening)
        finally:
            for sock in listening + silent:
                sock.close()


@pytest.mark.slow
def test_2000_silent_connections_lock_neither_rest_nor_new_websocket_clients_out() -> None:
    open_files(5000)
    with Sandbox() as sb:  # the default cap: 2000 open connections
        silent = []
        try:
            for _ in range(2000):
                silent.append(open_raw(sb))
            reply = requests.get(sb.url + '/0/public/Time', timeout=WAIT)
            assert reply.status_code == 200 and reply.json()['error'] == []
            with connect(sb.ws_url, open_timeout=WAIT) as newcomer:
                assert '"status"' in str(newcomer.recv(WAIT))
            assert sb.open_connections() <= 2000
        finally:
            for sock in silent:
                sock.close()


# -- slow readers ---------------------------------------------------------------------------

def test_a_client_that_stops_reading_costs_a_reading_client_nothing_and_is_cut_off(
        sb: Sandbox) -> None:
    assert sb.feed is not None
    sb.feed.idle_timeout = 1.0
    subscription = subscribe('book', symbol=['BTC/USD'], depth=1000)
    hogs = [open_raw(sb, extra=frame(subscription), receive_buffer=4096) for _ in range(4)]
    with API(sb.key, sb.secret, uri=sb.url) as api, \
            WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, timeout=WAIT,
               backoff=quick_backoff) as ws:
        seen: list[dict[str, Any]] = []

        def book(kind: str) -> Callable[[dict[str, Any]], bool]:
            def match(message: dict[str, Any]) -> bool:
                seen.append(message)
                return message.get('channel') == 'book' and message.get('type') == kind
            return match

        ws.subscribe('book', symbol=['BTC/USD'], depth=1000)
        expect(ws, book('snapshot'))
        backlogs = []
        for step in range(40):  # every step moves the whole book
            sb.set_price('XBTUSD', 61000 + (step % 2) * 500 + step)
            expect(ws, book('update'))  # each one, verified against its checksum
            backlogs.append(max(link.backlog for link in list(sb.feed.loop.links)))
        assert max(backlogs) <= 2 * BACKLOG  # what waits for a hog stays bounded
        assert wait_for(lambda: all(closed(sock) for sock in hogs))
        sb.set_price('XBTUSD', 59000)
        expect(ws, book('update'))
        assert ws.book('BTC/USD').checksum
        assert not [m for m in seen if notice('book_resync')(m) or notice('reconnected')(m)]
    for sock in hogs:
        sock.close()


def test_requests_sent_faster_than_the_replies_are_read_wait_in_the_socket(sb: Sandbox) -> None:
    """A client that floods subscriptions without reading gets no more than it reads:
    what waits for it stays bounded, and it is answered once it reads again."""
    assert sb.feed is not None
    flood = frame(subscribe('book', symbol=['BTC/USD'], depth=1000)) * 300
    sock = open_raw(sb, receive_buffer=4096)
    try:
        sock.sendall(flood)
        time.sleep(0.5)  # let the loop do what it would do with it
        assert max(link.backlog for link in list(sb.feed.loop.links)) <= 2 * BACKLOG
        data = received(sock, b'"snapshot"')
        assert data.count(b'"method": "subscribe"') >= 1
    finally:
        sock.close()


@pytest.mark.parametrize(('request_text', 'count', 'reply'), [
    (json.dumps({'method': 'ping'}), 300, b'"pong"'),
    (subscribe('book', symbol=['BTC/USD'], depth=1000), 20, b'"type": "snapshot"'),
])
def test_every_one_of_many_requests_sent_in_one_write_is_answered(
        sb: Sandbox, request_text: str, count: int, reply: bytes) -> None:
    """Requests wait their turn (a few a turn, none while the client has unread replies)
    and every one is answered once the client reads."""
    sock = open_raw(sb)
    try:
        sock.sendall(frame(request_text) * count)
        data, deadline = b'', time.monotonic() + 3 * WAIT
        sock.settimeout(0.5)
        while data.count(reply) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                chunk = sock.recv(1 << 20)
                assert chunk, 'closed'
                data += chunk
        assert data.count(reply) == count
    finally:
        sock.close()


# -- what a client sends ----------------------------------------------------------------------

def test_a_message_nested_30000_deep_is_a_malformed_request_and_the_link_lives(
        sb: Sandbox) -> None:
    with connect(sb.ws_url, open_timeout=WAIT, max_size=None) as bare:
        bare.send('[' * 30_000 + ']' * 30_000)  # within MAX_MESSAGE, past any parser's depth
        assert '"Malformed request"' in reply_to(bare, '"error"')
        bare.send(json.dumps({'method': 'ping', 'req_id': 5}))
        assert '"pong"' in reply_to(bare, '"pong"')


def test_a_fragmented_message_is_answered_as_one(sb: Sandbox) -> None:
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        text = json.dumps({'method': 'ping', 'req_id': 77})
        bare.send([text[:5], text[5:12], text[12:]])
        assert '"req_id": 77' in reply_to(bare, '"pong"')


def test_a_message_over_64_kib_closes_the_connection_with_1009(sb: Sandbox) -> None:
    assert MAX_MESSAGE == 64 * 1024  # Kraken's requests are a few KiB at most
    with connect(sb.ws_url, open_timeout=WAIT, max_size=None) as bare:
        bare.send('x' * (MAX_MESSAGE + 1))
        with pytest.raises(ConnectionClosed) as ended:
            while True:
                bare.recv(WAIT)
        assert ended.value.rcvd is not None and ended.value.rcvd.code == 1009


def test_a_batch_of_fifteen_orders_fits_in_one_message(sb: Sandbox) -> None:
    orders = [{'order_type': 'limit', 'side': 'buy', 'order_qty': 0.0001, 'limit_price': 1000,
               'cl_ord_id': f'{n:032x}', 'time_in_force': 'gtc', 'post_only': True}
              for n in range(15)]
    text = json.dumps({'method': 'batch_add', 'params': {
        'symbol': 'BTC/USD', 'token': 'x' * 400, 'orders': orders}, 'req_id': 8})
    with connect(sb.ws_url, open_timeout=WAIT) as bare:
        bare.send(text)
        assert '"batch_add"' in reply_to(bare, '"req_id": 8')  # answered, not closed


def unfinished(size: int) -> bytes:
    """A masked text frame of ``size`` bytes, all but its last byte: a message never finished."""
    mask = os.urandom(4)
    head = b'\x81' + (bytes([0x80 | 126]) + struct.pack('!H', size) if size < 1 << 16
                      else bytes([0x80 | 127]) + struct.pack('!Q', size))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b'x' * (size - 1)))


def test_unfinished_messages_of_many_clients_hold_bounded_memory_and_others_are_served(
        monkeypatch: pytest.MonkeyPatch) -> None:
    budget = 1 << 20
    monkeypatch.setattr(links, 'PARTIAL_BUDGET', budget)  # 1 MiB: 16 clients' worth
    with Sandbox(tier=None) as sb:
        assert sb.feed is not None
        loop = sb.feed.loop
        holders = [open_raw(sb, extra=unfinished(MAX_MESSAGE - 8)) for _ in range(40)]
        try:
            # every byte sent is read: the cut-off holders, and all that the rest hold
            assert wait_for(lambda: sum(closed(sock) for sock in holders) >= 24 and
                            loop.partial_total >= budget - MAX_MESSAGE)
            held = sum(link.partial for link in list(loop.links))
            assert held == loop.partial_total <= budget
            reply = requests.get(sb.url + '/0/public/Time', timeout=WAIT)
            assert reply.status_code == 200 and reply.json()['error'] == []
            with connect(sb.ws_url, open_timeout=WAIT) as newcomer:
                newcomer.send(json.dumps({'method': 'ping', 'req_id': 3}))
                assert '"pong"' in reply_to(newcomer, '"pong"')
        finally:
            for sock in holders:
                sock.close()


def test_a_text_frame_that_is_not_utf8_closes_the_connection_with_1007(sb: Sandbox) -> None:
    mask = os.urandom(4)
    broken = b'\x81\x82' + mask + bytes(b ^ mask[i] for i, b in enumerate(b'\xff\xfe'))
    sock = open_raw(sb, extra=broken)
    try:
        data, sent = b'', []
        sock.settimeout(WAIT)
        while not any(opcode == 8 for opcode, _ in sent):
            chunk = sock.recv(1 << 16)
            assert chunk, 'closed without a close frame'
            data += chunk
            sent = server_frames(data)
        [close] = [payload for opcode, payload in sent if opcode == 8]
        assert struct.unpack('!H', close[:2])[0] == 1007
        assert wait_for(lambda: closed(sock))
    finally:
        sock.close()


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The whole frames (opcode, payload) at the start of what a server sent (unmasked)."""
    frames, at = [], 0
    while at + 2 <= len(data):
        size, head = data[at + 1] & 0x7F, 2
        if size == 126:
            if at + 4 > len(data):
                break
            size, head = struct.unpack('!H', data[at + 2:at + 4])[0], 4
        elif size == 127:
            if at + 10 > len(data):
                break
            size, head = struct.unpack('!Q', data[at + 2:at + 10])[0], 10
        if at + head + size > len(data):
            break
        frames.append((data[at] & 0x0F, data[at + head:at + head + size]))
        at += head + size
    return frames


def test_frames_sent_with_the_handshake_are_read(sb: Sandbox) -> None:
    sock = open_raw(sb, extra=frame(json.dumps({'method': 'ping', 'req_id': 9})))
    try:
        assert b'"req_id": 9' in received(sock, b'"pong"')
    finally:
        sock.close()


def not_json(constant: str) -> Any:
    raise AssertionError(f'{constant} is not JSON')


def reply_to(bare: ClientConnection, wanted: str) -> str:
    """The first message with ``wanted`` in its text; every message is JSON."""
    while True:
        text = str(bare.recv(WAIT))
        json.loads(text, parse_constant=not_json)  # the feed sends nothing else
        if wanted in text:
            return text


# -- trading: limit_price is the price ---------------------------------------------------------

@pytest.fixture
def trader(sb: Sandbox) -> Iterator[Callable[..., dict[str, Any]]]:
    """Send one trading request over a bare authenticated connection; its reply."""
    with API(sb.key, sb.secret, uri=sb.url) as api:
        token = api.query_private('GetWebSocketsToken')['result']['token']
    with connect(sb.ws_auth_url, open_timeout=WAIT) as bare:
        def request(method: str, **params: Any) -> dict[str, Any]:
            bare.send(json.dumps({'method': method, 'params': {**params, 'token': token},
                                  'req_id': 1}))
            reply: dict[str, Any] = json.loads(reply_to(bare, f'"method": "{method}"'))
            return reply
        yield request


@pytest.mark.parametrize('price', [-100, 0, -59900])
def test_a_negative_or_zero_limit_price_is_refused_not_read_as_an_offset(
        sb: Sandbox, trader: Callable[..., dict[str, Any]], price: int) -> None:
    sb.set_price('XBTUSD', 60000)
    reply = trader('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                   order_qty=0.01, limit_price=price)
    assert reply['success'] is False and reply['error'] == INVALID_PRICE
    assert sb.orders() == []


def test_a_batch_with_one_negative_limit_price_places_none_of_its_orders(
        sb: Sandbox, trader: Callable[..., dict[str, Any]]) -> None:
    order = {'order_type': 'limit', 'side': 'buy', 'order_qty': 0.01, 'limit_price': 50000}
    reply = trader('batch_add', symbol='BTC/USD',
                   orders=[order, {**order, 'limit_price': -100}, order])
    assert reply['success'] is False and reply['error'] == INVALID_PRICE
    assert sb.orders() == []


def test_limit_price_is_the_price_itself_in_add_amend_and_edit(
        sb: Sandbox, trader: Callable[..., dict[str, Any]]) -> None:
    sb.set_price('XBTUSD', 60000)
    placed = trader('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                    order_qty=0.01, limit_price=100)
    assert placed['success'] is True, placed
    [order] = sb.orders()
    assert Decimal(order['descr']['price']) == 100  # not 60100, not 59900
    order_id = placed['result']['order_id']
    for method, extra in (('amend_order', {}), ('edit_order', {'symbol': 'BTC/USD'})):
        refused = trader(method, order_id=order_id, limit_price=-5, **extra)
        assert refused['error'] == INVALID_PRICE
    assert trader('amend_order', order_id=order_id, limit_price=200)['success'] is True
    assert [Decimal(o['descr']['price']) for o in sb.orders() if o['status'] == 'open'] == [200]


# -- anything a client sends ---------------------------------------------------------------

REQUESTS = st.fixed_dictionaries({
    'method': st.sampled_from(['subscribe', 'unsubscribe', 'ping', 'add_order', 'amend_order',
                               'edit_order', 'cancel_order', 'cancel_all', 'batch_add',
                               'batch_cancel', 'cancel_all_orders_after', 'x']),
    'params': st.dictionaries(st.sampled_from(
        ['channel', 'symbol', 'depth', 'snapshot', 'interval', 'order_type', 'side',
         'order_qty', 'limit_price', 'order_id', 'orders', 'timeout', 'cl_ord_id']),
        st.one_of(JSON_VALUES, st.sampled_from(
            ['book', 'ticker', 'level3', 'executions', 'balances', 'limit', 'buy', 1000,
             ['BTC/USD'], -100, 0.01])), max_size=6)})
HOSTILE_TEXT = st.sampled_from([
    '{"method": "ping", "req_id": 1e400}', '[' * 5000, '{"a": 1e999999}', '"text"', 'null',
    '{"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], '
    '"depth": 1000}}', '{"method": "ping", "req_id": ' + '9' * 5000 + '}'])


@FUZZ
@given(messages=st.lists(st.one_of(JSON_VALUES.map(json.dumps), HOSTILE_TEXT,
                                   st.tuples(REQUESTS, st.booleans())), min_size=1, max_size=6))
def test_no_message_breaks_the_feed_or_the_link(fuzzed_feed: tuple[Sandbox, Watch, str],
                                                messages: list[Any]) -> None:
    sb, watch, token = fuzzed_feed
    with connect(sb.ws_auth_url, open_timeout=WAIT, max_size=None) as bare:
        for message in messages:
            if isinstance(message, tuple):  # a request, with the token or without
                request, signed = message
                if signed:
                    request['params']['token'] = token
                message = json.dumps(request, default=str)
            bare.send(message)
        bare.send(json.dumps({'method': 'ping', 'req_id': 'last'}))
        reply_to(bare, '"req_id": "last"')
    assert watch.records == [], [r.getMessage() for r in watch.records]


@pytest.fixture(scope='module')
def fuzzed_feed() -> Iterator[tuple[Sandbox, Watch, str]]:
    watch = Watch()
    logger = logging.getLogger('krakenex.sandbox')
    logger.addHandler(watch)
    try:
        with Sandbox(tier=None) as sandbox, \
                API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
            token = api.query_private('GetWebSocketsToken')['result']['token']
            yield sandbox, watch, token
    finally:
        logger.removeHandler(watch)


# -- life cycle -------------------------------------------------------------------------------

def test_stop_closes_websocket_connections_and_joins_the_feeds_thread() -> None:
    before = set(threading.enumerate())
    sb = Sandbox().start()
    sockets = [open_raw(sb) for _ in range(3)]
    with connect(sb.ws_url, open_timeout=WAIT) as client:
        client.recv(WAIT)
        sb.stop()
        with pytest.raises(ConnectionClosed):
            while True:
                client.recv(WAIT)
    assert all(closed(sock) for sock in sockets)
    assert wait_for(lambda: set(threading.enumerate()) - before == set())
    sb.start()  # and serves again
    try:
        with connect(sb.ws_url, open_timeout=WAIT) as client:
            assert '"status"' in str(client.recv(WAIT))
    finally:
        sb.stop()
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_the_server_benchmark_quick_mode_runs_and_finds_rest_served() -> None:
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, str(root / 'benchmarks' / 'sandbox_server.py'),
                          '--quick'], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert '| REST `Time` beside them | HTTP 200' in run.stdout
    assert '| a new WebSocket client beside them | HTTP 101, status message received |' \
        in run.stdout
