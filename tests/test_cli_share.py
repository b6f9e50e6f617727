"""``krakenex`` sharing a key between runs: ``--share``, ``krakenex share status|reset``.

Each command runs in a process of its own, as a user's re-runs do, against a
sandbox on 127.0.0.1; the autouse ``own_cache`` fixture gives the test its own
cache directory, which the processes inherit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from krakenex.sandbox import Sandbox

#: A small tier, so a run of five Ledgers pages (cost 2 each) fills the counter in a second.
TIER = (6.0, 3.0)


@pytest.fixture
def paced() -> Iterator[Sandbox]:
    with Sandbox(tier=TIER) as running:
        yield running


@pytest.fixture
def key_file(paced: Sandbox, tmp_path: Path) -> str:
    path = tmp_path / 'kraken.key'
    path.write_text(f'{paced.key}\n{paced.secret}\n')
    path.chmod(0o600)
    return str(path)


def krakenex(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-m', 'krakenex', *args], capture_output=True,
                          text=True, timeout=60, env=env)


def status(sandbox: Sandbox, key_file: str, *extra: str) -> dict[str, object]:
    done = krakenex('share', 'status', '--uri', sandbox.url, '--key-file', key_file, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_all_ledgers_run_twice_in_a_row_never_earns_a_rate_limit_error(
        paced: Sandbox, key_file: str) -> None:
    command = ('--uri', paced.url, '--key-file', key_file, '--tier', '6,3', '--retries', '0',
               '--all', 'Ledgers')
    first, second = krakenex(*command), krakenex(*command)
    assert (first.returncode, first.stderr) == (0, '')
    assert (second.returncode, second.stderr) == (0, '')
    assert json.loads(second.stdout)['count'] == 243
    # The sandbox counted every page of both runs, none refused.
    assert [m for m, _ in paced.requests_log].count('Ledgers') == 10


def test_without_sharing_the_same_re_run_is_refused_by_the_rate_limit(
        paced: Sandbox, key_file: str) -> None:
    command = ('--uri', paced.url, '--key-file', key_file, '--tier', '6,3', '--retries', '0',
               '--share', 'none', '--all', 'Ledgers')
    assert krakenex(*command).returncode == 0
    second = krakenex(*command)
    assert second.returncode == 1
    assert 'EAPI:Rate limit exceeded' in second.stderr


def test_share_status_shows_the_floor_above_the_last_nonce_and_the_counter(
        paced: Sandbox, key_file: str) -> None:
    # A slow decay, so that a busy machine's seconds before `share status` do not empty it.
    done = krakenex('--uri', paced.url, '--key-file', key_file, '--tier', '6,0.01', 'Balance')
    assert done.returncode == 0, done.stderr
    last = int(paced.requests_log[-1][1] or 0)
    shown = status(paced, key_file)
    assert shown['nonce'] == last
    assert shown['server'] == paced.url and shown['locked'] is False
    assert 0.5 < shown['counters']['rest'] <= 1.0  # type: ignore[index]
    where = str(shown['where'])
    assert where.startswith(os.environ['XDG_CACHE_HOME']) and paced.key not in where


def test_share_reset_forgets_the_floor_and_the_counters(paced: Sandbox, key_file: str) -> None:
    assert krakenex('--uri', paced.url, '--key-file', key_file, 'Balance').returncode == 0
    reset = krakenex('share', 'reset', '--uri', paced.url, '--key-file', key_file)
    assert reset.returncode == 0
    assert reset.stderr.startswith('krakenex: forgot the nonce floor')
    assert status(paced, key_file) | {'where': ''} == {
        'where': '', 'server': paced.url, 'nonce': 0, 'locked': False, 'counters': {}}


def test_share_status_of_a_directory_store_is_kept_there(paced: Sandbox, key_file: str,
                                                         tmp_path: Path) -> None:
    place = tmp_path / 'shared'
    assert krakenex('--uri', paced.url, '--key-file', key_file, '--share', str(place),
                    'Balance').returncode == 0
    shown = status(paced, key_file, '--share', str(place))
    assert str(shown['where']).startswith(str(place)) and shown['nonce'] > 0  # type: ignore[operator]
    assert status(paced, key_file)['nonce'] == 0  # the default store was not used


def test_a_share_that_cannot_be_used_exits_3_and_sends_nothing(
        paced: Sandbox, key_file: str, tmp_path: Path) -> None:
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    done = krakenex('--uri', paced.url, '--key-file', key_file, '--share',
                    str(blocker / 'store'), 'AddOrder', 'pair=XBTUSD', 'type=buy',
                    'ordertype=market', 'volume=0.01')
    assert done.returncode == 3
    assert done.stderr.count('\n') == 1 and str(blocker / 'store') in done.stderr
    assert 'nothing was sent' in done.stderr
    assert paced.requests_log == []


def test_a_default_store_that_cannot_be_written_warns_once_and_the_call_goes_through(
        paced: Sandbox, key_file: str, tmp_path: Path) -> None:
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    env = dict(os.environ, XDG_CACHE_HOME=str(blocker))
    done = krakenex('--uri', paced.url, '--key-file', key_file, 'Balance', env=env)
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("krakenex: the key's store cannot be kept")
    assert [m for m, _ in paced.requests_log] == ['Balance']


def test_krakenex_share_variable_sets_the_default(paced: Sandbox, key_file: str,
                                                  tmp_path: Path) -> None:
    place = tmp_path / 'from-env'
    env = dict(os.environ, KRAKENEX_SHARE=str(place))
    assert krakenex('--uri', paced.url, '--key-file', key_file, 'Balance',
                    env=env).returncode == 0
    assert [p.suffix for p in sorted(place.iterdir())] == ['.json', '.lock']


def test_share_status_without_a_key_is_a_usage_error(paced: Sandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith('KRAKEN_API')}
    env['XDG_CONFIG_HOME'] = str(tmp_path / 'no-config')
    done = krakenex('share', 'status', '--uri', paced.url, env=env)
    assert done.returncode == 2
    assert 'needs an API key' in done.stderr


def test_krakenex_ws_with_a_share_that_cannot_be_used_says_why_and_sends_nothing(
        paced: Sandbox, key_file: str, tmp_path: Path) -> None:
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    done = krakenex('ws', '--uri', paced.url, '--ws-auth-uri', paced.ws_auth_url, '--key-file',
                    key_file, '--share', str(blocker / 'store'), '--timeout', '2',
                    'add_order', 'symbol=BTC/USD', 'side=buy', 'order_type=market',
                    'order_qty=0.01')
    assert done.returncode == 3, done.stderr
    assert str(blocker / 'store') in done.stderr and 'nothing was sent' in done.stderr
    assert paced.requests_log == [] and paced.orders() == []
