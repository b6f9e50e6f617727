"""Shared fixtures: sandboxes on 127.0.0.1."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from krakenex.sandbox import Sandbox


def pytest_configure(config: pytest.Config) -> None:
    """Start the commands the tests interrupt with Ctrl-C as a terminal would, even from a job.

    A shell starts a background job (``pytest &``) with SIGINT ignored, and its
    children inherit that: a command under test would never see the SIGINT its
    test sends. A signal a process catches is set back to its default in every
    program it starts, so this process catches SIGINT with a handler that does
    nothing: pytest itself still ignores it, and each command starts as from a
    terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, _ignore)


def _ignore(signum: int, frame: object) -> None:
    """SIGINT caught and ignored (see :func:`pytest_configure`)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The peers' tests install about 150 MB of other clients: they are slow too."""
    for item in items:
        if item.get_closest_marker('peers'):
            item.add_marker(pytest.mark.slow)


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
