"""Kraken's WebSocket rules as the session applies them: plain messages in, decisions out.

No socket, no event loop, no clock: each test tells a :class:`Session` what arrived and
what the user asked, and reads what it decided (messages for the user, requests
answered, books to subscribe again).
"""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import krakenex.ws
from krakenex import (
    KrakenAPIError,
    KrakenConnectionError,
    KrakenTimeout,
    KrakenUsageError,
    OutcomeUnknownAPIError,
    RateLimitError,
)
from krakenex.ws import ResyncBackoff, SocketOutcomeUnknownError, SocketOutcomeUnknownTimeout
from krakenex.ws.book import checksum
from krakenex.ws.protocol import SequenceCheck
from krakenex.ws.session import (
    LATE_REPLY_WAIT,
    Answered,
    Deliver,
    Precisions,
    Resync,
    Session,
    carried_out,
)

URL = 'wss://ws.kraken.com/v2'
D = Decimal
BIDS = [(D('45000.0'), D('1.50000000')), (D('44999.9'), D('2.00000000'))]
ASKS = [(D('45000.1'), D('0.50000000')), (D('45000.2'), D('3.00000000'))]


def session(private: bool = False, **options: Any) -> Session:
    return Session(URL, private=private, precisions=Precisions(**options),
                   resync_backoff=ResyncBackoff(), ids=itertools.count(1))


def delivered(events: list[Any]) -> list[dict[str, Any]]:
    return [e.message for e in events if isinstance(e, Deliver)]


def notices(events: list[Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in delivered(events) if m.get('channel') == 'krakenex' and m['type'] == kind]


def text(message: dict[str, Any]) -> str:
    return json.dumps(message, default=str)


def side(levels: list[tuple[Decimal, Decimal]]) -> str:
    return ','.join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)


def book_message(symbol: str = 'BTC/USD', kind: str = 'snapshot', *, bids=BIDS, asks=ASKS,
                 crc: int | None = None) -> str:
    crc = checksum(asks, bids, 1, 8) if crc is None else crc
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
            f'"bids":[{side(bids)}],"asks":[{side(asks)}],"checksum":{crc}}}]}}')


def with_book(symbol: str = 'BTC/USD', **options: Any) -> Session:
    """A session whose user subscribed the book of ``symbol`` and whose snapshot verified it."""
    s = session(**options)
    s.precisions.set(symbol, (1, 8))
    s.subscribing('book', {'symbol': [symbol], 'depth': 10}, 10)
    s.receive(book_message(symbol), now=0.0)
    assert s.books[symbol].verified
    return s


def sent(s: Session, method: str, params: dict[str, Any] | None = None, *, now: float = 0.0,
         **options: Any) -> Any:
    request = s.prepare(method, params or {}, now=now, **options)
    return request, json.loads(s.sending(request))


# -- replies find their requests ---------------------------------------------------------------

def test_a_reply_answers_the_request_with_its_req_id_and_method_and_reaches_the_stream():
    s = session()
    request, frame = sent(s, 'add_order', {'symbol': 'BTC/USD'})
    other, _ = sent(s, 'add_order', {'symbol': 'ETH/USD'})
    reply = {'method': 'add_order', 'req_id': frame['req_id'], 'success': True,
             'result': {'order_id': 'O1'}}
    events = s.receive(text(reply), now=1.0)
    assert [type(e) for e in events] == [Answered, Deliver]
    assert events[0].request is request and request.replies == [reply]
    assert delivered(events) == [reply]
    assert list(s.pending) == [other.req_id]  # the other request still waits


def test_a_reply_with_the_req_id_but_another_method_answers_nothing():
    s = session()
    request, frame = sent(s, 'cancel_order', {'order_id': ['O1']})
    stray = {'method': 'add_order', 'req_id': frame['req_id'], 'success': True}
    assert delivered(s.receive(text(stray), now=1.0)) == [stray]
    assert s.pending == {request.req_id: request} and request.replies == []


@pytest.mark.parametrize(('method', 'reply'), [('ping', 'pong'), ('unsubscribe', 'subscribe')])
def test_kraken_answers_ping_with_pong_and_an_unknown_unsubscribe_with_subscribe(method, reply):
    s = session()
    request, frame = sent(s, method)
    events = s.receive(text({'method': reply, 'req_id': frame['req_id'], 'success': True}), 1.0)
    assert any(isinstance(e, Answered) and e.request is request for e in events)


def test_a_subscribe_waits_for_one_ack_per_symbol_and_a_refusal_naming_none_ends_it():
    s = session()
    request, frame = sent(s, 'subscribe', {'channel': 'ticker', 'symbol': ['A/USD', 'B/USD']},
                          expected=2)
    first = {'method': 'subscribe', 'req_id': frame['req_id'], 'success': True,
             'result': {'symbol': 'A/USD'}}
    assert not any(isinstance(e, Answered) for e in s.receive(text(first), 1.0))
    second = {**first, 'result': {'symbol': 'B/USD'}}
    assert isinstance(s.receive(text(second), 1.0)[0], Answered)
    assert request.replies == [first, second]

    whole, frame = sent(s, 'subscribe', {'channel': 'ticker', 'symbol': ['C/USD', 'D/USD']},
                        expected=2)
    refusal = {'method': 'subscribe', 'req_id': frame['req_id'], 'success': False,
               'error': 'EGeneral:Invalid arguments'}
    assert isinstance(s.receive(text(refusal), 1.0)[0], Answered)
    assert whole.replies == [refusal]


def test_krakenexs_own_requests_are_answered_out_of_the_stream():
    s = session()
    _, frame = sent(s, 'ping', internal=True)
    events = s.receive(text({'method': 'pong', 'req_id': frame['req_id']}), 1.0)
    assert [type(e) for e in events] == [Answered] and delivered(events) == []


def test_a_req_id_stays_taken_until_its_late_reply_or_the_late_reply_wait_is_over():
    s = session()
    request, _ = sent(s, 'add_order', req_id=7)
    with pytest.raises(KrakenUsageError, match='req_id 7 is taken by a add_order'):
        s.prepare('cancel_order', {}, now=1.0, req_id=7)
    request.abandon(now=2.0)  # timed out: nobody waits, the reply may still come
    with pytest.raises(KrakenUsageError):
        s.prepare('cancel_order', {}, now=2.0 + LATE_REPLY_WAIT, req_id=7)
    assert s.prepare('cancel_order', {}, now=2.1 + LATE_REPLY_WAIT, req_id=7).req_id == 7


def test_a_req_id_krakenex_picks_skips_those_still_waiting():
    s = session()
    sent(s, 'ping', req_id=1)
    sent(s, 'ping', req_id=2)
    assert s.prepare('ping', {}, now=0.0).req_id == 3


def test_a_private_request_carries_the_token_except_ping_and_a_bad_message_never_shows_it():
    s = session(private=True)
    s.opened('SECRET-TOKEN')
    assert sent(s, 'add_order', {'symbol': 'BTC/USD'})[1]['params'] == {
        'symbol': 'BTC/USD', 'token': 'SECRET-TOKEN'}
    assert 'params' not in sent(s, 'ping')[1]
    bad = s.receive('{"echo": "SECRET-TOKEN", ', 1.0)
    assert 'SECRET-TOKEN' not in str(bad) and '[token]' in notices(bad, 'bad_message')[0]['text']


def test_a_reply_kraken_refuses_for_its_token_is_named_only_on_a_private_endpoint():
    refused = [{'method': 'add_order', 'success': False, 'error': 'ESession:Invalid session'}]
    assert session(private=True).refused_token(refused) == 'ESession:Invalid session'
    assert session(private=False).refused_token(refused) is None


# -- errors for requests without replies ------------------------------------------------------

def test_an_order_whose_socket_is_lost_is_an_unknown_outcome_carrying_its_identifiers():
    s = session(private=True)
    s.opened('T')
    order, frame = sent(s, 'add_order', {'symbol': 'BTC/USD', 'cl_ord_id': 'mine-1'})
    subscribe, _ = sent(s, 'subscribe', {'channel': 'executions'})
    failed = dict(s.lost(KrakenConnectionError('the connection ended')))
    error = failed[order]
    assert isinstance(error, SocketOutcomeUnknownError)
    assert (error.req_id, error.cl_ord_id) == (frame['req_id'], 'mine-1')
    assert error.params == {'symbol': 'BTC/USD', 'cl_ord_id': 'mine-1'}  # no token
    assert 'sends it again on reconnecting' in str(failed[subscribe])
    assert s.pending == {}


def test_an_order_without_a_reply_in_time_is_an_unknown_outcome_a_ping_a_timeout():
    s = session()
    order, _ = sent(s, 'cancel_order', {'order_userref': 5})
    assert isinstance(order.timed_out(1.0, URL), SocketOutcomeUnknownTimeout)
    assert order.timed_out(1.0, URL).order_userref == '5'
    ping, _ = sent(s, 'ping')
    assert type(ping.timed_out(1.0, URL)) is KrakenTimeout
    assert order.cancelled() is not None and ping.cancelled() is None


# -- books ------------------------------------------------------------------------------------

def test_a_checksum_mismatch_resets_the_book_and_plans_one_resync():
    s = with_book()
    update = book_message(kind='update', bids=[(D('44999.8'), D('1.00000000'))], asks=[],
                          crc=12345)
    events = s.receive(update, now=10.0)
    assert delivered(events)[0]['type'] == 'update'  # the message itself still reaches the user
    assert [(e.symbol, e.wait) for e in events if isinstance(e, Resync)] == [('BTC/USD', 0.0)]
    resync = notices(events, 'book_resync')[0]
    assert resync['checksum'] == 12345 and resync['symbol'] == 'BTC/USD'
    assert s.books['BTC/USD'].view() is None
    # while the resync is planned, a second failure plans no other one
    again = s.receive('{"channel":"book","type":"update","data":[{}]}', now=10.0)
    assert notices(again, 'book_resync')[0]['symbol'] == 'BTC/USD'
    assert not any(isinstance(e, Resync) for e in again)
    sends = s.resync_due('BTC/USD')
    assert [(x.method, x.params) for x in sends] == [
        ('unsubscribe', {'channel': 'book', 'symbol': ['BTC/USD'], 'depth': 10}),
        ('subscribe', {'channel': 'book', 'symbol': ['BTC/USD'], 'depth': 10})]
    assert all(x.internal for x in sends)


def test_a_resync_due_after_a_snapshot_verified_the_book_sends_nothing():
    s = with_book()
    s.receive(book_message(kind='update', bids=[], asks=[], crc=1), now=0.0)
    s.receive(book_message(), now=0.5)  # Kraken's own snapshot came first
    assert s.resync_due('BTC/USD') == []


def test_a_book_level_that_cannot_exist_is_a_bad_message_and_that_book_resyncs():
    s = with_book('BTC/USD')
    s.precisions.set('ETH/USD', (1, 8))
    s.subscribing('book', {'symbol': ['ETH/USD'], 'depth': 10}, 10)
    s.receive(book_message('ETH/USD'), now=0.0)
    events = s.receive(book_message(kind='update', bids=[(D('-1.0'), D('1.00000000'))],
                                    asks=[]), now=1.0)
    assert notices(events, 'bad_message') and not [m for m in delivered(events)
                                                  if m.get('channel') == 'book']
    assert [e.symbol for e in events if isinstance(e, Resync)] == ['BTC/USD']
    assert s.books['ETH/USD'].verified


def test_a_book_message_naming_no_symbol_resyncs_every_book():
    s = with_book('BTC/USD')
    s.subscribing('book', {'symbol': ['ETH/USD'], 'depth': 10}, 10)
    events = s.receive('{"channel":"book","type":"update","data":[{"bids":[]}]}', now=1.0)
    assert sorted(e.symbol for e in events if isinstance(e, Resync)) == ['BTC/USD', 'ETH/USD']


def test_books_wait_for_a_new_snapshot_once_the_socket_is_lost():
    s = with_book()
    s.receive(book_message(kind='update', bids=[], asks=[], crc=1), now=0.0)  # plans a resync
    s.receive(book_message(), now=0.1)
    assert s.books['BTC/USD'].view() is not None
    s.instrument = True
    s.lost(KrakenConnectionError('dropped'))
    assert s.books['BTC/USD'].view() is None  # never shown from before the reconnect
    assert not s.instrument and s.resyncs == {}  # the next socket subscribes everything again
    update = book_message(kind='update', bids=[(D('44999.8'), D('1.00000000'))], asks=[])
    assert s.receive(update, now=1.0) and s.books['BTC/USD'].view() is None


# -- reconnects -------------------------------------------------------------------------------

def test_after_a_reconnect_instrument_comes_first_then_the_users_subscriptions_as_kept():
    s = with_book()
    s.subscribing('ticker', {'symbol': ['BTC/USD', 'ETH/USD']}, 0)
    s.subscribing('trade', {'symbol': ['BTC/USD']}, 0)
    s.unsubscribing('ticker', {'symbol': ['ETH/USD']})
    entry, new = s.subscribing('ohlc', {'symbol': ['BTC/USD', 'XXX/USD']}, 0)
    s.not_subscribed(entry, new, [{'success': False, 'error': 'bad',
                                   'result': {'symbol': 'XXX/USD'}}])
    s.lost(KrakenConnectionError('dropped'))
    sends = s.reconnect_requests()
    assert [(x.method, x.params, x.internal) for x in sends] == [
        ('subscribe', {'channel': 'instrument'}, True),
        ('subscribe', {'channel': 'book', 'symbol': ['BTC/USD'], 'depth': 10}, False),
        ('subscribe', {'channel': 'ticker', 'symbol': ['BTC/USD']}, False),
        ('subscribe', {'channel': 'trade', 'symbol': ['BTC/USD']}, False),
        ('subscribe', {'channel': 'ohlc', 'symbol': ['BTC/USD']}, False)]


def test_a_subscription_that_was_not_sent_is_not_sent_after_a_reconnect_either():
    s = session()
    entry, new = s.subscribing('book', {'symbol': ['BTC/USD'], 'depth': 10}, 10)
    s.not_subscribed(entry, new)
    assert s.reconnect_requests() == [] and s.books == {}


# -- sequences --------------------------------------------------------------------------------

def private_update(sequence: int) -> str:
    return text({'channel': 'executions', 'type': 'update', 'data': [], 'sequence': sequence})


@pytest.mark.parametrize(('first', 'then'), [(1, 3), (5, 5), (5, 4)],
                         ids=['skipped', 'repeated', 'backwards'])
def test_a_sequence_that_does_not_follow_on_is_a_gap(first, then):
    s = session(private=True)
    s.receive(private_update(first), 0.0)
    gaps = notices(s.receive(private_update(then), 0.0), 'gap')
    assert gaps == [{'channel': 'krakenex', 'type': 'gap', 'feed': 'executions',
                     'expected': first + 1, 'received': then}]


@pytest.mark.parametrize('then', [7, 5, 3], ids=['skipped', 'repeated', 'backwards'])
def test_sequence_check_names_every_number_but_the_next(then):
    check = SequenceCheck()
    assert check.check('balances', 4) is None
    assert check.check('balances', 5) is None
    assert check.check('balances', then) == (6, then)


def test_a_new_socket_numbers_its_messages_afresh():
    s = session(private=True)
    s.receive(private_update(40), 0.0)
    s.opened('new token')
    assert notices(s.receive(private_update(1), 0.0), 'gap') == []


# -- what else arrives ------------------------------------------------------------------------

def test_instrument_messages_krakenex_asked_for_itself_stay_out_of_the_stream():
    s = session()
    pairs = {'channel': 'instrument', 'type': 'snapshot',
             'data': {'pairs': [{'symbol': 'BTC/USD', 'price_precision': 1,
                                 'qty_precision': 8}]}}
    assert s.receive(text(pairs), 0.0) == []
    assert s.precisions['BTC/USD'] == (1, 8)
    s.subscribing('instrument', {}, 0)
    assert delivered(s.receive(text(pairs), 0.0)) == [pairs]


def test_precisions_are_kept_for_a_bounded_number_of_pairs_and_books_keep_their_own():
    s = with_book('BTC/USD', limit=100)
    pairs = [{'symbol': f'P{n}/USD', 'price_precision': 2, 'qty_precision': 4}
             for n in range(1000)]
    s.receive(text({'channel': 'instrument', 'type': 'update', 'data': {'pairs': pairs}}), 0.0)
    assert len(s.precisions) == 100
    assert list(s.precisions)[-1] == 'P999/USD' and 'P0/USD' not in s.precisions
    assert s.books['BTC/USD'].price_precision == 1  # its book kept what it had
    # a pair named again is the newest: it outlives the others
    s.receive(text({'channel': 'instrument', 'type': 'update', 'data': {'pairs': [
        {'symbol': 'P900/USD', 'price_precision': 3, 'qty_precision': 4}]}}), 0.0)
    assert list(s.precisions)[-1] == 'P900/USD' and s.precisions['P900/USD'] == (3, 4)


def test_a_value_that_is_not_a_json_object_is_a_bad_message_and_nothing_else():
    s = with_book()
    for raw in ('[1, 2]', '"text"', 'null'):
        events = s.receive(raw, 0.0)
        assert [m['type'] for m in delivered(events)] == ['bad_message']
    assert s.books['BTC/USD'].verified  # read, and no book's
    for raw in ('not json', b'\xff\xfe'):
        events = s.receive(raw, 0.0)
        assert notices(events, 'bad_message') and len(notices(events, 'book_resync')) == 1
        assert s.books['BTC/USD'].view() is None  # unreadable: the book may have been in it


# -- what a reply says ------------------------------------------------------------------------

def test_a_reply_says_carried_out_refused_or_for_an_order_unknown():
    assert carried_out('ping', {}, {'method': 'pong', 'req_id': 1}) == {'method': 'pong',
                                                                       'req_id': 1}
    with pytest.raises(RateLimitError):
        carried_out('add_order', {}, {'success': False, 'error': 'Exceeded msg rate'})
    with pytest.raises(OutcomeUnknownAPIError):
        carried_out('add_order', {'cl_ord_id': 'c'}, {'success': False,
                                                      'error': 'EService:Timeout'})
    with pytest.raises(KrakenAPIError):
        carried_out('subscribe', {}, {'success': False, 'error': 'EService:Timeout'})
    with pytest.raises(SocketOutcomeUnknownError, match='neither success nor failure'):
        carried_out('cancel_order', {'order_userref': 3}, {'method': 'cancel_order',
                                                           'req_id': 4})


# -- the modules' layers ----------------------------------------------------------------------

LAYERS = ['sync', 'client', 'connection', 'stream', 'session', 'protocol', 'book', 'errors']
ABOVE = {'sync': set(), 'client': {'sync'}, 'connection': {'sync', 'client'},
         'stream': {'sync', 'client', 'connection'},
         'session': {'sync', 'client', 'connection', 'stream'},
         'protocol': {'sync', 'client', 'connection', 'stream', 'session'},
         'book': {'sync', 'client', 'connection', 'stream', 'session', 'protocol'},
         'errors': {'sync', 'client', 'connection', 'stream', 'session', 'protocol', 'book'}}


@pytest.mark.parametrize('module', LAYERS)
def test_no_ws_module_imports_one_above_it(module):
    """client -> connection -> session -> protocol and book: the arrows run one way."""
    path = Path(krakenex.ws.__file__).with_name(f'{module}.py')
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported.add((node.module or '').split('.')[0])
    assert imported & ABOVE[module] == set()


def test_the_rules_need_no_websockets_package():
    code = ('import sys; sys.modules["websockets"] = None; '
            'import krakenex.ws.session, krakenex.ws.book, krakenex.ws.protocol')
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
