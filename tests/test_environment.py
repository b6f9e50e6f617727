"""KRAKEN_API_URL and its kin: a script written for Kraken reaches a sandbox unchanged.

Every client and command reads its server from the environment when none is
given (:func:`krakenex.core.server`); ``krakenex sandbox --env`` prints the
variables to set. Each test runs over real HTTP or a real WebSocket against a
sandbox on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shlex
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from krakenex import API, AsyncAPI, KrakenUsageError
from krakenex.cli import main
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox

#: A krakenex 2.x script as people wrote them: no address anywhere, the key from a file.
SCRIPT_2X = textwrap.dedent('''
    import krakenex

    k = krakenex.API()
    k.load_key('kraken.key')
    print(k.query_public('Time')['error'])
    print(k.query_private('Balance')['result']['ZUSD'])
''')


@pytest.fixture
def served() -> Iterator[dict[str, str]]:
    """``krakenex sandbox --env`` running in a process of its own: the variables it exported."""
    process = subprocess.Popen([sys.executable, '-m', 'krakenex', 'sandbox', '--env'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        exported: dict[str, str] = {}
        while 'KRAKEN_FUTURES_SECRET' not in exported:
            words = shlex.split(lines.get(timeout=30))
            assert words[0] == 'export', words
            name, _, value = words[1].partition('=')
            exported[name] = value
        yield exported
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_a_krakenex_2_script_with_load_key_reaches_the_sandbox_through_the_environment(
        served: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / 'script.py').write_text(SCRIPT_2X)
    key_file = tmp_path / 'kraken.key'  # the recipe of doc/migrating.rst
    key_file.write_text(f"{served['KRAKEN_API_KEY']}\n{served['KRAKEN_API_SECRET']}\n")
    key_file.chmod(0o600)
    env = {**os.environ, 'KRAKEN_API_URL': served['KRAKEN_API_URL']}
    done = subprocess.run([sys.executable, 'script.py'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split('\n')[:2] == ['[]', '100000.0000']


def test_every_client_and_command_reads_its_server_from_the_exported_variables(
        served: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in served.items():
        monkeypatch.setenv(name, value)
    with API() as api:
        assert api.uri == served['KRAKEN_API_URL']
        assert 'ZUSD' in api.query_private('Balance')['result']

    async def balance() -> object:
        async with AsyncAPI() as api:
            return (await api.query_private('Balance'))['result']['ZUSD']
    assert asyncio.run(balance()) == '100000.0000'
    with FuturesAPI(raise_errors=True) as futures:
        assert futures.uri == served['KRAKEN_FUTURES_URL']
        assert 'flex' in futures.query_private('accounts')['accounts']
    assert main(['Balance']) == 0
    assert '"ZUSD":"100000.0000"' in capsys.readouterr().out
    assert main(['--futures', 'accounts']) == 0
    assert '"flex"' in capsys.readouterr().out
    assert main(['ws', 'ticker', 'BTC/USD', '--count', '1']) == 0
    assert '"channel":"ticker"' in capsys.readouterr().out
    assert main(['ws', 'balances', '--count', '1']) == 0  # the token from the sandbox's key
    assert '"channel":"balances"' in capsys.readouterr().out


def test_an_address_given_outright_wins_over_the_environment(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('KRAKEN_API_URL', 'http://127.0.0.1:9')  # nothing listens there
    with API(uri=sandbox.url) as api:
        assert api.query_public('Time')['error'] == []


@pytest.mark.parametrize(('variable', 'make'), [
    ('KRAKEN_API_URL', lambda: API()),
    ('KRAKEN_FUTURES_URL', lambda: FuturesAPI()),
    ('KRAKEN_WS_URL', lambda: __import__('krakenex.ws', fromlist=['WS']).WS()),
])
def test_a_variable_that_is_not_a_server_address_is_a_usage_error_naming_it(
        monkeypatch: pytest.MonkeyPatch, variable: str, make: object) -> None:
    monkeypatch.setenv(variable, 'api.kraken.com')
    with pytest.raises(KrakenUsageError, match=variable):
        make()  # type: ignore[operator]


def test_the_command_names_a_bad_variable_and_exits_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv('KRAKEN_API_URL', 'api.kraken.com')
    assert main(['Time']) == 2
    assert "KRAKEN_API_URL 'api.kraken.com' is not a server address" in capsys.readouterr().err
