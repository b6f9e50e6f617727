"""``krakenex --futures``: Kraken Futures from the shell, with the exit codes of ``krakenex``."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import default_sigint, without_sunset

from krakenex.cli import main
from krakenex.futures.sunset import NOTICE
from krakenex.sandbox import Sandbox

ORDER = ['sendorder', 'orderType=lmt', 'symbol=PF_XBTUSD', 'side=buy', 'size=0.01',
         'limitPrice=50000', 'cliOrdId=cli-1']


def key_file(tmp_path: Path, sandbox: Sandbox) -> str:
    path = tmp_path / 'futures.key'
    path.write_text(f'{sandbox.futures.key}\n{sandbox.futures.secret}\n')
    path.chmod(0o600)
    return str(path)


def test_public_endpoint_as_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['--futures', '--sandbox', 'tickers', '--csv']) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {'PF_XBTUSD', 'PF_ETHUSD'} <= {r['symbol'] for r in rows}
    assert {r['suspended'] for r in rows} == {'false'}


def test_sendorder_prints_the_send_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['--futures', '--sandbox', *ORDER]) == 0
    assert json.loads(capsys.readouterr().out)['status'] == 'placed'


def test_a_refused_order_exits_1_with_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    big = [arg if not arg.startswith('size=') else 'size=1000' for arg in ORDER]
    assert main(['--futures', '--sandbox', *big]) == 1
    assert 'insufficientAvailableFunds' in capsys.readouterr().err


def test_credentials_from_a_key_file_and_errors_from_kraken(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = key_file(tmp_path, sandbox)
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys, *ORDER]) == 0
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 'openorders']) == 0
    out = capsys.readouterr().out
    assert '"cliOrdId":"cli-1"' in out  # compact JSON when piped
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 'openorders', 'symbol=x']) == 1
    assert 'invalidArgument' in capsys.readouterr().err


def test_a_lost_reply_exits_4_and_names_the_order(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.inject('reply_lost', method='sendorder')
    keys = key_file(tmp_path, sandbox)
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys, *ORDER]) == 4
    assert 'cliOrdId cli-1' in capsys.readouterr().err
    assert [o.cli_ord_id for o in sandbox.futures.orders(sandbox.futures.key)] == ['cli-1']


def test_usage_errors_exit_2(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv('KRAKEN_FUTURES_KEY', raising=False)
    monkeypatch.delenv('KRAKEN_FUTURES_SECRET', raising=False)
    assert main(['--futures', 'accounts', '--uri', 'http://127.0.0.1:9']) == 2
    assert 'KRAKEN_FUTURES_KEY' in capsys.readouterr().err
    assert main(['--futures', '--sandbox', '--uri', 'http://x', 'tickers']) == 2
    assert main(['--futures', '--sandbox', 'tickers', 'notaparameter']) == 2


# ------------------------------------------ failures after an order may have reached Kraken

needs_dev_full = pytest.mark.skipif(not os.path.exists('/dev/full'),
                                    reason='needs /dev/full, a device that is always full')


def futures_process(sandbox: Sandbox, tmp_path: Path, *args: str, **popen: Any
                    ) -> subprocess.CompletedProcess[str]:
    """``python -m krakenex --futures --uri SANDBOX --key-file KEYS ARGS...`` in its own process."""
    command = [sys.executable, '-m', 'krakenex', '--futures', '--uri', sandbox.futures_url,
               '--key-file', key_file(tmp_path, sandbox), *args]
    return subprocess.run(command, stderr=subprocess.PIPE, text=True, timeout=60, **popen)


def placed_once(sandbox: Sandbox, line: str) -> None:
    """The order was placed exactly once, and the error line names it: cliOrdId and order_id."""
    orders = sandbox.futures.orders(sandbox.futures.key)
    assert [o.cli_ord_id for o in orders] == ['cli-1']
    assert 'cli-1' in line and orders[0].order_id in line
    assert 'sendorder was sent and Kraken accepted it' in line and 'do not resubmit' in line


SUNSET_LINE = f'krakenex: {NOTICE}'


def only_line(stderr: str) -> str:
    lines = without_sunset(stderr).splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith('krakenex: ')
    return lines[0]


def test_sendorder_with_csv_exits_2_and_sends_nothing(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file',
                 key_file(tmp_path, sandbox), *ORDER, '--csv']) == 2
    assert 'leave out --csv' in capsys.readouterr().err
    assert sandbox.futures.orders(sandbox.futures.key) == []


@needs_dev_full
@pytest.mark.parametrize('output', [[], ['--raw']], ids=['result', 'raw'])
def test_sendorder_whose_stdout_is_full_exits_4_naming_the_order(
        sandbox: Sandbox, tmp_path: Path, output: list[str]) -> None:
    with open('/dev/full', 'w') as full:
        result = futures_process(sandbox, tmp_path, *ORDER, *output, stdout=full)
    assert result.returncode == 4
    line = only_line(result.stderr)
    assert 'cannot write the result to stdout: No space left on device' in line
    placed_once(sandbox, line)


def run_with_stdout_closed_by_its_reader(sandbox: Sandbox, tmp_path: Path, *args: str
                                         ) -> subprocess.CompletedProcess[str]:
    """Run the command with stdout a pipe whose reader is already gone (as ``| head -c0``)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return futures_process(sandbox, tmp_path, *args, stdout=writer)
    finally:
        os.close(writer)


def test_sendorder_whose_stdout_reader_went_away_exits_4_naming_the_order(
        sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_with_stdout_closed_by_its_reader(sandbox, tmp_path, *ORDER)
    assert result.returncode == 4
    line = only_line(result.stderr)
    assert 'cannot write the result to stdout: Broken pipe' in line
    placed_once(sandbox, line)


def test_read_only_endpoint_whose_stdout_reader_went_away_exits_quietly(
        sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_with_stdout_closed_by_its_reader(sandbox, tmp_path, 'openorders')
    assert result.returncode == 141  # what a shell reports for a reader that went away
    assert without_sunset(result.stderr) == ''


def test_the_command_says_once_on_stderr_that_kraken_ends_futures_rest(
        sandbox: Sandbox, tmp_path: Path) -> None:
    result = futures_process(sandbox, tmp_path, 'openorders', stdout=subprocess.PIPE)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [SUNSET_LINE]
    assert '1 March 2027' in SUNSET_LINE and 'unified=True' in SUNSET_LINE
    assert isinstance(json.loads(result.stdout), list)  # the open orders, as Kraken listed them


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_sendorder_interrupted_while_in_flight_exits_4_and_names_its_cliordid(
        sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.inject('reply_delayed', method='sendorder', seconds=5)  # placed, then no reply
    command = [sys.executable, '-m', 'krakenex', '--futures', '--uri', sandbox.futures_url,
               '--key-file', key_file(tmp_path, sandbox), *ORDER]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 20
    while not sandbox.futures.orders(sandbox.futures.key) and time.monotonic() < deadline:
        time.sleep(0.02)  # until the order is placed and the command waits for the reply
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    line = only_line(err)
    assert 'outcome unknown: sendorder may have reached Kraken but it was interrupted' in line
    assert 'cliOrdId cli-1' in line and 'orders/status cliOrdIds=cli-1' in line
    assert out == ''


def test_sendorder_with_stdout_closed_from_the_start_exits_2_and_sends_nothing(
        sandbox: Sandbox, tmp_path: Path) -> None:
    result = futures_process(sandbox, tmp_path, *ORDER, stdout=subprocess.DEVNULL,
                             preexec_fn=lambda: os.close(1))  # krakenex ... >&-
    assert result.returncode == 2
    assert 'stdout is closed' in only_line(result.stderr)
    assert sandbox.futures.orders(sandbox.futures.key) == []


# ------------------------------------------------------------ names and options

def untouched(sandbox: Sandbox) -> bool:
    """Whether no request reached the sandbox since the ``reset`` fault below was queued.

    The fault waits for the next request of any kind; a public call that meets it now shows
    that no request before it did.
    """
    from krakenex import KrakenConnectionError
    from krakenex.futures import FuturesAPI

    with FuturesAPI(uri=sandbox.futures_url, retries=0) as probe:
        try:
            probe.query_public('tickers')
        except KrakenConnectionError:
            return True
    return False


@pytest.mark.parametrize(('args', 'suggested'), [
    (['tikers'], 'did you mean tickers?'),
    (['acounts'], 'did you mean accounts'),
    (['sendordr', 'symbol=PF_XBTUSD'], 'did you mean sendorder'),
])
def test_a_misspelt_endpoint_exits_2_naming_the_close_ones_and_sends_nothing(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], suggested: str) -> None:
    sandbox.inject('reset')
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file',
                 key_file(tmp_path, sandbox), *args]) == 2
    line = only_line(capsys.readouterr().err)
    assert f"'{args[0]}' is not one of Kraken Futures' endpoints" in line and suggested in line
    assert 'add --private' in line
    assert untouched(sandbox)


def test_an_endpoint_krakenex_does_not_know_goes_with_private_or_public(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = key_file(tmp_path, sandbox)
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 '--public', '--verb', 'GET', 'instruments']) == 0
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 '--private', 'assignmentprogram/add']) == 4  # a change: 404 leaves it in doubt
    assert "assignmentprogram/add was sent" in capsys.readouterr().err


def test_a_public_path_below_a_known_endpoint_is_known(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['--futures', '--sandbox', 'tickers/PF_XBTUSD']) == 0
    assert json.loads(capsys.readouterr().out)['symbol'] == 'PF_XBTUSD'


def test_json_is_compact_when_piped_and_goes_to_the_output_file(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys, saved = key_file(tmp_path, sandbox), tmp_path / 'accounts.json'
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 'accounts', '-o', str(saved)]) == 0
    assert capsys.readouterr().out == ''
    text = saved.read_text()
    assert '\n' not in text.rstrip('\n') and 'flex' in json.loads(text)


def test_json_is_indented_on_a_terminal(sandbox: Sandbox, tmp_path: Path) -> None:
    from test_cli import run_on_terminal

    code, shown, _ = run_on_terminal(['--futures', '--uri', sandbox.futures_url, '--key-file',
                                      key_file(tmp_path, sandbox), 'accounts'],
                                     dict(os.environ), 'stdout')
    assert code == 0 and shown.startswith('{\n  "')


def test_verbose_logs_the_call_and_retries_are_one_krakenex_line_each(
        sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.inject('html502', method='tickers')
    assert main(['--futures', '--uri', sandbox.futures_url, 'tickers']) == 0
    retry, = capsys.readouterr().err.splitlines()
    assert retry.startswith('krakenex: tickers failed (Kraken Futures tickers answered HTTP '
                            '502')
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file',
                 key_file(tmp_path, sandbox), '-v', 'accounts']) == 0
    err = capsys.readouterr().err
    assert 'accounts private call to ' + sandbox.futures_url in err
    assert sandbox.futures.secret not in err


def test_retries_zero_gives_up_at_the_first_fault(
        sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.inject('html502', method='tickers')
    assert main(['--futures', '--uri', sandbox.futures_url, '--retries', '0', 'tickers']) == 3
    assert 'answered HTTP 502' in only_line(capsys.readouterr().err)


def test_tier_paces_on_the_keys_shared_budget_and_none_does_not(
        sandbox: Sandbox, tmp_path: Path) -> None:
    from krakenex.futures import FuturesAPI

    keys = key_file(tmp_path, sandbox)

    def spent() -> float:
        with FuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                        uri=sandbox.futures_url) as client:
            return float(client._store().status()['counters'].get('derivatives', 0))

    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 '--tier', 'none', 'accounts']) == 0
    assert spent() == 0
    assert main(['--futures', '--uri', sandbox.futures_url, '--key-file', keys,
                 '--tier', 'starter', *ORDER]) == 0
    assert spent() > 0  # sendorder's 10, decaying at 50 a second


def test_otp_is_refused_as_kraken_futures_takes_none(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['--futures', '--sandbox', '--otp', '123456', 'accounts']) == 2
    assert 'takes no one-time password' in only_line(capsys.readouterr().err)


def test_every_option_doc_futures_promises_from_krakenex_is_taken() -> None:
    from krakenex.cli.futures import _parser as futures_parser
    from krakenex.cli.rest import _parser as spot_parser

    def options(parser: Any) -> set[str]:
        return {o for action in parser._actions for o in action.option_strings}

    # doc/futures.rst: "with the options and exit codes of krakenex"; --all pages spot only,
    # and --engine paces spot's per-pair trading-engine limit
    assert options(spot_parser()) - options(futures_parser()) == {'--all', '--version',
                                                                   '--engine'}
