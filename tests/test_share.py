"""One key, many senders: the key's store keeps nonces, the send lock and the rate counter shared.

Every test runs real processes (``sys.executable -c``) against the sandbox over
real HTTP, and a real ``redis-server`` (the ``redis_url`` and ``own_redis``
fixtures of conftest.py) where a test shares through Redis. Each child process
inherits the test's own cache directory (the autouse ``own_cache`` fixture), so
the default store of one test is never another's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import RedisServer
from test_reliability import FAULTS

from krakenex import (
    API,
    AsyncAPI,
    KrakenError,
    NotSentError,
    OutcomeUnknownError,
    OutcomeUnknownTimeout,
    ShareUnavailableError,
)
from krakenex.sandbox import Reply, Request, Sandbox
from krakenex.sandbox.futures import FuturesEndpoints
from krakenex.share import FORMAT, FileStore, RedisStore, cache_directory, lease, resolve

INVALID_NONCE = 'EAPI:Invalid nonce'
RATE_LIMIT = 'EAPI:Rate limit exceeded'
#: How long a child may take before the test gives up on it (and kills it).
CHILD_TIMEOUT = 60.0

# ------------------------------------------------------------- child processes

#: What a child process runs: ``python -c CHILD '<json spec>'``. It builds one client
#: (``mode``: ``spot``, ``async``, ``futures``) from ``api``, prints ``ready`` and waits
#: for ``go`` on stdin (so that children start together), makes ``calls`` calls in each
#: of ``threads`` threads (tasks), and prints one JSON line: the errors it met, the calls
#: answered without one, and when it started and ended. ``hold`` takes the key's send
#: lock from the store itself, prints ``locked``, keeps it ``hold`` seconds (unless it is
#: killed first), then prints when it released it. ``clock_back`` sets the child's wall
#: clock that many seconds back.
CHILD = r'''
import asyncio, json, sys, threading, time

spec = json.loads(sys.argv[1])
if spec.get('clock_back'):
    real, real_ns, back = time.time, time.time_ns, spec['clock_back']
    time.time, time.time_ns = lambda: real() - back, lambda: real_ns() - int(back * 1e9)

import krakenex
from krakenex import share as sharing

def say(line):
    print(line, flush=True)

def ready():
    say('ready')
    if sys.stdin.readline().strip() != 'go':
        sys.exit(3)

kwargs = dict(spec.get('api', {}))
for name in ('tier', 'timeout'):
    if isinstance(kwargs.get(name), list):
        kwargs[name] = tuple(kwargs[name])
mode, threads, calls = spec['mode'], spec.get('threads', 1), spec.get('calls', 1)
method, data = spec.get('method', 'Balance'), spec.get('data')
errors, answered, guard = [], [0], threading.Lock()

def record(reply=None, exc=None):
    with guard:
        if exc is not None:
            errors.append(f'{type(exc).__name__}: {exc}')
        elif isinstance(reply, dict) and reply.get('result') == 'error':
            errors.append(str(reply.get('error')))
        elif isinstance(reply, dict) and isinstance(reply.get('error'), list) and reply['error']:
            errors.extend(reply['error'])
        else:
            answered[0] += 1

if mode == 'hold':
    given = [kwargs['share']] if 'share' in kwargs else []
    store = sharing.resolve(*given).open(spec['key'], spec['uri'])
    handle = store.lock(spec['lease'])
    say('locked')
    time.sleep(spec['hold'])
    store.unlock(handle)
    say(json.dumps({'released': time.time()}))
    sys.exit(0)

if mode == 'async':
    from krakenex import AsyncAPI

    async def run():
        async with AsyncAPI(**kwargs) as api:
            async def worker():
                for _ in range(calls):
                    try:
                        record(await api.query_private(method, data))
                    except Exception as exc:
                        record(exc=exc)
            await asyncio.gather(*(worker() for _ in range(threads)))

    ready()
    started = time.time()
    asyncio.run(run())
else:
    if mode == 'futures':
        from krakenex.futures import FuturesAPI
        api = FuturesAPI(**kwargs)
    else:
        api = krakenex.API(**kwargs)

    def worker():
        for _ in range(calls):
            try:
                record(api.query_private(method, data))
            except Exception as exc:
                record(exc=exc)

    ready()
    started = time.time()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
say(json.dumps({'errors': errors, 'answered': answered[0], 'started': started,
                'ended': time.time()}))
'''


class Child:
    """A child process running :data:`CHILD`, its output read by threads so it never blocks."""

    def __init__(self, spec: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, '-c', CHILD, json.dumps(spec)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        for line in self.process.stdout or ():
            self.lines.put(line.strip())
        self.lines.put(None)

    def _read_errors(self) -> None:
        self.stderr.extend(self.process.stderr or ())

    def expect(self, wanted: str, timeout: float = CHILD_TIMEOUT) -> None:
        """Wait until the child prints ``wanted``; fail the test if it does not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f'the child did not print {wanted!r} in {timeout} s')
            if line is None:
                self.kill()
                pytest.fail(f'the child ended before printing {wanted!r}:\n'
                            f'{"".join(self.stderr)}')
            if line == wanted:
                return

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write('go\n')
        self.process.stdin.flush()

    def result(self, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
        """The child's JSON line, once it has ended."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.process.returncode == -signal.SIGKILL:
            pytest.fail(f'the child did not end in {timeout} s:\n{"".join(self.stderr)}')
        for reader in self._readers:
            reader.join(timeout=5)
        lines = []
        while not self.lines.empty():
            line = self.lines.get_nowait()
            if line is not None:
                lines.append(line)
        assert self.process.returncode == 0 and lines, \
            f'the child failed ({self.process.returncode}):\n{"".join(self.stderr)}'
        return json.loads(lines[-1])  # type: ignore[no-any-return]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


Spawn = Callable[..., Child]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start children; any still running when the test ends is killed."""
    started: list[Child] = []

    def start(spec: dict[str, Any], env: dict[str, str] | None = None) -> Child:
        child = Child(spec, env)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        for pipe in (child.process.stdin, child.process.stdout, child.process.stderr):
            if pipe is not None:
                pipe.close()


def run_together(spawn: Spawn, specs: list[dict[str, Any]],
                 envs: Sequence[dict[str, str] | None] | None = None) -> list[dict[str, Any]]:
    """Start a child for each spec, let them all go at once, and return their results."""
    envs = envs or [None] * len(specs)
    children = [spawn(spec, env) for spec, env in zip(specs, envs, strict=True)]
    for child in children:
        child.expect('ready')
    for child in children:
        child.go()
    return [child.result() for child in children]


def errors_of(results: list[dict[str, Any]]) -> list[str]:
    return [error for result in results for error in result['errors']]


def spot(sandbox: Sandbox, **options: Any) -> dict[str, Any]:
    """A child's API options on the sandbox's default key; share= is left out unless given."""
    return {'key': sandbox.key, 'secret': sandbox.secret, 'uri': sandbox.url, 'retries': 0,
            **options}


def shared(store: str, redis_url: str | None = None) -> dict[str, Any]:
    """share= for a store kind: ``default`` (left out), ``redis`` (the URL) or ``none``."""
    if store == 'default':
        return {}
    if store == 'redis':
        assert redis_url is not None
        return {'share': redis_url}
    return {'share': None}


@pytest.fixture(params=['default', 'redis'])
def share(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each store krakenex shares a key through: the file store (default) and Redis."""
    if request.param == 'default':
        return {}
    return {'share': request.getfixturevalue('redis_url')}


@pytest.fixture
def unlimited() -> Iterator[Sandbox]:
    with Sandbox(tier=None) as running:
        yield running


class Gate:
    """A route of the sandbox (spot's private one unless told), wrapped to watch and hold.

    It counts the requests being carried out at once (:attr:`most` is the most
    there ever were), and passes each through ``hold(method, index)`` first, as
    a slow network would, before the sandbox checks its nonce.
    """

    def __init__(self, sandbox: Sandbox, hold: Callable[[str, int], None] | None = None, *,
                 prefix: str = '/0/private/',
                 route: Callable[[Request], Reply | None] | None = None) -> None:
        self._route = route or sandbox.endpoints.route
        self._hold = hold
        self._guard = threading.Lock()
        self.now = self.most = self.seen = 0
        sandbox.add_route(prefix, self.route)

    def route(self, request: Request) -> Reply | None:
        with self._guard:
            index, self.seen = self.seen, self.seen + 1
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if self._hold is not None:
                self._hold(request.method, index)
            return self._route(request)
        finally:
            with self._guard:
                self.now -= 1


def held_until(release: threading.Event,
               which: Callable[[str, int], bool]) -> Callable[[str, int], None]:
    """A gate's hold: the requests ``which`` picks wait until ``release`` is set (30 s at most)."""
    def hold(method: str, index: int) -> None:
        if which(method, index):
            release.wait(30)
    return hold


def jitter(method: str, index: int) -> None:
    """A gate's hold: every other request a moment on the way, so that calls in flight at
    once (without the send lock) overtake each other, as on a real network."""
    time.sleep(0.005 if index % 2 else 0)


def logged(sandbox: Sandbox, method: str) -> list[int]:
    """The nonces of the ``method`` calls the sandbox carried out, in the order it did."""
    return [int(nonce) for name, nonce in list(sandbox.requests_log)
            if name == method and nonce is not None]


def limit_buy(userref: int) -> dict[str, Any]:
    return {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '1000.0',
            'volume': '0.01', 'userref': userref}


def orders_with(sandbox: Sandbox, userref: int) -> list[dict[str, Any]]:
    return [o for o in sandbox.orders() if str(o.get('userref')) == str(userref)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f'{what} did not happen within {timeout} s')
        time.sleep(0.005)


def store_of(api: API | AsyncAPI) -> Any:
    """The store the client opened for its key and server."""
    return api._store()


# ---------------------------------------------- nonces: processes on one key

PROCESSES, THREADS, CALLS = 3, 2, 15


def test_processes_and_threads_on_one_key_never_send_an_invalid_nonce(
        share: dict[str, Any], unlimited: Sandbox, spawn: Spawn) -> None:
    gate = Gate(unlimited, jitter)
    spec = {'mode': 'spot', 'api': spot(unlimited, **share), 'threads': THREADS,
            'calls': CALLS}
    results = run_together(spawn, [spec] * PROCESSES)
    assert errors_of(results) == []
    total = PROCESSES * THREADS * CALLS
    assert sum(r['answered'] for r in results) == total
    nonces = logged(unlimited, 'Balance')
    assert len(nonces) == total and nonces == sorted(set(nonces)), 'sent out of order'
    assert gate.most == 1, 'two calls on the key were at the exchange at once'


def test_without_sharing_the_same_processes_do_send_invalid_nonces(
        unlimited: Sandbox, spawn: Spawn) -> None:
    # The control of the test above: the same load, each process on its own (share=None).
    gate = Gate(unlimited, jitter)
    spec = {'mode': 'spot', 'api': spot(unlimited, share=None), 'threads': THREADS,
            'calls': CALLS}
    errors = errors_of(run_together(spawn, [spec] * PROCESSES))
    assert gate.most > 1
    assert errors and set(errors) == {INVALID_NONCE}


def test_machines_that_share_only_redis_never_send_an_invalid_nonce(
        redis_url: str, unlimited: Sandbox, spawn: Spawn, tmp_path: Path) -> None:
    # Each "machine" has a cache directory of its own: Redis is all they share.
    machines = [{'XDG_CACHE_HOME': str(tmp_path / f'machine{i}')} for i in range(PROCESSES)]
    gate = Gate(unlimited, jitter)
    spec = {'mode': 'spot', 'api': spot(unlimited, share=redis_url), 'threads': THREADS,
            'calls': CALLS}
    results = run_together(spawn, [spec] * PROCESSES, machines)
    assert errors_of(results) == [] and gate.most == 1
    assert sum(r['answered'] for r in results) == PROCESSES * THREADS * CALLS
    assert not any((tmp_path / f'machine{i}').exists() for i in range(PROCESSES))
    # The same machines with their default stores: each keeps its own nonces, and fails.
    spec = {'mode': 'spot', 'api': spot(unlimited), 'threads': THREADS, 'calls': CALLS}
    assert INVALID_NONCE in errors_of(run_together(spawn, [spec] * PROCESSES, machines))


def _forked_calls(api: API, calls: int, results: Any) -> None:
    """A forked child's calls on the object it inherited; what it met goes to ``results``."""
    errors = []
    for _ in range(calls):
        try:
            errors.extend(api.query_private('Balance')['error'])
        except Exception as exc:  # handed to the parent to judge
            errors.append(repr(exc))
    results.put(errors)


def test_forked_children_of_one_object_keep_their_nonces_in_step(unlimited: Sandbox) -> None:
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0)
    assert api.query_private('Balance')['error'] == []  # the store is open before the fork
    api.session.close()  # each child opens connections of its own
    context = multiprocessing.get_context('fork')
    results = context.Queue()
    children = [context.Process(target=_forked_calls, args=(api, CALLS, results))
                for _ in range(PROCESSES)]
    for child in children:
        child.start()
    try:
        found = [results.get(timeout=CHILD_TIMEOUT) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    assert [child.exitcode for child in children] == [0] * PROCESSES
    assert [e for errors in found for e in errors] == []
    nonces = logged(unlimited, 'Balance')
    assert len(nonces) == 1 + CALLS * PROCESSES and nonces == sorted(set(nonces))


# --------------------------------------------------- the rate counter, shared

@pytest.mark.parametrize('store', ['default', 'redis', 'none'])
def test_a_rerun_right_after_a_full_counter_waits_instead_of_hitting_the_rate_limit(
        store: str, request: pytest.FixtureRequest, spawn: Spawn) -> None:
    tier = (6.0, 3.0)  # Ledgers costs 2: three calls fill it, and one more fits after 2/3 s
    url = request.getfixturevalue('redis_url') if store == 'redis' else None
    with Sandbox(tier=tier) as sandbox:
        spec = {'mode': 'spot', 'api': spot(sandbox, tier=list(tier), **shared(store, url)),
                'method': 'Ledgers'}
        # The control's rerun makes a third call: refused unless it came 2 s after the first.
        first = spawn({**spec, 'calls': 3})
        rerun = spawn({**spec, 'calls': 3 if store == 'none' else 1})
        for child in (first, rerun):
            child.expect('ready')
        first.go()
        done = first.result()
        rerun.go()  # the moment the first process has ended
        again = rerun.result()
        sent = logged(sandbox, 'Ledgers')
    assert done['errors'] == [] and done['answered'] == 3
    if store == 'none':  # the control: a counter of its own starts empty, and is refused
        assert RATE_LIMIT in again['errors']
        return
    assert again['errors'] == [] and again['answered'] == 1 and len(sent) == 4
    # It waited for the room the first process left: 2/3 s after its last call.
    assert again['ended'] - done['ended'] >= 0.5


@pytest.mark.parametrize('store', ['default', 'redis', 'none'])
def test_three_processes_paced_under_one_tier_never_hit_the_rate_limit(
        store: str, request: pytest.FixtureRequest, spawn: Spawn) -> None:
    tier = (4.0, 12.0)  # 3 processes x 2 Ledgers cost 12: (12 - 4) / 12 = 0.67 s at best
    url = request.getfixturevalue('redis_url') if store == 'redis' else None
    with Sandbox(tier=tier) as sandbox:
        spec = {'mode': 'spot', 'api': spot(sandbox, tier=list(tier), **shared(store, url)),
                'method': 'Ledgers', 'calls': 2}
        results = run_together(spawn, [spec] * 3)
        sent = logged(sandbox, 'Ledgers')
    if store == 'none':  # the control: three counters of their own let three times through
        assert RATE_LIMIT in errors_of(results)
        return
    assert errors_of(results) == []
    assert len(sent) == 6
    elapsed = max(r['ended'] for r in results) - min(r['started'] for r in results)
    assert elapsed >= 0.9 * (12 - 4) / 12, f'{elapsed:.2f} s: faster than the tier allows'


def test_a_full_counter_still_empties_for_a_rerun_whose_clock_stepped_back(
        spawn: Spawn) -> None:
    tier = (4.0, 8.0)  # Ledgers costs 2: two calls fill it, and it empties in 0.5 s
    with Sandbox(tier=tier) as sandbox:
        spec = {'mode': 'spot', 'api': spot(sandbox, tier=list(tier)), 'method': 'Ledgers',
                'calls': 2}
        assert errors_of(run_together(spawn, [spec])) == []
        # The machine's clock steps an hour back: the store's stamps are an hour ahead.
        rerun = spawn({**spec, 'clock_back': 3600})
        rerun.expect('ready')
        rerun.go()
        again = rerun.result(timeout=20)  # without the fix it waits for the clock: an hour
    assert again['errors'] == [] and again['answered'] == 2


def test_a_redis_counter_stamped_ahead_of_the_servers_clock_still_empties(
        redis_url: str) -> None:
    store = RedisStore(redis_url, 'key', 'https://api.kraken.com')
    seconds, _ = store.client.time()
    # As if Redis's clock had stepped an hour back since the counter was last kept.
    store.client.hset(store._counter_key('rest'), mapping={
        'level': '4', 'stamp': f'{seconds + 3600}.000000', 'decay': '4.0'})
    deadline = time.monotonic() + 5
    while (wait := store.take('rest', 4.0, 4.0, 2.0)) > 0 and time.monotonic() < deadline:
        time.sleep(wait)
    assert wait == 0, 'the counter waited for the clock'


# ------------------------------------------------------------ the send lock

def test_a_process_killed_holding_the_file_lock_holds_the_key_no_longer(
        unlimited: Sandbox, spawn: Spawn) -> None:
    holder = spawn({'mode': 'hold', 'key': unlimited.key, 'uri': unlimited.url, 'lease': 30,
                    'hold': 60})
    holder.expect('locked')
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0)
    assert store_of(api).status()['locked']
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait(timeout=10)
    assert not store_of(api).status()['locked']  # the system released the dead one's lock
    assert api.query_private('Balance')['error'] == []


@pytest.mark.slow
def test_a_process_killed_holding_the_redis_lease_holds_the_key_only_until_the_lease_ends(
        redis_url: str, unlimited: Sandbox, spawn: Spawn) -> None:
    timeout = (0.1, 2.0)  # the lease: 0.1 + 2.0 + LEASE_MARGIN = 4.1 s
    release = threading.Event()
    # The sandbox keeps the first call (the holder's) until the end of the test.
    gate = Gate(unlimited, held_until(release, lambda method, index: index == 0))
    store = RedisStore(redis_url, unlimited.key, unlimited.url)
    holder = spawn({'mode': 'spot', 'api': spot(unlimited, share=redis_url,
                                                timeout=list(timeout))})
    waiter = spawn({'mode': 'spot', 'api': spot(unlimited, share=redis_url)})
    try:
        waiter.expect('ready')
        holder.expect('ready')
        holder.go()
        wait_until(lambda: gate.seen == 1, CHILD_TIMEOUT, 'the holder\'s call')
        left = store.client.pttl(store._keys['lock']) / 1000  # of the holder's lease
        holder.process.send_signal(signal.SIGKILL)  # mid-call, holding the lease
        killed = time.time()
        holder.process.wait(timeout=10)
        waiter.go()
        result = waiter.result(timeout=lease(timeout) + 10)
    finally:
        release.set()
    waited = result['ended'] - killed
    assert result['errors'] == [] and result['answered'] == 1
    # The lease is the call's timeouts plus 2 s; the holder had used some of it.
    assert 1.0 < left <= sum(timeout) + 2.0, f'the holder\'s lease had {left:.2f} s left'
    assert left - 0.3 <= waited <= left + 3.0, f'{waited:.2f} s for a lease of {left:.2f} s'


# ------------------------------------------------ a store that cannot be used

def _call(api: API, method: str, data: dict[str, Any] | None = None) -> Any:
    """The reply of a call, or the exception it raised: for threads, which assert nothing."""
    try:
        return api.query_private(method, data)
    except Exception as exc:  # handed to the main thread to judge
        return exc


def test_redis_stopped_mid_run_raises_share_unavailable_and_sends_nothing(
        own_redis: RedisServer, unlimited: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    url = own_redis.url()
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, share=url, backoff=0.01)
    assert api.query_private('Balance')['error'] == []
    # A call already sent when Redis stops gets its one reply; its lease lapses on its own.
    release = threading.Event()
    gate = Gate(unlimited, held_until(release, lambda method, index: index == 0))
    outcome: list[Any] = []
    flying = threading.Thread(target=lambda: outcome.append(_call(api, 'Balance')))
    with caplog.at_level(logging.WARNING, logger='krakenex'):
        flying.start()
        wait_until(lambda: gate.seen == 1, 10, 'the second call')
        own_redis.kill()
        release.set()
        flying.join(timeout=10)
    assert not flying.is_alive() and outcome[0]['error'] == []
    assert 'could not release the lock' in caplog.text
    before = list(unlimited.requests_log)
    for method, data in (('Balance', None), ('AddOrder', limit_buy(5))):
        with pytest.raises(ShareUnavailableError) as caught:
            api.query_private(method, data)  # retried 3 times, as after a refused connection
        assert isinstance(caught.value, NotSentError)
        assert caught.value.where == url and '\n' not in str(caught.value)
        assert 'nothing was sent' in str(caught.value)
    assert unlimited.requests_log == before, 'a call went out without its store'
    assert unlimited.orders() == [] and gate.seen == 1
    own_redis.start()  # back on its port, empty: the clock's nonces are above the last
    assert api.query_private('Balance')['error'] == []
    assert len(logged(unlimited, 'Balance')) == 3


def _not_a_directory(tmp_path: Path) -> str:
    """A path below a regular file: unusable for everyone, root included (ENOTDIR)."""
    blocker = tmp_path / 'afile'
    blocker.write_text('a file, not a directory\n')
    return str(blocker / 'sub')


@pytest.mark.parametrize('how', ['share', 'variable', 'redis', 'redis-query'])
def test_a_store_asked_for_that_cannot_be_used_raises_one_line_and_sends_nothing(
        how: str, unlimited: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options: dict[str, Any] = {}
    if how == 'redis':
        from conftest import _free_port
        options['share'] = f'redis://:hunter2@127.0.0.1:{_free_port()}/0'  # nobody listens
        place = options['share'].replace(':hunter2@', '***@')  # the password is never shown
    elif how == 'redis-query':
        from conftest import _free_port
        options['share'] = f'redis://127.0.0.1:{_free_port()}/0?password=hunter2&db=0'
        place = options['share'].replace('=hunter2', '=***')
    else:
        place = _not_a_directory(tmp_path)
        if how == 'share':
            options['share'] = place
        else:
            monkeypatch.setenv('KRAKENEX_SHARE', place)
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, backoff=0.01,
              tier=(15, 0.33), **options)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no quiet fallback to this object alone
        for method, data in (('Balance', None), ('AddOrder', limit_buy(1))):
            with pytest.raises(ShareUnavailableError) as caught:
                api.query_private(method, data)
            message = str(caught.value)
            assert '\n' not in message and place in message and 'nothing was sent' in message
            assert 'hunter2' not in message
            assert caught.value.where.startswith(place) and caught.value.reason
    assert unlimited.requests_log == []


def test_the_default_store_in_an_unusable_cache_warns_once_and_still_works(
        unlimited: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _not_a_directory(tmp_path)
    monkeypatch.setenv('XDG_CACHE_HOME', cache)
    other = unlimited.add_account()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0)
        replies = [api.query_private('Balance') for _ in range(3)]
        api.key, api.secret = other.key, other.secret  # another key: its store is opened anew
        replies.append(api.query_private('Balance'))
    assert [r['error'] for r in replies] == [[], [], [], []]
    shown = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(shown) == 1, [str(w.message) for w in caught]
    assert cache in str(shown[0].message) and 'this object alone' in str(shown[0].message)
    assert len(logged(unlimited, 'Balance')) == 4


def default_store_file(sandbox: Sandbox) -> Path:
    """Where the default store of the sandbox's key lives in this test's cache directory."""
    from krakenex.share import store_name
    return Path(cache_directory()) / (store_name(sandbox.key, sandbox.url) + '.json')


def store_text(url: str, nonce: bytes = b'%020d' % (10**19 - 1),
               rest: bytes = b'"counters": {}') -> bytes:
    """A state file as FileStore writes it: the format and floor, then the rest as JSON."""
    return (b'krakenex-share %d ' % FORMAT + nonce + b'\n{"server": "' + url.encode() + b'", '
            + rest + b'}')


CORRUPT: dict[str, Callable[[str], bytes]] = {
    'binary': lambda url: b'\x00\xff\xfe not a store at all',
    'cut off': lambda url: store_text(url)[:60],
    'json of an older layout': lambda url: json.dumps(
        {'format': 1, 'server': url, 'nonce': 10**19 - 1, 'counters': {}}).encode(),
    'not a dict': lambda url: store_text(url).split(b'\n')[0] + b'\n[1, 2, 3]',
    'floor not digits': lambda url: store_text(url, nonce=b'9999999999999999999x'),
    'floor too short': lambda url: store_text(url, nonce=b'99999999999999999'),
    'arabic-indic floor': lambda url: store_text(url, nonce='٩'.encode() * 10),
    'another server': lambda url: store_text('https://api.kraken.com'),
    'infinite counter': lambda url: store_text(
        url, rest=b'"counters": {"rest": [Infinity, 0, 0.33]}'),
    'deeply nested': lambda url: store_text(url).split(b'\n')[0] + b'\n' + b'[' * 100_000,
}


@pytest.mark.parametrize('kind', list(CORRUPT))
def test_a_corrupt_store_file_is_rebuilt_with_a_warning_and_never_trusted(
        kind: str, unlimited: Sandbox) -> None:
    path = default_store_file(unlimited)
    path.parent.mkdir(parents=True)
    path.write_bytes(CORRUPT[kind](unlimited.url))
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0, tier=(15, 0.33))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        started = time.time_ns() // 1_000_000
        replies = [api.query_private('Balance') for _ in range(2)]
    assert [r['error'] for r in replies] == [[], []]
    shown = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(shown) == 1 and 'not trusted' in shown[0] and str(path) in shown[0]
    nonces = logged(unlimited, 'Balance')
    assert started <= nonces[0] <= started + 60_000, 'the nonce did not start from the clock'
    head, rest = path.read_bytes().split(b'\n', 1)
    assert head == b'krakenex-share %d %020d' % (FORMAT, nonces[-1])
    state = json.loads(rest)
    assert state['server'] == unlimited.url
    assert 0 < state['counters']['rest'][0] <= 2


def test_a_store_file_of_a_newer_format_raises_and_is_left_as_it_was(unlimited: Sandbox) -> None:
    path = default_store_file(unlimited)
    path.parent.mkdir(parents=True)
    newer = f'krakenex-share {FORMAT + 1} 12\n["floors", 1, 2]'
    path.write_text(newer)
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0)
    for method, data in (('Balance', None), ('AddOrder', limit_buy(1))):
        with pytest.raises(ShareUnavailableError, match='newer krakenex') as caught:
            api.query_private(method, data)
        assert caught.value.where == str(path) and '\n' not in str(caught.value)
    assert path.read_text() == newer
    assert unlimited.requests_log == []


# ------------------------------------------------------------ the nonce floor

def test_the_nonce_floor_survives_the_clock_stepping_back(
        share: dict[str, Any], unlimited: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0, **share)
    assert api.query_private('Balance')['error'] == []
    real = time.time_ns
    monkeypatch.setattr('krakenex.protocol.time.time_ns', lambda: real() - 3600 * 10**9)
    assert api.query_private('Balance')['error'] == []
    # A new object knows nothing of the old one's nonces: the store does.
    again = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0, **share)
    assert again.query_private('Balance')['error'] == []
    nonces = logged(unlimited, 'Balance')
    assert len(nonces) == 3 and nonces == sorted(set(nonces))


def test_a_rerun_in_a_new_process_with_its_clock_back_sends_nonces_above_the_last(
        share: dict[str, Any], unlimited: Sandbox, spawn: Spawn) -> None:
    spec = {'mode': 'spot', 'api': spot(unlimited, **share), 'calls': 3}
    assert errors_of(run_together(spawn, [spec])) == []
    assert errors_of(run_together(spawn, [{**spec, 'clock_back': 3600}])) == []
    nonces = logged(unlimited, 'Balance')
    assert len(nonces) == 6 and nonces == sorted(set(nonces))
    # The control: a process on its own (share=None) starts from its clock, an hour back.
    control = {**spec, 'api': spot(unlimited, share=None), 'clock_back': 3600, 'calls': 1}
    assert errors_of(run_together(spawn, [control])) == [INVALID_NONCE]


def test_ns_nonces_above_2_53_are_issued_exactly(
        share: dict[str, Any], unlimited: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0, nonce_unit='ns',
              **share)
    frozen = time.time_ns() | 1  # odd, about 1.7e18: not a double
    assert frozen > 2**53 and float(frozen) != frozen
    monkeypatch.setattr('krakenex.protocol.time.time_ns', lambda: frozen)
    replies = [api.query_private('Balance') for _ in range(3)]  # the clock standing still
    assert [r['error'] for r in replies] == [[], [], []]
    assert logged(unlimited, 'Balance') == [frozen, frozen + 1, frozen + 2]


def test_redis_keeps_a_nonce_floor_above_2_53_to_the_last_digit(redis_url: str) -> None:
    store = RedisStore(redis_url, 'key', 'https://api.kraken.com')
    big = 1_700_000_000_000_000_001  # ns; a double would make it ...000000000
    assert store.nonce(big) == big
    assert store.nonce(big) == big + 1  # the clock standing still
    assert store.nonce(big - 10**12) == big + 2  # the clock stepping back
    assert store.nonce(big + 1001) == big + 1001  # the clock ahead again
    assert store.client.get(store._keys['nonce']) == str(big + 1001).encode()
    assert store.status()['nonce'] == big + 1001
    us = 1_700_000_000_000_001  # us: 16 digits, past what Lua's tostring writes out
    other = RedisStore(redis_url, 'another key', 'https://api.kraken.com')
    assert [other.nonce(us) for _ in range(3)] == [us, us + 1, us + 2]


# ------------------------------------------------------------ the nonce window

WINDOW = 5000  # ms: the key's nonce window at the sandbox and in the client


def test_with_a_nonce_window_calls_overlap_and_none_is_refused(
        share: dict[str, Any], spawn: Spawn) -> None:
    processes, threads, calls = 2, 2, 3
    total = processes * threads * calls
    with Sandbox(tier=None, nonce_window=WINDOW) as sandbox:
        # Held by turns long and short on the way, so the sandbox takes them out of order.
        gate = Gate(sandbox, lambda method, index: time.sleep(0.02 if index % 2 else 0.2))
        spec = {'mode': 'spot', 'api': spot(sandbox, nonce_window=WINDOW, **share),
                'threads': threads, 'calls': calls}
        results = run_together(spawn, [spec] * processes)
        nonces = logged(sandbox, 'Balance')
    assert errors_of(results) == []
    assert len(nonces) == total and len(set(nonces)) == total
    assert gate.most > 1, 'the calls were sent one at a time'
    assert nonces != sorted(nonces), 'the calls did not overtake each other'


@pytest.mark.parametrize(('store', 'lookup'), [('default', 'reconcile'), ('redis', 'reconcile'),
                                              ('default', 'find_order')])
def test_reconcile_with_a_nonce_window_makes_the_lost_call_unacceptable(
        store: str, lookup: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue('redis_url') if store == 'redis' else None
    arrive = threading.Event()
    with Sandbox(tier=None, nonce_window=WINDOW) as sandbox:
        # The AddOrder is held on the way until the lookup has been answered.
        gate = Gate(sandbox, held_until(arrive, lambda method, index: method == 'AddOrder'))
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, timeout=0.4, retries=0,
                  nonce_window=WINDOW, **shared(store, url))
        try:
            with pytest.raises(OutcomeUnknownTimeout) as caught:
                api.query_private('AddOrder', limit_buy(77))
            lost = int(caught.value.nonce or 0)
            # The control (find_order): a lookup whose nonce is merely above the lost call's.
            found = api.reconcile(caught.value) if lookup == 'reconcile' else \
                api.find_order(userref=77)
            looked = logged(sandbox, 'OpenOrders') + logged(sandbox, 'ClosedOrders')
        finally:
            arrive.set()
        wait_until(lambda: gate.now == 0, 10, 'the AddOrder\'s arrival')
        placed = orders_with(sandbox, 77)
    assert found == {} and len(looked) == 2
    if lookup == 'find_order':
        assert len(placed) == 1, 'within the window, Kraken takes the lost call after the lookup'
        return
    assert min(looked) > lost + WINDOW
    assert placed == [] and logged(sandbox, 'AddOrder') == []


# --------------------------------------------------------- at most once, shared

TIMEOUT = 1.0  # the client's read timeout below: a loaded machine may take 0.5 s to answer
SLOW = 1.5  # how long 'delay' and 'reply_delayed' hold a request: past TIMEOUT


@pytest.mark.parametrize(('kind', 'processed', 'raised'), FAULTS)
def test_addorder_under_each_fault_with_the_key_shared_is_placed_at_most_once(
        share: dict[str, Any], unlimited: Sandbox, kind: str, processed: bool,
        raised: type[KrakenError] | None) -> None:
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, timeout=TIMEOUT,
              backoff=0.01, retries=3, **share)
    unlimited.inject(kind, method='AddOrder', seconds=SLOW)
    userref = 1000 + FAULTS.index((kind, processed, raised))
    unknown: OutcomeUnknownError | None = None
    if raised is None:
        assert api.query_private('AddOrder', limit_buy(userref))['error'] == \
            ['EService:Unavailable']
    else:
        with pytest.raises(raised) as caught:
            api.query_private('AddOrder', limit_buy(userref))
        assert isinstance(caught.value, OutcomeUnknownError)
        unknown = caught.value
        assert unknown.userref == str(userref) and unknown.nonce is not None
    assert not store_of(api).status()['locked'], 'the failed call kept the key'
    if kind in ('delay', 'reply_delayed'):
        time.sleep(SLOW - TIMEOUT + 0.3)
    placed = orders_with(unlimited, userref)
    assert len(placed) == (1 if processed else 0)
    assert len(logged(unlimited, 'AddOrder')) == len(placed), 'AddOrder was sent again'
    if unknown is not None:
        assert set(api.reconcile(unknown)) == {o['txid'] for o in placed}


# ------------------------------------------------------------------- asyncio

def test_async_and_sync_processes_share_a_key_without_an_invalid_nonce(
        share: dict[str, Any], unlimited: Sandbox, spawn: Spawn) -> None:
    gate = Gate(unlimited, jitter)
    options = spot(unlimited, **share)
    specs = [{'mode': 'async', 'api': options, 'threads': 3, 'calls': 8},
             {'mode': 'async', 'api': options, 'threads': 3, 'calls': 8},
             {'mode': 'spot', 'api': options, 'threads': 2, 'calls': 10}]
    results = run_together(spawn, specs)
    assert errors_of(results) == [] and gate.most == 1
    nonces = logged(unlimited, 'Balance')
    assert len(nonces) == 68 and nonces == sorted(set(nonces))


def holder_spec(sandbox: Sandbox, share: dict[str, Any], hold: float) -> dict[str, Any]:
    """A child that takes the key's send lock from the store itself and keeps it ``hold`` s."""
    return {'mode': 'hold', 'api': share, 'key': sandbox.key, 'uri': sandbox.url, 'lease': 30,
            'hold': hold}


def test_an_async_call_waiting_for_the_key_does_not_block_its_event_loop(
        share: dict[str, Any], unlimited: Sandbox, spawn: Spawn) -> None:
    holder = spawn(holder_spec(unlimited, share, 0.8))
    holder.expect('locked')

    async def main() -> tuple[Any, float, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(tick())
        async with AsyncAPI(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0,
                            **share) as api:
            started, before = time.monotonic(), ticks
            reply = await api.query_private('Balance')
            waited, during = time.monotonic() - started, ticks - before
        ticking.cancel()
        return reply, waited, during

    reply, waited, during = asyncio.run(asyncio.wait_for(main(), 30))
    released = holder.result()['released']
    assert reply['error'] == [] and logged(unlimited, 'Balance')
    assert waited >= 0.4 and time.time() >= released  # it waited for the other process
    assert during >= 10, f'{during} ticks in {waited:.2f} s: the loop was blocked'


def test_a_task_cancelled_while_waiting_for_the_key_leaves_it_free(
        share: dict[str, Any], unlimited: Sandbox, spawn: Spawn) -> None:
    holder = spawn(holder_spec(unlimited, share, 1.0))
    holder.expect('locked')
    # Another sharer of the key in this process, with a lock of its own (fd or token).
    other = resolve(share.get('share', ...)).open(unlimited.key, unlimited.url)

    async def main() -> tuple[bool, Any, float | None]:
        api = AsyncAPI(unlimited.key, unlimited.secret, uri=unlimited.url, retries=0, **share)
        waiting = asyncio.create_task(api.query_private('Balance'))
        await asyncio.sleep(0.3)
        pending = not waiting.done()
        waiting.cancel()
        outcome = (await asyncio.gather(waiting, return_exceptions=True))[0]
        # Once the other process has let go, the cancelled wait takes the lock (and so
        # must give it back) before this object's neighbour asks for it.
        while holder.process.poll() is None:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        free_at = None
        deadline = time.monotonic() + 10
        while free_at is None and time.monotonic() < deadline:
            handle = other.try_lock(1.0)
            if handle is not None:
                other.unlock(handle)
                free_at = time.time()
            await asyncio.sleep(0.02)
        await api.aclose()
        return pending, outcome, free_at

    pending, outcome, free_at = asyncio.run(asyncio.wait_for(main(), 30))
    released = holder.result()['released']
    assert pending and isinstance(outcome, asyncio.CancelledError)
    assert free_at is not None, 'the cancelled task left the key locked'
    assert free_at - released < 5.0
    assert unlimited.requests_log == [], 'the cancelled call was sent'


# ------------------------------------------------------------------- futures

@pytest.mark.parametrize('store', ['default', 'redis', 'none'])
def test_two_processes_on_one_futures_key_get_no_nonce_error(
        store: str, request: pytest.FixtureRequest, unlimited: Sandbox, spawn: Spawn) -> None:
    url = request.getfixturevalue('redis_url') if store == 'redis' else None
    unlimited.futures.budget = None  # nonces alone are checked here
    gate = Gate(unlimited, jitter, prefix='/derivatives/api/v3/',
                route=FuturesEndpoints(unlimited.futures).route)
    options = {'key': unlimited.futures.key, 'secret': unlimited.futures.secret,
               'uri': unlimited.futures_url, 'retries': 0, **shared(store, url)}
    spec = {'mode': 'futures', 'api': options, 'method': 'accounts', 'threads': 2,
            'calls': 10}
    errors = errors_of(run_together(spawn, [spec, spec]))
    if store == 'none':  # the control: each process's nonces on their own collide
        assert errors and set(errors) <= {'nonceDuplicate', 'nonceBelowThreshold'}
        return
    assert errors == [] and gate.most == 1
    sent = [int(n) for name, n in unlimited.futures.requests_log if name == 'accounts' and n]
    assert len(sent) == 40 and sent == sorted(set(sent))


# ------------------------------------------------------------ orders' ages

def test_many_thousands_of_orders_noted_keep_the_store_small_and_its_nonce_floor(
        unlimited: Sandbox, tmp_path: Path) -> None:
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, share=str(tmp_path))
    store = store_of(api)
    assert api.query_private('Balance')['error'] == []
    floor = store.status()['nonce']
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter('always')
        for batch in range(400):  # 40,000 orders, as busy AddOrderBatch replies note them
            store.note_orders([f'O{batch:05d}-{i:03d}-ABCDEF-GHIJKL' for i in range(100)],
                              'XBTUSD', 3600)
        assert store.status()['nonce'] == floor  # the floor never goes back
        other = API(unlimited.key, unlimited.secret, uri=unlimited.url, share=str(tmp_path))
        assert other.query_private('Balance')['error'] == []  # no EAPI:Invalid nonce
        assert store_of(other).status()['nonce'] > floor
    assert [str(w.message) for w in warned] == []  # never judged "not a krakenex store file"
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) < 3 << 20
    assert store.order('O00399-099-ABCDEF-GHIJKL') is not None  # the newest are kept
    assert store.order('O00000-000-ABCDEF-GHIJKL') is None  # the oldest made room


def test_a_store_file_of_the_last_release_is_read_whole_however_long(
        unlimited: Sandbox, tmp_path: Path) -> None:
    api = API(unlimited.key, unlimited.secret, uri=unlimited.url, share=str(tmp_path))
    assert api.query_private('Balance')['error'] == []
    store = store_of(api)
    floor = store.status()['nonce'] + 10 ** 9
    orders = {f'O{i:06d}-ABCDE-FGHIJK': ['XBTUSD', time.time(), time.time() + 300]
              for i in range(20_000)}  # as krakenex 3.0 kept them: in the state, past 1 MiB
    Path(store.path).write_bytes(
        b'krakenex-share %d %020d\n' % (FORMAT, floor) + json.dumps(
            {'server': store._server, 'counters': {'rest': [3.0, time.time(), 0.33]},
             'orders': orders}).encode())
    assert Path(store.path).stat().st_size > 1 << 20
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # never judged "not a krakenex store file"
        other = API(unlimited.key, unlimited.secret, uri=unlimited.url, share=str(tmp_path))
        assert other.query_private('Balance')['error'] == []
    status = store_of(other).status()
    assert status['nonce'] == floor + 1
    assert status['counters']['rest'] > 2


def test_a_store_never_closed_is_quiet_when_collected_at_interpreter_exit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(str(tmp_path), 'key', 'https://api.kraken.com')
    store.nonce(1)
    monkeypatch.setattr(os, 'close', None)  # as the interpreter leaves modules at exit
    store.__del__()  # nothing raised, so nothing printed
    monkeypatch.undo()
    store.close()
