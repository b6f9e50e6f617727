"""The dead man's switch keeper, over real HTTP and WebSocket against the sandbox.

Kraken's timer counts whole seconds, so these tests arm it for 3 s and re-arm it
every half second: "past the timeout" is 4 s here, not a minute. A keeper may stall
for 2.5 s on a busy machine before its orders are cancelled; the tests wait for what
they check (a warning logged, an order cancelled) with deadlines of many seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import default_sigint

from krakenex import API, AsyncAPI, KrakenUsageError
from krakenex.deadman import DeadManSwitch, check_schedule
from krakenex.errors import unwrap
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.ws import WS, AsyncWS

pytestmark = pytest.mark.unlimited  # a re-arm every half second is above any tier's pace

TIMEOUT = 3  # Kraken's timer, in whole seconds
EVERY = 0.5
PAST = TIMEOUT + 1.0  # long enough for the timer to have run out, had nothing re-armed it
#: Seconds a test waits for what it expects before it fails: far beyond any stall.
DEADLINE = 30.0


def until(ready: Callable[[], bool], what: str, seconds: float = DEADLINE) -> None:
    """Wait until ``ready()``; fail naming ``what`` if it is not after ``seconds``."""
    end = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < end, f'gave up waiting for {what}'
        time.sleep(0.01)


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[API]:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=5, retries=0) as client:
        yield client


def place(api: API) -> str:
    """A resting limit order far below the market: only a cancel can end it."""
    reply = api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit',
                                           'price': '1000', 'volume': '0.01'})
    return str(reply['result']['txid'][0])


def status(sandbox: Sandbox, txid: str) -> tuple[str, Any]:
    """The order's status and reason, as the sandbox has it now (due timers fired first)."""
    order = next(o for o in sandbox.orders() if o['txid'] == txid)
    return order['status'], order.get('reason')


CANCELLED_BY_SWITCH = ('canceled', 'Cancel all orders after timeout')


# -- the schedule ------------------------------------------------------------------------

@pytest.mark.parametrize(('timeout', 'every', 'says'), [
    (60, 31, 'more than half of timeout=60'),
    (60, 0, 'above 0'),
    (60, float('nan'), 'above 0'),
    (0, None, 'from 1 to 86399'),
    (86400, None, 'from 1 to 86399'),
    (60.5, None, 'whole number'),
    (True, None, 'whole number'),
])
def test_a_schedule_that_could_let_the_switch_fire_is_refused(
        api: API, timeout: Any, every: Any, says: str) -> None:
    with pytest.raises(KrakenUsageError, match=says):
        api.dead_man_switch(timeout, every)


def test_krakens_advice_is_the_default_and_half_the_timeout_is_allowed() -> None:
    assert check_schedule(60, None) == (60, 20.0)
    assert check_schedule(60, 30) == (60, 30.0)


# -- REST ------------------------------------------------------------------------------

def test_rearming_keeps_orders_open_past_the_timeout(sandbox: Sandbox, api: API) -> None:
    with api.dead_man_switch(TIMEOUT, EVERY) as switch:
        txid = place(api)
        first = switch.arms
        time.sleep(PAST)
        until(lambda: switch.arms >= first + 2, 'two re-arms')
        assert status(sandbox, txid) == ('open', None)
        assert switch.healthy and switch.last_error is None
        assert switch.armed_until is not None and switch.armed_until > time.time()


def test_a_clean_exit_disarms_the_switch_and_orders_stay(sandbox: Sandbox, api: API) -> None:
    with api.dead_man_switch(TIMEOUT, EVERY) as switch:
        txid = place(api)
    assert switch.armed_until is None
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None
    time.sleep(PAST)
    assert status(sandbox, txid) == ('open', None)


def test_an_exception_leaving_the_block_leaves_the_switch_armed(sandbox: Sandbox,
                                                                api: API) -> None:
    with pytest.raises(RuntimeError), api.dead_man_switch(TIMEOUT, EVERY):
        txid = place(api)
        raise RuntimeError('the bot failed')
    assert status(sandbox, txid) == ('open', None)
    until(lambda: status(sandbox, txid) == CANCELLED_BY_SWITCH, 'the switch to cancel the order')


def test_disarm_on_error_disarms_after_an_exception_too(sandbox: Sandbox, api: API) -> None:
    with pytest.raises(RuntimeError), api.dead_man_switch(TIMEOUT, EVERY, disarm_on_error=True):
        txid = place(api)
        raise RuntimeError('the bot failed')
    time.sleep(PAST)
    assert status(sandbox, txid) == ('open', None)


BOT = '''
import sys, time, krakenex
api = krakenex.API(sys.argv[1], sys.argv[2], uri=sys.argv[3])
with api.dead_man_switch(timeout=int(sys.argv[4]), every=float(sys.argv[5])):
    print('armed', flush=True)
    time.sleep(60)
'''


def test_a_killed_bot_leaves_the_switch_armed_and_its_orders_are_cancelled(
        sandbox: Sandbox, api: API) -> None:
    txid = place(api)
    bot = subprocess.Popen([sys.executable, '-c', BOT, sandbox.key, sandbox.secret, sandbox.url,
                            str(TIMEOUT), str(EVERY)], stdout=subprocess.PIPE, text=True)
    try:
        assert bot.stdout is not None and bot.stdout.readline() == 'armed\n'
        time.sleep(PAST)  # the keeper in the bot re-arms all along
        assert status(sandbox, txid) == ('open', None)
        bot.send_signal(signal.SIGKILL)
        bot.wait(5)
        killed = time.time()
        assert status(sandbox, txid) == ('open', None)
    finally:
        bot.kill()
        bot.wait(5)
        if bot.stdout:
            bot.stdout.close()
    until(lambda: status(sandbox, txid) == CANCELLED_BY_SWITCH, 'the switch to cancel the order')
    assert time.time() >= killed + TIMEOUT - 1  # not before the timer ran out (whole seconds)


def test_a_failed_rearm_is_a_warning_and_is_tried_again_sooner(
        sandbox: Sandbox, api: API, caplog: pytest.LogCaptureFixture) -> None:
    every = 0.8  # retried after 0.2 s
    with caplog.at_level(logging.WARNING, 'krakenex'), \
            api.dead_man_switch(TIMEOUT, every) as switch:
        txid = place(api)
        sandbox.inject('unavailable', times=2, method='CancelAllOrdersAfter')

        def warnings() -> list[str]:
            return [r.getMessage() for r in list(caplog.records) if 'dead man' in r.getMessage()]

        until(lambda: any('not re-armed' in w for w in warnings()), 'a failed re-arm')
        until(lambda: any('armed again' in w for w in warnings()), 'a re-arm after the failures')
        assert switch.healthy and switch.last_error is None and switch.failures == 0
        assert status(sandbox, txid) == ('open', None)
    logged = warnings()
    assert len(logged) == 3, logged  # each failed try, then the re-arm that got through
    assert 'was not re-armed (Kraken CancelAllOrdersAfter answered EService:Unavailable' \
        in logged[0]
    assert 'next try in 0.2 s' in logged[0]
    assert 'armed again after 2 failed tries' in logged[2]


def test_a_rearm_that_hangs_is_cut_short_and_tried_again_before_the_timer_runs_out(
        sandbox: Sandbox, api: API, caplog: pytest.LogCaptureFixture) -> None:
    # Each try may take a quarter of timeout - every (at least 1 s), not the client's 10 s.
    with caplog.at_level(logging.WARNING, 'krakenex'), api.dead_man_switch(4, 1) as switch:
        txid = place(api)
        sandbox.inject('delay', method='CancelAllOrdersAfter', seconds=8)
        until(lambda: any('was not re-armed' in r.getMessage() for r in list(caplog.records)),
              'the hung re-arm to be cut short')
        cut = switch.arms
        until(lambda: switch.arms > cut, 'a re-arm after the hung one')
        assert status(sandbox, txid) == ('open', None)
        assert switch.healthy and switch.within == 1


def test_a_notify_that_fails_is_logged_and_the_keeper_goes_on(
        sandbox: Sandbox, api: API, caplog: pytest.LogCaptureFixture) -> None:
    # As a WebSocket client's notify fails once its event loop is closed.
    def arm(seconds: int, within: float) -> None:
        unwrap(api.query_private('CancelAllOrdersAfter', {'timeout': seconds}, timeout=within),
               'CancelAllOrdersAfter')

    def notify(health: dict[str, Any]) -> None:
        raise RuntimeError('Event loop is closed')

    with caplog.at_level(logging.WARNING, 'krakenex'), \
            DeadManSwitch(arm, TIMEOUT, EVERY, notify=notify) as switch:
        txid = place(api)
        sandbox.inject('unavailable', method='CancelAllOrdersAfter')
        until(lambda: any('could not report' in r.getMessage() for r in list(caplog.records)),
              'the failed notify to be logged')
        failed = switch.arms
        until(lambda: switch.arms >= failed + 2, 'two re-arms after the failed notify')
        assert switch.healthy and status(sandbox, txid) == ('open', None)
    assert 'Event loop is closed' in caplog.text


def test_a_switch_that_cannot_be_armed_raises_on_entry(sandbox: Sandbox, api: API) -> None:
    sandbox.inject('unavailable', method='CancelAllOrdersAfter')
    ran = False
    with pytest.raises(Exception, match='Unavailable'), api.dead_man_switch(TIMEOUT, EVERY):
        ran = True
    assert not ran


def test_async_api_keeps_the_switch_armed_and_disarms_on_a_clean_exit(sandbox: Sandbox,
                                                                      api: API) -> None:
    txid = place(api)

    async def bot() -> None:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url) as aapi, \
                aapi.dead_man_switch(TIMEOUT, EVERY) as switch:
            first = switch.arms
            await asyncio.sleep(PAST)
            while switch.arms < first + 2:  # two re-arms, however slow the machine
                await asyncio.sleep(0.01)
            assert status(sandbox, txid) == ('open', None)
            assert switch.healthy

    asyncio.run(bot())
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None


async def wait_for_as_in_python_312(awaitable: Any, seconds: float) -> Any:
    """asyncio.wait_for as Python 3.12 has it: a cancellation that the awaited call turns
    into an error of its own (AsyncAPI does, for a state change in flight) is not raised
    as a cancellation."""
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.mark.parametrize('python', ['this-python', pytest.param(
    'python-3.12-wait-for', marks=pytest.mark.skipif(
        sys.version_info < (3, 11), reason='asyncio.timeout, which it is built on, is 3.11+'))])
def test_async_exit_while_a_rearm_is_in_flight_returns_soon_and_leaves_the_switch_disarmed(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, python: str) -> None:
    if python != 'this-python':
        monkeypatch.setattr(asyncio, 'wait_for', wait_for_as_in_python_312)
    # Each try may take (12 - 1) / 4 = 2.75 s, the reply half of it: more than the hold.
    timeout, every, held = 12, 1.0, 0.8

    async def bot() -> float:
        async with AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url) as aapi:
            switch = aapi.dead_man_switch(timeout, every)
            await switch.start()
            sandbox.inject('delay', method='CancelAllOrdersAfter', seconds=held)
            await asyncio.sleep(every + 0.4)  # the first re-arm is held at the server now
            exiting = time.monotonic()
            await asyncio.wait_for(switch.stop(), DEADLINE)  # what a clean exit does
            assert switch.armed_until is None
            return time.monotonic() - exiting

    took = asyncio.run(bot())
    assert took < held + 5  # the held re-arm's end, then the disarm; never a hang
    account = sandbox.exchange.accounts[sandbox.key]
    assert account.cancel_at is None
    time.sleep(held + 0.5)  # no re-arm reaches the sandbox after the disarm
    assert account.cancel_at is None
    sent = [m for m, _ in sandbox.requests_log if m == 'CancelAllOrdersAfter']
    assert len(sent) == 3  # armed, re-armed once (held), disarmed


@pytest.mark.filterwarnings('ignore::krakenex.futures.KrakenSunsetWarning')
def test_futures_api_keeps_the_switch_armed_and_an_exception_leaves_it(
        sandbox: Sandbox) -> None:
    account = sandbox.futures.accounts[sandbox.futures.key]
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret,
                    uri=sandbox.futures_url) as futures:
        with futures.dead_man_switch(TIMEOUT, EVERY):
            first = account.deadline
            time.sleep(2 * EVERY)
            assert account.deadline is not None and first is not None
            assert account.deadline > first
        assert account.deadline is None
        with pytest.raises(RuntimeError), futures.dead_man_switch(TIMEOUT, EVERY):
            raise RuntimeError('the bot failed')
        assert account.deadline is not None


# -- WebSocket -------------------------------------------------------------------------

def switch_notice(ws: WS, within: float = 5.0) -> dict[str, Any]:
    """The next ``dead_man_switch`` notice in the stream, within ``within`` seconds."""
    end = time.monotonic() + within
    while True:
        message = ws.recv(max(0.0, end - time.monotonic()))
        if message.get('type') == 'dead_man_switch':
            return message


def test_ws_keeper_survives_a_reconnect_and_a_failed_rearm_is_a_notice(
        sandbox: Sandbox, api: API) -> None:
    assert sandbox.feed is not None
    txid = place(api)
    with WS(api, url=sandbox.ws_url, auth_url=sandbox.ws_auth_url, timeout=5) as ws:
        with ws.dead_man_switch(TIMEOUT, EVERY) as switch:
            sandbox.feed.inject('msg_rate')  # the next re-arm is refused
            notice = switch_notice(ws)
            assert notice['healthy'] is False and 'Exceeded msg rate' in notice['error']
            assert notice['channel'] == 'krakenex' and notice['retry_in'] == EVERY / 4
            assert switch_notice(ws)['healthy']
            sandbox.feed.inject('drop')
            time.sleep(PAST)
            assert status(sandbox, txid) == ('open', None)
            assert switch.healthy
        assert sandbox.exchange.accounts[sandbox.key].cancel_at is None


def test_async_ws_keeper_rearms_and_an_exception_leaves_it_armed(sandbox: Sandbox,
                                                                 api: API) -> None:
    txid = place(api)

    async def bot() -> None:
        async with AsyncWS(api, url=sandbox.ws_url, auth_url=sandbox.ws_auth_url) as ws, \
                ws.dead_man_switch(TIMEOUT, EVERY):
            await asyncio.sleep(PAST)
            assert status(sandbox, txid) == ('open', None)
            raise RuntimeError('the bot failed')

    with pytest.raises(RuntimeError):
        asyncio.run(bot())
    until(lambda: status(sandbox, txid) == CANCELLED_BY_SWITCH, 'the switch to cancel the order')


# -- the command line ------------------------------------------------------------------

def dead_man_switch(sandbox: Sandbox, exit_code: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret}
    bot = f'import time, sys; time.sleep({PAST}); print("bot done"); sys.exit({exit_code})'
    return subprocess.run([sys.executable, '-m', 'krakenex', 'dead-man-switch',
                           '--every', str(EVERY), '--uri', sandbox.url, str(TIMEOUT), '--',
                           sys.executable, '-c', bot], env=env, capture_output=True, text=True,
                          timeout=30)


def test_cli_runs_a_bot_under_the_switch_and_disarms_when_it_exits_0(sandbox: Sandbox,
                                                                     api: API) -> None:
    txid = place(api)
    done = dead_man_switch(sandbox, 0)
    assert (done.returncode, done.stdout, done.stderr) == (0, 'bot done\n', '')
    assert status(sandbox, txid) == ('open', None)  # kept armed while the bot ran
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None


def test_cli_leaves_the_switch_armed_when_the_bot_fails_and_exits_with_its_code(
        sandbox: Sandbox, api: API) -> None:
    txid = place(api)
    done = dead_man_switch(sandbox, 3)
    assert (done.returncode, done.stdout) == (3, 'bot done\n')
    assert status(sandbox, txid) == ('open', None)
    until(lambda: status(sandbox, txid) == CANCELLED_BY_SWITCH, 'the switch to cancel the order')


def test_cli_refuses_a_schedule_out_of_bounds_and_runs_nothing(sandbox: Sandbox) -> None:
    env = {**os.environ, 'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret}
    done = subprocess.run([sys.executable, '-m', 'krakenex', 'dead-man-switch', '--every', '40',
                           '--uri', sandbox.url, '60', 'echo', 'ran'], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ''
    assert 'more than half of timeout=60' in done.stderr
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None


def test_cli_disarms_again_when_the_command_cannot_be_started(sandbox: Sandbox) -> None:
    env = {**os.environ, 'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret}
    done = subprocess.run([sys.executable, '-m', 'krakenex', 'dead-man-switch', '--uri',
                           sandbox.url, '60', '--', 'no-such-bot-anywhere'], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and 'cannot run no-such-bot-anywhere' in done.stderr
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None
    sent = [m for m, _ in sandbox.requests_log if m == 'CancelAllOrdersAfter']
    assert len(sent) == 2  # armed, then disarmed


# -- the command line, interrupted ---------------------------------------------------

def switch_command(sandbox: Sandbox, *command: str) -> subprocess.Popen[str]:
    """``krakenex dead-man-switch 60 -- COMMAND`` run as from a terminal, Ctrl-C included."""
    env = {**os.environ, 'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret}
    return subprocess.Popen([sys.executable, '-m', 'krakenex', 'dead-man-switch', '--uri',
                             sandbox.url, '60', '--', *command], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=default_sigint)


def interrupted(command: subprocess.Popen[str]) -> tuple[int, str]:
    """Ctrl-C the command; its exit code and stderr."""
    command.send_signal(signal.SIGINT)
    return ended(command)


def ended(command: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for the command to end; its exit code and stderr."""
    try:
        command.wait(timeout=DEADLINE)  # what it prints is small: the pipes cannot fill
    finally:
        command.kill()
    assert command.stderr is not None
    return command.returncode, command.stderr.read()


def advised_until(err: str) -> float:
    """The time (of day, in seconds) the command says the switch may be armed until."""
    found = re.search(r'may be armed until (\d\d):(\d\d):(\d\d) UTC', err)
    assert found, err
    hours, minutes, seconds = map(int, found.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_cli_interrupted_while_the_first_arm_is_in_flight_exits_4_and_says_how_to_disarm(
        sandbox: Sandbox) -> None:
    sandbox.inject('reply_delayed', method='CancelAllOrdersAfter', seconds=10)
    command = switch_command(sandbox, sys.executable, '-c', 'print("bot ran")')
    account = sandbox.exchange.accounts[sandbox.key]
    until(lambda: account.cancel_at is not None, 'the first arm to reach the sandbox')
    code, err = interrupted(command)
    assert code == 4, err
    assert 'outcome unknown: interrupted' in err
    assert 'To disarm it: krakenex CancelAllOrdersAfter timeout=0' in err
    # the time said is not before the switch would cancel the orders
    assert account.cancel_at is not None
    assert 0 <= (advised_until(err) - account.cancel_at) % 86400 <= 5
    assert 'bot ran' not in (command.stdout.read() if command.stdout else '')


BOT_WAITING = 'import sys; print("bot ready", flush=True); sys.stdin.read()'  # exits 0 at EOF


def test_cli_interrupted_during_the_final_disarm_finishes_it_and_exits_0(
        sandbox: Sandbox) -> None:
    command = switch_command(sandbox, sys.executable, '-c', BOT_WAITING)
    assert command.stdout is not None and command.stdin is not None
    assert command.stdout.readline() == 'bot ready\n'
    sandbox.inject('delay', method='CancelAllOrdersAfter', seconds=2)
    command.stdin.close()  # the bot exits 0: the disarm is sent, and held 2 s
    time.sleep(0.5)
    code, err = interrupted(command)
    assert (code, err) == (0, '')
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None


def test_cli_whose_final_disarm_fails_exits_4_and_says_how_to_disarm(sandbox: Sandbox) -> None:
    command = switch_command(sandbox, sys.executable, '-c', BOT_WAITING)
    assert command.stdout is not None and command.stdin is not None
    assert command.stdout.readline() == 'bot ready\n'
    sandbox.inject('unavailable', times=3, method='CancelAllOrdersAfter')
    command.stdin.close()
    code, err = ended(command)
    assert code == 4, err
    assert 'Unavailable' in err and 'may be armed until' in err
    assert 'To disarm it: krakenex CancelAllOrdersAfter timeout=0' in err
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is not None


def test_a_script_with_the_blocking_api_never_loads_asyncio(tmp_path: Path) -> None:
    # asyncio takes 15-25 ms to import, a fifth of `import krakenex`; only the
    # asyncio clients need it.
    probe = ('import sys, krakenex\n'
             'api = krakenex.API(uri="http://127.0.0.1:9")\n'
             'switch = api.dead_man_switch(60, 20)\n'
             'print("asyncio" in sys.modules, "aiohttp" in sys.modules)\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith('KRAKEN_')}
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                            timeout=60, env=env, cwd=tmp_path)
    assert result.stdout == 'False False\n', result.stderr
