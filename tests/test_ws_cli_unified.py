"""``krakenex ws --unified``: the Unified WebSocket (derivatives) from the shell.

Every test runs the real command (``python -m krakenex ws --unified ...``) against the
sandbox's Unified WebSocket on 127.0.0.1: its embedded one (``--sandbox``), or one the test
starts and names with ``--ws-uri``, ``--ws-auth-uri``, ``--uri`` and ``--key-file``, so that
what the command did shows in futures REST (``FuturesAPI`` against ``sb.futures_url``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import default_sigint
from test_interrupts import RUNS_AND_ONCE, broken_rule, check, interrupt
from test_ws_cli import Swallower, crc_text

from krakenex import API
from krakenex.cli import main
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.ws import WS

#: Futures REST is the witness here, not what is under test: its sunset notice is expected.
pytestmark = pytest.mark.filterwarnings('ignore::krakenex.futures.KrakenSunsetWarning')

SYMBOL = 'PF_XBTUSD'
#: A derivatives order that rests on the book (below the market), named by its cl_ord_id.
ORDER = ['add_order', f'symbol={SYMBOL}', 'side=buy', 'order_type=limit', 'order_qty=0.5',
         'limit_price=50000', 'cl_ord_id=uws-cli-1']


@pytest.fixture
def futures(sb: Sandbox) -> Iterator[FuturesAPI]:
    with FuturesAPI(sb.futures.key, sb.futures.secret, uri=sb.futures_url) as client:
        yield client


@pytest.fixture
def against(sb: Sandbox, tmp_path: Path) -> list[str]:
    """``--unified`` and the options that point the command at ``sb`` with its spot key, whose
    token the Unified WebSocket takes, as a user would."""
    key_file = tmp_path / 'kraken.key'
    key_file.write_text(f'{sb.key}\n{sb.secret}\n')
    key_file.chmod(0o600)
    return ['--unified', '--ws-uri', sb.unified_url, '--ws-auth-uri', sb.unified_auth_url,
            '--uri', sb.url, '--key-file', str(key_file), '--timeout', '10']


def ws(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m krakenex ws ARGS...``; a command that never ends fails the test after 60 s."""
    return subprocess.run([sys.executable, '-m', 'krakenex', 'ws', *args],
                          capture_output=True, text=True, timeout=60)


def popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, '-m', 'krakenex', 'ws', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'},
                            preexec_fn=default_sigint)


def open_orders(futures: FuturesAPI) -> list[str | None]:
    return [o.get('cliOrdId') for o in futures.query_private('openorders')['openOrders']]


def tokens_given(sb: Sandbox) -> int:
    """How many WebSocket tokens the sandbox's REST gave out: one per private connection."""
    return sum(1 for name, _ in sb.requests_log if name == 'GetWebSocketsToken')


# ------------------------------------------------------------------------------ public data

def test_sandbox_book_top_prints_a_derivatives_book_verified_by_krakens_checksum():
    result = ws('--unified', '--sandbox', 'book', SYMBOL, '--top', '10', '--count', '1')
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    book = json.loads(line, parse_float=str)
    assert book['symbol'] == SYMBOL and len(book['bids']) == len(book['asks']) == 10
    assert float(book['bids'][0][0]) < float(book['asks'][0][0])
    # the whole depth-10 book, as printed, gives the checksum printed with it
    text = ''.join(crc_text(str(price)) + crc_text(str(qty))
                   for price, qty in book['asks'] + book['bids'])
    assert zlib.crc32(text.encode()) == int(book['checksum'])


def test_sandbox_book_count_3_prints_three_moving_verified_books_and_exits_0():
    # the embedded sandbox's futures market moves with its spot market: updates come
    result = ws('--unified', '--sandbox', 'book', SYMBOL, '--top', '5', '--count', '3')
    assert result.returncode == 0, result.stderr
    books = [json.loads(line, parse_float=str) for line in result.stdout.splitlines()]
    assert len(books) == 3 and all(b['symbol'] == SYMBOL for b in books)
    assert all(len(b['bids']) == len(b['asks']) == 5 for b in books)
    assert all(float(b['bids'][0][0]) < float(b['asks'][0][0]) for b in books)
    assert len({json.dumps(b['bids'] + b['asks']) for b in books}) == 3  # each one moved


def test_sandbox_ticker_count_3_prints_the_snapshot_and_two_moves_and_exits_0():
    result = ws('--unified', '--sandbox', 'ticker', SYMBOL, '--count', '3')
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line, parse_float=str) for line in result.stdout.splitlines()]
    tickers = [m for m in messages if m.get('channel') == 'ticker']
    assert [m['type'] for m in tickers] == ['snapshot', 'update', 'update']
    assert messages[-1] == tickers[-1]
    marks = [m['data'][0]['mark_price'] for m in tickers]
    assert marks[0] != marks[1] != marks[2]


def test_count_counts_the_books_asked_for_not_the_status_or_the_acknowledgement(sb, against):
    process = popen(*against, 'book', SYMBOL, 'depth=10', '--count', '2')
    try:
        assert process.stdout is not None
        printed = []
        while not printed or printed[-1].get('type') != 'snapshot':
            printed.append(json.loads(process.stdout.readline()))
        sb.futures.set_price(SYMBOL, 61000)  # the market moves: the second book message
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    messages = printed + [json.loads(line) for line in out.splitlines()]
    books = [m for m in messages if m.get('channel') == 'book']
    assert [m['type'] for m in books] == ['snapshot', 'update'] and messages[-1] == books[-1]
    assert any(m.get('channel') == 'status' for m in messages)
    assert any(m.get('method') == 'subscribe' and m['result']['channel'] == 'book'
               for m in messages)


def test_a_spot_pair_name_is_not_a_derivatives_symbol_nor_is_it_rewritten():
    result = ws('--unified', '--sandbox', 'ticker', 'XBT/USD', '--count', '1',
                '--timeout', '5')
    assert result.returncode != 0 and 'BTC/USD' not in result.stderr  # v2's XBT rule: not here


# ------------------------------------------------------------------------------- orders

def test_add_order_is_placed_once_and_is_in_futures_rest_openorders(sb, against, futures):
    result = ws(*against, *ORDER)
    assert result.returncode == 0, result.stderr
    (reply,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert reply['success'] is True and reply['result']['cl_ord_id'] == 'uws-cli-1'
    listed = futures.query_private('openorders')['openOrders']
    assert [(o['order_id'], o['cliOrdId']) for o in listed] == [
        (reply['result']['order_id'], 'uws-cli-1')]
    # and cancelled by its cl_ord_id, over the same command
    assert ws(*against, 'cancel_order', 'cl_ord_id=uws-cli-1').returncode == 0
    assert open_orders(futures) == []


def test_an_order_whose_reply_is_lost_exits_4_placed_once_with_its_futures_lookup(
        sb, against, futures):
    sb.feed.inject('reply_lost')
    result = ws(*against, *ORDER)
    assert result.returncode == 4 and result.stdout == ''
    (line,) = result.stderr.splitlines()
    assert line.startswith('krakenex ws: outcome unknown') and 'uws-cli-1' in line
    assert 'krakenex --futures orders/status cliOrdIds=uws-cli-1' in line
    assert open_orders(futures) == ['uws-cli-1']  # placed once, never sent again


def test_sandbox_positions_and_margin_are_channels_of_the_unified_command():
    for channel in ('positions', 'margin'):
        result = ws('--unified', '--sandbox', channel, '--count', '1')
        assert result.returncode == 0, result.stderr
        last = json.loads(result.stdout.splitlines()[-1])
        assert last['channel'] == channel and last['type'] == 'snapshot'


@pytest.mark.parametrize('field', ['display_qty=0.1', 'order_userref=7', 'margin=true'])
def test_a_field_kraken_refuses_for_derivatives_exits_2_and_nothing_is_sent(
        sb, against, futures, field):
    result = ws(*against, *ORDER, field)
    assert result.returncode == 2
    name = field.split('=')[0]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f'krakenex ws: add_order was not sent: Kraken refuses {name} '
                           f'for derivatives')
    if name == 'order_userref':
        assert 'use cl_ord_id' in line
    assert result.stdout == '' and open_orders(futures) == []
    assert tokens_given(sb) == 0  # refused before a connection was even opened


@pytest.mark.parametrize('argv', [
    ['--asset-class', 'derivatives', 'ticker', SYMBOL],         # without --unified
    ['--unified', 'level3', 'BTC/USD'],                         # not on the Unified WebSocket
    ['--unified', 'edit_order', 'order_id=X'],                  # amend_order is
    ['--unified', '--ws-l3-uri', 'ws://127.0.0.1:9/v2', 'book', SYMBOL],
    ['--unified', 'margin', 'snapshot=true'],                   # the library's own rules
    ['--unified', 'ledgers', 'asset_class=derivatives'],
])
def test_what_the_unified_websocket_does_not_take_is_a_usage_error(argv):
    result = ws('--timeout', '1', *argv)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith('krakenex ws: ') and 'Traceback' not in result.stderr


def test_the_kraken_uws_variables_choose_the_endpoints_not_the_spot_ones(sb, futures):
    env = {**os.environ, 'KRAKEN_UWS_URL': sb.unified_url,
           'KRAKEN_UWS_AUTH_URL': sb.unified_auth_url, 'KRAKEN_API_URL': sb.url,
           'KRAKEN_API_KEY': sb.key, 'KRAKEN_API_SECRET': sb.secret,
           'KRAKEN_WS_URL': 'ws://127.0.0.1:9/v2', 'KRAKEN_WS_AUTH_URL': 'ws://127.0.0.1:9/v2'}
    for argv in (['book', SYMBOL, '--count', '1'], ORDER):
        result = subprocess.run([sys.executable, '-m', 'krakenex', 'ws', '--unified',
                                 '--timeout', '10', *argv],
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
    assert open_orders(futures) == ['uws-cli-1']


def test_a_token_from_a_file_serves_a_key_that_lives_elsewhere(sb, futures, tmp_path):
    with API(sb.key, sb.secret, uri=sb.url) as elsewhere:
        token = elsewhere.query_private('GetWebSocketsToken')['result']['token']
    token_file = tmp_path / 'WS_Token'
    token_file.write_text(token + '\n')
    env = {name: value for name, value in os.environ.items()
           if name not in ('KRAKEN_API_KEY', 'KRAKEN_API_SECRET')}
    result = subprocess.run(
        [sys.executable, '-m', 'krakenex', 'ws', '--unified', '--ws-auth-uri',
         sb.unified_auth_url, '--uri', 'http://127.0.0.1:9', '--token-file', str(token_file),
         '--timeout', '10', *ORDER],
        capture_output=True, text=True, timeout=60,
        env={**env, 'XDG_CONFIG_HOME': str(tmp_path / 'config')})
    assert result.returncode == 0, result.stderr
    assert open_orders(futures) == ['uws-cli-1']


# ------------------------------------------------------------- Ctrl-C around an order request

@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_ctrl_c_after_add_order_was_sent_exits_4_naming_its_cl_ord_id(sb, against):
    server = Swallower()  # reads the order, never answers it
    try:
        process = popen(*against, '--ws-auth-uri', server.url, *ORDER)
        frame = server.next_frame('add_order')
        code, _, err = interrupt(process)
    finally:
        server.stop()
    assert frame['params']['asset_class'] == 'derivatives'
    assert code == 4 and 'Traceback' not in err
    (line,) = err.splitlines()
    assert line.startswith('krakenex ws: outcome unknown: add_order may have reached Kraken')
    assert f'req_id {frame["req_id"]}' in line and 'cl_ord_id uws-cli-1' in line
    assert 'krakenex --futures orders/status cliOrdIds=uws-cli-1' in line
    assert frame['params']['token'] not in err


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_ctrl_c_while_connecting_for_an_order_exits_130_and_nothing_is_placed(
        sb, against, futures):
    with socket.create_server(('127.0.0.1', 0)) as listener:  # accepts, never answers
        listener.settimeout(30)
        url = f'ws://127.0.0.1:{listener.getsockname()[1]}/v2/private'
        process = popen(*against, '--ws-auth-uri', url, *ORDER)
        connection, _ = listener.accept()
        with connection:
            code, _, err = interrupt(process)
    assert code == 130 and err.splitlines() == ['krakenex ws: interrupted']
    assert open_orders(futures) == []


def test_ctrl_c_while_the_arguments_are_read_is_an_interruption_not_a_usage_error(
        capsys, monkeypatch):
    """argparse puts its positionals back in a ``finally`` that a Ctrl-C can cut short; the
    error that leaves must not hide the interruption (exit 2 instead of 130)."""
    def interrupted(self: argparse.ArgumentParser) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, 'format_usage', interrupted)
    assert main(['ws', '--unified', *ORDER]) == 130
    assert capsys.readouterr().err == 'krakenex ws: interrupted\n'


def test_a_second_ctrl_c_while_the_client_closes_leaves_no_pending_task_to_report(
        sb, caplog, monkeypatch):
    """The command's WS closes as its first Ctrl-C goes up; a second one cutting that close
    short left tasks on the loop, which Python reported on stderr at exit."""
    ws = WS(API(sb.key, sb.secret, uri=sb.url), unified=True, url=sb.unified_url,
            auth_url=sb.unified_auth_url, timeout=10)
    ws.subscribe('book', symbol=[SYMBOL])
    ws.connect(private=True)

    def interrupted(future: Any, timeout: float | None) -> None:
        raise KeyboardInterrupt  # the second Ctrl-C, while the close is awaited

    monkeypatch.setattr(ws, '_wait', interrupted)
    with pytest.raises(KeyboardInterrupt):
        ws.close()
    del ws
    gc.collect()
    assert 'Task was destroyed but it is pending' not in caplog.text


def an_ack(out: str) -> bool:
    try:
        return bool(json.loads(out)['result']['order_id'])
    except (ValueError, KeyError, TypeError):
        return False


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
@pytest.mark.parametrize('runs', RUNS_AND_ONCE)
def test_add_order_interrupted_at_any_moment_keeps_the_exit_code_contract(
        sb, against, futures, runs):
    """0 with the reply printed whole, 4 whenever it may have been sent, 130 only when the
    order is not at the exchange: checked against futures REST after every run."""
    outcomes = []
    for run in range(runs):
        order = [*ORDER[:-1], f'cl_ord_id=uws-any-{run}']
        process = popen(*against, *order)
        time.sleep(random.uniform(0.05, 1.5))
        code, out, err = interrupt(process, times=random.choice((1, 2)))
        sent = f'uws-any-{run}' in open_orders(futures)
        outcomes.append(broken_rule(code, out, err, sent=sent, whole=an_ack))
    check(outcomes)
