"""``krakenex ws``: the WebSocket v2 command, against the sandbox's feed on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import default_sigint

from krakenex import API
from krakenex.cli import main
from krakenex.sandbox import Sandbox
from krakenex.ws.protocol import ORDER_METHODS


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        sandbox.feed.heartbeat = 0.2
        yield sandbox


@pytest.fixture
def against(sb: Sandbox, tmp_path: Path) -> list[str]:
    """Options that point the command at ``sb`` with its key, as a user would."""
    key_file = tmp_path / 'kraken.key'
    key_file.write_text(f'{sb.key}\n{sb.secret}\n')
    key_file.chmod(0o600)
    return ['--ws-uri', sb.ws_url, '--ws-auth-uri', sb.ws_auth_url, '--uri', sb.url,
            '--key-file', str(key_file), '--timeout', '5']


def lines(capsys: pytest.CaptureFixture[str]) -> tuple[list[dict], str]:
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_ticker_prints_one_json_message_per_line_and_stops_after_count_tickers(capsys):
    assert main(['ws', '--sandbox', 'ticker', 'BTC/USD', 'ETH/USD', '--count', '4']) == 0
    messages, _ = lines(capsys)
    tickers = [m for m in messages if m.get('channel') == 'ticker']
    assert len(tickers) == 4  # the status and the acknowledgements are shown, not counted
    assert messages[-1] == tickers[-1]
    assert {m['data'][0]['symbol'] for m in tickers} <= {'BTC/USD', 'ETH/USD'}


def test_v1_habits_xbt_is_translated_and_said_and_v1_channels_point_to_executions(capsys):
    assert main(['ws', '--sandbox', 'ticker', 'XBT/USD', '--count', '3']) == 0
    messages, err = lines(capsys)
    assert 'BTC/USD' in err and 'XBT' in err
    assert any(m.get('channel') == 'ticker' and m['data'][0]['symbol'] == 'BTC/USD'
               for m in messages)
    assert main(['ws', '--sandbox', 'openOrders']) == 2
    assert 'executions' in capsys.readouterr().err


def test_book_top_prints_the_verified_top_levels(capsys, sb, against):
    assert main(['ws', *against, 'book', 'ETH/BTC', 'depth=25', '--top', '3',
                 '--count', '1']) == 0
    (book,), _ = lines(capsys)
    assert book['symbol'] == 'ETH/BTC' and len(book['bids']) == len(book['asks']) == 3
    assert book['bids'][0][0] < book['asks'][0][0]


def test_ohlc_with_interval_and_seconds(capsys, sb, against):
    started = time.monotonic()
    assert main(['ws', *against, 'ohlc', 'BTC/USD', 'interval=60', '--seconds', '0.5']) == 0
    messages, _ = lines(capsys)
    assert any(m.get('channel') == 'ohlc' and m['data'][-1]['interval'] == 60
               for m in messages)
    assert time.monotonic() - started < 5


def test_executions_and_add_order_with_the_users_key(capsys, sb, against):
    assert main(['ws', *against, 'add_order', 'symbol=BTC/USD', 'side=buy',
                 'order_type=limit', 'limit_price=40000', 'order_qty=0.01',
                 'cl_ord_id=cli-1']) == 0
    (reply,), _ = lines(capsys)
    assert reply['success'] is True
    assert main(['ws', *against, 'executions', '--count', '1']) == 0  # the snapshot
    messages, _ = lines(capsys)
    snapshot = next(m for m in messages if m.get('channel') == 'executions')
    assert [o['cl_ord_id'] for o in snapshot['data']] == ['cli-1']
    assert main(['ws', *against, 'cancel_order', f'order_id={reply["result"]["order_id"]}']) == 0
    assert main(['ws', *against, 'cancel_order', 'order_id=OUNKNO-WN123-ORDER1']) == 1
    assert 'EOrder:Unknown order' in capsys.readouterr().err


def test_an_order_whose_reply_is_lost_exits_4(capsys, sb, against):
    sb.feed.inject('reply_lost')
    assert main(['ws', *against, 'add_order', 'symbol=BTC/USD', 'side=buy',
                 'order_type=market', 'order_qty=0.01', 'cl_ord_id=cli-lost']) == 4
    err = capsys.readouterr().err
    assert 'outcome unknown' in err and 'cli-lost' in err
    assert [o['cl_ord_id'] for o in sb.orders()] == ['cli-lost']


def test_an_order_whose_reply_says_neither_success_nor_failure_exits_4(capsys, sb, against):
    sb.feed.inject('reply_odd')
    assert main(['ws', *against, 'add_order', 'symbol=BTC/USD', 'side=buy',
                 'order_type=market', 'order_qty=0.01', 'cl_ord_id=cli-odd']) == 4
    out, err = capsys.readouterr()
    assert out == '' and 'outcome unknown' in err and 'cli-odd' in err
    assert [o['cl_ord_id'] for o in sb.orders()] == ['cli-odd']


def test_a_private_channel_without_a_key_is_a_usage_error(capsys, sb, monkeypatch, tmp_path):
    monkeypatch.delenv('KRAKEN_API_KEY', raising=False)
    monkeypatch.delenv('KRAKEN_API_SECRET', raising=False)
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path))
    assert main(['ws', '--ws-auth-uri', sb.ws_auth_url, '--uri', sb.url, 'executions']) == 2
    assert 'needs an API key' in capsys.readouterr().err


def test_ctrl_c_exits_130_without_a_traceback(sb):
    command = [sys.executable, '-m', 'krakenex', 'ws', '--ws-uri', sb.ws_url, 'ticker',
               'BTC/USD']
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, preexec_fn=default_sigint) as process:
        try:
            assert process.stdout is not None
            assert json.loads(process.stdout.readline())['channel'] == 'status'
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=10)
        finally:
            process.kill()
    assert process.returncode == 130, err
    assert 'Traceback' not in err and 'interrupted' in err


# ------------------------------------------ failures after an order may have reached Kraken

ADD_ORDER = ['add_order', 'symbol=BTC/USD', 'side=buy', 'order_type=limit', 'limit_price=40000',
             'order_qty=0.01', 'cl_ord_id=cli-1']
needs_dev_full = pytest.mark.skipif(not os.path.exists('/dev/full'),
                                    reason='needs /dev/full, a device that is always full')


def ws_process(against: list[str], *args: str, stdout: Any) -> subprocess.CompletedProcess[str]:
    """``python -m krakenex ws AGAINST... ARGS...`` in a process of its own."""
    return subprocess.run([sys.executable, '-m', 'krakenex', 'ws', *against, *args],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)


def placed_once(sb: Sandbox, err: str) -> None:
    """The order was placed exactly once, and the one error line names it."""
    (line,) = err.splitlines()
    orders = sb.orders()
    assert [o['cl_ord_id'] for o in orders] == ['cli-1']
    assert line.startswith('krakenex ws: add_order was sent and Kraken accepted it')
    assert orders[0]['txid'] in line and 'cli-1' in line and 'do not resubmit' in line


@needs_dev_full
def test_add_order_whose_stdout_is_full_exits_4_naming_the_order(sb, against):
    with open('/dev/full', 'w') as full:
        result = ws_process(against, *ADD_ORDER, stdout=full)
    assert result.returncode == 4
    assert 'cannot write the result to stdout: No space left on device' in result.stderr
    placed_once(sb, result.stderr)


def with_stdout_closed_by_its_reader(against: list[str], *args: str
                                     ) -> subprocess.CompletedProcess[str]:
    """Run the command with stdout a pipe whose reader is already gone (as ``| head -c0``)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return ws_process(against, *args, stdout=writer)
    finally:
        os.close(writer)


def test_add_order_whose_stdout_reader_went_away_exits_4_naming_the_order(sb, against):
    result = with_stdout_closed_by_its_reader(against, *ADD_ORDER)
    assert result.returncode == 4
    assert 'cannot write the result to stdout: Broken pipe' in result.stderr
    placed_once(sb, result.stderr)


def test_a_channel_whose_stdout_reader_went_away_exits_quietly(sb, against):
    result = with_stdout_closed_by_its_reader(against, 'ticker', 'BTC/USD')
    assert result.returncode == 141  # what a shell reports for a reader that went away
    assert result.stderr == ''


def test_a_lost_reply_names_the_commands_that_look_the_order_up(capsys, sb, against):
    sb.feed.inject('reply_lost')
    assert main(['ws', *against, *ADD_ORDER]) == 4
    err = capsys.readouterr().err
    assert 'krakenex OpenOrders cl_ord_id=cli-1 and krakenex ClosedOrders cl_ord_id=cli-1' in err


def test_add_order_with_stdout_closed_from_the_start_exits_2_and_sends_nothing(sb, against):
    result = subprocess.run([sys.executable, '-m', 'krakenex', 'ws', *against, *ADD_ORDER],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            timeout=60, preexec_fn=lambda: os.close(1))  # krakenex ... >&-
    assert result.returncode == 2
    assert 'stdout is closed' in result.stderr
    assert sb.orders() == []


# ------------------------------------------------------------- Ctrl-C around an order request

class Swallower:
    """A WebSocket server on 127.0.0.1 that reads every frame and answers none of them."""

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.server = serve(self._handle, '127.0.0.1', 0)
        self.url = f'ws://127.0.0.1:{self.server.socket.getsockname()[1]}/v2'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, connection: Any) -> None:
        with contextlib.suppress(Exception):
            for frame in connection:
                self.frames.put(json.loads(frame))

    def next_frame(self, method: str) -> dict[str, Any]:
        """The first frame with ``method`` that arrives within 30 s."""
        while True:
            frame = self.frames.get(timeout=30)
            if frame.get('method') == method:
                return frame

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def swallower() -> Iterator[Swallower]:
    server = Swallower()
    yield server
    server.stop()


def interrupted(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Send SIGINT to a running command; its exit code and stderr."""
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    return process.returncode, err


def ws_popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, '-m', 'krakenex', 'ws', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'}, preexec_fn=default_sigint)


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_ctrl_c_after_add_order_was_sent_exits_4_naming_the_order_as_the_rest_command_does(
        sb, against, swallower):
    process = ws_popen(*against, '--ws-auth-uri', swallower.url, '--timeout', '30', *ADD_ORDER)
    frame = swallower.next_frame('add_order')  # it reached the server, whose reply never comes
    code, err = interrupted(process)
    assert code == 4
    assert 'Traceback' not in err
    (line,) = err.splitlines()
    assert line.startswith('krakenex ws: outcome unknown: add_order may have reached Kraken '
                           'but it was interrupted')
    assert f'req_id {frame["req_id"]}' in line and 'cl_ord_id cli-1' in line
    assert 'krakenex OpenOrders cl_ord_id=cli-1 and krakenex ClosedOrders cl_ord_id=cli-1' in line
    assert 'not sent' not in line and 'refused' not in line
    assert frame['params']['token'] not in err


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_ctrl_c_while_connecting_for_an_order_exits_130_as_nothing_was_sent(sb, against):
    with socket.create_server(('127.0.0.1', 0)) as listener:  # accepts, never answers
        listener.settimeout(30)
        url = f'ws://127.0.0.1:{listener.getsockname()[1]}/v2'
        process = ws_popen(*against, '--ws-auth-uri', url, '--timeout', '30', *ADD_ORDER)
        connection, _ = listener.accept()  # the command waits for its handshake's answer
        with connection:
            code, err = interrupted(process)
    assert code == 130
    assert 'Traceback' not in err
    assert err.splitlines() == ['krakenex ws: interrupted']
    assert sb.orders() == []


# ------------------------------------------------------------- what users type, and get back

@pytest.mark.parametrize(('option', 'stop'), [
    (['--count', '0'], ['--seconds', '2']), (['--count', '-1'], ['--seconds', '2']),
    (['--top', '0'], ['--seconds', '2']), (['--top', '-2'], ['--seconds', '2']),
    (['--seconds', 'nan'], ['--count', '1']), (['--seconds', '-1'], ['--count', '1']),
    (['--timeout', '0'], ['--count', '1']), (['--timeout', 'inf'], ['--count', '1'])])
def test_count_top_seconds_and_timeout_that_make_no_sense_are_usage_errors(
        capsys, sb, against, option, stop):
    assert main(['ws', *against, 'book', 'BTC/USD', *option, *stop]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert option[0] in line and repr(option[1]) in line


def test_cancel_all_orders_after_timeout_is_krakens_parameter_and_arms_it(capsys, sb, against):
    assert main(['ws', *against, 'cancel_all_orders_after', 'timeout=60']) == 0
    (reply,), _ = lines(capsys)
    assert reply['success'] is True and reply['result']['triggerTime'] != '0'


def test_a_req_id_given_to_a_channel_comes_back_on_its_acknowledgement(capsys, sb, against):
    assert main(['ws', *against, 'ticker', 'BTC/USD', 'req_id=9', '--count', '1']) == 0
    messages, _ = lines(capsys)
    (ack,) = [m for m in messages if m.get('method') == 'subscribe']
    assert ack['req_id'] == 9 and ack['success'] is True


def test_book_top_says_book_resync_on_stderr_and_prints_only_verified_books(capsys, sb, against):
    sb.feed.inject('bad_checksum')
    assert main(['ws', *against, 'book', 'BTC/USD', '--top', '2', '--seconds', '3']) == 0
    books, err = lines(capsys)
    assert 'type=book_resync' in err and 'symbol=BTC/USD' in err
    assert books and all(set(b) == {'symbol', 'checksum', 'bids', 'asks'} for b in books)


#: A request of each trading method, with ``{txid}`` for an order resting at the sandbox.
TRADING = {
    'add_order': ADD_ORDER[1:],
    'batch_add': ['symbol=BTC/USD', 'orders:=[{"order_type":"limit","side":"buy",'
                  '"limit_price":40000,"order_qty":0.01,"cl_ord_id":"batch-1"},'
                  '{"order_type":"limit","side":"buy","limit_price":39000,"order_qty":0.01}]'],
    'amend_order': ['order_id={txid}', 'limit_price=39000'],
    'edit_order': ['order_id={txid}', 'symbol=BTC/USD', 'limit_price=39000'],
    'cancel_order': ['order_id={txid}'],
    'cancel_all': [],
    'cancel_all_orders_after': ['timeout=60'],
    'batch_cancel': ['orders:=["{txid}"]'],
}


@pytest.mark.parametrize('method', sorted(TRADING))
def test_every_trading_method_whose_reply_is_lost_exits_4_and_is_not_sent_again(
        capsys, sb, against, method):
    assert set(TRADING) == ORDER_METHODS
    with API(sb.key, sb.secret, uri=sb.url) as api:
        txid = api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'volume': '0.01',
                                              'ordertype': 'limit', 'price': '40000'}
                                 )['result']['txid'][0]
    sb.feed.inject('reply_lost')  # executed at the sandbox, then the connection drops
    assert main(['ws', *against, method, *(a.replace('{txid}', txid)
                                           for a in TRADING[method])]) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f'krakenex ws: outcome unknown: {method} was sent over the WebSocket')
    assert 'did not send it again' in line
    placed = {'add_order': 2, 'batch_add': 3, 'edit_order': 2}.get(method, 1)  # edit: a new order
    assert len(sb.orders()) == placed


def test_a_rest_pair_name_gets_the_v2_name_said(capsys):
    main(['ws', '--sandbox', 'ticker', 'XBTUSD', '--count', '1'])  # Kraken refuses it
    err = capsys.readouterr().err
    assert 'BASE/QUOTE' in err and 'BTC/USD' in err


def test_a_key_kraken_refuses_for_a_token_exits_1_with_krakens_error_as_rest_does(
        capsys, sb, against, tmp_path):
    key_file = tmp_path / 'wrong.key'
    key_file.write_text(f'not-{sb.key}\n{sb.secret}\n')
    key_file.chmod(0o600)
    started = time.monotonic()
    assert main(['ws', *against, '--key-file', str(key_file), '--timeout', '60',
                 'executions']) == 1
    assert time.monotonic() - started < 30  # at once, not after --timeout 60
    rest_code = main(['--uri', sb.url, '--key-file', str(key_file), 'GetWebSocketsToken'])
    assert rest_code == 1
    ws_line, rest_line = capsys.readouterr().err.splitlines()
    assert 'EAPI:Invalid key' in ws_line and 'EAPI:Invalid key' in rest_line


# ------------------------------------------------------------- the sandbox's moving market

def sandbox_ws(*args: str) -> subprocess.CompletedProcess[str]:
    """``krakenex ws --sandbox ...``; a command that never ends fails the test after 30 s."""
    return subprocess.run([sys.executable, '-m', 'krakenex', 'ws', '--sandbox', *args],
                          capture_output=True, text=True, timeout=30)


def crc_text(number: str) -> str:
    return number.replace('.', '').lstrip('0')


def test_sandbox_book_top_ends_after_two_verified_books_as_the_market_moves():
    result = sandbox_ws('book', 'BTC/USD', '--top', '5', '--count', '2')
    assert result.returncode == 0, result.stderr
    books = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(books) == 2 and books[0]['checksum'] != books[1]['checksum']
    for book in books:
        assert book['symbol'] == 'BTC/USD' and len(book['bids']) == len(book['asks']) == 5
        assert [b[0] for b in book['bids']] == sorted((b[0] for b in book['bids']), reverse=True)
        assert [a[0] for a in book['asks']] == sorted(a[0] for a in book['asks'])
        assert book['bids'][0][0] < book['asks'][0][0]
    # the whole depth-10 book, as printed, gives the checksum printed with it (Kraken's rule)
    whole = sandbox_ws('book', 'BTC/USD', '--top', '10', '--count', '2')
    assert whole.returncode == 0, whole.stderr
    for line in whole.stdout.splitlines():
        book = json.loads(line, parse_float=str)
        levels = book['asks'] + book['bids']
        text = ''.join(crc_text(price) + crc_text(qty) for price, qty in levels)
        assert zlib.crc32(text.encode()) == int(book['checksum'])


@pytest.mark.parametrize('channel', ['ticker', 'trade', 'ohlc'])
def test_sandbox_channels_stream_updates_and_end_at_count(channel):
    result = sandbox_ws(channel, 'BTC/USD', '--count', '4')
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    data = [m for m in messages if m.get('channel') == channel]
    assert len(data) == 4 and messages[-1] == data[-1]  # four of the channel's, then it ends
    assert any(m.get('type') == 'update' for m in data)


def test_status_is_a_channel_the_command_knows(capsys):
    assert main(['ws', '--sandbox', 'status', '--count', '1']) == 0
    messages, _ = lines(capsys)
    assert any(m.get('channel') == 'status' and m['data'][0]['system'] == 'online'
               for m in messages)
    assert main(['ws', '--help']) == 0
    assert 'status' in capsys.readouterr().out.split('channels:')[1].splitlines()[0]


def test_level3_goes_to_the_ws_l3_uri_not_the_authenticated_endpoint(capsys, sb, against):
    nowhere = 'ws://127.0.0.1:9/v2'  # nothing listens there
    assert main(['ws', *against, '--ws-auth-uri', nowhere, '--ws-l3-uri', sb.ws_l3_url,
                 'level3', 'BTC/USD', '--count', '1']) == 0
    messages, _ = lines(capsys)
    snapshot = next(m for m in messages if m.get('channel') == 'level3')
    assert snapshot['type'] == 'snapshot' and snapshot['data'][0]['symbol'] == 'BTC/USD'


def test_an_order_refused_for_the_message_rate_exits_1_and_is_not_placed(capsys, sb, against):
    sb.feed.inject('msg_rate')
    assert main(['ws', *against, *ADD_ORDER]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == 'krakenex ws: Exceeded msg rate'  # Kraken's words, as the REST command does
    assert sb.orders() == []


class Reopening:
    """A WebSocket server on 127.0.0.1 whose first connection works until :meth:`drop`;
    after that every handshake is refused with HTTP 503, so the client keeps re-opening."""

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.handshakes = 0
        self.refusing = False
        self.connections: list[Any] = []
        self.server = serve(self._handle, '127.0.0.1', 0, process_request=self._process)
        self.url = f'ws://127.0.0.1:{self.server.socket.getsockname()[1]}/v2'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _process(self, connection: Any, request: Any) -> Any:
        self.handshakes += 1
        return connection.respond(503, 'maintenance\n') if self.refusing else None

    def _handle(self, connection: Any) -> None:
        self.connections.append(connection)
        with contextlib.suppress(Exception):
            for frame in connection:
                self.frames.put(json.loads(frame))

    def drop(self) -> None:
        """Refuse every handshake from now on and cut the open connections (no close frame)."""
        self.refusing = True
        for connection in self.connections:
            connection.socket.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


#: ``krakenex ws`` that stops between connecting and sending its order request, and goes on
#: once a line arrives on stdin: the moment at which the test drops the connection.
PAUSED_WS = '''
import sys

from krakenex.cli import ws as cli
from krakenex.ws import WS

sending, request = cli._SocketCall.sending, WS.request
def paused(self, *args):
    print('connected', flush=True)
    sys.stdin.readline()
    sending(self, *args)
def requesting(self, *args, **params):
    print('requesting', flush=True)  # inside the command's try: Ctrl-C from here is its case
    return request(self, *args, **params)
cli._SocketCall.sending, WS.request = paused, requesting
sys.exit(cli.main(sys.argv[1:]))
'''


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_ctrl_c_while_a_dropped_connection_reopens_before_the_order_went_out_exits_130(
        sb, against):
    server = Reopening()
    try:
        process = subprocess.Popen(
            [sys.executable, '-c', PAUSED_WS, *against, '--ws-auth-uri', server.url,
             '--timeout', '30', *ADD_ORDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'},
            preexec_fn=default_sigint)
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == 'connected\n'
        server.drop()
        deadline = time.monotonic() + 30
        while server.handshakes < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the command is re-opening its connection
        process.stdin.write('\n')
        process.stdin.flush()
        assert process.stdout.readline() == 'requesting\n'
        time.sleep(0.2)  # the order request waits for the connection
        code, err = interrupted(process)
    finally:
        server.stop()
    assert (code, err.splitlines()) == (130, ['krakenex ws: interrupted'])
    frames = [server.frames.get_nowait() for _ in range(server.frames.qsize())]
    assert [f for f in frames if f.get('method') != 'ping'] == []  # krakenex's own keepalive
    assert sb.orders() == []


@pytest.mark.parametrize('option', [['--ws-uri', 'ftp://x'], ['--ws-auth-uri', 'ws://127.0.0.1:9/v2'],
                                    ['--ws-l3-uri', 'ws://127.0.0.1:9/v2'],
                                    ['--uri', 'http://127.0.0.1:9'], ['--key-file', 'k.key']])
def test_sandbox_with_an_endpoint_or_key_of_its_own_is_a_usage_error_as_in_rest(capsys, option):
    assert main(['ws', '--sandbox', *option, 'ticker', 'BTC/USD', '--count', '1']) == 2
    assert capsys.readouterr().err.strip() == (
        f'krakenex ws: --sandbox runs its own server with its own account: leave out {option[0]}')


# ---------------------------------------------------------- what --count counts

def test_count_counts_the_books_asked_for_so_a_book_update_is_shown(capsys):
    assert main(['ws', '--sandbox', 'book', 'BTC/USD', '--count', '2']) == 0
    messages, _ = lines(capsys)
    books = [m for m in messages if m.get('channel') == 'book']
    assert [m['type'] for m in books] == ['snapshot', 'update']
    assert messages[-1] == books[-1]  # the status and acknowledgement were shown, not counted


# --------------------------------------------------------- krakenws.py's habits

@pytest.mark.parametrize(('args', 'member', 'value'), [
    (['book', 'BTC/USD', '25'], 'depth', 25), (['ohlc', 'BTC/USD', '60'], 'interval', 60)])
def test_a_bare_number_after_the_symbols_is_the_depth_or_the_interval(
        capsys, args, member, value):
    assert main(['ws', '--sandbox', *args, '--count', '1']) == 0
    messages, _ = lines(capsys)
    (ack,) = [m for m in messages if m.get('method') == 'subscribe']
    assert ack['success'] is True and ack['result'][member] == value


def test_a_bare_number_where_it_means_nothing_is_explained(capsys):
    assert main(['ws', '--sandbox', 'ticker', 'BTC/USD', '10']) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == ('krakenex ws: 10 is not a symbol; one bare number is the depth for book, '
                    'interval for ohlc (or give it as name=value)')


def test_reqid_is_taken_as_v2s_req_id_and_said(capsys, sb, against):
    assert main(['ws', *against, 'ping', 'reqid=41']) == 0
    (reply,), err = lines(capsys)
    assert reply['req_id'] == 41
    assert 'WebSocket v2 calls reqid req_id: using req_id=41' in err


@pytest.fixture
def keyless(monkeypatch, tmp_path):
    """No key anywhere the command looks: not in the environment, not in a key file."""
    monkeypatch.delenv('KRAKEN_API_KEY', raising=False)
    monkeypatch.delenv('KRAKEN_API_SECRET', raising=False)
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path / 'config'))


def test_a_token_from_a_file_or_the_environment_serves_a_key_that_lives_elsewhere(
        capsys, sb, keyless, monkeypatch, tmp_path):
    with API(sb.key, sb.secret, uri=sb.url) as elsewhere:
        tokens = [elsewhere.query_private('GetWebSocketsToken')['result']['token']
                  for _ in range(2)]
    token_file = tmp_path / 'WS_Token'  # krakenws.py's file
    token_file.write_text(tokens[0] + '\n')
    where = ['--ws-auth-uri', sb.ws_auth_url, '--uri', 'http://127.0.0.1:9']  # no REST
    assert main(['ws', *where, '--token-file', str(token_file), 'balances', '--count', '1']) == 0
    messages, _ = lines(capsys)
    assert any(m.get('channel') == 'balances' for m in messages)
    monkeypatch.setenv('KRAKEN_WS_TOKEN', tokens[1])
    assert main(['ws', *where, *ADD_ORDER]) == 0
    (reply,), _ = lines(capsys)
    assert reply['success'] is True and len(sb.orders()) == 1


def test_an_unreadable_token_file_exits_2_and_sends_nothing(capsys, sb, keyless, tmp_path):
    assert main(['ws', '--ws-auth-uri', sb.ws_auth_url, '--token-file',
                 str(tmp_path / 'missing'), *ADD_ORDER]) == 2
    assert 'cannot read token file' in capsys.readouterr().err
    assert sb.orders() == []
