"""The sandbox's HTTP server: connections, routes and injected faults.

:class:`Server` serves each connection in a thread of its own and routes each
request by the longest path prefix registered with :meth:`Server.add_route`.
A route is a callable that takes a :class:`Request` and returns a
:class:`~krakenex.sandbox.replies.Reply`, or None after taking the connection
over (a WebSocket upgrade, for instance). Faults queued in :class:`Faults`
apply to every route, matched by the request's method name.

Connections are bounded so that slow or idle clients cannot lock others out:
every read waits at most ``read_timeout`` seconds (a request whose body never
arrives is dropped), and beyond ``max_connections`` open connections the one
idle the longest is closed to make room; when none is idle the newcomer gets
HTTP 503. A route that takes a connection over (:meth:`Request.take_over`, a
WebSocket upgrade) keeps it counted among the open connections and tells the
server through the :class:`Upgraded` it gets when the connection is idle, so
that upgraded connections make room as idle keep-alive ones do. Standard
library only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .replies import Reply, cloudflare, error, text

__all__ = ['Request', 'Route', 'Faults', 'Server', 'Upgraded', 'FAULT_KINDS', 'ODD_REPLIES',
           'MAX_BODY',
           'READ_TIMEOUT', 'MAX_CONNECTIONS']

log = logging.getLogger('krakenex.sandbox')

#: Faults that carry the request out and then answer HTTP 200 with something that is not
#: Kraken's envelope, as a proxy or a broken server in front of Kraken might: kind -> (body,
#: content type).
ODD_REPLIES = {
    'empty_object': (b'{}', 'application/json'),
    'no_result': (b'{"error":[]}', 'application/json'),
    'error_text': (b'{"error":"a string"}', 'application/json'),
    'json_list': (b'[]', 'application/json'),
    'json_null': (b'null', 'application/json'),
    'json_text': (b'"ok"', 'application/json'),
    'bare_success': (b'{"result":"success"}', 'application/json'),
    'octet_stream': (b'\x00\x01\x02 bytes nobody asked for', 'application/octet-stream'),
}

#: The fault kinds :meth:`krakenex.sandbox.Sandbox.inject` accepts.
FAULT_KINDS = frozenset({'html520', 'html502', 'html504', 'reset', 'delay', 'reply_lost',
                         'reply_delayed', 'not_json', 'unavailable', 'trickle', *ODD_REPLIES})
MAX_BODY = 1 << 20  # bytes; a longer request body is refused with HTTP 413
READ_TIMEOUT = 10.0  # seconds a read from a client may wait, by default
MAX_CONNECTIONS = 2000  # open connections, by default


@dataclass
class Request:
    """One HTTP request, as a route sees it."""

    #: The HTTP verb: GET, POST, ...
    verb: str
    #: The path and query as sent, such as ``/0/public/Ticker?pair=XBTUSD``.
    target: str
    #: The path without the query.
    path: str
    #: The query string, without ``?``.
    query: str
    #: The route prefix that matched, such as ``/0/private/``.
    prefix: str
    #: The path after the prefix: the name faults match, such as ``AddOrder``.
    method: str
    #: Headers with lower-case names.
    headers: dict[str, str]
    #: The body's bytes.
    body: bytes
    #: The client's IP address.
    client: str
    #: The connection's handler: a route that takes the connection over reads
    #: ``handler.rfile``, writes ``handler.wfile`` and returns None.
    handler: BaseHTTPRequestHandler

    def take_over(self) -> Upgraded:
        """Take the connection away from the HTTP server, for good.

        Once the route returns None the server neither reads the connection again
        nor closes it; it keeps counting it among the open connections until
        :meth:`Upgraded.release`, and may close it (shut it down) to make room for a
        newcomer while it is marked idle.

        :returns: the handle through which the route marks the connection idle and
            releases it
        """
        server = self.handler.server
        assert isinstance(server, Server)
        return server.upgrade(self.handler.connection)


class Upgraded:
    """A connection a route has taken over: it marks its idleness and releases it here."""

    def __init__(self, server: Server, connection: socket.socket) -> None:
        self._server = server
        #: The connection's socket; the route reads, writes and closes it.
        self.socket = connection

    def idle(self, since: float, *, rank: int = 0) -> None:
        """Mark the connection idle since ``since`` (a :func:`time.monotonic` time).

        To make room the server closes the connection with the lowest ``rank``
        first, then the one idle the longest: an upgraded connection that listens
        to a subscription ranks above (after) one that has nothing to lose.
        """
        self._server.mark(self.socket, True, since=since, rank=rank)

    def release(self) -> None:
        """Close the connection and stop counting it (safe to repeat)."""
        self._server.release(self.socket)


#: A route: answers a request, or returns None once it has taken the connection over.
Route = Callable[[Request], 'Reply | None']


@dataclass
class _Fault:
    kind: str
    method: str | None
    seconds: float
    remaining: int


class Faults:
    """Faults waiting for requests, used in the order they were queued."""

    def __init__(self) -> None:
        self._queue: list[_Fault] = []
        self._lock = threading.Lock()
        #: Set when the sandbox stops, to cut waits short.
        self.stopping = threading.Event()
        #: Seconds after which an idle keep-alive connection is forgotten: its next
        #: request is dropped unanswered, as a load balancer that timed it out does.
        #: None keeps idle connections as long as ``read_timeout`` allows.
        self.idle_drop: float | None = None

    def add(self, kind: str, method: str | None, seconds: float, times: int) -> None:
        if kind not in FAULT_KINDS:
            known = ', '.join(sorted(FAULT_KINDS))
            raise ValueError(f'unknown fault {kind!r}; choose one of {known}')
        if times < 1:
            raise ValueError('times must be at least 1')
        with self._lock:
            self._queue.append(_Fault(kind, method, seconds, times))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, method: str) -> _Fault | None:
        """The first fault for ``method`` (or for any method), used once."""
        with self._lock:
            for fault in self._queue:
                if fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._queue.remove(fault)
                    return fault
        return None

    def pause(self, fault: _Fault) -> bool:
        """Wait for the fault's seconds; True if the sandbox began stopping meanwhile."""
        return self.stopping.wait(fault.seconds)


class Server(ThreadingHTTPServer):
    """A thread per connection, each tracked so that :meth:`close_connections` can end it."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], faults: Faults, *,
                 read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.faults = faults
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.routes: dict[str, Route] = {}
        #: The reply to the ``unavailable`` fault on a prefix's paths, if not spot's.
        self.unavailable: dict[str, Callable[[], Reply]] = {}
        #: Open connections: (rank, idle since) of those that may be closed to make room
        #: (the lowest first), None for those busy with a request.
        self.idle_since: dict[socket.socket, tuple[int, float] | None] = {}
        self.upgraded: set[socket.socket] = set()  # taken over by a route, which closes them
        self.workers: list[threading.Thread] = []
        self.guard = threading.Lock()
        super().__init__(address, _Handler)

    def add_route(self, prefix: str, route: Route,
                  unavailable: Callable[[], Reply] | None = None) -> None:
        """Send requests whose path starts with ``prefix`` to ``route`` (longest prefix wins)."""
        if not prefix.startswith('/'):
            raise ValueError(f'a route prefix starts with /, not {prefix!r}')
        self.routes[prefix] = route
        if unavailable is not None:
            self.unavailable[prefix] = unavailable

    def find_route(self, path: str) -> tuple[str, Route] | None:
        matches = [prefix for prefix in self.routes if path.startswith(prefix)]
        if not matches:
            return None
        prefix = max(matches, key=len)
        return prefix, self.routes[prefix]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.guard:
            if len(self.idle_since) >= self.max_connections and not self._evict_idle():
                refuse = True
            else:
                refuse = False
                self.idle_since[request] = (0, time.monotonic())
                worker = threading.Thread(target=self.process_request_thread, daemon=True,
                                          args=(request, client_address),
                                          name='krakenex-sandbox-conn')
                self.workers = [w for w in self.workers if w.is_alive()] + [worker]
        if refuse:
            with contextlib.suppress(OSError):
                request.sendall(b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n'
                                b'Connection: close\r\n\r\n')
            self.shutdown_request(request)
            return
        worker.start()

    def _evict_idle(self) -> bool:
        """Close the idle connection of the lowest rank, idle the longest (under the
        guard); False if none is idle."""
        idle = [(mark, sock) for sock, mark in self.idle_since.items() if mark is not None]
        if not idle:
            return False
        _, chosen = min(idle, key=lambda pair: pair[0])
        del self.idle_since[chosen]
        with contextlib.suppress(OSError):
            chosen.shutdown(socket.SHUT_RDWR)  # its reader sees the end and lets it go
        return True

    def mark(self, connection: socket.socket, idle: bool, *, since: float | None = None,
             rank: int = 0) -> None:
        """Mark a connection idle (since ``since``, or now) or busy with a request."""
        with self.guard:
            if connection in self.idle_since:
                self.idle_since[connection] = (
                    (rank, time.monotonic() if since is None else since) if idle else None)

    def upgrade(self, connection: socket.socket) -> Upgraded:
        """Hand ``connection`` to the route that took it over (see :meth:`Request.take_over`);
        it counts as idle from now until the route says otherwise."""
        with self.guard:
            self.upgraded.add(connection)
            if connection in self.idle_since:
                self.idle_since[connection] = (0, time.monotonic())
        return Upgraded(self, connection)

    def release(self, connection: socket.socket) -> None:
        """Forget and close a connection a route took over."""
        with self.guard:
            self.idle_since.pop(connection, None)
            self.upgraded.discard(connection)
        with contextlib.suppress(OSError):
            connection.close()

    def shutdown_request(self, request: Any) -> None:
        with self.guard:
            if request in self.upgraded:  # the route closes it, later
                return
            self.idle_since.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug('connection from %s failed', client_address, exc_info=True)

    def open_connections(self) -> int:
        """How many client connections are open now."""
        with self.guard:
            return len(self.idle_since)

    def close_connections(self) -> list[threading.Thread]:
        """Shut every open connection (idle keep-alive ones too); the workers to join."""
        with self.guard:
            live, workers = list(self.idle_since), list(self.workers)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return workers


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, applies the first matching fault, and asks its route for a reply."""

    protocol_version = 'HTTP/1.1'
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    #: When this connection's last request was answered (:func:`time.monotonic`).
    answered: float | None = None

    def handle_one_request(self) -> None:
        self.server.mark(self.connection, True)
        super().handle_one_request()
        self.answered = time.monotonic()

    def parse_request(self) -> bool:
        self.server.mark(self.connection, False)
        drop = self.server.faults.idle_drop
        if drop is not None and self.answered is not None \
                and time.monotonic() - self.answered > drop:
            self.close_connection = True  # forgotten: closed with the request unread
            return False
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug('%s ' + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        length_text = self.headers.get('Content-Length') or '0'
        length = int(length_text) if length_text.isascii() and length_text.isdigit() else -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(text(413, 'Request Entity Too Large\n'))
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return
        path, _, query = self.path.partition('?')
        found = self.server.find_route(path)
        if found is None:
            self._send(text(404, 'Not Found\n'))
            return
        prefix, route = found
        request = Request(self.command, self.path, path, query, prefix, path[len(prefix):],
                          {k.lower(): v for k, v in self.headers.items()}, body,
                          self.client_address[0], self)
        faults = self.server.faults
        fault = faults.take(request.method)
        kind = fault.kind if fault else ''
        if kind.startswith('html'):
            self._send(cloudflare(int(kind[4:])))
        elif kind == 'reset':
            self._reset()
        elif kind == 'unavailable':
            shape = self.server.unavailable.get(prefix)
            self._send(shape() if shape else error('EService:Unavailable'))
        elif fault is not None and kind == 'delay' and faults.pause(fault):
            self._reset()
        else:
            reply = route(request)
            if reply is None:  # the route took the connection over
                self.close_connection = True
                return
            if kind == 'reply_lost' or (
                    fault is not None and kind == 'reply_delayed' and faults.pause(fault)):
                self._reset()
                return
            if kind == 'not_json':
                reply = Reply(200, b'upstream connect error or disconnect/reset before headers. '
                                   b'reset reason: connection termination', 'text/plain')
            elif kind in ODD_REPLIES:
                reply = Reply(200, *ODD_REPLIES[kind])
            if fault is not None and kind == 'trickle':
                self._trickle(reply, fault)
                return
            self._send(reply)

    def _trickle(self, reply: Reply, fault: _Fault) -> None:
        """Send the headers at once, then the body a byte every ``fault.seconds``.

        It stops when the client goes away or the sandbox stops; the connection
        is not used again.
        """
        self.close_connection = True
        body = reply.body
        self._send(Reply(reply.status, b'', reply.content_type, reply.headers), len(body))
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                if self.server.faults.pause(fault):
                    return
        except OSError:  # the client gave up
            pass

    def _send(self, reply: Reply, length: int | None = None) -> None:
        self.send_response_only(reply.status)
        self.send_header('Server', reply.headers.get('Server', 'krakenex-sandbox'))
        self.send_header('Date', self.date_time_string())
        self.send_header('Content-Type', reply.content_type)
        self.send_header('Content-Length', str(len(reply.body) if length is None else length))
        for name, value in reply.headers.items():
            if name != 'Server':
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0), sending no reply."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack('ii', 1, 0))
            self.rfile.close()  # drop the reader's reference, so close() really closes
            self.connection.close()
        except OSError:
            pass
