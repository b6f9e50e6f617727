"""AsyncAPI's timeouts: one timer per client watches every attempt in flight, and cuts the late.

aiohttp bounds a call with timers of its own: one for the whole call, then one
rearmed at every read of the socket. Arming and cancelling them took about
an eighth of the instructions of an :class:`~krakenex.AsyncAPI` call. A
:class:`Patrol` notes each attempt when it starts and forgets it when it ends,
and keeps a single timer, armed for the first moment an attempt in flight
could be due. A call that ends sooner leaves the timer as it is; when it
fires it looks at the attempts still in flight and is armed again only if
one remains. So a call costs a dictionary entry, and the timer fires about
once per read timeout while calls are in flight.

An attempt is cut, by cancelling its task, when

- its deadline passes: the connect and read timeouts together, however the
  reply arrives (:func:`krakenex.protocol.deadline_seconds`);
- its reply's status line and headers have not all arrived within the read
  timeout of its connection being ready (a head trickling in a byte at a time
  counts as none), or no byte of its body arrived within the read timeout. The body
  is looked at when the timer fires, so a silent body is cut between one
  and two read timeouts after its last byte, and by the deadline in any case.

The connect timeout stays aiohttp's (``sock_connect``): it arms a timer only
when a new connection is opened.
"""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

__all__ = ['Attempt', 'Patrol']

#: How early a timer may fire and still count as on time (the event loop's clock resolution).
_EARLY = 1e-3


class Attempt:
    """One attempt in flight: when it is due, and why it was cut if it was."""

    __slots__ = ('read', 'deadline', 'due', 'body', 'heard', 'cut', 'cancelling')

    def __init__(self, now: float, connect: float, read: float, cancelling: int) -> None:
        self.read = read
        #: Loop time by which the whole reply must be in.
        self.deadline = now + connect + read
        #: Loop time by which the next part must have arrived: the head, then more of the body.
        self.due = now + read
        #: The reply body's :class:`aiohttp.StreamReader`, once the head is in.
        self.body: Any = None
        self.heard = 0
        #: ``'timeout'`` or ``'deadline'`` once cut; the kind of
        #: :func:`krakenex.protocol.transport_error` to raise.
        self.cut: str | None = None
        self.cancelling = cancelling

    def headed(self, now: float, body: Any) -> None:
        """The reply's head is in: its body has the read timeout from now for each part."""
        self.body, self.heard, self.due = body, getattr(body, 'total_bytes', 0), now + self.read


class Patrol:
    """The attempts of one client in flight, in one event loop, and the one timer watching them."""

    def __init__(self) -> None:
        #: Each task's attempt in flight.
        self.attempts: dict[asyncio.Task[Any], Attempt] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._when = math.inf

    def start(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], connect: float,
              read: float, told: bool) -> Attempt:
        """Watch the attempt ``task`` starts now; :meth:`end` it however it ends.

        :param told: whether :meth:`connected` will be called when its connection
            is ready; if not, the read timeout counts from now
        """
        # Python 3.11 counts a task's cancels, so a cut can be told from a cancel from elsewhere.
        cancelling = 0
        if sys.version_info >= (3, 11):
            cancelling = task.cancelling()
        attempt = Attempt(loop.time(), connect, read, cancelling)
        if told:  # until the connection is ready, only the deadline applies
            attempt.due = attempt.deadline
        self.attempts[task] = attempt
        if attempt.due < self._when - _EARLY:
            self._arm(loop, attempt.due)
        return attempt

    def connected(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None) -> None:
        """The task's attempt has its connection, new or pooled: the read timeout counts from now.

        Told by the connector of the session :class:`~krakenex.AsyncAPI` opens;
        with a session of the user's own, the read timeout counts from the
        attempt's start.
        """
        attempt = self.attempts.get(task)  # type: ignore[arg-type]
        if attempt is not None and attempt.body is None:
            attempt.due = loop.time() + attempt.read
            if attempt.due < self._when - _EARLY:
                self._arm(loop, attempt.due)

    def end(self, task: asyncio.Task[Any]) -> None:
        """The task's attempt is over: it is no longer watched (the timer is left as it is)."""
        del self.attempts[task]

    def was_cut(self, task: asyncio.Task[Any], attempt: Attempt) -> bool:
        """Whether a :class:`asyncio.CancelledError` in the attempt is this patrol's cut alone.

        If so the task's cancellation is withdrawn, and the caller raises the
        timeout instead; a cancellation from elsewhere, even at the same
        moment, is left to propagate.
        """
        if attempt.cut is None:
            return False
        if sys.version_info >= (3, 11):
            return task.uncancel() <= attempt.cancelling
        return True

    def close(self) -> None:
        """Stop the timer: for a client closing, or moving to another loop."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._when = None, math.inf

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._when = loop.call_at(when, self._fire, loop), when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._when = None, math.inf
        now = loop.time()
        late = now + _EARLY  # a timer fired a hair early is on time
        due = math.inf
        for task, attempt in self.attempts.items():
            if attempt.cut is not None:
                continue
            heard = getattr(attempt.body, 'total_bytes', 0)
            if heard != attempt.heard:  # more of the body came in
                attempt.heard, attempt.due = heard, now + attempt.read
            if late >= attempt.deadline:
                attempt.cut = 'deadline'
            elif late >= attempt.due:
                attempt.cut = 'timeout'
            else:
                due = min(due, attempt.due, attempt.deadline)
                continue
            task.cancel()
        if due < math.inf:
            self._arm(loop, due)
