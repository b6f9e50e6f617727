"""A local Kraken-compatible spot exchange, for tests, examples and notebooks.

>>> from krakenex import API
>>> from krakenex.sandbox import Sandbox
>>> with Sandbox() as sandbox:                       # doctest: +SKIP
...     with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
...         print(api.query_private('Balance')['result']['ZUSD'])
100000.0000

It listens on 127.0.0.1 only, checks API-Key, API-Sign, nonces and the call
counter as Kraken does, serves seeded market data, fills paper orders against
a synthetic book, keeps ledgers, and can inject the faults Kraken's users meet
(Cloudflare HTML pages, resets, lost replies). Standard library only; it
writes no files. ``python -m krakenex.sandbox`` runs one from the shell.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# Here: the public face, HTTP and faults. Behind it: _exchange (accounts, Kraken's checks,
# matching), _endpoints (Kraken's methods) and _market (market data).
from ._endpoints import Endpoints
from ._exchange import Account, Reply, _error, _html
from ._market import PAIRS, find_pair
from .methods import METHODS
from .pacing import TIERS

__all__ = ['Sandbox', 'Account', 'TIERS', 'COSTS', 'FAULT_KINDS', 'main']

log = logging.getLogger('krakenex.sandbox')

#: What a private call adds to Kraken's call counter where it is not 1, by method,
#: as :func:`krakenex.methods.cost` has it; ``Sandbox(costs=...)`` overrides them.
COSTS: dict[str, float] = {m.name: m.cost for m in METHODS.values() if m.private and m.cost != 1}

#: The fault kinds :meth:`Sandbox.inject` accepts.
FAULT_KINDS = frozenset({'html520', 'html502', 'html504', 'reset', 'delay', 'reply_lost',
                         'reply_delayed', 'not_json', 'unavailable'})
MAX_BODY = 1 << 20  # bytes; a longer request body is refused with HTTP 413
_CLOUDFLARE_TITLES = {520: 'Web server is returning an unknown error', 502: 'Bad gateway',
                      504: 'Gateway time-out'}


def _cloudflare(status: int) -> Reply:
    """The HTML error page Cloudflare serves in front of api.kraken.com."""
    title = f'api.kraken.com | {status}: {_CLOUDFLARE_TITLES[status]}'
    return _html(status, title, {'Server': 'cloudflare', 'CF-RAY': f'{os.urandom(8).hex()}-AMS'})


# -- HTTP --------------------------------------------------------------------------------

@dataclass
class _Fault:
    kind: str
    method: str | None
    seconds: float
    remaining: int


class _Server(ThreadingHTTPServer):
    """Threads per connection, tracked so that stop() can close and join every one."""

    daemon_threads = True

    def __init__(self, sandbox: Sandbox, address: tuple[str, int]) -> None:
        self.sandbox = sandbox
        self.live: set[socket.socket] = set()
        self.workers: list[threading.Thread] = []
        self.guard = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(target=self.process_request_thread, daemon=True,
                                  args=(request, client_address), name='krakenex-sandbox-conn')
        with self.guard:
            self.live.add(request)
            self.workers = [w for w in self.workers if w.is_alive()] + [worker]
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self.guard:
            self.live.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug('connection from %s failed', client_address, exc_info=True)

    def close_connections(self) -> list[threading.Thread]:
        """Shut every open connection (idle keep-alive ones too); the workers to join."""
        with self.guard:
            live, workers = list(self.live), list(self.workers)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return workers


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/0/public/*`` and ``/0/private/*``; applies injected faults first."""

    protocol_version = 'HTTP/1.1'
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug('%s ' + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        try:
            length = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(Reply(413, b'Request Entity Too Large\n', 'text/plain; charset=utf-8'))
            return
        body = self.rfile.read(length)
        path, _, query = self.path.partition('?')
        match = re.fullmatch(r'/0/(public|private)/(\w+(?:/\w+)?)', path)
        if match is None:
            self._send(Reply(404, b'Not Found\n', 'text/plain; charset=utf-8'))
            return
        api, method = match.groups()
        sandbox = self.server.sandbox
        fault = sandbox._take_fault(method)
        kind = fault.kind if fault else ''
        if kind.startswith('html'):
            self._send(_cloudflare(int(kind[4:])))
        elif kind == 'reset':
            self._reset()
        elif kind == 'unavailable':
            self._send(_error('EService:Unavailable'))
        elif kind == 'delay' and sandbox._pause(fault):
            self._reset()
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = sandbox._exchange.serve(self.command, api, method, self.path, query, headers,
                                            body, self.client_address[0])
            if kind == 'reply_lost' or (kind == 'reply_delayed' and sandbox._pause(fault)):
                self._reset()
                return
            if kind == 'not_json':
                reply = Reply(200, b'upstream connect error or disconnect/reset before headers. '
                                   b'reset reason: connection termination',
                              'text/plain')
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response_only(reply.status)
        self.send_header('Server', reply.headers.get('Server', 'krakenex-sandbox'))
        self.send_header('Date', self.date_time_string())
        self.send_header('Content-Type', reply.content_type)
        self.send_header('Content-Length', str(len(reply.body)))
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


# -- the public face ---------------------------------------------------------------------

class Sandbox:
    """A Kraken-compatible spot exchange on 127.0.0.1, started and stopped by you.

    :param port: TCP port (0: any free port; read :attr:`url` after :meth:`start`).
    :param seed: makes market data, keys and history reproducible.
    :param tier: ``'starter'``, ``'intermediate'``, ``'pro'`` or ``(max_counter,
        decay_per_second)`` to keep Kraken's call counter; None (default) keeps none.
    :param balances: the default account's funds, e.g. ``{'ZUSD': '1000'}`` (then it
        has no trading history); None funds it with a seeded history.
    :param nonce_window: the default key's nonce window, in nonce units.
    :param otp: the default key's 2FA password; every private call must send it.
    :param costs: per-method counter costs that override Kraken's (:data:`COSTS`,
        and 1 for every other method).
    :param public_rate: public calls per second per client address (None: no limit).
    """

    #: Where the sandbox listens, such as ``http://127.0.0.1:52173``; empty until it
    #: is started. Pass it to :class:`krakenex.API` as ``uri``.
    url: str
    #: The API key of the sandbox's default account.
    key: str
    #: The API secret of the default account.
    secret: str
    #: A ``(method, nonce)`` tuple for each request the exchange handled, in order; the
    #: nonce is ``None`` for public calls. Requests stopped by an injected fault before
    #: they were carried out are not in it.
    requests_log: list[tuple[str, str | None]]

    def __init__(self, port: int = 0, *, seed: int = 0,
                 tier: str | tuple[float, float] | None = None,
                 balances: dict[str, str] | None = None, nonce_window: int = 0,
                 otp: str | None = None, costs: dict[str, float] | None = None,
                 public_rate: float | None = None) -> None:
        if isinstance(tier, str):
            if tier not in TIERS:
                raise ValueError(f'unknown tier {tier!r}; choose one of {", ".join(TIERS)}')
            tier = TIERS[tier]
        self.port = port
        self.url = ''
        self._exchange = Endpoints(seed=seed, start=time.time(), tier=tier, costs=costs,
                                   public_rate=public_rate)
        self.requests_log = self._exchange.requests_log
        account = self.add_account(balances, otp=otp, nonce_window=nonce_window)
        self.key, self.secret = account.key, account.secret
        self._faults: list[_Fault] = []
        self._faults_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f'<Sandbox {self.url or "not started"}>'

    def start(self) -> Sandbox:
        """Listen and serve in background threads; returns self."""
        if self._server is not None:
            raise RuntimeError('this Sandbox was already started; make a new one')
        self._server = _Server(self, ('127.0.0.1', self.port))
        self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name='krakenex-sandbox', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread (safe to repeat)."""
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for worker in self._server.close_connections():
            worker.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def add_account(self, balances: dict[str, str] | None = None, *, otp: str | None = None,
                    nonce_window: int = 0) -> Account:
        """Another API key with its own funds, nonces and rate counter."""
        return self._exchange.add_account(balances, otp=otp, nonce_window=nonce_window)

    def inject(self, kind: str, *, times: int = 1, method: str | None = None,
               seconds: float = 1.0) -> None:
        """Give the next ``times`` requests for ``method`` (any if None) the fault ``kind``.

        Kinds: ``html520``/``html502``/``html504`` (Cloudflare page, not processed),
        ``reset`` (TCP RST, not processed), ``unavailable`` (EService:Unavailable, not
        processed), ``delay`` (wait ``seconds``, then process), ``reply_lost`` (process,
        then RST), ``reply_delayed`` (process, wait, reply), ``not_json`` (process, reply
        with plain text). Faults are used in the order they were injected.
        """
        if kind not in FAULT_KINDS:
            known = ', '.join(sorted(FAULT_KINDS))
            raise ValueError(f'unknown fault {kind!r}; choose one of {known}')
        if times < 1:
            raise ValueError('times must be at least 1')
        with self._faults_lock:
            self._faults.append(_Fault(kind, method, seconds, times))

    def clear_faults(self) -> None:
        """Forget every fault not yet used."""
        with self._faults_lock:
            self._faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _pause(self, fault: _Fault | None) -> bool:
        """Wait for the fault's seconds; True if the sandbox is stopping meanwhile."""
        return self._stopping.wait(fault.seconds if fault else 0)

    def set_price(self, pair: str, price: str | float) -> None:
        """Trade the market of ``pair`` at ``price``; resting limit orders it reaches fill."""
        spec = find_pair(pair)
        if spec is None:
            raise ValueError(f'unknown pair {pair!r}; known: {", ".join(PAIRS)}')
        self._exchange.set_price(spec, Decimal(str(price)))

    def orders(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every order accepted over the API for ``key`` (default account), oldest first.

        Each dict is the order as QueryOrders shows it, plus ``txid``, ``userref`` and
        ``cl_ord_id``. The made-up history of a default-funded account is left out.
        """
        with self._exchange.lock:
            self._exchange.expire_timers()
            account = self._exchange.accounts.get(key or self.key)
            if account is None:
                raise ValueError('no account has that key')
            return [{**o.to_kraken(True), 'txid': o.txid, 'cl_ord_id': o.cl_ord_id}
                    for o in account.orders.values() if not o.seeded]


def main(argv: list[str] | None = None, *, prog: str = 'python -m krakenex.sandbox') -> int:
    """Run a sandbox until Ctrl-C or SIGTERM; print its url, key and secret first.

    :param argv: the arguments, without the program name; ``sys.argv[1:]`` by default
    :param prog: the program name its usage and errors show
    :returns: 0, once the sandbox has stopped
    """
    parser = argparse.ArgumentParser(prog=prog,
                                     description='A local Kraken-compatible spot exchange.')
    parser.add_argument('--port', type=int, default=0, help='TCP port (default: any free one)')
    parser.add_argument('--tier', choices=sorted(TIERS), help="keep Kraken's call counter")
    parser.add_argument('--seed', type=int, default=0, help='seed of the market and keys')
    args = parser.parse_args(argv)
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: done.set())
    try:
        with Sandbox(args.port, seed=args.seed, tier=args.tier) as sandbox:
            print(f'url: {sandbox.url}', f'key: {sandbox.key}', f'secret: {sandbox.secret}',
                  sep='\n', flush=True)
            while not done.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print('sandbox stopped', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
