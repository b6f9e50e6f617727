"""Clients that nobody here wrote work against the sandbox, unmodified.

krakenex 2.2.2, python-kraken-sdk and ccxt run in a virtualenv of their own
(``.peer-venv/`` in the repository, or ``$KRAKENEX_PEER_VENV``), made once and
reused while its pins are unchanged. The test skips only when pip cannot reach
the package registry; any other failure to build the virtualenv fails it.

Four test files use it, and pytest-xdist may run them in different workers at once:
it is built under a lock on its directory, so two workers (or two test runs) never
build it over each other; the second waits for the first, then reuses what it built.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from krakenex.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve().parent / 'peers' / 'peer_check.py'
PINS = ['krakenex==2.2.2', 'python-kraken-sdk==3.5.1', 'ccxt==4.5.90']
# pip's words when it cannot reach an index. "(from versions: none)" for packages that
# are certainly published means no index answered; a reachable one lists versions.
OFFLINE_SIGNS = ('(from versions: none)', 'NewConnectionError',
                 'Failed to establish a new connection',
                 'Temporary failure in name resolution', 'Name or service not known',
                 'Network is unreachable', 'ProxyError', 'ConnectTimeoutError',
                 'Max retries exceeded', 'Could not fetch URL')


def _pip_install(python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), '-m', 'pip', 'install', '--disable-pip-version-check',
                           '--no-input', *PINS], capture_output=True, text=True, timeout=1200)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (made if missing) until the block ends.

    The lock is on the directory itself, which ``venv --clear`` empties but keeps:
    a lock file inside would be deleted while held, one beside it would litter the checkout.
    """
    directory.mkdir(parents=True, exist_ok=True)
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


@pytest.fixture(scope='session')
def peer_python() -> Path:
    """The peer virtualenv's python, with the pinned clients installed."""
    venv = Path(os.environ.get('KRAKENEX_PEER_VENV') or ROOT / '.peer-venv')
    with _locked(venv):
        return _built(venv)


def _built(venv: Path) -> Path:
    """``venv``'s python, the virtualenv made and the pins installed unless its stamp says
    they already are; the stamp is written last, so only a complete virtualenv has it."""
    python = venv / 'bin' / 'python'
    stamp = venv / 'krakenex-peer-pins.txt'
    if python.exists() and stamp.exists() and stamp.read_text() == '\n'.join(PINS):
        return python
    made = subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, f'cannot create {venv}:\n{made.stdout}{made.stderr}'
    installed = _pip_install(python)
    if installed.returncode != 0:
        output = installed.stdout + installed.stderr
        if any(sign in output for sign in OFFLINE_SIGNS):
            pytest.skip(f'pip cannot reach the package registry to install {", ".join(PINS)}')
        pytest.fail(f'pip install {" ".join(PINS)} failed:\n{output[-4000:]}')
    stamp.write_text('\n'.join(PINS))
    return python


@pytest.mark.peers
def test_krakenex2_python_kraken_sdk_and_ccxt_work_unmodified(peer_python: Path) -> None:
    with Sandbox() as sandbox:
        sdk, ccxt = sandbox.add_account(), sandbox.add_account()
        funds_only = sandbox.add_account({'ZUSD': '1000'}, permissions=['query-funds'])
        # -I: isolated, so a PYTHONPATH pointing at this repository cannot
        # swap this krakenex in for krakenex 2.2.2
        run = subprocess.run(
            [str(peer_python), '-I', str(SCRIPT), sandbox.url, sandbox.key, sandbox.secret,
             sdk.key, sdk.secret, ccxt.key, ccxt.secret, funds_only.key, funds_only.secret],
            capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f'{run.stdout[-6000:]}\n{run.stderr[-3000:]}'
        summary = json.loads(run.stdout)
        names = {(c['client'], c['check']) for c in summary['checks'] if c['ok']}
        assert ('krakenex', 'Ledgers paging') in names
        assert ('python-kraken-sdk', 'create_order') in names
        assert ('ccxt', 'create_order') in names
        assert ('ccxt', 'create_order refused') in names
        assert ('python-kraken-sdk', 'create_order refused') in names
        assert summary['passed'] == {'krakenex': [7, 7], 'python-kraken-sdk': [14, 14],
                                     'ccxt': [17, 17]}
        # What the clients did is what the sandbox recorded.
        assert [o['status'] for o in sandbox.orders()] == ['canceled']
        assert [o['status'] for o in sandbox.orders(sdk.key)] == ['canceled'] * 4
        assert sandbox.orders(funds_only.key) == []
        kinds = sorted((o['descr']['ordertype'], o['status']) for o in sandbox.orders(ccxt.key))
        assert kinds == [('limit', 'canceled')] * 3 + [('market', 'closed')] * 2 + [
            ('stop-loss', 'canceled'), ('take-profit', 'canceled'),
            ('trailing-stop', 'canceled')]
