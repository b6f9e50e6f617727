"""Keeps Kraken's dead man's switch armed while a bot runs, and disarms it when the bot is done.

Kraken's ``CancelAllOrdersAfter`` (REST), ``cancel_all_orders_after`` (WebSocket) and
``cancelallordersafter`` (Kraken Futures) start a timer: unless it is called again
before the timer runs out, Kraken cancels every open order of the account. Kraken
advises calling it every 15 to 30 seconds with a 60-second timeout, so that the
orders of a bot that crashed, hung or lost its network are cancelled within a
minute (https://docs.kraken.com/api/docs/rest-api/cancel-all-orders-after).

A keeper calls it on that schedule::

    with api.dead_man_switch(timeout=60, every=20) as switch:
        run_the_bot()            # switch.healthy, switch.last_error, switch.armed_until

- It arms the switch on entry, and raises there if it cannot.
- It re-arms every ``every`` seconds. A re-arm that fails (a lost connection, a
  reconnecting WebSocket, Kraken busy) is logged as a warning on the ``krakenex``
  logger (and put into the WebSocket stream as a ``dead_man_switch`` notice) and
  tried again after a quarter of ``every``: at least four more tries before the
  timer runs out. A try that hangs counts as failed after :attr:`within` seconds.
- A clean exit of the block (no exception, or ``sys.exit(0)``) disarms the switch
  (``timeout=0``): the orders stay. A re-arm in flight is let finish first (within
  :attr:`within` seconds), never cut short, so it cannot reach Kraken after the disarm.
- An exception leaving the block, Ctrl-C included, leaves the switch armed: the
  bot no longer tends its orders, so Kraken cancels them when the timer runs out,
  as it would for a bot that died. ``disarm_on_error=True`` disarms then too.
- A process that dies (killed, out of memory, power lost) sends nothing: the
  switch stays armed and Kraken cancels the orders when the timer runs out.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: a script that never awaits need not load asyncio
    import asyncio

from .errors import KrakenUsageError
from .protocol import Timeout

__all__ = ['DeadManSwitch', 'AsyncDeadManSwitch', 'ADVISED_TIMEOUT', 'ADVISED_EVERY',
           'MAX_TIMEOUT', 'check_schedule']

log = logging.getLogger('krakenex')

#: Kraken's advice: a 60-second timeout, ...
ADVISED_TIMEOUT = 60
#: ... renewed every 15 to 30 seconds.
ADVISED_EVERY = (15, 30)
#: Kraken's bound on the timeout: whole seconds, below 86400 (a day); 0 disarms.
MAX_TIMEOUT = 86399
#: After a failed re-arm, the next try comes after this share of ``every``.
RETRY_SHARE = 0.25
#: Tries to disarm on a clean exit before giving up, and the wait between two.
DISARM_TRIES, DISARM_WAIT = 3, 0.5
#: One try may take a quarter of the time from a missed re-arm to the timer running out
#: (10 s with Kraken's advice), but at least this many seconds, before it counts as failed.
MIN_WITHIN = 1.0

#: Sends the call with a timeout in seconds (0 disarms), taking at most ``within`` seconds.
Arm = Callable[[int, float], object]

#: What the keeper reports a change of health with: ``{'healthy': ..., 'error': ..., ...}``.
Notify = Callable[[dict[str, Any]], None]


def check_schedule(timeout: Any, every: Any) -> tuple[int, float]:
    """The timeout and the re-arm period, checked; ``every=None`` is a third of the timeout.

    :raises KrakenUsageError: for a timeout that is not a whole number of seconds from 1
        to :data:`MAX_TIMEOUT`, or an ``every`` that is not above 0 and at most half the
        timeout (one lost re-arm must not let the timer run out)
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int) \
            or not 1 <= timeout <= MAX_TIMEOUT:
        raise KrakenUsageError(f'timeout must be a whole number of seconds from 1 to '
                               f'{MAX_TIMEOUT} (Kraken advises {ADVISED_TIMEOUT}), '
                               f'not {timeout!r}')
    if every is None:
        return timeout, timeout / 3
    if isinstance(every, bool) or not isinstance(every, (int, float)) \
            or not math.isfinite(every) or every <= 0:
        raise KrakenUsageError(f'every must be a number of seconds above 0, not {every!r}')
    if every > timeout / 2:
        raise KrakenUsageError(
            f'every={every:g} is more than half of timeout={timeout}: one lost re-arm would '
            f'let the switch cancel every order. Re-arm at least twice per timeout (Kraken '
            f'advises every {ADVISED_EVERY[0]} to {ADVISED_EVERY[1]} s with a '
            f'{ADVISED_TIMEOUT} s timeout)')
    return timeout, float(every)


def call_timeout(own: Timeout, within: float) -> Timeout:
    """A REST call's timeout: the client's own, or shorter, so that the attempt (connect and
    reply together) is over within ``within`` seconds."""
    connect, read = own if isinstance(own, tuple) else (own, own)
    if connect + read <= within:
        return own
    return (min(connect, within / 2), min(read, within / 2))


def clean_exit(kind: type[BaseException] | None, exc: BaseException | None) -> bool:
    """Whether a ``with`` block was left cleanly: no exception, or ``sys.exit(0)``."""
    if kind is None:
        return True
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


class _Keeper:
    """What both keepers share: the schedule, the health and how a change of it is told."""

    def __init__(self, timeout: int, every: float | None, *, what: str,
                 notify: Notify | None = None, disarm_on_error: bool = False) -> None:
        #: Seconds Kraken waits after the last arming before it cancels every order.
        #: ``every``: seconds between two armings; ``retry``: after a failed one.
        self.timeout, self.every = check_schedule(timeout, every)
        self.retry = self.every * RETRY_SHARE
        #: Seconds one try may take before it counts as failed (and is tried again).
        self.within = max(MIN_WITHIN, (self.timeout - self.every) / 4)
        #: Whether an exception leaving the block disarms the switch too.
        self.disarm_on_error = disarm_on_error
        #: Whether the last try to arm the switch succeeded.
        self.healthy = False
        #: The error of the last failed try, ``None`` once one succeeds again.
        self.last_error: BaseException | None = None
        #: Failed tries in a row.
        self.failures = 0
        #: Times the switch was armed.
        self.arms = 0
        #: When Kraken cancels every order (Unix time) unless the switch is armed again
        #: before; ``None`` before the first arming and once disarmed.
        self.armed_until: float | None = None
        self.what = what
        self._notify = notify

    def __repr__(self) -> str:
        state = 'healthy' if self.healthy else f'failing: {self.last_error}' \
            if self.last_error else 'not armed'
        return (f'<dead man\'s switch on {self.what}, timeout={self.timeout} '
                f'every={self.every:g}, {state}>')

    def _armed(self, sent: float) -> float:
        """Note an arming sent at ``sent`` (Unix time); the wait until the next."""
        self.armed_until = sent + self.timeout
        self.arms += 1
        failures, self.healthy, self.last_error, self.failures = self.failures, True, None, 0
        if failures:
            log.warning('the dead man\'s switch on %s is armed again after %d failed %s',
                        self.what, failures, 'try' if failures == 1 else 'tries')
            self._tell()
        return self.every

    def _failed(self, exc: BaseException) -> float:
        """Note a failed arming, loudly; the wait until the next try."""
        self.healthy, self.last_error = False, exc
        self.failures += 1
        if self.armed_until is None or self.armed_until <= time.time():
            fate = 'Kraken may have cancelled every order already'
        else:
            fate = (f'Kraken cancels every order at '
                    f'{time.strftime("%H:%M:%S", time.localtime(self.armed_until))} unless '
                    f'a re-arm gets through')
        log.warning('the dead man\'s switch on %s was not re-armed (%s); %s; '
                    'next try in %g s', self.what, exc or type(exc).__name__, fate, self.retry)
        self._tell()
        return self.retry

    def _tell(self) -> None:
        """Tell ``notify`` of the health; a ``notify`` that fails is logged, never fatal."""
        if self._notify is None:
            return
        try:
            self._notify({'healthy': self.healthy,
                          'error': None if self.last_error is None else str(self.last_error),
                          'failures': self.failures, 'armed_until': self.armed_until,
                          'retry_in': None if self.healthy else self.retry})
        except Exception as exc:  # the keeper goes on re-arming: that is what the orders need
            log.warning('the dead man\'s switch on %s could not report its health (%s); '
                        'it is kept armed all the same', self.what, exc or type(exc).__name__)

    def _disarmed(self) -> None:
        self.armed_until, self.healthy = None, False

    def _disarm_failed(self, exc: BaseException) -> None:
        self.healthy, self.last_error = False, exc
        log.warning('the dead man\'s switch on %s could not be disarmed (%s); '
                    'Kraken cancels every order when its timer runs out', self.what, exc)


class DeadManSwitch(_Keeper):
    """Keeps the dead man's switch armed from a thread of its own: ``with`` or start/stop.

    Made by :meth:`krakenex.API.dead_man_switch`, ``FuturesAPI.dead_man_switch`` and
    :meth:`krakenex.ws.WS.dead_man_switch`; see :mod:`krakenex.deadman` for what it does.

    :param arm: sends the call with a timeout in seconds (0 disarms), giving up after
        :attr:`within` seconds, its second argument; raises if it failed
    :param timeout: Kraken's timer, in whole seconds
    :param every: seconds between two armings, at most half of ``timeout``
    :param what: names the client in warnings
    :param notify: told of each change of health, besides the log
    :param disarm_on_error: disarm when an exception leaves the block, too
    :raises KrakenUsageError: for a timeout or period out of bounds (:func:`check_schedule`)
    """

    def __init__(self, arm: Arm, timeout: int = ADVISED_TIMEOUT,
                 every: float | None = None, *, what: str = 'Kraken',
                 notify: Notify | None = None, disarm_on_error: bool = False) -> None:
        super().__init__(timeout, every, what=what, notify=notify,
                         disarm_on_error=disarm_on_error)
        self._arm = arm
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DeadManSwitch:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(disarm=clean_exit(kind, exc) or self.disarm_on_error)

    def start(self) -> None:
        """Arm the switch now and keep it armed from a thread.

        :raises KrakenError: (or the client's own error) if the first arming failed;
            nothing keeps running then
        """
        if self._thread is not None:
            raise KrakenUsageError('this dead man\'s switch is already kept armed')
        self._armed(self._send(self.timeout))
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep, daemon=True,
                                        name='krakenex-dead-man-switch')
        self._thread.start()

    def stop(self, disarm: bool = True) -> None:
        """Stop re-arming; with ``disarm``, turn the switch off (``timeout=0``).

        Without ``disarm`` the switch stays armed, and Kraken cancels every order when
        the timer runs out.

        :raises KrakenError: (or the client's own error) if it could not be disarmed
        """
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        if disarm:
            for attempt in range(DISARM_TRIES):
                try:
                    self._send(0)
                    break
                except Exception as exc:
                    if attempt == DISARM_TRIES - 1:
                        self._disarm_failed(exc)
                        raise
                    time.sleep(DISARM_WAIT)
            self._disarmed()

    def _send(self, timeout: int) -> float:
        sent = time.time()
        self._arm(timeout, self.within)
        return sent

    def _keep(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            try:
                wait = self._armed(self._send(self.timeout))
            except Exception as exc:  # every failure is retried: arming twice is harmless
                wait = self._failed(exc)


class AsyncDeadManSwitch(_Keeper):
    """Keeps the dead man's switch armed from an asyncio task: ``async with`` or start/stop.

    Made by :meth:`krakenex.AsyncAPI.dead_man_switch` and
    :meth:`krakenex.ws.AsyncWS.dead_man_switch`; the parameters are those of
    :class:`DeadManSwitch`, with ``arm`` a coroutine function.
    """

    def __init__(self, arm: Callable[[int, float], Awaitable[object]],
                 timeout: int = ADVISED_TIMEOUT,
                 every: float | None = None, *, what: str = 'Kraken',
                 notify: Notify | None = None, disarm_on_error: bool = False) -> None:
        super().__init__(timeout, every, what=what, notify=notify,
                         disarm_on_error=disarm_on_error)
        self._arm = arm
        self._task: asyncio.Task[None] | None = None
        #: Set to end the keeping task; it ends after the try in flight, never inside it.
        self._stop: asyncio.Event | None = None

    async def __aenter__(self) -> AsyncDeadManSwitch:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop(disarm=clean_exit(kind, exc) or self.disarm_on_error)

    async def start(self) -> None:
        """Arm the switch now and keep it armed from a task; see :meth:`DeadManSwitch.start`."""
        import asyncio

        if self._task is not None:
            raise KrakenUsageError('this dead man\'s switch is already kept armed')
        self._armed(await self._send(self.timeout))
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._keep(self._stop))

    async def stop(self, disarm: bool = True) -> None:
        """Stop re-arming; with ``disarm``, turn the switch off; see :meth:`DeadManSwitch.stop`."""
        import asyncio

        task, self._task = self._task, None
        if task is not None and self._stop is not None:
            # Not task.cancel(): a cancelled re-arm in flight is an unknown outcome to the
            # client, not a cancellation, and could reach Kraken after the disarm below.
            # The try in flight ends (within ``within`` seconds), then the task.
            self._stop.set()
            await asyncio.gather(task, return_exceptions=True)
        if disarm:
            for attempt in range(DISARM_TRIES):
                try:
                    await self._send(0)
                    break
                except Exception as exc:
                    if attempt == DISARM_TRIES - 1:
                        self._disarm_failed(exc)
                        raise
                    await asyncio.sleep(DISARM_WAIT)
            self._disarmed()

    async def _send(self, timeout: int) -> float:
        import asyncio

        sent = time.time()
        await asyncio.wait_for(self._arm(timeout, self.within), self.within)
        return sent

    async def _keep(self, stop: asyncio.Event) -> None:
        wait = self.every
        while not await _set_within(stop, wait):
            try:
                wait = self._armed(await self._send(self.timeout))
            except Exception as exc:  # every failure is retried: arming twice is harmless
                wait = self._failed(exc)



async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it is set."""
    import asyncio

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
