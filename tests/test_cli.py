"""The ``krakenex`` command, run for real in a subprocess against a sandbox on 127.0.0.1."""

from __future__ import annotations

import contextlib
import csv
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import default_sigint
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import krakenex
from krakenex import API, cli, methods
from krakenex.sandbox import FAULT_KINDS, ODD_REPLIES, Sandbox

Run = Callable[..., 'subprocess.CompletedProcess[str]']
PACKAGE = Path(krakenex.__file__).parent


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment with no Kraken credentials and an empty home, so no key file is found."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('KRAKEN_API_KEY', 'KRAKEN_API_SECRET', 'XDG_CONFIG_HOME')}
    home = tmp_path / 'home'
    home.mkdir()
    env['HOME'] = str(home)
    return env


def in_process(argv: list[str]) -> tuple[int, str, str]:
    """``krakenex.cli.main(argv)`` here, with stdout and stderr captured as pipes would be.

    :returns: the exit code, stdout and stderr
    """
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding='utf-8') for _ in range(2))
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(argv)
    finally:
        sys.stdout, sys.stderr = saved
    out.flush()
    err.flush()
    return code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()  # type: ignore[attr-defined]


def krakenex_cmd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``krakenex ARGS...`` with ``env`` as its environment, run in this process.

    The tests that need a process of its own (a terminal, a closed or full
    stdout, a signal, what is imported) start one with :func:`krakenex_process`.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in set(os.environ) - set(env):
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        code, out, err = in_process(list(args))
    return subprocess.CompletedProcess(list(args), code, out, err)


def krakenex_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m krakenex ARGS...`` in a process of its own."""
    return subprocess.run([sys.executable, '-m', 'krakenex', *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def account_env(sandbox: Sandbox, clean_env: dict[str, str]) -> dict[str, str]:
    """The sandbox's funded account in KRAKEN_API_KEY and KRAKEN_API_SECRET."""
    return {**clean_env, 'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret}


@pytest.fixture
def run(sandbox: Sandbox, account_env: dict[str, str]) -> Run:
    """``krakenex --uri SANDBOX ARGS...`` with the sandbox's account in the environment."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return krakenex_cmd('--uri', sandbox.url, *args, env=account_env)
    return run


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr, which must start with ``krakenex:``."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('krakenex: ')
    return lines[0]


def run_on_terminal(args: list[str], env: dict[str, str], stream: str) -> tuple[int, str, str]:
    """Run the command with ``stream`` ('stdout' or 'stderr') on a pseudo-terminal.

    :returns: the exit code, what the terminal showed, and the other stream
    """
    pty = pytest.importorskip('pty')
    controller, terminal = pty.openpty()
    other = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, '-m', 'krakenex', *args], env=env,
                            stdout=terminal if stream == 'stdout' else other,
                            stderr=terminal if stream == 'stderr' else other)
    os.close(terminal)
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, err = proc.communicate(timeout=30)
    reader.join(timeout=10)
    os.close(controller)
    piped = out if stream == 'stderr' else err
    text = b''.join(shown).decode().replace('\r\n', '\n')
    return proc.returncode, text, piped.decode()


def ledger_ids(sandbox: Sandbox) -> list[str]:
    """Every ledger id of the sandbox's account, paged here with the API class.

    The key's limits are set aside for these calls, so that the command under test
    starts with the key's REST counter at zero, as its own pacing assumes.
    """
    ids: list[str] = []
    tier, sandbox.exchange.tier = sandbox.exchange.tier, None
    try:
        with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
            while True:
                page = api.query_private('Ledgers', {'ofs': len(ids)})['result']
                ids += page['ledger']
                if not page['ledger'] or len(ids) >= page['count']:
                    return ids
    finally:
        sandbox.exchange.tier = tier


# ------------------------------------------------------------- calls, output

def test_public_call_prints_the_result_as_compact_json_when_piped(
        sandbox: Sandbox, clean_env: dict[str, str]) -> None:
    result = krakenex_process('--uri', sandbox.url, 'Ticker', 'pair=XBTUSD', env=clean_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('\n') == 1 and result.stdout.endswith('\n')
    ticker = json.loads(result.stdout)
    assert list(ticker) == ['XXBTZUSD'] and {'a', 'b', 'c'} <= set(ticker['XXBTZUSD'])
    assert result.stderr == ''


def test_json_is_indented_when_stdout_is_a_terminal(sandbox: Sandbox,
                                                    clean_env: dict[str, str]) -> None:
    code, shown, _ = run_on_terminal(['--uri', sandbox.url, 'Time'], clean_env, 'stdout')
    assert code == 0
    assert shown.startswith('{\n  "unixtime": ') and shown.endswith('\n}\n')
    assert set(json.loads(shown)) == {'unixtime', 'rfc1123'}


def test_private_call_uses_credentials_from_the_environment(run: Run) -> None:
    result = run('Balance')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['ZUSD'] == '100000.0000'


def test_raw_prints_the_whole_envelope(run: Run) -> None:
    result = run('--raw', 'Time')
    assert result.returncode == 0
    envelope = json.loads(result.stdout)
    assert envelope['error'] == [] and set(envelope['result']) == {'unixtime', 'rfc1123'}


def test_numbers_are_printed_exactly_as_kraken_sent_them(run: Run, sandbox: Sandbox) -> None:
    sent = requests.get(f'{sandbox.url}/0/public/AssetPairs?pair=XBTUSD', timeout=5)
    result = run('--raw', 'AssetPairs', 'pair=XBTUSD')
    # parse_float=str keeps each number's text: equal texts, not just equal values.
    assert json.loads(result.stdout, parse_float=str) == json.loads(sent.text, parse_float=str)
    assert '[10000000,0.0]' in result.stdout  # a float would print 0.0, a Decimal 0 or 0E+1


def test_addorder_with_validate_true_places_nothing(run: Run, sandbox: Sandbox) -> None:
    result = run('AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=limit', 'price=37500',
                 'volume=0.01', 'validate=true')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['descr']['order'].startswith('buy 0.01000000 XBTUSD')
    assert sandbox.orders() == []


def test_json_parameter_sends_the_orders_of_addorderbatch(run: Run, sandbox: Sandbox) -> None:
    orders = [{'ordertype': 'limit', 'type': 'buy', 'volume': '0.01', 'price': '37500'},
              {'ordertype': 'limit', 'type': 'buy', 'volume': '0.02', 'price': '37000'}]
    result = run('AddOrderBatch', 'pair=XBTUSD', f'orders:={json.dumps(orders)}')
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)['orders']) == 2
    assert [o['vol'] for o in sandbox.orders()] == ['0.01000000', '0.02000000']


def test_private_flag_sends_a_method_krakenex_does_not_know(run: Run) -> None:
    result = run('--private', 'NoSuchMethod')
    assert result.returncode == 1  # Kraken's answer, so the call was made
    assert one_line_error(result) == 'krakenex: EGeneral:Unknown method'


def test_retrieve_export_zip_goes_to_the_output_file_or_a_pipe(
        run: Run, sandbox: Sandbox, account_env: dict[str, str], tmp_path: Path) -> None:
    export = json.loads(run('AddExport', 'report=ledgers', 'description=cli').stdout)['id']
    target = tmp_path / 'ledgers.zip'
    assert run('RetrieveExport', f'id={export}', '--output', str(target)).returncode == 0
    assert zipfile.is_zipfile(target)
    piped = subprocess.run([sys.executable, '-m', 'krakenex', '--uri', sandbox.url,
                            'RetrieveExport', f'id={export}'], env=account_env,
                           capture_output=True, timeout=30)
    assert piped.returncode == 0
    assert piped.stdout == target.read_bytes()


# ---------------------------------------------------------------- exit codes

def test_kraken_error_exits_1_with_the_error_string_on_one_line(run: Run) -> None:
    result = run('AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market', 'volume=1000')
    assert result.returncode == 1
    assert one_line_error(result) == 'krakenex: EOrder:Insufficient funds'
    assert result.stdout == ''


def test_raw_still_exits_1_on_a_kraken_error(run: Run) -> None:
    result = run('--raw', 'AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market',
                 'volume=1000')
    assert result.returncode == 1
    assert json.loads(result.stdout) == {'error': ['EOrder:Insufficient funds']}


def test_closed_port_exits_3(clean_env: dict[str, str]) -> None:
    with Sandbox() as stopped:
        url = stopped.url
    result = krakenex_cmd('--uri', url, '--retries', '0', 'Time', env=clean_env)
    assert result.returncode == 3
    assert 'could not connect' in one_line_error(result)


def test_cloudflare_520_exits_3_after_retrying(run: Run, sandbox: Sandbox) -> None:
    sandbox.inject('html520', times=10)
    result = run('--retries', '1', 'Time')
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and 'retry 1' in lines[0]  # the retry, then the error
    assert lines[1].startswith('krakenex: Kraken Time answered HTTP 520 from Cloudflare')


def test_lost_addorder_reply_exits_4_with_nonce_and_userref(run: Run, sandbox: Sandbox) -> None:
    sandbox.inject('reply_lost', method='AddOrder')
    result = run('AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market', 'volume=0.01',
                 'userref=42')
    assert result.returncode == 4
    line = one_line_error(result)
    nonce = next(n for m, n in sandbox.requests_log if m == 'AddOrder')
    assert f'outcome unknown: AddOrder was sent (nonce {nonce})' in line
    assert 'may or may not have taken effect' in line and 'userref 42' in line
    assert 'krakenex OpenOrders userref=42 and krakenex ClosedOrders userref=42' in line
    assert [o['userref'] for o in sandbox.orders()] == [42]  # placed once, never re-sent


@pytest.mark.parametrize(('args', 'message'), [
    (['Balanse'], "'Balanse' is not one of Kraken's methods (did you mean Balance, "),
    (['Ticker', 'pair'], "expected name=value (or name:=JSON), not 'pair'"),
    (['AddOrderBatch', 'pair=XBTUSD', 'orders:=[{"type": buy}]'],
     'parameter orders: \'[{"type": buy}]\' is not valid JSON'),
    (['Ticker', 'pair=XBTUSD', 'pair=ETHUSD'], "parameter 'pair' is given twice"),
    (['--key-file', '/nonexistent/kraken.key', 'Balance'],
     'cannot read key file /nonexistent/kraken.key: No such file or directory'),
    (['--timeout', 'soon', 'Time'], "argument --timeout: 'soon' is not a number"),
    (['--all', 'Balance'], 'Balance has no pages; --all works with ClosedOrders'),
    (['--csv', 'Balance'], 'Balance does not answer with a table; --csv works with OHLC'),
    (['--uri', 'api.kraken.com', 'Time'], "--uri 'api.kraken.com' is not a server address"),
    (['--uri', 'http://[x', 'Time'], "--uri 'http://[x' is not a server address"),
    (['--uri', 'http://127.0.0.1:99999', 'Time'], 'is not a server address'),
    (['--uri', 'http://127.0.0.1:8080/\n', 'Time'], 'is not a server address'),
    (['--timeout', 'nan', 'Time'], "argument --timeout: 'nan' is not a finite number"),
    (['--timeout', 'inf', 'Time'], "argument --timeout: 'inf' is not a finite number"),
    (['--timeout', '0', 'Time'], "argument --timeout: '0' must be above 0"),
    (['--timeout', '-1', 'Time'], "argument --timeout: '-1' must be above 0"),
    (['--timeout', '1e308', 'Time'], "argument --timeout: '1e308' must be at most 86400"),
    (['--retries', '-1', 'Time'], "argument --retries: '-1' must be at least 0"),
    (['--tier', 'nan,1', 'Balance'], 'argument --tier: a rate tier needs a finite maximum'),
    (['--tier', '15,inf', 'Balance'], 'argument --tier: a rate tier needs a finite maximum'),
    (['--tier', 'fast', 'Balance'], "argument --tier: 'fast' is not a rate tier"),
    (['--all', 'Ledgers', 'ofs=abc'], "ofs must be a whole number of rows to skip"),
    (['--private', 'Bad/Name/'], "'Bad/Name/' is not a Kraken method name"),
    (['AddOrderBatch', 'pair=XBTUSD', 'orders:=' + '[' * 100_000],
     'parameter orders: its JSON is nested too deeply'),
])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
        run: Run, sandbox: Sandbox, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    line = one_line_error(result)
    assert message in line and 'unexpected' not in line
    assert result.stdout == ''
    assert sandbox.requests_log == []


def test_malformed_key_file_exits_2(run: Run, tmp_path: Path) -> None:
    key_file = tmp_path / 'kraken.key'
    key_file.write_text('only-a-key\n')
    key_file.chmod(0o600)
    result = run('--key-file', str(key_file), 'Balance')
    assert result.returncode == 2
    assert 'needs the API key on its first line and the secret on its second' in \
        one_line_error(result)


def test_private_call_without_credentials_exits_2_naming_where_it_looked(
        sandbox: Sandbox, clean_env: dict[str, str]) -> None:
    result = krakenex_cmd('--uri', sandbox.url, 'Balance', env=clean_env)
    assert result.returncode == 2
    line = one_line_error(result)
    default = Path(clean_env['HOME'], '.config', 'krakenex', 'kraken.key')
    assert all(place in line for place in
               ('--key-file', 'KRAKEN_API_KEY', 'KRAKEN_API_SECRET', str(default)))
    assert sandbox.requests_log == []


def test_timeout_option_bounds_the_wait_for_a_reply_and_exits_3(run: Run,
                                                                 sandbox: Sandbox) -> None:
    sandbox.inject('delay', seconds=5)
    started = time.monotonic()
    result = run('--timeout', '0.5', '--retries', '0', 'Time')
    assert result.returncode == 3
    assert 'no reply' in one_line_error(result) and 'within the timeout' in result.stderr
    assert time.monotonic() - started < 4


@pytest.fixture
def redirecting() -> Iterator[Callable[[int], str]]:
    """Start a server on 127.0.0.1 that answers every request with a redirect of a given status.

    :returns: a function of the status giving the server's URL
    """
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(status: int) -> str:
        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                self.send_response(status)
                self.send_header('Location', 'https://api.kraken.example' + self.path)
                self.send_header('Content-Length', '0')
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Redirect)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f'http://127.0.0.1:{server.server_address[1]}'

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize('status', [301, 302, 307, 308])
def test_redirect_exits_3_with_one_line_naming_where_it_points(
        redirecting: Callable[[int], str], clean_env: dict[str, str], status: int) -> None:
    result = krakenex_cmd('--uri', redirecting(status), '--retries', '0', 'Time', env=clean_env)
    assert result.returncode == 3
    line = one_line_error(result)
    assert str(status) in line and 'https://api.kraken.example/0/public/Time' in line


def test_redirect_answering_addorder_exits_4(redirecting: Callable[[int], str],
                                             clean_env: dict[str, str]) -> None:
    env = {**clean_env, 'KRAKEN_API_KEY': 'key', 'KRAKEN_API_SECRET': 'c2VjcmV0'}
    result = krakenex_cmd('--uri', redirecting(301), *ADD_ORDER, env=env)
    assert result.returncode == 4
    assert 'userref=42' in one_line_error(result)


# --------------------------------------------------------------- credentials

@pytest.mark.parametrize(('name', 'content'), [
    ('binary', bytes(range(256)) * 4),
    ('one long line', b'k' * 20_000_000),
    ('a secret that is not base64', b'key\nnot base64 at all!\n'),
    ('latin-1', 'cl\xe9\nc2VjcmV0\n'.encode('latin-1')),
])
def test_unusable_key_file_exits_2_with_one_line_naming_it(
        run: Run, sandbox: Sandbox, tmp_path: Path, name: str, content: bytes) -> None:
    key_file = tmp_path / 'kraken.key'
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    result = run('--key-file', str(key_file), 'AddOrder', 'pair=XBTUSD', 'type=buy',
                 'ordertype=market', 'volume=0.01')
    assert result.returncode == 2
    assert str(key_file) in one_line_error(result)
    assert sandbox.requests_log == []


def test_key_file_saved_with_a_byte_order_mark_works(
        run: Run, sandbox: Sandbox, tmp_path: Path) -> None:
    key_file = tmp_path / 'kraken.key'
    key_file.write_text(f'{sandbox.key}\r\n{sandbox.secret}\r\n', encoding='utf-8-sig')
    key_file.chmod(0o600)
    result = run('--key-file', str(key_file), 'Balance')
    assert result.returncode == 0, result.stderr  # the mark is read as what it is, and dropped
    assert 'ZUSD' in json.loads(result.stdout)


def test_environment_wins_over_the_default_key_file(sandbox: Sandbox,
                                                    clean_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    config = tmp_path / 'config'
    (config / 'krakenex').mkdir(parents=True)
    stale = config / 'krakenex' / 'kraken.key'
    stale.write_text('stale-key\nc3RhbGU=\n')
    stale.chmod(0o600)
    env = {**clean_env, 'XDG_CONFIG_HOME': str(config), 'KRAKEN_API_KEY': sandbox.key,
           'KRAKEN_API_SECRET': sandbox.secret}
    result = krakenex_cmd('--uri', sandbox.url, 'Balance', env=env)
    assert result.returncode == 0, result.stderr
    assert 'ZUSD' in json.loads(result.stdout)


@pytest.mark.parametrize('present', ['KRAKEN_API_KEY', 'KRAKEN_API_SECRET'])
def test_only_one_credential_in_the_environment_exits_2_naming_the_other(
        sandbox: Sandbox, clean_env: dict[str, str], present: str) -> None:
    result = krakenex_cmd('--uri', sandbox.url, 'Balance', env={**clean_env, present: 'x'})
    assert result.returncode == 2
    missing = ({'KRAKEN_API_KEY', 'KRAKEN_API_SECRET'} - {present}).pop()
    assert f'{present} is set but {missing} is not' in one_line_error(result)
    assert sandbox.requests_log == []



def test_key_file_option_wins_over_the_environment(sandbox: Sandbox,
                                                   clean_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    key_file = tmp_path / 'kraken.key'
    key_file.write_text(f'{sandbox.key}\n{sandbox.secret}\n')
    key_file.chmod(0o600)
    env = {**clean_env, 'KRAKEN_API_KEY': 'wrong', 'KRAKEN_API_SECRET': 'd3Jvbmc='}
    result = krakenex_cmd('--uri', sandbox.url, '--key-file', str(key_file), 'Balance', env=env)
    assert result.returncode == 0, result.stderr
    assert 'ZUSD' in json.loads(result.stdout)


def test_default_key_file_in_xdg_config_home_is_read(sandbox: Sandbox,
                                                     clean_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    config = tmp_path / 'config'
    (config / 'krakenex').mkdir(parents=True)
    key_file = config / 'krakenex' / 'kraken.key'
    key_file.write_text(f'{sandbox.key}\n{sandbox.secret}\n')
    key_file.chmod(0o600)
    env = {**clean_env, 'XDG_CONFIG_HOME': str(config)}
    result = krakenex_cmd('--uri', sandbox.url, 'Balance', env=env)
    assert result.returncode == 0, result.stderr
    assert 'ZUSD' in json.loads(result.stdout)


def test_otp_option_sends_the_one_time_password(clean_env: dict[str, str]) -> None:
    with Sandbox(otp='424242') as guarded:
        env = {**clean_env, 'KRAKEN_API_KEY': guarded.key, 'KRAKEN_API_SECRET': guarded.secret}
        without = krakenex_cmd('--uri', guarded.url, 'Balance', env=env)
        with_otp = krakenex_cmd('--uri', guarded.url, '--otp', '424242', 'Balance', env=env)
    assert without.returncode == 1
    assert one_line_error(without) == 'krakenex: EGeneral:Permission denied'
    assert with_otp.returncode == 0, with_otp.stderr


def test_verbose_logs_the_call_to_stderr_but_never_the_secret(run: Run,
                                                              sandbox: Sandbox) -> None:
    result = run('--verbose', 'Balance', 'rebase_multiplier=rebased')
    assert result.returncode == 0, result.stderr
    assert 'Balance private call' in result.stderr and 'POST Balance -> 200' in result.stderr
    assert sandbox.secret not in result.stderr + result.stdout
    assert 'rebased' not in result.stderr  # parameter names are logged, never their values


# ---------------------------------------------------------------- --sandbox

def test_sandbox_flag_runs_balance_with_no_credentials_anywhere(
        clean_env: dict[str, str]) -> None:
    result = krakenex_cmd('--sandbox', 'Balance', env=clean_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['ZUSD'] == '100000.0000'


def test_sandbox_flag_places_a_paper_order(clean_env: dict[str, str]) -> None:
    result = krakenex_cmd('--sandbox', 'AddOrder', 'pair=XBTUSD', 'type=buy',
                          'ordertype=market', 'volume=0.01', env=clean_env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)['txid']) == 1


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_sandbox_command_prints_url_key_secret_and_serves_until_interrupted(
        clean_env: dict[str, str]) -> None:
    proc = subprocess.Popen([sys.executable, '-m', 'krakenex', 'sandbox', '--seed', '3'],
                            env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    try:
        assert proc.stdout is not None
        shown = dict(proc.stdout.readline().rstrip('\n').split(': ', 1) for _ in range(3))
        assert set(shown) == {'url', 'key', 'secret'}
        with API(shown['key'], shown['secret'], uri=shown['url']) as api:
            assert 'ZUSD' in api.query_private('Balance')['result']
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.communicate()


# ------------------------------------------------------------- --all, --csv

def test_all_fetches_every_ledgers_page_with_each_entry_exactly_once(
        run: Run, sandbox: Sandbox) -> None:
    expected = ledger_ids(sandbox)
    sandbox.requests_log.clear()
    result = run('--all', 'Ledgers')
    assert result.returncode == 0, result.stderr
    # object_pairs_hook=list keeps every key, so a repeated ledger id would show.
    top = dict(json.loads(result.stdout, object_pairs_hook=list))
    ids = [ledger_id for ledger_id, _ in top['ledger']]
    assert len(ids) == len(set(ids)) == top['count'] == len(expected) > 150
    assert set(ids) == set(expected)
    assert [m for m, _ in sandbox.requests_log].count('Ledgers') > 3


def test_all_pages_trades_with_since_and_last_keeping_each_trade_once(
        run: Run, sandbox: Sandbox) -> None:
    since = str(int(time.time()) - 3 * 3600)
    with API(uri=sandbox.url) as api:
        expected = api.query_public('Trades', {'pair': 'XBTUSD', 'since': since})['result']
    sandbox.requests_log.clear()
    result = run('--all', '--tier', 'none', 'Trades', 'pair=XBTUSD', f'since={since}',
                 'count=200')
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)['XXBTZUSD']
    trade_ids = [row[6] for row in rows]
    assert len(trade_ids) == len(set(trade_ids))
    assert trade_ids[:len(expected['XXBTZUSD'])] == [row[6] for row in expected['XXBTZUSD']]
    assert [m for m, _ in sandbox.requests_log].count('Trades') > 3


def test_all_is_paced_under_the_tier_so_kraken_never_refuses(
        account_env: dict[str, str]) -> None:
    with Sandbox(tier=(2, 10)) as strict:
        env = {**account_env, 'KRAKEN_API_KEY': strict.key, 'KRAKEN_API_SECRET': strict.secret}
        unpaced = krakenex_cmd('--uri', strict.url, '--tier', 'none', '--retries', '0',
                               '--all', 'Ledgers', env=env)
        time.sleep(0.3)  # let the sandbox's counter decay
        paced = krakenex_cmd('--uri', strict.url, '--tier', '2,10', '--retries', '0',
                             '--all', 'Ledgers', env=env)
    assert unpaced.returncode == 1
    assert one_line_error(unpaced) == 'krakenex: EAPI:Rate limit exceeded'
    assert paced.returncode == 0, paced.stderr
    assert paced.stderr == ''


def test_csv_ledgers_parse_back_with_one_row_per_entry(run: Run, sandbox: Sandbox) -> None:
    count = len(ledger_ids(sandbox))
    result = run('--all', '--csv', 'Ledgers')
    assert result.returncode == 0, result.stderr
    reader = csv.DictReader(io.StringIO(result.stdout))
    rows = list(reader)
    assert reader.fieldnames is not None and reader.fieldnames[0] == 'id'
    assert {'refid', 'time', 'type', 'asset', 'amount', 'fee', 'balance'} <= set(reader.fieldnames)
    assert len(rows) == len({row['id'] for row in rows}) == count


def test_csv_closed_orders_flatten_descr_into_columns(run: Run) -> None:
    count = json.loads(run('ClosedOrders').stdout)['count']
    result = run('--all', '--csv', 'ClosedOrders')
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == count
    assert all(row['descr.order'].startswith(row['descr.type']) for row in rows)


def test_csv_ohlc_has_one_row_per_candle(run: Run) -> None:
    result = run('--csv', 'OHLC', 'pair=XBTUSD', 'interval=1440')
    reader = csv.DictReader(io.StringIO(result.stdout))
    rows = list(reader)
    assert reader.fieldnames == ['time', 'open', 'high', 'low', 'close', 'vwap', 'volume',
                                 'count']
    assert len(rows) == 720  # Kraken serves at most 720 candles, and the sandbox all of them
    times = [int(row['time']) for row in rows]
    assert {b - a for a, b in zip(times[:-1], times[1:], strict=True)} == {86400}


def test_progress_bar_is_drawn_when_stderr_is_a_terminal(sandbox: Sandbox,
                                                         account_env: dict[str, str]) -> None:
    code, shown, stdout = run_on_terminal(['--uri', sandbox.url, '--all', 'Ledgers'],
                                          account_env, 'stderr')
    count = json.loads(stdout)['count']
    assert code == 0
    assert '\r' in shown and f'Ledgers: [{"#" * 30}] {count}/{count} rows' in shown
    assert shown.endswith(' pages\x1b[K\n')


def test_no_progress_bar_when_stderr_is_piped(run: Run) -> None:
    result = run('--all', 'Ledgers')
    assert result.returncode == 0
    assert result.stderr == ''


# --------------------------------------------------------------- help, start

def test_help_lists_the_methods_by_group(clean_env: dict[str, str]) -> None:
    result = krakenex_cmd('--help', env=clean_env)
    assert result.returncode == 0
    groups = ['Market data (public):', 'Account data:', 'Trading:', 'Funding:', 'Earn:']
    where = [result.stdout.index(group) for group in groups]
    assert where == sorted(where)
    assert 'Ticker' in result.stdout and 'best prices, last trade, volume' in result.stdout
    assert 'exit codes:' in result.stdout and '.config/krakenex/kraken.key' in result.stdout


def test_help_method_shows_its_parameters(clean_env: dict[str, str]) -> None:
    result = krakenex_cmd('help', 'AddOrder', env=clean_env)
    assert result.returncode == 0
    assert 'group:          Trading' in result.stdout
    assert 'changes state:  yes' in result.stdout
    assert 'pair*  type*  ordertype*  volume*  price' in result.stdout


def test_version_prints_the_version(clean_env: dict[str, str]) -> None:
    result = krakenex_cmd('--version', env=clean_env)
    assert result.stdout == f'krakenex {krakenex.__version__}\n'


def test_help_imports_neither_requests_nor_the_api_nor_the_sandbox(
        clean_env: dict[str, str]) -> None:
    # The package's __init__ is bypassed: this checks what the command itself imports.
    probe = f'''
import contextlib, io, sys, types
package = types.ModuleType('krakenex')
package.__path__ = [{str(PACKAGE)!r}]
sys.modules['krakenex'] = package
from krakenex.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(['--help'])
print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3')
                   or m in ('krakenex.api', 'krakenex.errors', 'krakenex.sandbox')))
'''
    result = subprocess.run([sys.executable, '-c', probe], env=clean_env, capture_output=True,
                            text=True, timeout=30)
    assert result.stdout == '0 []\n', result.stderr


def test_krakenex_help_through_the_package_does_not_import_requests(
        clean_env: dict[str, str]) -> None:
    eager = subprocess.run([sys.executable, '-c',
                            'import sys, krakenex; print("requests" in sys.modules)'],
                           env=clean_env, capture_output=True, text=True, timeout=30)
    assert eager.stdout == 'False\n', 'import krakenex loads requests: ' + eager.stderr
    result = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'krakenex', '--help'],
                            env=clean_env, capture_output=True, text=True, timeout=30)
    imported = {line.rsplit('|', 1)[-1].strip() for line in result.stderr.splitlines()}
    assert result.returncode == 0
    assert not {'requests', 'krakenex.api', 'krakenex.sandbox'} & imported


# ------------------------------------------------------------------ --output

def test_output_option_writes_a_json_result_to_the_file(run: Run, tmp_path: Path) -> None:
    target = tmp_path / 'ticker.json'
    result = run('Ticker', 'pair=XBTUSD', '-o', str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ''
    assert list(json.loads(target.read_text())) == ['XXBTZUSD']


def test_output_option_writes_a_csv_result_to_the_file(run: Run, tmp_path: Path) -> None:
    target = tmp_path / 'ohlc.csv'
    result = run('--csv', 'OHLC', 'pair=XBTUSD', 'interval=1440', '--output', str(target))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 720 and rows[0]['open']


def test_output_file_replaces_what_it_held_when_the_call_succeeds(run: Run,
                                                                  tmp_path: Path) -> None:
    target = tmp_path / 'time.json'
    target.write_text('x' * 1000)
    assert run('Time', '-o', str(target)).returncode == 0
    assert set(json.loads(target.read_text())) == {'unixtime', 'rfc1123'}


def test_output_file_is_left_as_it_was_when_kraken_refuses_the_call(run: Run,
                                                                    tmp_path: Path) -> None:
    target = tmp_path / 'placed.json'
    target.write_text('yesterday\n')
    result = run('AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market', 'volume=1000',
                 '-o', str(target))
    assert result.returncode == 1
    assert one_line_error(result) == 'krakenex: EOrder:Insufficient funds'
    assert target.read_text() == 'yesterday\n'


def test_output_file_that_cannot_be_opened_exits_2_and_sends_nothing(
        run: Run, sandbox: Sandbox, tmp_path: Path) -> None:
    result = run('AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market', 'volume=0.01',
                 '-o', str(tmp_path / 'no-such-directory' / 'placed.json'))
    assert result.returncode == 2
    assert 'No such file or directory' in one_line_error(result)
    assert sandbox.requests_log == [] and sandbox.orders() == []


# ----------------------------------------------- after sending: exit code 4

ADD_ORDER = ('AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market', 'volume=0.01',
             'userref=42')
needs_dev_full = pytest.mark.skipif(not os.path.exists('/dev/full'),
                                    reason='needs /dev/full, a device that is always full')


def accepted_once(sandbox: Sandbox, line: str) -> None:
    """The order was placed exactly once, and the error line names its txid."""
    orders = sandbox.orders()
    assert [o['userref'] for o in orders] == [42]
    assert orders[0]['txid'] in line
    assert [m for m, _ in sandbox.requests_log].count('AddOrder') == 1


@needs_dev_full
def test_addorder_whose_output_file_cannot_be_written_exits_4_with_its_txid(
        run: Run, sandbox: Sandbox) -> None:
    result = run(*ADD_ORDER, '--output', '/dev/full')
    assert result.returncode == 4
    line = one_line_error(result)
    assert 'AddOrder was sent and Kraken accepted it' in line
    assert 'cannot write the result to /dev/full: No space left on device' in line
    assert 'do not resubmit' in line
    accepted_once(sandbox, line)


@needs_dev_full
def test_addorder_whose_stdout_is_full_exits_4_with_its_txid(
        sandbox: Sandbox, account_env: dict[str, str]) -> None:
    with open('/dev/full', 'w') as full:
        result = subprocess.run([sys.executable, '-m', 'krakenex', '--uri', sandbox.url,
                                 *ADD_ORDER], env=account_env, stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=30)
    assert result.returncode == 4
    line = one_line_error(result)
    assert 'cannot write the result to stdout: No space left on device' in line
    accepted_once(sandbox, line)


def run_with_stdout_closed_by_its_reader(args: list[str], env: dict[str, str]
                                         ) -> subprocess.CompletedProcess[str]:
    """Run the command with stdout a pipe whose reader is already gone (as ``| head -c0``)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([sys.executable, '-m', 'krakenex', *args], env=env,
                              stdout=writer, stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(writer)


def test_addorder_whose_stdout_reader_went_away_exits_4_with_its_txid(
        sandbox: Sandbox, account_env: dict[str, str]) -> None:
    result = run_with_stdout_closed_by_its_reader(['--uri', sandbox.url, *ADD_ORDER],
                                                  account_env)
    assert result.returncode == 4
    line = one_line_error(result)
    assert 'cannot write the result to stdout: Broken pipe' in line
    accepted_once(sandbox, line)


def test_read_only_call_whose_stdout_reader_went_away_exits_quietly(
        sandbox: Sandbox, account_env: dict[str, str]) -> None:
    result = run_with_stdout_closed_by_its_reader(['--uri', sandbox.url, 'Time'], account_env)
    assert result.returncode == 141  # what a shell reports for a reader that went away
    assert result.stderr == ''


def test_addorder_with_stdout_closed_from_the_start_exits_2_and_sends_nothing(
        sandbox: Sandbox, account_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, '-m', 'krakenex', '--uri', sandbox.url,
                             *ADD_ORDER], env=account_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, timeout=30,
                            preexec_fn=lambda: os.close(1))  # krakenex ... >&-
    assert result.returncode == 2
    assert 'stdout is closed' in one_line_error(result)
    assert sandbox.requests_log == [] and sandbox.orders() == []


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_addorder_interrupted_while_in_flight_exits_4_and_names_its_userref(
        sandbox: Sandbox, account_env: dict[str, str]) -> None:
    sandbox.inject('reply_delayed', method='AddOrder', seconds=5)  # placed, then no reply
    proc = subprocess.Popen([sys.executable, '-m', 'krakenex', '--uri', sandbox.url,
                             *ADD_ORDER], env=account_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 20
    while not sandbox.orders() and time.monotonic() < deadline:
        time.sleep(0.02)  # until the order is placed and the command waits for the reply
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    line = one_line_error(subprocess.CompletedProcess([], 4, out, err))
    assert 'outcome unknown: AddOrder may have reached Kraken but it was interrupted' in line
    assert 'krakenex OpenOrders userref=42 and krakenex ClosedOrders userref=42' in line


@pytest.mark.parametrize(('fault', 'code'), [
    ('reply_lost', 4), ('reply_delayed', 4), ('delay', 4), ('not_json', 4), ('reset', 4),
    ('html520', 4), ('html502', 4), ('html504', 4), ('unavailable', 1),
    *[(kind, 4) for kind in sorted(ODD_REPLIES)],  # 2xx, but not Kraken's envelope
])
def test_addorder_under_each_sandbox_fault_exits_4_unless_kraken_answered(
        run: Run, sandbox: Sandbox, fault: str, code: int) -> None:
    sandbox.inject(fault, method='AddOrder', seconds=2)
    result = run('--timeout', '0.5', *ADD_ORDER)
    assert result.returncode == code
    assert result.stdout == ''  # nothing printed as if it were the result
    line = one_line_error(result)
    if code == 4:
        assert 'may or may not have taken effect' in line and 'userref=42' in line
    else:
        assert line == 'krakenex: EService:Unavailable'
    assert len(sandbox.orders()) <= 1  # never sent again (a resend would have succeeded)


@needs_dev_full
def test_raw_addorder_refused_by_kraken_exits_1_even_if_the_output_cannot_be_written(
        run: Run, sandbox: Sandbox) -> None:
    result = run('--raw', 'AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market',
                 'volume=1000', '-o', '/dev/full')
    assert result.returncode == 1  # Kraken refused it: nothing is in doubt
    assert one_line_error(result) == ('krakenex: EOrder:Insufficient funds (and cannot write '
                                      'the result to /dev/full: No space left on device)')
    assert sandbox.orders() == []


@needs_dev_full
def test_read_only_call_whose_output_file_cannot_be_written_exits_2(run: Run) -> None:
    result = run('Balance', '-o', '/dev/full')
    assert result.returncode == 2
    assert one_line_error(result) == ('krakenex: cannot write the result to /dev/full: '
                                      'No space left on device')


@pytest.mark.parametrize('fault', ['reply_lost', 'not_json', 'reset', 'html502', 'delay',
                                   'empty_object', 'no_result', 'json_null', 'error_text'])
def test_read_only_call_under_each_sandbox_fault_exits_3_with_one_line(
        run: Run, sandbox: Sandbox, fault: str) -> None:
    sandbox.inject(fault, seconds=2)
    result = run('--retries', '0', '--timeout', '0.5', 'Balance')
    assert result.returncode == 3
    assert 'Balance' in one_line_error(result)


def test_addorder_that_could_not_connect_exits_3_as_nothing_was_sent(
        account_env: dict[str, str]) -> None:
    with Sandbox() as stopped:
        url = stopped.url
    result = krakenex_cmd('--uri', url, '--retries', '0', *ADD_ORDER, env=account_env)
    assert result.returncode == 3
    line = one_line_error(result)
    assert 'could not connect' in line and 'nothing was sent' in line


# ------------------------------------------------------------------ fuzzing

#: Examples per property: a small fixed budget in the suite, more on demand with
#: KRAKENEX_FUZZ_EXAMPLES=5000 pytest tests/test_cli.py -k fuzz (then drawn at random).
FUZZ_EXAMPLES = int(os.environ.get('KRAKENEX_FUZZ_EXAMPLES', '0'))
fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES or 50, derandomize=not FUZZ_EXAMPLES, deadline=None,
    database=None, suppress_health_check=[HealthCheck.too_slow])

READ_ONLY = sorted(name for name, m in methods.METHODS.items() if not m.changes_state)
ORDERS = ['AddOrder', 'CancelOrder', 'EditOrder', 'AmendOrder', 'CancelAll']
#: Text without a leading '-', so that no generated word is taken for an option.
word = st.text(min_size=1, max_size=20).filter(lambda t: not t.startswith('-'))


def json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of ``inner``: how JSON nests."""
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    json_containers, max_leaves=10)
param = (
    st.builds('{}={}'.format, word.filter(lambda t: '=' not in t), st.text(max_size=30))
    | st.builds('{}:={}'.format, word.filter(lambda t: '=' not in t),
                json_value.map(json.dumps) | st.text(max_size=30))
    | word)
number_text = st.one_of(st.text(max_size=12), st.floats().map(repr),
                        st.integers().map(str),
                        st.sampled_from(['nan', '-inf', 'inf', '1e400', '0', '-0', '1e-400']))


@st.composite
def command_lines(draw: st.DrawFn, url: str, scratch: Path) -> list[str]:
    """A command line aimed at the sandbox at ``url``: options, a method, its parameters.

    Half are tidy (a known read-only method, its own parameter names, sane
    option values) so that calls reach the sandbox; the rest are anything.
    Every value that names a place stays on 127.0.0.1 or in ``scratch``.
    """
    tidy = draw(st.booleans())
    def pick(good: list[str], anything: st.SearchStrategy[str]) -> str:
        return draw(st.sampled_from(good) if tidy else st.sampled_from(good) | anything)

    argv = ['--uri', pick([url], st.sampled_from([url + '/', url + '/0'])
                          | st.builds('http://127.0.0.1:{}'.format, st.text(max_size=6))
                          | st.builds('x{}'.format, st.text(max_size=20)))]
    optional = ['--timeout', '--retries', '--tier', '--output', '--raw', '--csv', '--verbose']
    if not tidy:
        optional += ['--otp', '--key-file', '--private', '--public']
    for option in draw(st.lists(st.sampled_from(optional), max_size=2, unique=True)):
        if option in ('--timeout', '--retries'):
            argv += [option, pick(['1', '3', '10'], st.just('0.001') | number_text.filter(
                lambda t: not t.startswith('-')))]
        elif option == '--tier':
            argv += [option, pick(['starter', 'pro', 'none', '20,1'],
                                  st.builds('{},{}'.format, number_text, number_text))]
        elif option == '--otp':
            argv += [option, draw(word)]
        elif option == '--output':
            argv += [option, str(scratch / pick(['out'], st.just('no/such/dir/out')))]
        elif option == '--key-file':
            key_file = scratch / 'fuzz.key'
            key_file.write_bytes(draw(st.binary(max_size=80)))
            argv += [option, str(key_file)]
        else:
            argv.append(option)
    method = pick(READ_ONLY + ORDERS, word)
    known = methods.METHODS.get(method)
    names = [p.rstrip('*') for p in known.params.split()] if known else []
    valid = st.builds('{}={}'.format, st.sampled_from(names), st.sampled_from(
        ['XBTUSD', 'XXBTZUSD', 'ZUSD', 'XXBT', '0', '1', 'true']) | st.text(max_size=12)
                      ) if names else st.nothing()
    return [*argv, method, *draw(st.lists(valid if tidy else valid | param,
                                          max_size=4 if names or not tidy else 0,
                                          unique_by=lambda t: t.partition('=')[0]))]


def check_outcome(argv: list[str], code: int, stderr: str) -> None:
    """What every run must give: a documented exit code, and errors as krakenex: lines.

    With --verbose, stderr is a log (and a traceback is asked for), so only its last line counts.
    """
    event(f'exit code {code}')
    assert code in (0, 1, 2, 3, 4), (code, stderr)
    lines = stderr.splitlines()
    if code:
        assert lines, 'a failure with nothing on stderr'
        assert lines[-1].startswith('krakenex: '), stderr
    if '--verbose' not in argv:
        assert 'Traceback' not in stderr
        assert all(line.startswith('krakenex: ') for line in lines), stderr
    assert 'krakenex: unexpected' not in stderr, stderr
    if code == 4:
        assert 'outcome unknown' in lines[-1] or 'Kraken accepted it' in lines[-1], stderr


@pytest.fixture(scope='module')
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    """One sandbox for the whole module, its account in the environment, no key file at home."""
    scratch = tmp_path_factory.mktemp('fuzz')
    with Sandbox() as target, pytest.MonkeyPatch.context() as env:
        env.setenv('KRAKEN_API_KEY', target.key)
        env.setenv('KRAKEN_API_SECRET', target.secret)
        env.setenv('XDG_CONFIG_HOME', str(scratch / 'config'))
        yield target, scratch


@contextlib.contextmanager
def with_fault(target: Sandbox, data: st.DataObject) -> Iterator[None]:
    """Maybe give the next request one of the sandbox's faults; forget it afterwards."""
    # A trickled reply takes the whole deadline: tests of its own cover it.
    fault = data.draw(st.none() | st.sampled_from(sorted(FAULT_KINDS - {'trickle'})))
    if fault is not None:
        target.inject(fault, seconds=0.2)
    try:
        yield
    finally:
        target.clear_faults()


@fuzz_settings
@given(data=st.data())
def test_fuzz_command_line_in_process_gives_a_known_exit_code_and_one_line_errors(
        fuzz_target: tuple[Sandbox, Path], data: st.DataObject) -> None:
    target, scratch = fuzz_target
    argv = data.draw(command_lines(target.url, scratch))
    with with_fault(target, data):
        code, _, stderr = in_process(argv)
    check_outcome(argv, code, stderr)


@settings(fuzz_settings, max_examples=max(FUZZ_EXAMPLES // 20, 6))
@given(data=st.data())
def test_fuzz_command_line_in_a_subprocess_gives_a_known_exit_code_and_one_line_errors(
        fuzz_target: tuple[Sandbox, Path], data: st.DataObject) -> None:
    target, scratch = fuzz_target
    argv = data.draw(command_lines(target.url, scratch))
    assume(not any('\x00' in arg for arg in argv))  # no process can be given a NUL
    with with_fault(target, data):
        result = krakenex_process(*argv, env={**os.environ, 'PYTHONIOENCODING': 'utf-8'})
    check_outcome(argv, result.returncode, result.stderr)


def test_help_names_every_command_and_every_option_of_the_sandbox_command() -> None:
    from krakenex.cli.sandbox import parser as sandbox_parser

    code, out, _ = in_process(['--help'])
    assert code == 0
    usage = out.split('\n\n')[0]
    for command in ('krakenex --futures', 'krakenex ws', 'krakenex share', 'krakenex sandbox'):
        assert command in usage
    options = {option for action in sandbox_parser()._actions
               for option in action.option_strings} - {'-h', '--help'}
    assert {option for option in options if f'[{option}' not in usage} == set()
    assert 'KRAKEN_API_URL' in out
    for argv in (['--futures', '--help'], ['ws', '--help'], ['sandbox', '--help']):
        code, shown, _ = in_process(argv)
        assert code == 0 and shown.startswith('usage: krakenex '), argv
