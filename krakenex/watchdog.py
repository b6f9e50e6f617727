"""Watches the connection a requests call is given: cut off at the call's deadline, never stale.

urllib3 bounds each read of a socket, not the wait for a reply's head: a
server sending its status line and headers a byte at a time would hold a call
for as long as it likes. A :class:`Watch` lets one thread of krakenex's own
shut the connection's socket down at the call's deadline, which wakes the
blocked read. It covers the connections of requests' own
:class:`~requests.adapters.HTTPAdapter`; a transport of the user's own
(another adapter class, a proxy's pool) is bounded per read only.

The same pools stamp each connection when it comes back idle, so that a call
that must not meet a connection the server may have forgotten (a state change,
with :attr:`Watch.stale_after`) gets that connection closed and opened afresh,
whatever other threads are doing with the pool's other connections.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import socket
import threading
import time
from contextlib import suppress
from types import TracebackType
from typing import Any

import requests
from urllib3 import HTTPConnectionPool, PoolManager

__all__ = ['Watch', 'watch_adapter']

log = logging.getLogger('krakenex')

# The watch of the call this thread is sending, for the pools below to hand its connection to.
_current = threading.local()


class Watch:
    """One call's deadline: ``with Watch(deadline):`` around sending it, until its headers are in.

    :attr:`fired` says whether the deadline passed first and the connection was cut.
    """

    __slots__ = ('deadline', 'stale_after', 'fired', '_conn', '_lock', '_done')

    def __init__(self, deadline: float, stale_after: float | None = None) -> None:
        #: The deadline, in :func:`time.monotonic` seconds.
        self.deadline = deadline
        #: Seconds a pooled connection may have been idle and still carry the call; one idle
        #: longer is closed and opened afresh. ``None``: any pooled connection will do.
        self.stale_after = stale_after
        #: Whether the deadline passed while the call was watched, and its connection was cut.
        self.fired = False
        self._conn: Any = None
        self._lock = threading.Lock()
        self._done = False

    def __enter__(self) -> Watch:
        _current.watch = self
        _dog.add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _current.watch = None
        with self._lock:
            self._done = True
            self._conn = None
        _dog.done()

    def attach(self, conn: Any) -> None:
        """Keep the connection the call was given, to cut it at the deadline."""
        with self._lock:
            self._conn = conn

    def expire(self) -> None:
        """Cut the connection, if the call is still waiting on it."""
        with self._lock:  # held, so that the call cannot leave its watch half cut
            if self._done:
                return
            self.fired = True
            sock = getattr(self._conn, 'sock', None)
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread


class _Watchdog:
    """The thread that expires watches at their deadlines, started on first use."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start afresh: no watches, and no thread until the next one (after a fork, say)."""
        self._heap: list[tuple[float, int, Watch]] = []
        self._live = 0  # watches added and not yet done; the rest of the heap is litter
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._wake:
            self._live += 1
            if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
                self._heap = [entry for entry in self._heap if not entry[2]._done]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name='krakenex-deadlines',
                                                daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._wake.notify()

    def done(self) -> None:
        with self._wake:
            self._live -= 1

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, watch = heapq.heappop(self._heap)
            watch.expire()


_dog = _Watchdog()
if hasattr(os, 'register_at_fork'):  # a forked child has no watchdog thread: it starts its own
    os.register_at_fork(after_in_child=_dog.reset)


def _watched_pool(base: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``base`` handing each connection it gives out to the sending thread's watch."""

    def _get_conn(self: HTTPConnectionPool, timeout: float | None = None) -> Any:
        conn = base._get_conn(self, timeout)
        watch = getattr(_current, 'watch', None)
        if watch is not None:
            if watch.stale_after is not None and getattr(conn, 'sock', None) is not None:
                idle = time.monotonic() - getattr(conn, '_krakenex_idle_since', -math.inf)
                if idle > watch.stale_after:  # closed here, it connects afresh when used
                    log.debug('a connection idle for %.1f s closed before a state change', idle)
                    conn.close()
            watch.attach(conn)
        return conn

    def _put_conn(self: HTTPConnectionPool, conn: Any) -> None:
        # Stamped with when it comes back idle (time.monotonic), for _get_conn to judge.
        with suppress(AttributeError):  # None, or a connection class with __slots__: not judged
            conn._krakenex_idle_since = time.monotonic()
        base._put_conn(self, conn)

    return type(f'Watched{base.__name__}', (base,), {'_get_conn': _get_conn,
                                                     '_put_conn': _put_conn})


_WATCHED: dict[type[HTTPConnectionPool], type[HTTPConnectionPool]] = {}


def watch_adapter(adapter: Any) -> None:
    """Make the connections of requests' :class:`~requests.adapters.HTTPAdapter` watchable.

    Its pool manager makes watched pools from now on; pools it made before
    are let go (their idle connections closed). Other adapters are left as
    they are. Done once per adapter.
    """
    if not isinstance(adapter, requests.adapters.HTTPAdapter) \
            or getattr(adapter, '_krakenex_watched', False):
        return
    manager = getattr(adapter, 'poolmanager', None)
    if isinstance(manager, PoolManager):
        classes = manager.pool_classes_by_scheme
        for cls in classes.values():
            if cls not in _WATCHED:
                _WATCHED[cls] = _watched_pool(cls)
        manager.pool_classes_by_scheme = {scheme: _WATCHED[cls] for scheme, cls in classes.items()}
        manager.clear()
    adapter._krakenex_watched = True  # type: ignore[attr-defined]
