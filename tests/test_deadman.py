"""The dead man's switch keeper, over real HTTP and WebSocket against the sandbox.

Kraken's timer counts whole seconds, so these tests arm it for 2 s and re-arm it
every half second: "past the timeout" is 3 s here, not a minute.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from krakenex import API, AsyncAPI, KrakenUsageError
from krakenex.deadman import check_schedule
from krakenex.futures import FuturesAPI
from krakenex.sandbox import Sandbox
from krakenex.ws import WS, AsyncWS

pytestmark = pytest.mark.unlimited  # a re-arm every half second is above any tier's pace

TIMEOUT = 2  # Kraken's timer, in whole seconds
EVERY = 0.5
PAST = TIMEOUT + 1.0  # long enough for the timer to have run out, had nothing re-armed it


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
        time.sleep(PAST)
        assert status(sandbox, txid) == ('open', None)
        assert switch.healthy and switch.arms >= 4 and switch.last_error is None
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
    time.sleep(PAST)
    assert status(sandbox, txid) == CANCELLED_BY_SWITCH


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
    time.sleep(max(0.0, killed + TIMEOUT + 0.2 - time.time()))
    assert status(sandbox, txid) == CANCELLED_BY_SWITCH


def test_a_failed_rearm_is_a_warning_and_is_tried_again_sooner(
        sandbox: Sandbox, api: API, caplog: pytest.LogCaptureFixture) -> None:
    every = 0.8  # retried after 0.2 s
    with caplog.at_level(logging.WARNING, 'krakenex'), \
            api.dead_man_switch(TIMEOUT, every) as switch:
        txid = place(api)
        sandbox.inject('unavailable', times=2, method='CancelAllOrdersAfter')
        time.sleep(every + 0.1)
        assert not switch.healthy and switch.failures >= 1
        assert 'Unavailable' in str(switch.last_error)
        time.sleep(PAST)
        assert switch.healthy and switch.last_error is None
        assert status(sandbox, txid) == ('open', None)
    warnings = [r.getMessage() for r in caplog.records if 'dead man' in r.getMessage()]
    assert len(warnings) == 3, warnings
    assert 'was not re-armed (Kraken CancelAllOrdersAfter answered EService:Unavailable' \
        in warnings[0]
    assert 'next try in 0.2 s' in warnings[0]
    assert 'armed again after 2 failed tries' in warnings[2]


def test_a_rearm_that_hangs_is_cut_short_and_tried_again_before_the_timer_runs_out(
        sandbox: Sandbox, api: API, caplog: pytest.LogCaptureFixture) -> None:
    # Each try may take a quarter of timeout - every (at least 1 s), not the client's 10 s.
    with caplog.at_level(logging.WARNING, 'krakenex'), api.dead_man_switch(4, 1) as switch:
        txid = place(api)
        sandbox.inject('delay', method='CancelAllOrdersAfter', seconds=8)
        time.sleep(5)
        assert status(sandbox, txid) == ('open', None)
        assert switch.healthy and switch.within == 1
    assert any('was not re-armed' in r.getMessage() for r in caplog.records)


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
            await asyncio.sleep(PAST)
            assert status(sandbox, txid) == ('open', None)
            assert switch.healthy and switch.arms >= 4

    asyncio.run(bot())
    assert sandbox.exchange.accounts[sandbox.key].cancel_at is None


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
    time.sleep(PAST)
    assert status(sandbox, txid) == CANCELLED_BY_SWITCH


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
    time.sleep(TIMEOUT + 0.2)
    assert status(sandbox, txid) == CANCELLED_BY_SWITCH


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
