"""The scripts and notebooks in examples/ run against the sandbox: no network, no key."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import default_sigint

from krakenex.sandbox import Sandbox

EXAMPLES = Path(__file__).resolve().parent.parent / 'examples'


def script(name: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run examples/NAME with ARGS; its output, after checking it succeeded."""
    done = subprocess.run([sys.executable, '-W', 'error', str(EXAMPLES / name), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def account(sandbox: Sandbox) -> dict[str, str]:
    """The environment of a user whose key is the sandbox's funded account."""
    return {**os.environ, 'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret}


def test_every_example_script_has_a_test() -> None:
    tested = {'ticker_ohlc_csv.py', 'export_ledgers.py', 'limit_order.py', 'reconcile.py',
              'paced_loop.py', 'follow_book.py'}
    assert {p.name for p in EXAMPLES.glob('*.py')} == tested


def test_ticker_and_ohlc_to_csv_on_its_own_sandbox_with_no_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith('KRAKEN_')}
    done = script('ticker_ohlc_csv.py', 'ETHUSD', '--interval', '15min', '--out', 'data',
                  '--sandbox', cwd=tmp_path, env=env)
    with open(tmp_path / 'data' / 'ohlc-ETHUSD-15min.csv', encoding='utf-8') as f:
        candles = list(csv.DictReader(f))
    with open(tmp_path / 'data' / 'ticker.csv', encoding='utf-8') as f:
        ticker = {row['pair']: row for row in csv.DictReader(f)}
    assert len(candles) == 720 and candles[0]['time'].endswith('+00:00')
    assert float(candles[-1]['close']) > 0
    assert {'XXBTZUSD', 'XETHZUSD'} <= set(ticker)
    assert float(ticker['XETHZUSD']['ask']) > float(ticker['XETHZUSD']['bid'])
    assert '720 candles' in done.stdout


def test_export_ledgers_writes_every_entry_once(tmp_path: Path, sandbox: Sandbox,
                                                account: dict[str, str]) -> None:
    script('export_ledgers.py', '--uri', sandbox.url, '--out', 'all.csv', cwd=tmp_path,
           env=account)
    script('export_ledgers.py', '--uri', sandbox.url, '--asset', 'XBT', '--out', 'xbt.csv',
           cwd=tmp_path, env=account)
    with open(tmp_path / 'all.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / 'xbt.csv', encoding='utf-8') as f:
        xbt = list(csv.DictReader(f))
    ids = [row['id'] for row in rows]
    assert len(ids) == len(set(ids)) > 150
    assert xbt and {row['asset'] for row in xbt} == {'XXBT'}
    assert len(xbt) == sum(row['asset'] == 'XXBT' for row in rows)


def test_limit_order_is_placed_away_from_the_market_then_canceled(
        tmp_path: Path, sandbox: Sandbox, account: dict[str, str]) -> None:
    done = script('limit_order.py', '--uri', sandbox.url, '--pair', 'ETHUSD', cwd=tmp_path,
                  env=account)
    [order] = sandbox.orders()
    assert order['status'] == 'canceled' and order['vol_exec'] == '0.00000000'
    assert order['descr']['pair'] == 'ETHUSD' and order['descr']['ordertype'] == 'limit'
    assert f'{order["txid"]} is now canceled' in done.stdout


def test_reconcile_finds_the_order_whose_reply_was_lost_and_places_it_only_once(
        tmp_path: Path, sandbox: Sandbox, account: dict[str, str]) -> None:
    sandbox.inject('reply_lost', method='AddOrder')
    done = script('reconcile.py', '--uri', sandbox.url, cwd=tmp_path, env=account)
    assert len(sandbox.orders()) == 1  # placed once, never re-sent
    assert 'it was placed, so it is not sent again' in done.stdout


def test_reconcile_sends_again_an_order_that_never_arrived(
        tmp_path: Path, sandbox: Sandbox, account: dict[str, str]) -> None:
    sandbox.inject('reset', method='AddOrder')  # the connection drops before the exchange acts
    done = script('reconcile.py', '--uri', sandbox.url, cwd=tmp_path, env=account)
    assert len(sandbox.orders()) == 1
    assert 'not found: it was not placed, so it is sent again' in done.stdout


def test_reconcile_on_its_own_sandbox_shows_the_lost_reply(tmp_path: Path) -> None:
    done = script('reconcile.py', '--sandbox', cwd=tmp_path)
    assert 'the reply to AddOrder was lost' in done.stdout
    assert 'placed, once' in done.stdout


def test_paced_loop_stays_under_a_strict_tier_without_a_refusal(tmp_path: Path,
                                                                 account: dict[str, str]) -> None:
    with Sandbox(tier=(3, 20)) as strict:
        env = {**account, 'KRAKEN_API_KEY': strict.key, 'KRAKEN_API_SECRET': strict.secret}
        done = script('paced_loop.py', '--uri', strict.url, '--tier', '3,20', '--calls', '10',
                      cwd=tmp_path, env=env)
        calls = [m for m, _ in strict.requests_log].count('OpenOrders')
    assert calls == 10
    assert '10 calls in' in done.stdout and 'none refused' in done.stdout


BEST = re.compile(r'(?P<symbol>\S+)  bid (?P<bid>[\d.]+) x [\d.]+  ask (?P<ask>[\d.]+) x [\d.]+'
                  r'  spread (?P<spread>[\d.]+)$')


def best_prices(line: str) -> tuple[Decimal, Decimal]:
    """The best bid and ask of a line of follow_book.py, after checking its spread adds up."""
    found = BEST.search(line.rstrip('\n'))
    assert found, line
    bid, ask = Decimal(found['bid']), Decimal(found['ask'])
    assert ask - bid == Decimal(found['spread']), line
    return bid, ask


def follow_book(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """examples/follow_book.py started with ARGS, its output readable line by line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('KRAKEN_')}
    return subprocess.Popen([sys.executable, '-W', 'error', str(EXAMPLES / 'follow_book.py'),
                             *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def test_follow_book_on_its_own_sandbox_prints_a_verified_book_as_the_price_moves(
        tmp_path: Path) -> None:
    pytest.importorskip('websockets')
    done = script('follow_book.py', '--sandbox', '--count', '5', '--seconds', '20', cwd=tmp_path,
                  timeout=60)
    lines = done.stdout.splitlines()
    assert lines[-1].startswith('5 changes in'), done.stdout
    prices = [best_prices(line) for line in lines[:-1]]
    assert len(prices) == 5 and all(bid < ask for bid, ask in prices)
    assert len(set(prices)) > 1  # the sandbox's price moves, and the book follows it
    assert all(line.split()[1] == 'BTC/USD' for line in lines[:-1])


def test_follow_book_shows_the_book_move_to_the_price_the_sandbox_trades_at(
        tmp_path: Path, sandbox: Sandbox) -> None:
    pytest.importorskip('websockets')
    follower = follow_book('ETH/USD', '--url', sandbox.ws_url, '--seconds', '15', cwd=tmp_path)
    try:
        assert follower.stdout is not None
        bid, ask = best_prices(follower.stdout.readline())
        depth = sandbox_depth(sandbox, 'XETHZUSD')
        assert (bid, ask) == (Decimal(depth['bids'][0][0]), Decimal(depth['asks'][0][0]))
        sandbox.set_price('ETHUSD', '2500')
        bid, ask = best_prices(follower.stdout.readline())
        assert bid < Decimal('2500') < ask and ask - bid < Decimal('1')
    finally:
        follower.kill()
        follower.communicate()


def test_follow_book_stops_after_its_seconds_and_exits_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    pytest.importorskip('websockets')
    started = time.monotonic()
    done = script('follow_book.py', '--sandbox', '--seconds', '2', cwd=tmp_path, timeout=60)
    assert time.monotonic() - started < 20 and ' changes in ' in done.stdout.splitlines()[-1]
    follower = follow_book('--sandbox', cwd=tmp_path)
    assert follower.stdout is not None
    best_prices(follower.stdout.readline())
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 130, err
    assert out.splitlines()[-1].startswith('interrupted: ') and 'Traceback' not in err, err


def sandbox_depth(sandbox: Sandbox, pair: str) -> dict[str, Any]:
    """The sandbox's order book for PAIR over REST, to compare with what the socket showed."""
    from krakenex import API, unwrap

    with API(uri=sandbox.url) as api:
        book: dict[str, Any] = unwrap(api.query_public('Depth', {'pair': pair, 'count': 1}))[pair]
    return book


# ------------------------------------------------------------------ notebooks

NOTEBOOKS = {'market.ipynb': ['ohlc-candles', 'depth', 'spread'],
             'account.ipynb': ['balances', 'ledger', 'pnl']}


def doc_charts() -> Any:
    """doc/charts.py, which runs the notebooks for the docs, loaded as a module."""
    path = EXAMPLES.parent / 'doc' / 'charts.py'
    spec = importlib.util.spec_from_file_location('doc_charts', path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebooks_are_committed_without_outputs() -> None:
    nbformat = pytest.importorskip('nbformat')
    assert sorted(p.name for p in (EXAMPLES / 'notebooks').glob('*.ipynb')) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        notebook = nbformat.read(EXAMPLES / 'notebooks' / name, as_version=4)
        nbformat.validate(notebook)
        assert all(not cell.get('outputs') and cell.get('execution_count') is None
                   for cell in notebook.cells if cell.cell_type == 'code'), name


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(NOTEBOOKS))
def test_each_notebook_runs_every_cell_against_the_sandbox_and_draws_its_charts(
        name: str) -> None:
    pytest.importorskip('nbclient')
    charts = doc_charts()
    notebook = charts.execute(EXAMPLES / 'notebooks' / name)  # a failing cell raises here
    drawn = charts.charts(notebook)
    assert sorted(drawn) == sorted(NOTEBOOKS[name])
    for chart, images in drawn.items():
        assert len(images) == 1 and images[0].startswith(b'\x89PNG'), chart
        assert (EXAMPLES.parent / 'doc' / '_static' / 'charts' / f'{chart}.png').is_file()
    stderr = ''.join(output.get('text', '') for cell in notebook.cells
                     for output in cell.get('outputs', []) if output.get('name') == 'stderr')
    assert 'Warning' not in stderr, stderr
    if name == 'account.ipynb':  # the ledger's pages show a progress bar in the notebook
        ledger = next(cell for cell in notebook.cells if 'frames.ledgers(' in cell.source)
        shown = ''.join(o.get('text', '') for o in ledger.outputs if o.get('name') == 'stderr')
        assert 'Ledgers' in shown and '243/243' in shown, shown


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return int(probe.getsockname()[1])


def test_the_notebook_extra_brings_jupyterlab_and_the_docs_command_serves_the_notebooks(
        tmp_path: Path) -> None:
    import json
    import urllib.request
    from importlib import metadata

    requires = metadata.requires('krakenex') or []
    assert any(r.startswith('jupyterlab') and 'extra == "notebook"' in r for r in requires)
    # doc/notebooks.rst: jupyter lab examples/notebooks/, run from the checkout
    port, token = free_port(), 'notebook-test'
    command = [str(Path(sys.executable).parent / 'jupyter'), 'lab', 'examples/notebooks/',
               '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1',
               '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}']
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        command.append('--allow-root')  # CI runs as root, which Jupyter refuses unless told
    env = {**os.environ, **{f'JUPYTER_{kind}_DIR': str(tmp_path / kind.lower())
                            for kind in ('RUNTIME', 'CONFIG', 'DATA')}}
    server = subprocess.Popen(command, cwd=EXAMPLES.parent, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        listed = None
        deadline = time.monotonic() + 60
        while listed is None and server.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/contents?'
                                            f'token={token}', timeout=5) as reply:
                    listed = sorted(item['name'] for item in json.load(reply)['content'])
            except OSError:
                time.sleep(0.2)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert listed == sorted(NOTEBOOKS), output[-3000:]
