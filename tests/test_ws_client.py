"""WS and AsyncWS over a real WebSocket on 127.0.0.1, against a small scripted Kraken v2 server.

The server below speaks Kraken's v2 format with numbers written at each pair's
precision and checksums computed from that wire text (Kraken's rule written out
independently of krakenex.ws.book). Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State

from krakenex import (
    API,
    KrakenAPIError,
    KrakenConnectionError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownError,
    RateLimitError,
)
from krakenex.sandbox import Sandbox
from krakenex.ws import WS, AsyncWS, Backoff, BookUnavailableError, SocketOutcomeUnknownError
from krakenex.ws.protocol import ORDER_METHODS

WAIT = 5.0  # seconds any single expectation may take before the test fails


def quick_backoff() -> Backoff:
    return Backoff(immediate=3, first=0.05, cap=0.2, jitter=0.1, throttled=0.3)


# -- a scripted Kraken v2 server ------------------------------------------------------------

class ServedBook:
    """One symbol's book on the server side, written as wire text at fixed precision."""

    def __init__(self, price_precision: int, qty_precision: int, mid: Decimal) -> None:
        self.pp, self.qp = price_precision, qty_precision
        step = Decimal(1).scaleb(-price_precision)
        self.bids = {mid - step * i: Decimal(i) for i in range(1, 16)}
        self.asks = {mid + step * i: Decimal(i) + Decimal('0.5') for i in range(1, 16)}

    def text(self, value: Decimal, precision: int) -> str:
        return format(value, f'.{precision}f')

    def levels(self, side: dict[Decimal, Decimal], items: list[Decimal]) -> str:
        return ','.join(f'{{"price":{self.text(p, self.pp)},'
                        f'"qty":{self.text(side.get(p, Decimal(0)), self.qp)}}}' for p in items)

    def checksum(self) -> int:
        def part(side: dict[Decimal, Decimal], prices: list[Decimal]) -> str:
            return ''.join(self.text(p, self.pp).replace('.', '').lstrip('0')
                           + self.text(side[p], self.qp).replace('.', '').lstrip('0')
                           for p in prices[:10])
        asks = sorted(p for p, q in self.asks.items() if q)
        bids = sorted((p for p, q in self.bids.items() if q), reverse=True)
        return zlib.crc32((part(self.asks, asks) + part(self.bids, bids)).encode())

    def message(self, symbol: str, kind: str, bids: list[Decimal], asks: list[Decimal],
                checksum: int | None = None) -> str:
        crc = self.checksum() if checksum is None else checksum
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
                f'"bids":[{self.levels(self.bids, bids)}],"asks":[{self.levels(self.asks, asks)}],'
                f'"checksum":{crc},"timestamp":"2026-11-30T04:00:00.000000Z"}}]}}')

    def snapshot(self, symbol: str, depth: int) -> str:
        return self.message(symbol, 'snapshot', sorted(self.bids, reverse=True)[:depth],
                            sorted(self.asks)[:depth])


class FakeKraken:
    """Kraken's v2 WebSocket on 127.0.0.1, in a thread, scripted by the test."""

    def __init__(self) -> None:
        self.books = {'BTC/USD': ServedBook(1, 8, Decimal('45000.0')),
                      'SHIB/USD': ServedBook(8, 8, Decimal('0.00001234')),
                      'ETH/USD': ServedBook(2, 8, Decimal('3000.00'))}
        self.received: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # time.monotonic() of each, in step with received
        self.connections: list[ServerConnection] = []
        self.handshakes = 0
        self.refuse: list[int] = []  # HTTP statuses for the next handshakes
        self.stalled = False  # every connection, new ones too
        self.stalled_connections: set[ServerConnection] = set()
        self.heartbeat = 0.1
        self.refuse_tokens: set[str] = set()
        self.refuse_token_number: int | None = None  # refuse the Nth distinct token seen
        self.held: asyncio.Event | None = None  # book snapshots wait for it while set
        self.tokens: list[str] = []
        self.handlers: dict[str, Callable[[ServerConnection, dict[str, Any]], Any]] = {}
        self.sequence = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        async def start() -> Any:
            return await serve(self._handle, '127.0.0.1', 0,
                               process_request=self._process_request)
        self._server = self.run(start())
        self.url = f'ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v2'

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(WAIT)

    def stop(self) -> None:
        self._server.close()
        self.run(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)

    # -- what tests call --------------------------------------------------------------

    def sent(self, method: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [m for m in list(self.received) if m.get('method') == method
                and (channel is None or m.get('params', {}).get('channel') == channel)]

    def hold_snapshots(self) -> None:
        """Book snapshots wait until :meth:`release_snapshots`."""
        self.held = self.run(self._event())

    async def _event(self) -> asyncio.Event:
        return asyncio.Event()

    def release_snapshots(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            self._loop.call_soon_threadsafe(held.set)

    def stall(self) -> None:
        """The open connections go quiet: no heartbeats, no replies; new ones work."""
        self.stalled_connections.update(self.connections)

    def quiet(self, connection: ServerConnection) -> bool:
        return self.stalled or connection in self.stalled_connections

    def push(self, text: str | bytes) -> None:
        async def send() -> None:
            for connection in list(self.connections):
                await connection.send(text)
        self.run(send())

    def push_many(self, texts: list[str]) -> None:
        """Send messages back to back, in one go."""
        async def send() -> None:
            for connection in list(self.connections):
                for text in texts:
                    await connection.send(text)
        self.run(send())

    def drop(self) -> None:
        """Cut every connection without a close frame."""
        def cut() -> None:
            for connection in list(self.connections):
                connection.transport.abort()
        self._loop.call_soon_threadsafe(cut)

    def close(self, code: int, reason: str = '') -> None:
        async def close() -> None:
            for connection in list(self.connections):
                await connection.close(code, reason)
        self.run(close())

    def book_update(self, symbol: str, bids: dict[str, str] | None = None,
                    asks: dict[str, str] | None = None, checksum: int | None = None,
                    depth: int = 10) -> None:
        """Change levels and send the update a depth-``depth`` subscriber gets from Kraken."""
        book = self.books[symbol]
        sent: dict[str, list[Decimal]] = {}
        for name, side, levels, best in (('bids', book.bids, bids, True),
                                         ('asks', book.asks, asks, False)):
            before = set(sorted(side, reverse=best)[:depth])
            changed = [Decimal(p) for p in (levels or {})]
            for price, qty in (levels or {}).items():
                side[Decimal(price)] = Decimal(qty)
            removed = [p for p in changed if side[p] == 0]
            for price in removed:
                del side[price]
            entering = [p for p in sorted(side, reverse=best)[:depth]
                        if p not in before and p not in changed]
            sent[name] = changed + entering
            for price in removed:
                side[price] = Decimal(0)  # written as qty 0 in this message only
        text = book.message(symbol, 'update', sent['bids'], sent['asks'], checksum)
        for side in (book.bids, book.asks):
            for price in [p for p, q in side.items() if q == 0]:
                del side[price]
        self.push(text)

    # -- the server -------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.handshakes += 1
        if self.refuse:
            status = self.refuse.pop(0)
            return connection.respond(HTTPStatus(status), 'refused\n')
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        subscribed = asyncio.Event()
        beat = asyncio.get_running_loop().create_task(self._beat(connection, subscribed))
        try:
            await connection.send(json.dumps({'channel': 'status', 'type': 'update', 'data': [
                {'system': 'online', 'api_version': 'v2', 'connection_id': 1,
                 'version': '2.0.0'}]}))
            async for raw in connection:
                message = json.loads(raw)
                self.received_at.append(time.monotonic())
                self.received.append(message)
                if self.quiet(connection):
                    continue
                await self._answer(connection, message, subscribed)
        except Exception:
            pass
        finally:
            beat.cancel()
            self.connections.remove(connection)

    async def _beat(self, connection: ServerConnection, subscribed: asyncio.Event) -> None:
        await subscribed.wait()
        while True:
            await asyncio.sleep(self.heartbeat)
            if not self.quiet(connection):
                await connection.send('{"channel":"heartbeat"}')

    async def _answer(self, connection: ServerConnection, message: dict[str, Any],
                      subscribed: asyncio.Event) -> None:
        method, params = message.get('method'), message.get('params') or {}
        base = {'method': method, 'req_id': message.get('req_id'),
                'time_in': '2026-11-30T04:00:00.000000Z', 'time_out': '2026-11-30T04:00:00.000010Z'}
        token = params.get('token')
        if token is not None and token not in self.tokens:
            self.tokens.append(token)
            if self.refuse_token_number == len(self.tokens):
                self.refuse_tokens.add(token)
        if token is not None and token in self.refuse_tokens:
            await connection.send(json.dumps({**base, 'success': False,
                                              'error': 'ESession:Invalid session'}))
            return
        if method in self.handlers:
            reply = self.handlers[method](connection, message)
            if asyncio.iscoroutine(reply):
                reply = await reply
            if reply is not None:
                await connection.send(json.dumps({**base, **reply}))
            return
        if method == 'ping':
            await connection.send(json.dumps({**base, 'method': 'pong'}))
            return
        if method not in ('subscribe', 'unsubscribe'):
            await connection.send(json.dumps({**base, 'success': False,
                                              'error': 'EGeneral:Invalid arguments'}))
            return
        channel = params.get('channel')
        symbols = params.get('symbol') or [None]
        for symbol in symbols:
            if symbol == 'XBT/USD':
                refused = f'Currency pair not supported {symbol}'
                await connection.send(json.dumps({**base, 'success': False, 'symbol': symbol,
                                                  'error': refused}))
                continue
            result = {'channel': channel, **({'symbol': symbol} if symbol else {})}
            await connection.send(json.dumps({**base, 'success': True, 'result': result}))
            if method != 'subscribe':
                continue
            subscribed.set()
            if channel == 'book':
                if self.held is not None:
                    await self.held.wait()
                await connection.send(self.books[symbol].snapshot(symbol,
                                                                  params.get('depth', 10)))
            elif channel == 'instrument':
                pairs = [{'symbol': s, 'price_precision': b.pp, 'qty_precision': b.qp}
                         for s, b in self.books.items()]
                await connection.send(json.dumps({'channel': 'instrument', 'type': 'snapshot',
                                                  'data': {'assets': [], 'pairs': pairs}}))
            elif channel == 'executions':
                self.sequence = 1
                await connection.send(json.dumps({'channel': 'executions', 'type': 'snapshot',
                                                  'data': [], 'sequence': 1}))


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    server = FakeKraken()
    yield server
    server.stop()


@pytest.fixture
def ws(kraken: FakeKraken) -> Iterator[WS]:
    with WS(url=kraken.url, auth_url=kraken.url, timeout=WAIT, silence=2.0,
            backoff=quick_backoff) as client:
        yield client


def expect(ws: WS, match: Callable[[dict[str, Any]], bool], wait: float = WAIT) -> dict[str, Any]:
    """Read messages until one matches; fail after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError('no matching message in time')
        message = ws.recv(timeout=left)
        if match(message):
            return message


def notice(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get('channel') == 'krakenex' and m.get('type') == kind


def book_message(symbol: str, kind: str = 'snapshot') -> Callable[[dict[str, Any]], bool]:
    return lambda m: (m.get('channel') == 'book' and m.get('type') == kind
                      and m['data'][0]['symbol'] == symbol)


def eventually(condition: Callable[[], bool], wait: float = WAIT) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError('condition not met in time')
        time.sleep(0.02)


# -- 1. books ----------------------------------------------------------------------------

def test_book_is_verified_at_the_pairs_precision_from_the_instrument_channel(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD', 'SHIB/USD'], depth=10)
    expect(ws, book_message('SHIB/USD'))
    shib = ws.book('SHIB/USD')
    assert shib.bids[0] == (Decimal('0.00001233'), Decimal('1'))
    assert shib.asks[0][0] == Decimal('0.00001235')
    assert shib.checksum == kraken.books['SHIB/USD'].checksum()
    btc = ws.book('BTC/USD')
    assert len(btc.bids) == len(btc.asks) == 10
    assert btc.bids == sorted(btc.bids, reverse=True) and btc.asks == sorted(btc.asks)
    # the instrument subscription was krakenex's own: it never shows in the stream
    assert kraken.sent('subscribe', 'instrument')


def test_book_updates_apply_qty_zero_and_stay_verified(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD'], depth=10)
    expect(ws, book_message('BTC/USD'))
    kraken.book_update('BTC/USD', bids={'44999.9': '0', '44999.5': '7.5'})
    expect(ws, book_message('BTC/USD', 'update'))
    book = ws.book('BTC/USD')
    assert book.checksum == kraken.books['BTC/USD'].checksum()
    assert Decimal('44999.9') not in dict(book.bids)
    assert dict(book.bids)[Decimal('44999.5')] == Decimal('7.5')
    assert book.bids[-1][0] == Decimal('44998.9') and len(book.bids) == 10  # moved into range


def test_checksum_mismatch_resubscribes_that_symbol_alone_and_says_book_resync(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD', 'ETH/USD'], depth=25)
    expect(ws, book_message('ETH/USD'))
    kraken.hold_snapshots()
    kraken.book_update('BTC/USD', bids={'44999.8': '3'}, checksum=12345)
    expect(ws, book_message('BTC/USD', 'update'))
    resync = expect(ws, notice('book_resync'))
    assert resync['symbol'] == 'BTC/USD' and resync['checksum'] == 12345
    with pytest.raises(BookUnavailableError):  # until the new snapshot has matched
        ws.book('BTC/USD')
    assert ws.book('ETH/USD').checksum == kraken.books['ETH/USD'].checksum()
    kraken.release_snapshots()
    expect(ws, book_message('BTC/USD'))
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()
    assert ws.book('ETH/USD').checksum == kraken.books['ETH/USD'].checksum()
    again = [m['params'] for m in kraken.sent('subscribe', 'book')][1:]
    assert again == [{'channel': 'book', 'symbol': ['BTC/USD'], 'depth': 25}]
    assert kraken.sent('unsubscribe', 'book')[0]['params']['symbol'] == ['BTC/USD']


def test_book_is_never_shown_before_its_snapshot_and_unknown_symbols_are_a_usage_error(ws, kraken):
    kraken.stalled = True
    with pytest.raises(Exception, match='no reply|acknowledg|within'):
        ws.subscribe('book', symbol=['BTC/USD'], timeout=0.3)
    with pytest.raises(BookUnavailableError):
        ws.book('BTC/USD')
    with pytest.raises(ValueError, match='no book subscription'):
        ws.book('DOGE/USD')


# -- 2. requests, replies, the stream ------------------------------------------------------

def test_request_returns_the_reply_with_its_own_req_id(ws, kraken):
    async def late_pong(connection: ServerConnection, message: dict[str, Any]) -> Any:
        if message['params'].get('slow'):
            await asyncio.sleep(0.3)  # the second request's reply comes back first
        return {'result': {'slow': message['params'].get('slow')}}
    kraken.handlers['echo'] = late_pong
    ws.request('ping')  # connect first
    replies: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: replies.update(slow=ws.request('echo', slow=True)))
    slow.start()
    replies['fast'] = ws.request('echo', slow=False)
    slow.join(WAIT)
    assert replies['slow']['result'] == {'slow': True}
    assert replies['fast']['result'] == {'slow': False}
    assert replies['slow']['req_id'] != replies['fast']['req_id']


def test_refused_subscription_raises_kraken_s_error(ws, kraken):
    with pytest.raises(Exception, match='Currency pair not supported XBT/USD'):
        ws.subscribe('ticker', symbol=['XBT/USD'])


def test_recv_times_out_instead_of_hanging(ws, kraken):
    ws.request('ping')
    expect(ws, lambda m: m.get('method') == 'pong')
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.2)


def test_stream_gives_messages_as_kraken_sent_them(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.push('{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD",'
                '"bid":45000.10,"last":0.00001230}]}')
    ticker = expect(ws, lambda m: m.get('channel') == 'ticker')
    assert ticker['data'][0]['bid'] == Decimal('45000.10')
    assert str(ticker['data'][0]['last']) == '0.00001230'


# -- 3. liveness and reconnects ---------------------------------------------------------

def test_drop_without_close_frame_reconnects_and_resubscribes_the_users_own_requests(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD', 'ETH/USD'], event_trigger='bbo')
    ws.subscribe('book', symbol=['BTC/USD'], depth=10)
    expect(ws, book_message('BTC/USD'))
    kraken.drop()
    reconnected = expect(ws, notice('reconnected'))
    assert 'without a close frame' in reconnected['reason']
    resubscribed = expect(ws, notice('resubscribed'))
    assert resubscribed['subscriptions'] == [
        {'channel': 'ticker', 'symbol': ['BTC/USD', 'ETH/USD'], 'event_trigger': 'bbo'},
        {'channel': 'book', 'symbol': ['BTC/USD'], 'depth': 10}]
    expect(ws, book_message('BTC/USD'))
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()
    eventually(lambda: len(kraken.sent('subscribe', 'ticker')) == 2)
    tickers = [m['params'] for m in kraken.sent('subscribe', 'ticker')]
    assert tickers == [{'channel': 'ticker', 'symbol': ['BTC/USD', 'ETH/USD'],
                        'event_trigger': 'bbo'}] * 2


def test_a_verified_book_is_not_shown_after_a_reconnect_until_a_new_snapshot_matches(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD'], depth=10)
    expect(ws, book_message('BTC/USD'))
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()
    kraken.hold_snapshots()
    kraken.drop()
    expect(ws, notice('resubscribed'))
    with pytest.raises(BookUnavailableError, match='reconnecting'):
        ws.book('BTC/USD')  # what it was before the drop may be stale by now
    kraken.release_snapshots()
    expect(ws, book_message('BTC/USD'))
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()


def test_precisions_from_instrument_messages_are_kept_for_a_bounded_number_of_pairs(ws, kraken):
    from krakenex.ws.session import MAX_PRECISIONS

    ws.subscribe('book', symbol=['BTC/USD'], depth=10)
    expect(ws, book_message('BTC/USD'))
    pairs = [{'symbol': f'P{n}/USD', 'price_precision': 2, 'qty_precision': 4}
             for n in range(MAX_PRECISIONS + 1000)]
    kraken.push(json.dumps({'channel': 'instrument', 'type': 'update', 'data': {'pairs': pairs}}))
    kraken.book_update('BTC/USD', bids={'44999.8': '3'})
    expect(ws, book_message('BTC/USD', 'update'))  # read after the instrument message
    assert len(ws._ws.precisions) == MAX_PRECISIONS
    assert 'P0/USD' not in ws._ws.precisions and f'P{MAX_PRECISIONS + 999}/USD' in ws._ws.precisions
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()  # kept its own


def test_server_close_1001_is_replaced(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.close(1001, 'CloudFlare WebSocket proxy restarting')
    reconnected = expect(ws, notice('reconnected'))
    assert '1001' in reconnected['reason']
    expect(ws, notice('resubscribed'))


def test_silence_past_a_few_heartbeats_replaces_the_connection(kraken):
    with WS(url=kraken.url, timeout=WAIT, silence=1.0, backoff=quick_backoff) as client:
        client.subscribe('ticker', symbol=['BTC/USD'])
        expect(client, lambda m: m.get('channel') == 'heartbeat')
        kraken.stall()  # no heartbeats, no pongs; the TCP connection stays up
        reconnected = expect(client, notice('reconnected'))
        assert 'no heartbeat' in reconnected['reason']
        expect(client, notice('resubscribed'))
        assert kraken.sent('ping'), 'a quiet connection is pinged before it is given up'
        expect(client, lambda m: m.get('channel') == 'heartbeat')


def test_429_on_the_handshake_backs_off_then_connects(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.refuse = [429, 429]
    before = kraken.handshakes
    started = time.monotonic()
    kraken.drop()
    reconnected = expect(ws, notice('reconnected'))
    assert kraken.handshakes - before == 3
    assert '429' in reconnected['reason']
    assert time.monotonic() - started >= 0.3  # quick_backoff waits 0.3 s after a 429


def test_unsubscribed_symbols_are_not_sent_again(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD', 'ETH/USD'])
    ws.unsubscribe('ticker', symbol=['ETH/USD'])
    kraken.drop()
    expect(ws, notice('resubscribed'))
    eventually(lambda: len(kraken.sent('subscribe', 'ticker')) == 2)
    assert kraken.sent('subscribe', 'ticker')[-1]['params']['symbol'] == ['BTC/USD']


def test_gave_up_ends_the_stream_after_the_configured_failures(kraken):
    with WS(url=kraken.url, timeout=WAIT, silence=2.0,
            backoff=lambda: Backoff(immediate=1, first=0.01, cap=0.02,
                                    give_up_after=2)) as client:
        client.subscribe('ticker', symbol=['BTC/USD'])
        kraken.refuse = [503] * 10
        kraken.drop()
        gave_up = expect(client, notice('gave_up'))
        assert 'HTTP 503' in gave_up['reason']
        assert list(client) == []  # the stream has ended


# -- 4. private: tokens, executions ------------------------------------------------------

@pytest.fixture
def rest() -> Iterator[API]:
    with Sandbox() as sandbox, API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
        yield api


@pytest.fixture
def private(kraken: FakeKraken, rest: API) -> Iterator[WS]:
    with WS(rest, url=kraken.url, auth_url=kraken.url, timeout=WAIT, silence=2.0,
            backoff=quick_backoff) as client:
        yield client


def test_each_private_connection_gets_a_fresh_token_that_never_shows(private, kraken):
    private.subscribe('executions', snap_orders=True)
    kraken.drop()
    expect(private, notice('resubscribed'))
    eventually(lambda: len(kraken.sent('subscribe', 'executions')) == 2)
    assert len(kraken.tokens) == 2 and kraken.tokens[0] != kraken.tokens[1]
    for token in kraken.tokens:
        assert token not in repr(private)
    kraken.handlers['add_order'] = lambda c, m: c.transport.abort()
    with pytest.raises(OutcomeUnknownError) as lost:
        private.request('add_order', symbol='BTC/USD', side='buy', order_type='market',
                        order_qty=Decimal('0.01'))
    assert all(token not in str(lost.value) and token not in repr(lost.value.params)
               for token in kraken.tokens)


def test_debug_logging_never_writes_the_token(private, kraken, caplog):
    caplog.set_level(logging.DEBUG)
    private.subscribe('executions')
    private.request('ping')
    assert kraken.tokens and caplog.records
    assert all(token not in caplog.text for token in kraken.tokens)
    # websockets logs frames (cut short today) at DEBUG: none of krakenex's connections do
    assert not [r for r in caplog.records if r.name == 'krakenex.ws.frames'
                and r.levelno < logging.INFO]


def test_invalid_session_fetches_the_token_once_more_and_says_token_refreshed(private, kraken):
    kraken.refuse_token_number = 1
    acks = private.subscribe('executions')
    assert acks[0]['success'] is True
    refreshed = expect(private, notice('token_refreshed'))
    assert 'Invalid session' in refreshed['reason']
    assert len(kraken.tokens) == 2 and kraken.tokens[0] in kraken.refuse_tokens
    assert len(kraken.sent('subscribe', 'executions')) == 2


def test_a_token_refused_after_a_reconnect_is_fetched_again_and_resubscribed(private, kraken):
    private.subscribe('executions')
    kraken.refuse_token_number = 2  # the reconnect's fresh token
    kraken.drop()
    expect(private, notice('resubscribed'))
    assert 'Invalid session' in expect(private, notice('token_refreshed'))['reason']
    eventually(lambda: len(kraken.sent('subscribe', 'executions')) == 3)
    assert kraken.sent('subscribe', 'executions')[-1]['params']['token'] == kraken.tokens[2]


def test_skipped_executions_sequence_gives_gap(private, kraken):
    private.subscribe('executions', snap_orders=True, snap_trades=True)
    expect(private, lambda m: m.get('channel') == 'executions')
    for sequence in (2, 4):
        kraken.push(json.dumps({'channel': 'executions', 'type': 'update', 'data': [],
                                'sequence': sequence}))
    gap = expect(private, notice('gap'))
    assert gap == {'channel': 'krakenex', 'type': 'gap', 'feed': 'executions', 'expected': 3,
                   'received': 4}


def test_a_repeated_executions_sequence_gives_gap(private, kraken):
    private.subscribe('executions', snap_orders=True, snap_trades=True)
    expect(private, lambda m: m.get('channel') == 'executions')
    for sequence in (2, 2):
        kraken.push(json.dumps({'channel': 'executions', 'type': 'update', 'data': [],
                                'sequence': sequence}))
    gap = expect(private, notice('gap'))
    assert (gap['expected'], gap['received']) == (3, 2)


# -- 5. at most once ---------------------------------------------------------------------

def test_add_order_whose_reply_is_lost_is_never_resent_and_reconcile_finds_it(private, kraken,
                                                                              rest):
    def place_then_drop(connection: ServerConnection, message: dict[str, Any]) -> None:
        p = message['params']
        rest.query_private('AddOrder', {'pair': 'XBTUSD', 'type': p['side'], 'ordertype': 'limit',
                                        'price': '1000', 'volume': str(p['order_qty']),
                                        'cl_ord_id': p['cl_ord_id']})
        connection.transport.abort()
    kraken.handlers['add_order'] = place_then_drop
    private.subscribe('executions')
    with pytest.raises(SocketOutcomeUnknownError) as lost:
        private.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                        limit_price=1000, order_qty=Decimal('0.01'), cl_ord_id='ws-lost-1',
                        order_userref=7)
    error = lost.value
    assert isinstance(error, OutcomeUnknownError)
    assert (error.cl_ord_id, error.order_userref) == ('ws-lost-1', '7') and error.req_id
    expect(private, notice('resubscribed'))
    assert len(kraken.sent('add_order')) == 1
    found = rest.reconcile(error)
    assert [o['cl_ord_id'] for o in found.values()] == ['ws-lost-1']


def test_order_request_without_reply_in_time_is_an_unknown_outcome_not_a_resend(private, kraken):
    kraken.handlers['cancel_order'] = lambda c, m: None  # never answers
    with pytest.raises(OutcomeUnknownError, match='cancel_order was sent'):
        private.request('cancel_order', order_id=['OABC-DEF'], timeout=0.3)
    assert len(kraken.sent('cancel_order')) == 1


@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason='made on 3.11, whose asyncio.wait_for raises asyncio.TimeoutError')
def test_an_order_timed_out_by_asyncio_as_python_3_10_does_is_an_unknown_outcome(
        private, kraken, monkeypatch):
    """Before Python 3.11, asyncio's TimeoutError is a class of its own, not the built-in
    TimeoutError. Here 3.11's asyncio.wait_for is made to raise such a class."""
    class AsyncioTimeout(Exception):
        pass
    monkeypatch.setattr(asyncio.exceptions, 'TimeoutError', AsyncioTimeout)
    monkeypatch.setattr(asyncio, 'TimeoutError', AsyncioTimeout)
    kraken.handlers['cancel_order'] = lambda c, m: None  # never answers
    with pytest.raises(OutcomeUnknownError, match='cancel_order was sent'):
        private.request('cancel_order', order_id=['OABC-DEF'], timeout=0.3)
    assert len(kraken.sent('cancel_order')) == 1


def test_a_bare_exceeded_msg_rate_without_req_id_reaches_the_stream_and_the_order_stays_unknown(
        private, kraken):
    """Kraken's message-rate error has been reported without a ``req_id``: it cannot say
    which request it refuses, so an order waiting for its reply is never called refused."""
    async def bare_error(connection: ServerConnection, message: dict[str, Any]) -> None:
        await connection.send(json.dumps({'Error': 'Exceeded msg rate'}))
    kraken.handlers['add_order'] = bare_error
    with pytest.raises(OutcomeUnknownError) as lost:
        private.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                        limit_price=1000, order_qty=Decimal('0.01'), cl_ord_id='ws-rate-1',
                        timeout=0.5)
    assert not isinstance(lost.value, (NotSentError, RateLimitError))
    assert lost.value.cl_ord_id == 'ws-rate-1'
    assert expect(private, lambda m: 'Error' in m) == {'Error': 'Exceeded msg rate'}
    assert len(kraken.sent('add_order')) == 1


def test_add_order_whose_connection_is_lost_while_it_drains_is_an_unknown_outcome_not_resent(
        private, kraken, rest):
    """websockets writes the frame, then waits for the socket to drain; a loss there is
    after the bytes left, so the order may stand at Kraken: never "not sent"."""
    def place_silently(connection: ServerConnection, message: dict[str, Any]) -> None:
        p = message['params']
        rest.query_private('AddOrder', {'pair': 'XBTUSD', 'type': p['side'], 'ordertype': 'limit',
                                        'price': '1000', 'volume': str(p['order_qty']),
                                        'cl_ord_id': p['cl_ord_id']})
    kraken.handlers['add_order'] = place_silently  # Kraken takes it; its reply is never sent
    private.subscribe('executions')  # heartbeats from now on: no ping of krakenex's own
    socket = private._ws._connections['auth'].ws
    assert socket is not None
    write_and_drain = socket.drain

    async def drain_then_lose() -> None:
        await write_and_drain()
        deadline = time.monotonic() + WAIT
        while not kraken.sent('add_order') and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the frame has reached the server
        socket.transport.abort()
        raise ConnectionResetError('connection lost while draining')
    socket.drain = drain_then_lose  # type: ignore[method-assign]
    with pytest.raises(SocketOutcomeUnknownError) as lost:
        private.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                        limit_price=1000, order_qty=Decimal('0.01'), cl_ord_id='ws-drain-1',
                        order_userref=8)
    error = lost.value
    assert not isinstance(error, NotSentError)
    assert (error.cl_ord_id, error.order_userref) == ('ws-drain-1', '8') and error.req_id
    assert error.req_id == kraken.sent('add_order')[0]['req_id']
    assert 'lost while the request was being written' in str(error)
    expect(private, notice('resubscribed'))
    private.request('ping')
    assert len(kraken.sent('add_order')) == 1
    found = rest.reconcile(error)
    assert [o['cl_ord_id'] for o in found.values()] == ['ws-drain-1']


def test_a_request_on_a_connection_no_longer_open_is_not_sent(ws, kraken):
    ws.request('ping')
    connection = ws._ws._connections['public']
    socket = connection.ws
    assert socket is not None

    async def closing_then_send() -> None:
        socket.protocol.state = State.CLOSING  # as after Kraken's close frame, before TCP ends
        try:
            await connection.send('probe', {}, internal=False)
        finally:
            socket.transport.abort()
    with pytest.raises(NotSentError, match='nothing reached Kraken'):
        ws._run(closing_then_send())
    expect(ws, notice('reconnected'))
    ws.request('ping')
    assert kraken.sent('probe') == []


# -- 6. messages krakenex cannot read ---------------------------------------------------

def test_unreadable_messages_give_bad_message_and_the_stream_goes_on(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.push('this is not json')
    bad = expect(ws, notice('bad_message'))
    assert bad['text'] == 'this is not json' and 'JSONDecodeError' in bad['reason']
    kraken.push(json.dumps({'channel': 'instrument', 'type': 'update', 'data': {
        'assets': [], 'pairs': [{'symbol': 'BTC/USD', 'price_precision': 'one',
                                 'qty_precision': 8},
                                {'symbol': 'ETH/USD', 'price_precision': 2.5,
                                 'qty_precision': 8}]}}))
    bad = expect(ws, notice('bad_message'))
    assert "BTC/USD: price_precision 'one'" in bad['reason']
    assert "ETH/USD: price_precision Decimal('2.5')" in bad['reason']
    kraken.push(b'\xff\xfe not text')
    expect(ws, notice('bad_message'))
    kraken.push('{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5}]}')
    ticker = expect(ws, lambda m: m.get('channel') == 'ticker')
    assert ticker['data'][0]['bid'] == Decimal('1.5')
    assert ws.request('ping')['method'] == 'pong'
    assert kraken.handshakes == 1  # the same connection all along


def test_malformed_book_update_empties_that_book_and_resyncs_it(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD', 'ETH/USD'], depth=10)
    expect(ws, book_message('ETH/USD'))  # the last of the two snapshots
    kraken.hold_snapshots()
    # the first level applies (44999.9 leaves the book), the second has no qty
    kraken.push('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":'
                '[{"price":44999.9,"qty":0.00000000},{"price":44999.8}],"asks":[],'
                '"checksum":1,"timestamp":"2026-11-30T04:00:01.000000Z"}]}')
    bad = expect(ws, notice('bad_message'))
    assert 'BTC/USD' in bad['reason']
    resync = expect(ws, notice('book_resync'))
    assert resync['symbol'] == 'BTC/USD'
    with pytest.raises(BookUnavailableError):  # never a book missing a level
        ws.book('BTC/USD')
    assert ws.book('ETH/USD').checksum == kraken.books['ETH/USD'].checksum()
    kraken.release_snapshots()
    expect(ws, book_message('BTC/USD'))
    book = ws.book('BTC/USD')
    assert book.checksum == kraken.books['BTC/USD'].checksum()
    assert book.bids[0][0] == Decimal('44999.9')
    assert [m['params']['symbol'] for m in kraken.sent('unsubscribe', 'book')] == [['BTC/USD']]


@pytest.mark.parametrize('unreadable', ['{"channel":"book","type":"update","data":{"bids":[]}}',
                                        '{"channel":"book","type":"update","data":[{"bids"'])
def test_book_message_naming_no_symbol_or_not_json_resyncs_every_book(ws, kraken, unreadable):
    ws.subscribe('book', symbol=['BTC/USD', 'ETH/USD'], depth=10)
    expect(ws, book_message('ETH/USD'))  # the last of the two snapshots
    kraken.hold_snapshots()
    kraken.push(unreadable)
    expect(ws, notice('bad_message'))
    resyncs = {expect(ws, notice('book_resync'))['symbol'] for _ in range(2)}
    assert resyncs == {'BTC/USD', 'ETH/USD'}
    for symbol in resyncs:
        with pytest.raises(BookUnavailableError):
            ws.book(symbol)
    kraken.release_snapshots()
    for _ in resyncs:
        expect(ws, lambda m: m.get('channel') == 'book' and m.get('type') == 'snapshot')
    for symbol in resyncs:
        assert ws.book(symbol).checksum == kraken.books[symbol].checksum()


# -- 7. usage ------------------------------------------------------------------------------

@pytest.mark.parametrize(('options', 'match'), [
    ({'url': 'nope'}, 'ws:// or wss://'), ({'url': 'http://127.0.0.1:1/v2'}, 'ws:// or wss://'),
    ({'auth_url': 'ws://'}, 'ws:// or wss://'), ({'url': 'ws://127.0.0.1:port/'}, 'ws:// or wss://'),
    ({'l3_url': 'https://ws-l3.kraken.com/v2'}, 'l3_url must be a ws:// or wss://'),
    ({'timeout': 0}, 'timeout'), ({'timeout': float('nan')}, 'timeout'),
    ({'silence': -1}, 'silence'), ({'silence': float('inf')}, 'silence')])
def test_a_bad_url_or_timeout_is_a_usage_error_before_anything_starts(options, match):
    threads = threading.active_count()
    with pytest.raises(KrakenUsageError, match=match):
        WS(**{'timeout': 60, **options})
    assert threading.active_count() == threads  # no loop thread left behind

    async def cell() -> None:
        AsyncWS(**{'timeout': 60, **options})
    with pytest.raises(KrakenUsageError, match=match):
        asyncio.run(cell())


# -- 8. event loops ------------------------------------------------------------------------

def test_ws_works_inside_a_running_event_loop(kraken):
    async def notebook_cell() -> Decimal:
        with WS(url=kraken.url, timeout=WAIT) as client:  # a plain call inside a running loop
            client.subscribe('book', symbol=['ETH/USD'])
            expect(client, book_message('ETH/USD'))
            return client.book('ETH/USD').bids[0][0]
    assert asyncio.run(notebook_cell()) == Decimal('2999.99')


def test_async_ws_with_await_and_async_for(kraken):
    async def cell() -> list[str]:
        async with AsyncWS(url=kraken.url, timeout=WAIT) as client:
            await client.subscribe('book', symbol=['SHIB/USD'])
            seen = []
            async for message in client:
                seen.append(message.get('channel') or message.get('method'))
                if message.get('channel') == 'book':
                    assert client.book('SHIB/USD').checksum == kraken.books['SHIB/USD'].checksum()
                    return seen
        return seen
    seen = asyncio.run(asyncio.wait_for(cell(), WAIT))
    assert seen[-1] == 'book' and 'subscribe' in seen


def test_library_code_never_calls_asyncio_run():
    import pathlib

    import krakenex.ws
    for path in pathlib.Path(krakenex.ws.__file__).parent.glob('*.py'):
        assert 'asyncio.run(' not in path.read_text(), path


# -- 9. what users get wrong, and what servers send wrong -----------------------------------

def test_cancel_all_orders_after_sends_krakens_own_timeout_not_the_reply_wait(private, kraken):
    kraken.handlers['cancel_all_orders_after'] = lambda c, m: {
        'success': True, 'result': {'currentTime': '2026-11-30T04:00:00Z',
                                    'triggerTime': '2026-11-30T04:01:00Z'}}
    private.request('cancel_all_orders_after', timeout=60)
    private.request('cancel_all_orders_after', timeout=0)  # 0 disarms it, as at Kraken
    assert [m['params']['timeout'] for m in kraken.sent('cancel_all_orders_after')] == [60, 0]


def test_a_callers_req_id_goes_at_the_top_of_the_request_and_comes_back(ws, kraken):
    assert ws.request('ping', req_id=77)['req_id'] == 77
    (acks,) = [ws.subscribe('ticker', symbol=['BTC/USD'], req_id=78)]
    assert [a['req_id'] for a in acks] == [78]
    sent = kraken.sent('ping')[-1], kraken.sent('subscribe', 'ticker')[-1]
    assert [m['req_id'] for m in sent] == [77, 78]
    assert all('req_id' not in m.get('params', {}) for m in sent)


@pytest.mark.parametrize('bad', [{'req_id': 'seven'}, {'req_id': True}, {'timeout': 0},
                                 {'timeout': -1}, {'timeout': float('nan')}])
def test_an_order_request_with_a_bad_req_id_or_timeout_is_refused_before_it_is_sent(
        private, kraken, bad):
    private.request('ping')  # connected: a refusal below is not about connecting
    with pytest.raises(KrakenUsageError):
        private.request('add_order', symbol='BTC/USD', side='buy', order_type='market',
                        order_qty=Decimal('0.01'), **bad)
    assert kraken.sent('add_order') == []


def test_recv_timeout_zero_polls_infinity_waits_and_nan_is_a_usage_error(ws, kraken):
    ws.subscribe('ticker', symbol=['BTC/USD'])
    expect(ws, lambda m: m.get('method') == 'subscribe')
    with pytest.raises(KrakenUsageError):
        ws.recv(timeout=float('nan'))
    while True:  # empty the stream; timeout=0 answers at once
        try:
            ws.recv(timeout=0)
        except TimeoutError:
            break
    kraken.stall()  # no heartbeats: the next message is the one pushed below
    later = threading.Timer(0.3, kraken.push, ['{"channel":"ticker","type":"update","data":[]}'])
    later.start()
    try:
        assert ws.recv(timeout=float('inf'))['channel'] == 'ticker'
    finally:
        later.join()

    async def cell() -> None:
        async with AsyncWS(url=kraken.url, timeout=WAIT) as client:
            with pytest.raises(KrakenUsageError):
                await client.recv(timeout=float('nan'))
            with pytest.raises(TimeoutError):
                await client.recv(timeout=0)
    asyncio.run(asyncio.wait_for(cell(), WAIT))


def test_a_closed_ws_used_again_says_it_is_closed(kraken, recwarn):
    with WS(url=kraken.url, timeout=WAIT) as client:
        client.request('ping')
    for use in (lambda: client.request('ping'), lambda: client.subscribe('ticker', symbol=['X']),
                lambda: client.unsubscribe('ticker', symbol=['X']), client.connect):
        with pytest.raises(KrakenConnectionError, match='closed'):
            use()
    while True:  # what had arrived is still there; then the stream says it is closed
        try:
            client.recv(timeout=0)
        except KrakenConnectionError as closed:
            assert 'closed' in str(closed)
            break
    import gc
    gc.collect()
    assert not [w for w in recwarn if 'never awaited' in str(w.message)]


def test_unsubscribing_what_was_never_subscribed_raises_krakens_error(ws, kraken):
    # Kraken names the method of this refusal "subscribe"
    kraken.handlers['unsubscribe'] = lambda c, m: {'method': 'subscribe', 'success': False,
                                                   'symbol': 'BTC/USD',
                                                   'error': 'Subscription Not Found'}
    with pytest.raises(KrakenAPIError, match='Subscription Not Found'):
        ws.unsubscribe('ticker', symbol=['BTC/USD'])


def test_a_refused_book_subscription_leaves_no_book_and_spares_the_verified_one(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD'])
    expect(ws, book_message('BTC/USD'))
    with pytest.raises(KrakenAPIError, match='Currency pair not supported'):
        ws.subscribe('book', symbol=['XBT/USD'])
    with pytest.raises(KrakenUsageError, match='no book subscription'):
        ws.book('XBT/USD')
    kraken.handlers['subscribe'] = lambda c, m: {'success': False, 'symbol': 'BTC/USD',
                                                 'error': 'Already subscribed'}
    with pytest.raises(KrakenAPIError, match='Already subscribed'):
        ws.subscribe('book', symbol=['BTC/USD'], depth=25)
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()


@pytest.mark.parametrize('depth', ['ten', None, 10.5, True])
def test_a_book_depth_that_is_not_a_whole_number_is_a_usage_error_before_sending(ws, kraken,
                                                                                 depth):
    with pytest.raises(KrakenUsageError, match='depth'):
        ws.subscribe('book', symbol=['BTC/USD'], depth=depth)
    assert kraken.sent('subscribe', 'book') == []


def test_a_symbol_given_as_text_is_sent_as_the_list_kraken_wants(ws, kraken):
    ws.subscribe('ticker', symbol='BTC/USD')
    assert kraken.sent('subscribe', 'ticker')[0]['params']['symbol'] == ['BTC/USD']


def test_a_message_over_the_size_limit_replaces_the_connection_and_says_why(ws, kraken,
                                                                           monkeypatch):
    import krakenex.ws.connection
    monkeypatch.setattr(krakenex.ws.connection, 'MAX_MESSAGE', 4096)
    ws.subscribe('ticker', symbol=['BTC/USD'])
    kraken.push('{"channel":"ticker","type":"update","data":[{"pad":"' + 'x' * 5000 + '"}]}')
    reconnected = expect(ws, notice('reconnected'))
    assert '4096' in reconnected['reason'] and 'larger' in reconnected['reason']
    expect(ws, notice('resubscribed'))


@pytest.mark.parametrize('method', sorted(ORDER_METHODS))
def test_every_order_method_whose_connection_drops_before_its_reply_is_never_resent(
        private, kraken, method):
    kraken.handlers[method] = lambda c, m: c.transport.abort()
    private.subscribe('executions')
    with pytest.raises(SocketOutcomeUnknownError) as lost:
        private.request(method, cl_ord_id='ws-once-1')
    assert lost.value.req_id == kraken.sent(method)[0]['req_id']
    assert lost.value.cl_ord_id == 'ws-once-1'
    expect(private, notice('resubscribed'))
    private.request('ping')
    assert len(kraken.sent(method)) == 1


# -- 10. level3 on its own endpoint ---------------------------------------------------------

#: An address nothing listens on: a connection krakenex opens there never comes up.
NOWHERE = 'ws://127.0.0.1:9/v2'


@pytest.fixture
def level3_server() -> Iterator[FakeKraken]:
    server = FakeKraken()
    yield server
    server.stop()


def test_level3_goes_to_its_own_endpoint_with_a_fresh_token_for_each_connection(
        kraken, level3_server, rest):
    with WS(rest, url=kraken.url, auth_url=kraken.url, l3_url=level3_server.url, timeout=WAIT,
            silence=2.0, backoff=quick_backoff) as client:
        client.subscribe('executions')
        client.subscribe('level3', symbol=['BTC/USD'], depth=10)
        assert [m['params']['symbol'] for m in level3_server.sent('subscribe', 'level3')] == [
            ['BTC/USD']]
        assert kraken.sent('subscribe', 'level3') == []
        assert level3_server.sent('subscribe', 'executions') == []
        level3_server.drop()
        reconnected = expect(client, notice('reconnected'))
        assert reconnected['url'] == level3_server.url
        resubscribed = expect(client, notice('resubscribed'))
        assert resubscribed['subscriptions'] == [
            {'channel': 'level3', 'symbol': ['BTC/USD'], 'depth': 10}]
        eventually(lambda: len(level3_server.sent('subscribe', 'level3')) == 2)
        # one token per connection: the auth connection's and each level3 connection's own
        tokens = [m['params']['token'] for m in level3_server.sent('subscribe', 'level3')]
        assert len(set(tokens)) == 2 and not set(tokens) & set(kraken.tokens)
        assert all(token not in repr(client) and token not in str(resubscribed)
                   for token in tokens)


def test_level3_from_the_sandbox_at_its_l3_url_and_never_the_auth_endpoint():
    with Sandbox() as sb, API(sb.key, sb.secret, uri=sb.url) as api, \
            WS(api, url=sb.ws_url, auth_url=NOWHERE, l3_url=sb.ws_l3_url, timeout=WAIT,
               backoff=quick_backoff) as client:
        acks = client.subscribe('level3', symbol=['BTC/USD'])
        assert acks[0]['success'] is True
        snapshot = expect(client, lambda m: m.get('channel') == 'level3')
        assert snapshot['type'] == 'snapshot' and snapshot['data'][0]['symbol'] == 'BTC/USD'
        assert snapshot['data'][0]['bids'] and snapshot['data'][0]['asks']


# -- 11. Kraken's message rate --------------------------------------------------------------

def test_exceeded_msg_rate_on_an_order_is_a_rate_limit_refusal_and_nothing_is_placed():
    with Sandbox() as sb, API(sb.key, sb.secret, uri=sb.url) as api, \
            WS(api, url=sb.ws_url, auth_url=sb.ws_auth_url, timeout=WAIT,
               backoff=quick_backoff) as client:
        client.connect(private=True)
        sb.feed.inject('msg_rate')
        with pytest.raises(RateLimitError, match='Exceeded msg rate') as refused:
            client.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                           limit_price=1000, order_qty=Decimal('0.01'), cl_ord_id='ws-rate-1')
        assert not isinstance(refused.value, OutcomeUnknownError)
        assert 'did not carry it out' in str(refused.value)
        assert sb.orders() == []
        sb.feed.msg_rate = (1, 0.001)  # one request, then the connection's rate is used up
        client.request('ping')
        with pytest.raises(RateLimitError):
            client.subscribe('ticker', symbol=['BTC/USD'])
        sb.feed.msg_rate = None
        placed = client.request('add_order', symbol='BTC/USD', side='buy', order_type='limit',
                                limit_price=1000, order_qty=Decimal('0.01'),
                                cl_ord_id='ws-rate-2')
        assert placed['success'] is True
        assert [o['cl_ord_id'] for o in sb.orders()] == ['ws-rate-2']


# -- 12. asyncio cancellation ---------------------------------------------------------------

@pytest.mark.parametrize('method', sorted(ORDER_METHODS))
def test_an_order_request_cancelled_after_it_was_sent_is_an_unknown_outcome_never_resent(
        kraken, rest, method):
    kraken.handlers[method] = lambda c, m: None  # taken, never answered

    async def cell() -> SocketOutcomeUnknownError:
        async with AsyncWS(rest, url=kraken.url, auth_url=kraken.url, timeout=WAIT) as client:
            await client.connect(private=True)
            call = asyncio.ensure_future(client.request(method, cl_ord_id='ws-cancel-1',
                                                        order_userref=9))
            while not kraken.sent(method):
                await asyncio.sleep(0.01)
            call.cancel()
            with pytest.raises(SocketOutcomeUnknownError) as lost:
                await call
            await client.request('ping')
            return lost.value
    error = asyncio.run(asyncio.wait_for(cell(), WAIT))
    assert isinstance(error, OutcomeUnknownError)
    assert (error.req_id, error.cl_ord_id, error.order_userref) == (
        kraken.sent(method)[0]['req_id'], 'ws-cancel-1', '9')
    assert 'cancelled' in str(error)
    assert len(kraken.sent(method)) == 1


def test_an_order_request_cancelled_before_it_was_sent_is_a_plain_cancellation(kraken, rest):
    kraken.refuse = [503] * 1000  # the authenticated connection never opens

    async def cell() -> None:
        async with AsyncWS(rest, url=kraken.url, auth_url=kraken.url, timeout=WAIT,
                           backoff=quick_backoff) as client:
            call = asyncio.ensure_future(client.request('add_order', cl_ord_id='ws-cancel-2'))
            while kraken.handshakes < 2:
                await asyncio.sleep(0.01)  # it waits for a connection
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
    asyncio.run(asyncio.wait_for(cell(), WAIT))
    assert kraken.sent('add_order') == []


def test_an_order_request_cancelled_while_its_frame_drains_is_an_unknown_outcome(kraken, rest):
    """websockets writes the frame before it waits for the socket to drain: a cancellation
    during that wait comes after the frame left."""
    kraken.handlers['add_order'] = lambda c, m: None

    async def cell() -> SocketOutcomeUnknownError:
        async with AsyncWS(rest, url=kraken.url, auth_url=kraken.url, timeout=WAIT) as client:
            await client.connect(private=True)
            socket = client._connections['auth'].ws
            assert socket is not None
            never = asyncio.Event()

            async def drain_for_ever() -> None:
                await never.wait()
            socket.drain = drain_for_ever  # type: ignore[method-assign]
            call = asyncio.ensure_future(client.request('add_order', cl_ord_id='ws-drain-2'))
            while not kraken.sent('add_order'):
                await asyncio.sleep(0.01)
            call.cancel()
            with pytest.raises(SocketOutcomeUnknownError) as lost:
                await call
            return lost.value
    error = asyncio.run(asyncio.wait_for(cell(), WAIT))
    assert (error.req_id, error.cl_ord_id) == (kraken.sent('add_order')[0]['req_id'],
                                              'ws-drain-2')
    assert len(kraken.sent('add_order')) == 1


# -- replies matched by req_id and method; requests that gave up keep their req_id -----------

def late_add_order(kraken: FakeKraken, delay: float = 1.0) -> None:
    """add_order is answered after ``delay`` seconds; cancel_order is never answered."""
    async def late(connection: ServerConnection, message: dict[str, Any]) -> Any:
        await asyncio.sleep(delay)
        return {'success': True, 'result': {'order_id': 'OLATE-1'}}
    kraken.handlers['add_order'] = late
    kraken.handlers['cancel_order'] = lambda c, m: None


ORDER = {'symbol': 'BTC/USD', 'side': 'buy', 'order_type': 'market', 'order_qty': 1}


def test_a_late_reply_never_settles_a_later_request_reusing_its_req_id(private, kraken):
    late_add_order(kraken)
    with pytest.raises(OutcomeUnknownError):
        private.request('add_order', req_id=5, timeout=0.3, **ORDER)
    # a cancel that never happened must not look like it did: refused before it is sent
    with pytest.raises(KrakenUsageError, match='req_id 5 is taken by a add_order'):
        private.request('cancel_order', req_id=5, order_id=['OLATE-1'])
    assert kraken.sent('cancel_order') == []
    late = expect(private, lambda m: m.get('method') == 'add_order')
    assert (late['req_id'], late['result']) == (5, {'order_id': 'OLATE-1'})  # as Kraken sent it
    reply = private.request('ping', req_id=5)  # answered: the req_id is free again
    assert reply['method'] == 'pong'


def test_a_reply_for_another_method_with_the_same_req_id_settles_nothing(private, kraken):
    async def stray_first(connection: ServerConnection, message: dict[str, Any]) -> Any:
        await connection.send(json.dumps({'method': 'add_order', 'req_id': message['req_id'],
                                          'success': True, 'result': {'order_id': 'OSTRAY'}}))
        return {'success': True, 'result': [{'order_id': 'OABC-DEF'}]}
    kraken.handlers['cancel_order'] = stray_first
    reply = private.request('cancel_order', req_id=9, order_id=['OABC-DEF'])
    assert (reply['method'], reply['result']) == ('cancel_order', [{'order_id': 'OABC-DEF'}])
    stray = expect(private, lambda m: m.get('method') == 'add_order')
    assert stray['result'] == {'order_id': 'OSTRAY'}


def test_krakenex_s_own_req_ids_skip_one_that_gave_up(private, kraken):
    late_add_order(kraken)
    kraken.handlers['cancel_all'] = lambda c, m: {'success': True, 'result': {'count': 0}}
    taken = private.request('cancel_all')['req_id'] + 1  # the number krakenex would give next
    with pytest.raises(OutcomeUnknownError):
        private.request('add_order', req_id=taken, timeout=0.3, **ORDER)
    assert private.request('cancel_all')['req_id'] != taken  # on the same connection
    late = expect(private, lambda m: m.get('method') == 'add_order')
    assert late['req_id'] == taken


def test_a_req_id_that_gave_up_is_kept_for_a_bounded_time(private, kraken, monkeypatch):
    monkeypatch.setattr('krakenex.ws.session.LATE_REPLY_WAIT', 0.2)
    kraken.handlers['cancel_order'] = lambda c, m: None
    private.connect(private=True)  # the 0.2 s below is for the reply alone
    with pytest.raises(OutcomeUnknownError):
        private.request('cancel_order', req_id=3, timeout=0.2, order_id=['OABC'])
    time.sleep(0.3)
    assert private.request('ping', req_id=3)['method'] == 'pong'


def test_a_subscribe_refused_as_a_whole_spares_the_earlier_subscriptions(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD'])
    expect(ws, book_message('BTC/USD'))
    kraken.handlers['subscribe'] = lambda c, m: {
        'success': False, 'error': "Unsupported field: 'snapshot' for the given msg type: "
                                   "subscribe"}
    with pytest.raises(KrakenAPIError, match='Unsupported field'):
        ws.subscribe('book', symbol=['ETH/USD'], snapshot=False)
    del kraken.handlers['subscribe']
    kraken.drop()
    resubscribed = expect(ws, notice('resubscribed'))
    assert resubscribed['subscriptions'] == [{'channel': 'book', 'symbol': ['BTC/USD']}]
    expect(ws, book_message('BTC/USD'))
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()


def test_a_symbol_refused_comes_out_of_that_request_only(ws, kraken):
    ws.subscribe('book', symbol=['BTC/USD'])
    expect(ws, book_message('BTC/USD'))

    def refuse_btc(connection: ServerConnection, message: dict[str, Any]) -> Any:
        return ({'success': False, 'symbol': 'BTC/USD', 'error': 'Already subscribed'}
                if message['params']['symbol'] == ['BTC/USD']
                else {'success': True, 'result': {'channel': 'ticker', 'symbol': 'ETH/USD'}})
    kraken.handlers['subscribe'] = refuse_btc
    with pytest.raises(KrakenAPIError, match='Already subscribed'):
        ws.subscribe('book', symbol=['BTC/USD'], depth=25)
    ws.subscribe('ticker', symbol=['ETH/USD'])
    del kraken.handlers['subscribe']
    kraken.drop()
    resubscribed = expect(ws, notice('resubscribed'))
    assert resubscribed['subscriptions'] == [{'channel': 'book', 'symbol': ['BTC/USD']},
                                             {'channel': 'ticker', 'symbol': ['ETH/USD']}]
    expect(ws, book_message('BTC/USD'))
    assert ws.book('BTC/USD').checksum == kraken.books['BTC/USD'].checksum()


def test_a_subscribe_whose_req_id_is_taken_is_not_sent_now_or_after_a_reconnect(ws, kraken):
    kraken.handlers['ping'] = lambda c, m: None  # never answered
    with pytest.raises(KrakenTimeout):
        ws.request('ping', req_id=5, timeout=0.2)
    with pytest.raises(KrakenUsageError, match='req_id 5 is taken'):
        ws.subscribe('book', symbol=['BTC/USD'], req_id=5)
    with pytest.raises(KrakenUsageError, match='no book subscription'):
        ws.book('BTC/USD')
    kraken.drop()
    assert expect(ws, notice('resubscribed'))['subscriptions'] == []
    assert kraken.sent('subscribe', 'book') == []


def test_a_subscribe_not_sent_on_a_closing_connection_is_not_sent_after_the_reconnect(ws,
                                                                                      kraken):
    ws.request('ping')
    connection = ws._ws._connections['public']
    socket = connection.ws
    assert socket is not None

    async def closing_then_subscribe() -> None:
        socket.protocol.state = State.CLOSING  # as after Kraken's close frame, before TCP ends
        try:
            await ws._ws.subscribe('book', symbol=['BTC/USD'])
        finally:
            socket.transport.abort()
    with pytest.raises(NotSentError):
        ws._run(closing_then_subscribe())
    assert expect(ws, notice('resubscribed'))['subscriptions'] == []
    with pytest.raises(KrakenUsageError, match='no book subscription'):
        ws.book('BTC/USD')
    assert kraken.sent('subscribe', 'book') == []


def test_two_threads_reading_one_ws_each_get_a_message_waiting(ws, kraken):
    ws.request('ping')
    with contextlib.suppress(TimeoutError):
        while True:
            ws.recv(timeout=0.2)  # the status message and the pong
    got: list[Any] = []
    readers = [threading.Thread(target=lambda: got.append(ws.recv(timeout=3 * WAIT)))
               for _ in range(2)]
    for reader in readers:
        reader.start()
    time.sleep(0.2)  # both wait
    kraken.push_many(['{"channel":"heartbeat","n":1}', '{"channel":"heartbeat","n":2}'])
    for reader in readers:
        reader.join(WAIT)
    assert sorted(m['n'] for m in got) == [1, 2]  # neither slept on while one waited
