"""The stream of messages for the user: filled on the event loop, read there or on any thread."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections import deque
from typing import Any

from .protocol import notice

__all__ = ['Stream', 'StreamClosed']


class StreamClosed(Exception):
    """The stream has ended: the client was closed or gave up."""


class Stream:
    """Messages for the user, in order: filled on the loop, read from the loop or a thread.

    It keeps at most ``maxlen`` messages and ``max_bytes`` bytes (each message counted at
    its size on the wire); past either, the oldest are dropped, and the newest is always
    kept. A reader on another thread waits on a :class:`queue.SimpleQueue`, never on a lock
    the loop also takes: Ctrl-C in the middle of a ``threading.Condition`` wait can leave
    its lock held or released twice, and then the loop thread blocks for good. The deque's
    ``append`` and ``popleft`` are atomic, so nothing else is locked. Only the loop counts
    bytes: each message is kept with the count of bytes put before it, so the bytes kept
    are the count now less the oldest message's; ``_head``, the oldest's as last seen, can
    only lag behind, which at worst makes the loop look again.
    """

    def __init__(self, maxlen: int, max_bytes: int) -> None:
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.closed = False
        self._items: deque[tuple[Any, int]] = deque()  # (message, bytes put before it)
        self._total = 0  # bytes put so far
        self._head = 0  # bytes put before the oldest message kept, as last seen
        self._dropped = 0  # about: a reader taking the count while the loop adds may lose one
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._event = asyncio.Event()

    def put(self, message: Any, size: int) -> None:
        start = self._total
        self._total = total = start + size
        if total - self._head > self.max_bytes or len(self._items) >= self.maxlen:
            self._make_room(start)
        self._items.append((message, start))
        if self._wake.empty():  # one waiting token is enough: readers look again after it
            self._wake.put(None)
        self._event.set()

    def _make_room(self, start: int) -> None:
        """Drop the oldest messages until the one starting at ``start`` fits."""
        items = self._items
        while True:
            try:
                self._head = items[0][1]
            except IndexError:  # nothing kept (a reader may have just taken the last one)
                self._head = start
                return
            if self._total - self._head <= self.max_bytes and len(items) < self.maxlen:
                return
            with contextlib.suppress(IndexError):  # a reader may have taken it meanwhile
                items.popleft()
                self._dropped += 1

    def close(self) -> None:
        self.closed = True
        self._wake.put(None)
        self._event.set()

    def _take(self) -> tuple[bool, Any]:
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return True, notice('overflow', dropped=dropped)
        with contextlib.suppress(IndexError):
            return True, self._items.popleft()[0]
        if self.closed:
            if self._wake.empty():
                self._wake.put(None)  # for the next reader waiting
            raise StreamClosed
        return False, None

    def get(self, timeout: float | None) -> Any:
        """Wait for a message on any thread (the sync client's reader)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found, message = self._take()
            if found:
                if self._items and self._wake.empty():
                    self._wake.put(None)  # the token is passed on to another thread waiting
                return message
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f'no message within {timeout} s')
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=left)

    async def aget(self, timeout: float | None) -> Any:
        """Wait for a message on the loop that fills the stream."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            found, message = self._take()
            if found:
                return message
            self._event.clear()
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError(f'no message within {timeout} s')
            with contextlib.suppress(asyncio.TimeoutError):  # on Python 3.10 not TimeoutError
                await asyncio.wait_for(self._event.wait(), left)
