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

from krakenex.cli import main
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
    assert '"cliOrdId": "cli-1"' in out
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


def only_line(stderr: str) -> str:
    lines = stderr.splitlines()
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
    assert result.stderr == ''


@pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')
def test_sendorder_interrupted_while_in_flight_exits_4_and_names_its_cliordid(
        sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.inject('reply_delayed', method='sendorder', seconds=5)  # placed, then no reply
    command = [sys.executable, '-m', 'krakenex', '--futures', '--uri', sandbox.futures_url,
               '--key-file', key_file(tmp_path, sandbox), *ORDER]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
