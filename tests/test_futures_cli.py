"""``krakenex --futures``: Kraken Futures from the shell, with the exit codes of ``krakenex``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

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
