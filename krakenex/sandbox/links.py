"""The feed's WebSocket connections, every one served by a single thread.

A :class:`Loop` keeps each upgraded connection (a :class:`Link`) in one
selector. It reads what clients send, hands each whole message to the link's
:class:`Handler`, and writes what waits for a client without ever blocking on
it. Every ``tick`` seconds it asks the handlers of the links that listen to
something to :meth:`~Handler.look` for changes. Between events it sleeps, so a
connection that is idle costs no CPU and no thread of its own.

The bounds that keep one client from costing others:

- **Idle**: a connection that listens to nothing and has sent nothing for
  ``idle_timeout`` seconds is closed, as Kraken closes idle connections after
  about a minute; the HTTP server may also close it sooner to make room for a
  newcomer (see :class:`~krakenex.sandbox.server.Upgraded`).
- **Slow readers**: the kernel holds at most :data:`SEND_BUFFER` bytes for a
  client; while more than :data:`BACKLOG` bytes wait beyond it,
  its handler is not asked to look (its next update then carries every change
  since the last one it was sent) and nothing more is read from it; a client
  that reads nothing of what waits for ``idle_timeout`` seconds, or lets more
  than :data:`MAX_BACKLOG` bytes pile up, is disconnected.
- **Unfinished messages**: a client message may have :data:`MAX_MESSAGE` bytes
  (a longer one closes the connection with 1009), and what every client has sent
  of messages not yet finished is held up to :data:`PARTIAL_BUDGET` bytes in all;
  past it, the connection that holds the most is disconnected, until the rest fit.

Only the loop's thread touches a link or its handler; other threads reach them
through :meth:`Loop.call_soon`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from .server import Upgraded

__all__ = ['Loop', 'Link', 'Handler', 'BACKLOG', 'MAX_BACKLOG', 'IDLE_TIMEOUT', 'MAX_MESSAGE',
           'PARTIAL_BUDGET']

log = logging.getLogger('krakenex.sandbox')

#: Seconds a connection that listens to nothing may stay silent (Kraken: "about a minute").
IDLE_TIMEOUT = 60.0
#: Bytes waiting for a client beyond which it gets no new updates and nothing more is read.
BACKLOG = 256 * 1024
#: Bytes waiting for a client beyond which it is disconnected.
MAX_BACKLOG = 16 * 1024 * 1024
#: The kernel's send buffer of a connection: a client that stops reading backs up here
#: soon, and 2,000 of them hold a bounded amount of the kernel's memory.
SEND_BUFFER = 128 * 1024
#: Bytes one message from a client may have. Kraken's requests are small (a batch of 15
#: orders is a few KiB), so a longer message is no request: the connection is closed (1009).
MAX_MESSAGE = 64 * 1024
#: Bytes that unfinished client messages may hold together, across every connection.
PARTIAL_BUDGET = 16 * 1024 * 1024
READ_SIZE = 65536
#: Messages of one client answered in a turn before every other client's turn comes.
ANSWERS_PER_TURN = 4
CLOSE_TIMEOUT = 1.0  # seconds to wait for the client's close frame after ours
SWEEP = 1.0  # seconds between two looks at every link's deadlines


class Handler(Protocol):
    """What a link's owner does with it; called in the loop's thread only."""

    def opened(self) -> None:
        """The link joined the loop: greet the client."""

    def message(self, data: str | bytes) -> None:
        """One whole message from the client."""

    def look(self) -> None:
        """A tick while the handler listens: send what changed."""

    def listening(self) -> bool:
        """Whether the handler wants looks (it has subscriptions)."""

    def gone(self) -> None:
        """The connection ended."""


class Link:
    """One WebSocket connection: its socket, its protocol state and what waits to be sent.

    :param upgraded: the connection, taken over from the HTTP server
    :param protocol: the WebSocket protocol after a successful handshake
    :param early: bytes the client sent after its handshake, already read
    """

    def __init__(self, upgraded: Upgraded, protocol: ServerProtocol, early: bytes = b'') -> None:
        self.upgraded = upgraded
        self.sock = upgraded.socket
        self.protocol = protocol
        self.handler: Handler | None = None
        self.loop: Loop | None = None
        self.out = bytearray()
        self.inbox: deque[str | bytes] = deque()
        self.parts: list[bytes] = []  # the frames so far of a fragmented message
        self.text = False  # whether that message is text
        self.heard = time.monotonic()  # the client's last message
        self.progress = self.heard  # the last time the client took something we sent
        self.closing_until: float | None = None  # our close frame is out: end by then
        self.eof = False  # the protocol wants the connection closed once the backlog is out
        self.ended = False
        self.early = early

    @property
    def partial(self) -> int:
        """Bytes held of a message the client has not finished: its frames so far and the
        part of a frame the protocol has buffered."""
        return sum(map(len, self.parts)) + len(self.protocol.reader.buffer)

    @property
    def backlog(self) -> int:
        """Bytes waiting to be sent to the client."""
        return len(self.out)

    @property
    def open(self) -> bool:
        """Whether messages may still be sent."""
        return not self.ended and self.protocol.state is State.OPEN

    def send(self, text: str) -> None:
        """Send one text message (dropped silently once the connection is closing)."""
        if self.open:
            self.protocol.send_text(text.encode())
            self._queue()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the connection ends when the client answers."""
        if self.open:
            self.protocol.send_close(code, reason)
            self.closing_until = time.monotonic() + CLOSE_TIMEOUT
            self._queue()

    def reset(self) -> None:
        """End the connection at once with a TCP reset: no close frame."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.end()

    def end(self) -> None:
        """Forget the connection and close its socket (safe to repeat)."""
        if self.ended:
            return
        self.ended = True
        if self.loop is not None:
            self.loop.forget(self)
        self.upgraded.release()
        if self.handler is not None:
            self.handler.gone()
        # free what it held now, not when the collector finds the link and handler's cycle
        self.parts, self.out = [], bytearray()
        self.inbox.clear()
        self.protocol.reader.buffer.clear()

    # -- I/O, driven by the loop -----------------------------------------------------------

    def _queue(self) -> None:
        """Take what the protocol has to send; the loop writes it at the end of its turn,
        after the server knows what the handler made of the last message."""
        for data in self.protocol.data_to_send():
            if data:
                if not self.out:
                    self.progress = time.monotonic()  # the wait for the client starts now
                self.out += data
            else:
                self.eof = True
        if self.loop is None:
            self.flush()
        else:
            self.loop.unsent.add(self)

    def flush(self) -> None:
        """Write what the socket takes now, without waiting."""
        while self.out and not self.ended:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.end()
                return
            del self.out[:sent]
            self.progress = time.monotonic()
        if self.ended:
            return
        if self.eof and not self.out:
            self.end()
        elif len(self.out) > MAX_BACKLOG:
            log.debug('a WebSocket client let %d bytes pile up: disconnected', len(self.out))
            self.reset()
        elif self.loop is not None:
            self.loop.interest(self)

    def read(self) -> bool:
        """Read what the client sent and keep each whole message in the inbox; whether
        anything came."""
        try:
            data = self.early or self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self.end()
            return False
        self.early = b''
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for frame in self.protocol.events_received():
            assert isinstance(frame, Frame)
            self._collect(frame)
        self._queue()  # pongs, close frames and the end of the stream
        if self.protocol.state is State.CLOSED:
            self.end()
        return bool(data)

    def _collect(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.parts, self.text = [bytes(frame.data)], frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self.parts.append(bytes(frame.data))
        else:
            return  # pings are answered by the protocol; pongs and closes need nothing
        if frame.fin:
            data, self.parts = b''.join(self.parts), []
            if not self.text:
                self.inbox.append(data)
                return
            try:
                self.inbox.append(data.decode())
            except UnicodeDecodeError:
                self.protocol.fail(1007, 'invalid UTF-8 in a text message')


class Loop:
    """One thread that serves every :class:`Link` added to it.

    :param tick: seconds between two looks while a handler listens (read at each turn)
    :param on_tick: called at each tick before the looks, in the loop's thread
    :param idle_timeout: seconds of silence, or of a backlog the client does not read,
        before a connection is closed (read at each sweep)
    """

    def __init__(self, *, tick: Callable[[], float], on_tick: Callable[[], None],
                 idle_timeout: Callable[[], float]) -> None:
        self._tick, self._on_tick, self._idle_timeout = tick, on_tick, idle_timeout
        self._guard = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._waker: tuple[socket.socket, socket.socket] | None = None
        self._stopping = False
        self.links: set[Link] = set()
        self.listeners: set[Link] = set()  # links whose handler wants looks
        self.unsent: set[Link] = set()  # links with something new to write this turn
        self.waiting: set[Link] = set()  # links with requests to answer at the next turn
        #: Bytes of unfinished messages by link (those holding any), and their sum.
        self.partials: dict[Link, int] = {}
        self.partial_total = 0
        #: Times round the loop, for tests that check it sleeps when it has nothing to do.
        self.turns = 0

    # -- from any thread -------------------------------------------------------------------

    def add(self, link: Link) -> None:
        """Serve ``link`` (with its handler set) from now on; starts the thread if needed."""
        self.call_soon(lambda: self._join(link))

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call`` in the loop's thread at its next turn."""
        with self._guard:
            self._calls.append(call)
            if self._thread is None:
                self._start()
            waker = self._waker
        assert waker is not None
        with contextlib.suppress(OSError):
            waker[1].send(b'\0')

    def stop(self, timeout: float = 5.0) -> None:
        """End every link and join the thread (safe to repeat; :meth:`add` starts it again)."""
        with self._guard:
            thread, waker = self._thread, self._waker
            self._stopping = True
        if thread is None or waker is None:
            return
        with contextlib.suppress(OSError):
            waker[1].send(b'\0')
        thread.join(timeout)

    # -- the loop's thread -----------------------------------------------------------------

    def _start(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._waker = socket.socketpair()
        for end in self._waker:
            end.setblocking(False)
        self._selector.register(self._waker[0], selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name='krakenex-sandbox-feed',
                                        daemon=True)
        self._thread.start()

    def _join(self, link: Link) -> None:
        assert self._selector is not None and link.handler is not None
        link.loop = self
        link.sock.setblocking(False)
        with contextlib.suppress(OSError):
            link.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self.links.add(link)
        self._selector.register(link.sock, selectors.EVENT_READ, link)
        link.upgraded.idle(link.heard)
        self._guarded(link, link.handler.opened)
        if link.early:
            self._read(link)

    def forget(self, link: Link) -> None:
        """Stop serving ``link`` (its :meth:`Link.end` calls this)."""
        self.links.discard(link)
        self.listeners.discard(link)
        self.unsent.discard(link)
        self.waiting.discard(link)
        self.partial_total -= self.partials.pop(link, 0)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(link.sock)

    def interest(self, link: Link) -> None:
        """Watch ``link`` for what it needs now: reading unless it is backed up, writing
        while anything waits for the client."""
        selector = self._selector
        if link.ended or selector is None:
            return
        if link.inbox and link.backlog <= BACKLOG:
            self.waiting.add(link)  # its next requests, at the next turn
        else:
            self.waiting.discard(link)
        events = 0
        if not link.inbox and link.backlog <= BACKLOG:
            events |= selectors.EVENT_READ
        if link.out:
            events |= selectors.EVENT_WRITE
        try:
            key: selectors.SelectorKey | None = selector.get_key(link.sock)
        except (KeyError, ValueError):
            key = None
        if not events:
            if key is not None:
                selector.unregister(link.sock)
        elif key is None:
            selector.register(link.sock, events, link)
        elif key.events != events:
            selector.modify(link.sock, events, link)

    def _run(self) -> None:
        selector, waker = self._selector, self._waker
        assert selector is not None and waker is not None
        next_tick = next_sweep = time.monotonic()
        try:
            while True:
                self.turns += 1
                with self._guard:
                    calls, self._calls = self._calls, deque()
                    stopping = self._stopping
                if stopping:
                    break
                for call in calls:
                    try:
                        call()
                    except Exception:
                        log.error('the feed failed on a call from another thread', exc_info=True)
                for link in list(self.waiting):
                    self._guarded(link, functools.partial(self._answer, link))
                now = time.monotonic()
                if self.links and now >= next_tick:
                    next_tick = now + self._tick()
                    self._turn()
                if now >= next_sweep:
                    next_sweep = now + SWEEP
                    self._sweep(now)
                while self.unsent:
                    unsent = self.unsent.pop()
                    self._guarded(unsent, unsent.flush)
                wait = None if not self.links else 0.0 if self.waiting else max(
                    0.0, min(next_tick, next_sweep) - time.monotonic())
                for key, mask in selector.select(wait):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while waker[0].recv(4096):
                                pass
                        continue
                    self._guarded(key.data, functools.partial(self._serve, key.data, mask))
        finally:
            for link in list(self.links):
                link.reset()
            with self._guard:
                self._thread = None
                self._waker = None
                self._selector = None
            selector.close()
            for end in waker:
                end.close()

    def _serve(self, link: Link, mask: int) -> None:
        """What the selector found ``link`` ready for: writing, reading or both."""
        if mask & selectors.EVENT_WRITE and not link.ended:
            link.flush()  # if it reads again, its waiting requests come at the next turn
        if mask & selectors.EVENT_READ and not link.ended:
            self._read(link)

    def _read(self, link: Link) -> None:
        if link.read():
            link.heard = time.monotonic()
        if not link.ended:
            self._hold(link)
        self._answer(link)

    def _hold(self, link: Link) -> None:
        """Count what ``link`` holds of unfinished messages; past :data:`PARTIAL_BUDGET` in
        all, disconnect the links holding the most until the rest fit."""
        held = link.partial
        self.partial_total += held - self.partials.pop(link, 0)
        if held:
            self.partials[link] = held
        while self.partial_total > PARTIAL_BUDGET and self.partials:
            largest = max(self.partials, key=self.partials.__getitem__)
            log.debug('unfinished WebSocket messages hold %d bytes: the client holding %d is '
                      'disconnected', self.partial_total, self.partials[largest])
            largest.reset()  # its end() makes the loop forget it, and what it held

    def _answer(self, link: Link) -> None:
        """Hand the inbox to the handler while the client takes what it is sent, a few
        messages a turn, so that one busy client does not hold up the others."""
        handler = link.handler
        assert handler is not None
        for _ in range(ANSWERS_PER_TURN):
            if not link.inbox or link.ended or link.backlog > BACKLOG:
                break
            self._guarded(link, functools.partial(handler.message, link.inbox.popleft()))
        if link.ended:
            return
        listening = handler.listening()
        (self.listeners.add if listening else self.listeners.discard)(link)
        link.upgraded.idle(link.heard, rank=1 if listening else 0)
        if link.closing_until is None and link.protocol.state is not State.OPEN:
            link.closing_until = time.monotonic() + CLOSE_TIMEOUT
        self.interest(link)

    def _turn(self) -> None:
        """One tick: the owner's work, then a look for each listener that keeps up."""
        self._on_tick()
        for link in list(self.listeners):
            if link.backlog <= BACKLOG and link.open and link.handler is not None:
                self._guarded(link, link.handler.look)

    def _sweep(self, now: float) -> None:
        """Close the links past a deadline: idle, not reading, or not closing."""
        idle_timeout = self._idle_timeout()
        for link in list(self.links):
            handler = link.handler
            if link.closing_until is not None and now >= link.closing_until:
                link.reset()
            elif link.out and now - link.progress > idle_timeout:
                log.debug('a WebSocket client read nothing for %.0f s: disconnected',
                          idle_timeout)
                link.reset()
            elif (handler is not None and not handler.listening()
                  and now - link.heard > idle_timeout):
                link.close(1000, 'idle connection closed')

    def _guarded(self, link: Link, call: Callable[[], None]) -> None:
        """Run a handler's call; a failure ends that link only, never the loop."""
        try:
            call()
        except Exception:
            log.error('the feed failed serving a connection; it is closed', exc_info=True)
            with contextlib.suppress(Exception):
                link.reset()
