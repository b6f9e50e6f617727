"""What every krakenex command does alike: where its key comes from, what the key file
warns of, and how it writes Kraken's numbers.

Each test runs ``python -m krakenex`` against a sandbox on 127.0.0.1, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import without_sunset

from krakenex.sandbox import Reply, Sandbox

Command = Callable[..., 'subprocess.CompletedProcess[str]']


@pytest.fixture(scope='module')
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home of the test's own: no default key file unless the test writes one."""
    path = tmp_path / 'home'
    path.mkdir()
    return path


@pytest.fixture
def krakenex(home: Path) -> Command:
    """``python -m krakenex ARGS...`` with no Kraken variables but ``env``, at ``home``."""
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith('KRAKEN_') and k != 'XDG_CONFIG_HOME'}
        return subprocess.run([sys.executable, '-m', 'krakenex', *args],
                              env={**clean, 'HOME': str(home), **(env or {})},
                              capture_output=True, text=True, timeout=60)
    return run


def spot_key(sandbox: Sandbox, path: Path, mode: int = 0o600) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{sandbox.key}\n{sandbox.secret}\n')
    path.chmod(mode)
    return str(path)


def futures_key(sandbox: Sandbox, path: Path, mode: int = 0o600) -> str:
    path.write_text(f'{sandbox.futures.key}\n{sandbox.futures.secret}\n')
    path.chmod(mode)
    return str(path)


#: A private call of each command, as ``(prog, arguments before --key-file, after it)``.
PRIVATE_CALLS = {
    'rest': ('krakenex', lambda sb: ['--uri', sb.url], ['Balance']),
    'futures': ('krakenex', lambda sb: ['--futures', '--uri', sb.futures_url], ['accounts']),
    'ws': ('krakenex ws', lambda sb: ['ws', '--uri', sb.url, '--ws-auth-uri', sb.ws_auth_url,
                                      '--timeout', '10'], ['executions', '--count', '1']),
    'share': ('krakenex', lambda sb: ['share', 'status', '--uri', sb.url], []),
}


# ------------------------------------------------------------------ numbers

def test_a_number_kraken_sends_as_0_00000001_is_printed_as_0_00000001_not_1e_8(
        krakenex: Command) -> None:
    body = ('{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","fees":[[0,0.26],'
            '[50000,0.00000001]],"margin_call":80,"lot_multiplier":1.50}}}')
    with Sandbox() as sandbox:
        sandbox.add_route('/0/public/AssetPairs', lambda request: Reply(200, body.encode()))
        result = krakenex('--uri', sandbox.url, 'AssetPairs')
    assert result.returncode == 0, result.stderr
    assert result.stdout == ('{"XXBTZUSD":{"altname":"XBTUSD","fees":[[0,0.26],'
                             '[50000,0.00000001]],"margin_call":80,"lot_multiplier":1.50}}\n')


# ------------------------------------------------------------- credentials

@pytest.mark.parametrize('command', list(PRIVATE_CALLS))
def test_a_key_file_others_can_read_is_warned_of_in_one_line_and_the_call_still_goes_through(
        sandbox: Sandbox, krakenex: Command, tmp_path: Path, command: str) -> None:
    prog, before, after = PRIVATE_CALLS[command]
    write = futures_key if command == 'futures' else spot_key
    path = write(sandbox, tmp_path / 'kraken.key', 0o640)
    result = krakenex(*before(sandbox), '--key-file', path, *after)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert without_sunset(result.stderr) == (
        f'{prog}: key file {path!r} can be read by other users; make it '
                             f'private with: chmod 600 {path}\n')


@pytest.mark.parametrize('command', list(PRIVATE_CALLS))
def test_a_key_in_the_environment_without_its_secret_is_refused_before_anything_is_sent(
        sandbox: Sandbox, krakenex: Command, home: Path, command: str) -> None:
    prog, before, after = PRIVATE_CALLS[command]
    spot_key(sandbox, home / '.config' / 'krakenex' / 'kraken.key')  # not a way out of it
    variables = ('KRAKEN_FUTURES_KEY', 'KRAKEN_FUTURES_SECRET') if command == 'futures' else \
        ('KRAKEN_API_KEY', 'KRAKEN_API_SECRET')
    result = krakenex(*before(sandbox), *after, env={variables[0]: sandbox.key})
    assert result.returncode == 2
    assert result.stdout == ''
    assert result.stderr == (f'{prog}: {variables[0]} is set but {variables[1]} is not: set '
                             f'both, or neither\n')


@pytest.mark.parametrize('command', ['rest', 'ws', 'share'])
def test_the_default_key_file_serves_every_spot_command(
        sandbox: Sandbox, krakenex: Command, home: Path, command: str) -> None:
    _, before, after = PRIVATE_CALLS[command]
    spot_key(sandbox, home / '.config' / 'krakenex' / 'kraken.key')
    result = krakenex(*before(sandbox), *after)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stderr == ''


def test_the_futures_command_never_takes_the_spot_key_file_for_a_futures_key(
        sandbox: Sandbox, krakenex: Command, home: Path) -> None:
    spot_key(sandbox, home / '.config' / 'krakenex' / 'kraken.key')
    refused = krakenex('--futures', '--uri', sandbox.futures_url, 'accounts')
    assert refused.returncode == 2
    assert 'needs an API key and secret' in refused.stderr
    assert 'KRAKEN_FUTURES_KEY' in refused.stderr
    found = krakenex('--futures', '--uri', sandbox.futures_url, 'accounts',
                     env={'KRAKEN_FUTURES_KEY': sandbox.futures.key,
                          'KRAKEN_FUTURES_SECRET': sandbox.futures.secret})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)
