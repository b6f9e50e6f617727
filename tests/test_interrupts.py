"""Ctrl-C at every moment of an order, for ``krakenex``, ``krakenex --futures`` and ``krakenex ws``.

The contract scripts rely on: exit 0 when the result was printed whole, 4
whenever the order may have been sent, 130 only when nothing was sent. Each
test sends SIGINT to a real ``python -m krakenex`` at one kind of moment, as
many times as the probes that found the bugs did (12, in the slow suite; once
in the quick one), and checks every run against what the server received.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import default_sigint, without_sunset
from test_ws_cli import Swallower

from krakenex.sandbox import Sandbox
from krakenex.share import resolve

pytestmark = pytest.mark.skipif(os.name == 'nt', reason='sends SIGINT')

#: How many times each moment is tried: as the probes did, in the slow suite; the commonest
#: moments are also tried once in the quick suite.
RUNS = [pytest.param(12, id='12-runs', marks=pytest.mark.slow)]
RUNS_AND_ONCE = [pytest.param(1, id='once'), *RUNS]

#: What a shell reports for a process that SIGINT ended before krakenex could answer it.
KILLED = -signal.SIGINT
#: Python's report of an interruption inside a callback (a weak reference's, say), which
#: it drops; the command goes on as if that Ctrl-C had not come.
IGNORED = re.compile(r'Exception ignored in: .*?\nKeyboardInterrupt: ?\n', re.S)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m krakenex ARGS...`` in a process of its own, with stdout and stderr piped."""
    return subprocess.Popen([sys.executable, '-m', 'krakenex', *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)


def wait_for(ready: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f'gave up waiting for {what}'
        time.sleep(0.005)


#: Seconds the sandbox holds an order before placing it, in the tests that Ctrl-C it while
#: held: the connection's opening, the order's arrival and the Ctrl-C all fit in it.
HOLD = 1.0
#: Seconds after the order's connection opens by which its request has arrived whole, even
#: on a machine busy with other tests: a Ctrl-C before then may find nothing sent.
ARRIVAL = 0.3


def wait_until_held(sandbox: Sandbox) -> None:
    """Wait for the order's connection to the sandbox, then :data:`ARRIVAL` seconds for
    its request to arrive whole: the sandbox holds it from then on, for :data:`HOLD`."""
    wait_for(lambda: sandbox.open_connections() > 0, 'the order to reach the sandbox')
    time.sleep(ARRIVAL)


def stderr_line(process: subprocess.Popen[str], text: str) -> None:
    """Read the command's stderr up to a line holding ``text`` (with -v, its call line)."""
    assert process.stderr is not None
    for line in process.stderr:
        if text in line:
            return
    raise AssertionError(f'the command ended without printing {text!r} on stderr')


def interrupt(process: subprocess.Popen[str], times: int = 1) -> tuple[int, str, str]:
    """Ctrl-C the command ``times`` times, 30 ms apart; its exit code, stdout and stderr."""
    for i in range(times):
        if i:
            time.sleep(0.03)
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)  # what it prints is small: the pipes cannot fill
    finally:
        process.kill()
    assert process.stdout is not None and process.stderr is not None
    # Read through the pipes' own buffers, which may hold what a readline above took in.
    return process.returncode, process.stdout.read(), process.stderr.read()


def broken_rule(code: int, out: str, err: str, *, sent: bool,
                whole: Callable[[str], bool]) -> str | None:
    """The part of the exit-code contract a run broke, or None.

    :param sent: whether the server received the order
    :param whole: whether stdout holds the whole result
    """
    if code == KILLED or (code == 1 and err.rstrip().endswith('KeyboardInterrupt')):
        # Python itself, interrupted while still starting, before krakenex could answer
        return None if not sent else f'exit {code} after the order was sent: {err!r}'
    # Python's report of a Ctrl-C that landed in a callback, which goes on: not a failure
    err = IGNORED.sub('', err)
    if 'Traceback' in err:
        return f'a traceback: {err}'
    if code == 0:
        return None if sent and whole(out) else f'exit 0 without the whole result: {out!r}'
    if code == 4:
        return None  # it may have been sent: never wrong, and the only answer once it was
    if sent:
        return f'exit {code} after the order was sent: {err!r}'
    return None if code == 130 else f'exit {code} though nothing was sent: {err!r}'


def check(runs: list[str | None]) -> None:
    broken = [f'run {i + 1}: {rule}' for i, rule in enumerate(runs) if rule is not None]
    assert not broken, '\n'.join(broken)


# -------------------------------------------------------------------- krakenex (spot REST)

def add_order(run: int) -> list[str]:
    return ['AddOrder', 'pair=XBTUSD', 'type=buy', 'ordertype=market', 'volume=0.01',
            f'userref={run + 1}']


def spot_orders(sandbox: Sandbox, run: int) -> int:
    return sum(1 for order in sandbox.orders() if order['userref'] == run + 1)


def a_txid(out: str) -> bool:
    try:
        return bool(json.loads(out)['txid'])
    except (ValueError, KeyError, TypeError):
        return False


@pytest.fixture
def spot_env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith('KRAKEN_')}
    return {**env, 'HOME': str(tmp_path), 'KRAKEN_API_KEY': sandbox.key,
            'KRAKEN_API_SECRET': sandbox.secret}


@pytest.fixture
def key_held(sandbox: Sandbox) -> Iterator[None]:
    """The key's send lock, held here as another process of the key would hold it."""
    store = resolve().open(sandbox.key, sandbox.url)
    handle = store.lock(120)
    yield
    store.unlock(handle)
    store.close()


@pytest.mark.parametrize('runs', RUNS_AND_ONCE)
@pytest.mark.unlimited
def test_addorder_interrupted_before_it_is_sent_exits_130_and_sends_nothing(
        sandbox: Sandbox, spot_env: dict[str, str], key_held: None, runs: int) -> None:
    outcomes = []
    for run in range(runs):
        process = start('-v', '--uri', sandbox.url, *add_order(run), env=spot_env)
        stderr_line(process, 'AddOrder private call')  # it waits for the key, held above
        time.sleep(random.uniform(0, 0.3))
        code, _, err = interrupt(process, times=random.choice((1, 2)))
        outcomes.append(None if code == 130 and err.endswith('krakenex: interrupted\n')
                        else f'exit {code}: {err!r}')
    check(outcomes)
    assert [method for method, _ in sandbox.requests_log] == []


@pytest.mark.parametrize('runs', RUNS)
@pytest.mark.unlimited
def test_addorder_interrupted_once_or_twice_while_the_server_holds_it_exits_4(
        sandbox: Sandbox, spot_env: dict[str, str], runs: int) -> None:
    outcomes = []
    for run in range(runs):
        sandbox.inject('delay', method='AddOrder', seconds=HOLD)  # then it is placed
        process = start('--uri', sandbox.url, *add_order(run), env=spot_env)
        wait_until_held(sandbox)
        time.sleep(random.uniform(0, HOLD - ARRIVAL - 0.15))
        code, out, err = interrupt(process, times=random.choice((1, 2)))
        wait_for(lambda run=run: spot_orders(sandbox, run) == 1, 'the held order to be placed')
        wait_for(lambda: sandbox.open_connections() == 0, 'the sandbox to close the connection')
        rule = broken_rule(code, out, err, sent=True, whole=a_txid)
        outcomes.append(rule or (None if code == 4 and f'userref={run + 1}' in err
                                 else f'exit {code} without the order to look up: {err!r}'))
    check(outcomes)


@pytest.mark.unlimited
def test_an_order_without_ids_interrupted_while_held_exits_4_naming_the_id_krakenex_gave_it(
        sandbox: Sandbox, spot_env: dict[str, str]) -> None:
    sandbox.inject('delay', method='AddOrder', seconds=HOLD)  # then it is placed
    process = start('--uri', sandbox.url, *add_order(0)[:-1], env=spot_env)  # no userref
    wait_until_held(sandbox)
    code, _, err = interrupt(process)
    wait_for(lambda: len(sandbox.orders()) == 1, 'the held order to be placed')
    given = sandbox.orders()[0]['cl_ord_id']
    assert code == 4 and given and f'cl_ord_id {given}' in err, err
    assert 'next time give it' not in err


def test_a_futures_order_without_ids_interrupted_while_held_exits_4_naming_its_cliordid(
        sandbox: Sandbox, futures_args: list[str]) -> None:
    sandbox.inject('delay', method='sendorder', seconds=HOLD)
    process = start(*futures_args, *send_order(0)[:-1])  # no cliOrdId
    wait_until_held(sandbox)
    code, _, err = interrupt(process)
    wait_for(lambda: len(sandbox.futures.orders(sandbox.futures.key)) == 1, 'the held order')
    given = sandbox.futures.orders(sandbox.futures.key)[0].cli_ord_id
    assert code == 4 and given and f'cliOrdId {given}' in err, err


@pytest.mark.parametrize('runs', RUNS_AND_ONCE)
@pytest.mark.unlimited
def test_addorder_interrupted_just_after_its_result_is_printed_exits_0(
        sandbox: Sandbox, spot_env: dict[str, str], runs: int) -> None:
    outcomes = []
    for run in range(runs):
        process = start('--uri', sandbox.url, *add_order(run), env=spot_env)
        assert process.stdout is not None
        printed = process.stdout.readline()
        time.sleep(random.uniform(0.005, 0.025))
        code, out, err = interrupt(process)
        outcomes.append(None if (code, err) == (0, '') and a_txid(printed + out)
                        else f'exit {code}: {err!r}')
        assert spot_orders(sandbox, run) == 1
    check(outcomes)


@pytest.mark.parametrize('runs', RUNS)
@pytest.mark.unlimited
def test_addorder_interrupted_at_any_moment_keeps_the_exit_code_contract(
        sandbox: Sandbox, spot_env: dict[str, str], runs: int) -> None:
    outcomes = []
    for run in range(runs):
        sandbox.clear_faults()
        sandbox.inject('delay', method='AddOrder', seconds=random.choice((0.0, 0.2)))
        process = start('--uri', sandbox.url, *add_order(run), env=spot_env)
        time.sleep(random.uniform(0.1, 1.5))  # from the interpreter's start to after the result
        code, out, err = interrupt(process, times=random.choice((1, 2)))
        time.sleep(0.3)  # a request held by the sandbox is carried out meanwhile
        wait_for(lambda: sandbox.open_connections() == 0, 'the sandbox to finish')
        outcomes.append(broken_rule(code, out, err, sent=spot_orders(sandbox, run) == 1,
                                    whole=a_txid))
    check(outcomes)


# ------------------------------------------------------------- krakenex --futures

def send_order(run: int) -> list[str]:
    return ['sendorder', 'orderType=lmt', 'symbol=PF_XBTUSD', 'side=buy', 'size=0.01',
            'limitPrice=50000', f'cliOrdId=cli-{run + 1}']


def futures_orders(sandbox: Sandbox, run: int) -> int:
    return sum(1 for order in sandbox.futures.orders(sandbox.futures.key)
               if order.cli_ord_id == f'cli-{run + 1}')


def an_order_id(out: str) -> bool:
    try:
        return json.loads(out)['status'] == 'placed'
    except (ValueError, KeyError, TypeError):
        return False


@pytest.fixture
def futures_args(sandbox: Sandbox, tmp_path: Path) -> list[str]:
    path = tmp_path / 'futures.key'
    path.write_text(f'{sandbox.futures.key}\n{sandbox.futures.secret}\n')
    path.chmod(0o600)
    return ['--futures', '--uri', sandbox.futures_url, '--key-file', str(path)]


@pytest.mark.parametrize('runs', RUNS)
def test_sendorder_interrupted_before_it_is_sent_exits_130_and_sends_nothing(
        sandbox: Sandbox, futures_args: list[str], runs: int) -> None:
    store = resolve().open(sandbox.futures.key, sandbox.futures_url)
    handle = store.lock(120)  # another process of the key sends now
    try:
        outcomes = []
        for run in range(runs):
            process = start(*futures_args, '-v', *send_order(run))
            stderr_line(process, 'sendorder private call')
            time.sleep(random.uniform(0, 0.3))
            code, _, err = interrupt(process, times=random.choice((1, 2)))
            outcomes.append(None if code == 130 and err.endswith('krakenex: interrupted\n')
                            else f'exit {code}: {err!r}')
    finally:
        store.unlock(handle)
        store.close()
    check(outcomes)
    assert sandbox.futures.orders(sandbox.futures.key) == []


@pytest.mark.parametrize('runs', RUNS)
def test_sendorder_interrupted_once_or_twice_while_the_server_holds_it_exits_4(
        sandbox: Sandbox, futures_args: list[str], runs: int) -> None:
    outcomes = []
    for run in range(runs):
        sandbox.inject('delay', method='sendorder', seconds=HOLD)
        process = start(*futures_args, *send_order(run))
        wait_until_held(sandbox)
        time.sleep(random.uniform(0, HOLD - ARRIVAL - 0.15))
        code, out, err = interrupt(process, times=random.choice((1, 2)))
        wait_for(lambda run=run: futures_orders(sandbox, run) == 1, 'the held order')
        wait_for(lambda: sandbox.open_connections() == 0, 'the sandbox to close the connection')
        rule = broken_rule(code, out, err, sent=True, whole=an_order_id)
        outcomes.append(rule or (None if code == 4 and f'cli-{run + 1}' in err
                                 else f'exit {code} without the order to look up: {err!r}'))
    check(outcomes)


@pytest.mark.parametrize('runs', RUNS_AND_ONCE)
def test_sendorder_interrupted_just_after_its_result_is_printed_exits_0(
        sandbox: Sandbox, futures_args: list[str], runs: int) -> None:
    outcomes = []
    for run in range(runs):
        process = start(*futures_args, *send_order(run))
        assert process.stdout is not None
        printed = process.stdout.readline()
        time.sleep(random.uniform(0, 0.015))
        code, out, err = interrupt(process)
        err = without_sunset(err)
        outcomes.append(None if (code, err) == (0, '') and an_order_id(printed + out)
                        else f'exit {code}: {err!r}')
        assert futures_orders(sandbox, run) == 1
    check(outcomes)


# ------------------------------------------------------------------------ krakenex ws

@pytest.fixture
def ws_args(sandbox: Sandbox, tmp_path: Path) -> list[str]:
    key_file = tmp_path / 'kraken.key'
    key_file.write_text(f'{sandbox.key}\n{sandbox.secret}\n')
    key_file.chmod(0o600)
    return ['ws', '--ws-uri', sandbox.ws_url, '--ws-auth-uri', sandbox.ws_auth_url, '--uri',
            sandbox.url, '--key-file', str(key_file), '--timeout', '10']


def ws_order(run: int) -> list[str]:
    return ['add_order', 'symbol=BTC/USD', 'side=buy', 'order_type=limit',
            'limit_price=40000', 'order_qty=0.01', f'cl_ord_id=cli-{run + 1}']


def an_ack(out: str) -> bool:
    try:
        return bool(json.loads(out)['result']['order_id'])
    except (ValueError, KeyError, TypeError):
        return False


@pytest.fixture
def swallower() -> Iterator[Swallower]:
    server = Swallower()
    yield server
    server.stop()


@pytest.mark.parametrize('runs', RUNS)
def test_ws_add_order_interrupted_just_after_its_reply_is_printed_exits_0(
        sandbox: Sandbox, ws_args: list[str], runs: int) -> None:
    outcomes = []
    for run in range(runs):
        process = start(*ws_args, *ws_order(run))
        assert process.stdout is not None
        printed = process.stdout.readline()
        time.sleep(random.uniform(0.005, 0.025))
        code, out, err = interrupt(process)
        outcomes.append(None if (code, err) == (0, '') and an_ack(printed + out)
                        else f'exit {code}: {err!r}')
        assert [o['cl_ord_id'] for o in sandbox.orders()].count(f'cli-{run + 1}') == 1
    check(outcomes)


@pytest.mark.parametrize('runs', RUNS)
def test_ws_add_order_interrupted_once_or_twice_after_it_was_sent_exits_4(
        ws_args: list[str], swallower: Swallower, runs: int) -> None:
    outcomes = []
    args = [*ws_args, '--ws-auth-uri', swallower.url]  # the last one given wins
    for run in range(runs):
        process = start(*args, *ws_order(run))
        frame = swallower.next_frame('add_order')  # it reached the server, which never answers
        time.sleep(random.uniform(0, 0.1))
        code, _, err = interrupt(process, times=random.choice((1, 2)))
        outcomes.append(None if code == 4 and f'req_id {frame["req_id"]}' in err
                        and 'Traceback' not in err else f'exit {code}: {err!r}')
    check(outcomes)
