#!/usr/bin/env python3
"""krakenex side by side with the clients people would pick instead, against the sandbox.

One command on a fresh machine::

    python benchmarks/bench.py            # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench.py --quick    # smoke run, under a minute: krakenex and the floors

The full run puts each client in a virtual environment of its own under
``.bench-venvs/`` (the peers all want the import name ``krakenex`` or pull
their own dependencies), starts the sandbox in a separate process on
127.0.0.1, and runs the same workload in each environment in one run, so the
ratios hold on a noisy machine. Every measurement runs this same file as a
worker (``--worker``) in the right environment's Python; the worker speaks one
JSON object per line on stdin and stdout.

What it measures (see benchmarks/README.md):

1. client CPU (user + system time of the client process) and wall time per
   call, public ``Ticker`` and private ``Balance``;
2. ``import`` wall time and peak memory, the command line end to end;
3. 8 threads sharing one client object: calls per second and invalid nonces;
4. pacing: ``Ledgers`` calls under the starter tier, against the maximum.

It uses the standard library only, so that it runs in any of the environments.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import math
import os
import platform
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve()
REPO = BENCH.parent.parent
VENVS = REPO / '.bench-venvs'
RESULTS = BENCH.parent / 'RESULTS.md'

#: The peers and the exact releases measured: (environment, label, pip requirement,
#: distribution name, what to import: module and the name a user takes from it).
PEERS = (
    ('krakenex-2.2.2', 'krakenex 2.2.2', 'krakenex==2.2.2', 'krakenex', 'krakenex.API'),
    ('python-kraken-sdk', 'python-kraken-sdk', 'python-kraken-sdk==3.5.1', 'python-kraken-sdk',
     'kraken.spot.User'),
    ('ccxt', 'ccxt', 'ccxt==4.5.90', 'ccxt', 'ccxt.kraken'),
)

#: Kraken's starter tier (https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits):
#: counter maximum, decay per second, and what one Ledgers call adds.
STARTER_MAX, STARTER_DECAY, LEDGERS_COST = 15.0, 0.33, 2.0

#: The targets from the benchmark issue.
TARGET_CPU_RATIO = 0.65      # krakenex Balance CPU / default requests.Session floor
TARGET_IMPORT_RATIO = 1.1    # import krakenex / import requests, wall time
TARGET_IMPORT_MIB = 2.0      # import krakenex - import requests, peak memory
TARGET_PACING = 0.95         # Ledgers completed / theoretical maximum

THREADS = 8
PAIR = 'XBTUSD'


def calls_max(seconds: float, maximum: float = STARTER_MAX, decay: float = STARTER_DECAY,
              cost: float = LEDGERS_COST) -> int:
    """The most calls of ``cost`` a fresh counter admits in a window of ``seconds``.

    The counter starts at 0 and may reach ``maximum``; over the window it
    decays by ``decay * seconds``, so at most ``maximum + decay * seconds`` of
    cost fits: ``floor((15 + 0.33 * T) / 2)`` for Ledgers on the starter tier.
    """
    return math.floor((maximum + decay * seconds) / cost + 1e-9)


# =================================================================== worker side
#
# Everything here runs inside a client's own environment; it imports the client
# only when asked to, and the standard library otherwise.

Call = Callable[[], Any]


@dataclass
class Client:
    """The three calls every client makes, each returning what the client returns."""

    ticker: Call
    balance: Call
    ledgers: Call
    version: str = ''
    setup: Call | None = None


def _floor_client(url: str, key: str, secret: str, trust_env: bool) -> Client:
    """A plain requests.Session signing by hand, as Kraken's docs show: the floor."""
    import requests

    session = requests.Session()
    if not trust_env:
        session.trust_env = False
    raw_secret = base64.b64decode(secret)
    last = [0]

    def nonce() -> str:
        last[0] = max(time.time_ns() // 1_000_000, last[0] + 1)
        return str(last[0])

    def private(method: str) -> Any:
        path = f'/0/private/{method}'
        n = nonce()
        body = urllib.parse.urlencode({'nonce': n})
        message = path.encode() + hashlib.sha256((n + body).encode()).digest()
        sign = base64.b64encode(hmac.new(raw_secret, message, hashlib.sha512).digest()).decode()
        headers = {'API-Key': key, 'API-Sign': sign,
                   'Content-Type': 'application/x-www-form-urlencoded'}
        return session.post(url + path, data=body.encode(), headers=headers).json()

    return Client(ticker=lambda: session.get(url + '/0/public/Ticker',
                                             params={'pair': PAIR}).json(),
                  balance=lambda: private('Balance'), ledgers=lambda: private('Ledgers'),
                  version=f'requests {requests.__version__}')


def make_client(spec: dict[str, Any]) -> Client:
    """Build the client named in ``spec`` against the sandbox at ``spec['url']``."""
    name, url, key, secret = spec['client'], spec['url'], spec['key'], spec['secret']
    paced = spec.get('paced')
    if name in ('floor', 'floor-noenv'):
        return _floor_client(url, key, secret, trust_env=name == 'floor')
    if name == 'krakenex':
        import krakenex

        options: dict[str, Any] = {}
        if paced:
            # Retries off: a rate-limit error must show, not be retried away.
            options = {'tier': paced if isinstance(paced, str) else tuple(paced), 'retries': 0}
        api = krakenex.API(key, secret, uri=url, **options)
        return Client(ticker=lambda: api.query_public('Ticker', {'pair': PAIR}),
                      balance=lambda: api.query_private('Balance'),
                      ledgers=lambda: api.query_private('Ledgers'),
                      version=krakenex.__version__)
    if name == 'krakenex-2.2.2':
        import krakenex

        old = krakenex.API(key, secret)
        old.uri = url
        return Client(ticker=lambda: old.query_public('Ticker', {'pair': PAIR}),
                      balance=lambda: old.query_private('Balance'),
                      ledgers=lambda: old.query_private('Ledgers'),
                      version=krakenex.version.__version__)
    if name == 'python-kraken-sdk':
        from importlib.metadata import version

        from kraken.spot import Market, User

        market, user = Market(url=url), User(key=key, secret=secret, url=url)
        return Client(ticker=lambda: market.get_ticker(pair=PAIR),
                      balance=user.get_account_balance, ledgers=user.get_ledgers_info,
                      version=version('python-kraken-sdk'))
    if name == 'ccxt':
        import ccxt

        # ccxt's own limiter is off for the CPU runs and on for its pacing run.
        exchange = ccxt.kraken({'apiKey': key, 'secret': secret,
                                'enableRateLimit': bool(paced)})
        exchange.urls['api'] = dict(exchange.urls['api'], public=url, private=url)
        # Kraken's raw endpoints through ccxt's implicit API: the same request
        # and the same decoded JSON as the others, without ccxt's unified parsing.
        return Client(ticker=lambda: exchange.publicGetTicker({'pair': PAIR}),
                      balance=exchange.privatePostBalance, ledgers=exchange.privatePostLedgers,
                      version=ccxt.__version__, setup=exchange.load_markets)
    raise ValueError(f'unknown client {name!r}')


#: The asyncio clients, each in the environment of its package.
ASYNC_CLIENTS = ('krakenex-async', 'python-kraken-sdk-async', 'ccxt-async')

AsyncCall = Callable[[], Awaitable[Any]]


@dataclass
class AsyncClient:
    """An asyncio client: the two calls, each returning what the client returns, and close."""

    ticker: AsyncCall
    balance: AsyncCall
    close: AsyncCall
    version: str = ''
    setup: AsyncCall | None = None


async def make_async_client(spec: dict[str, Any]) -> AsyncClient:
    """Build the asyncio client named in ``spec``, inside the running loop."""
    name, url, key, secret = spec['client'], spec['url'], spec['key'], spec['secret']
    if name == 'krakenex-async':
        import krakenex

        # Retries off: a failed call must show, not be retried away.
        api = krakenex.AsyncAPI(key, secret, uri=url, retries=0)
        return AsyncClient(ticker=lambda: api.query_public('Ticker', {'pair': PAIR}),
                           balance=lambda: api.query_private('Balance'), close=api.aclose,
                           version=krakenex.__version__)
    if name == 'python-kraken-sdk-async':
        from importlib.metadata import version

        from kraken.spot import SpotAsyncClient

        client = SpotAsyncClient(key=key, secret=secret, url=url)
        return AsyncClient(
            ticker=lambda: client.request('GET', '/0/public/Ticker', params={'pair': PAIR},
                                          auth=False),
            balance=lambda: client.request('POST', '/0/private/Balance'), close=client.close,
            version=version('python-kraken-sdk'))
    if name == 'ccxt-async':
        import ccxt.async_support as ccxt_async

        # Its limiter would space public calls a second apart: off, as in the CPU runs.
        exchange = ccxt_async.kraken({'apiKey': key, 'secret': secret,
                                      'enableRateLimit': False})
        exchange.urls['api'] = dict(exchange.urls['api'], public=url, private=url)
        return AsyncClient(ticker=lambda: exchange.publicGetTicker({'pair': PAIR}),
                           balance=exchange.privatePostBalance, close=exchange.close,
                           version=ccxt_async.__version__, setup=exchange.load_markets)
    raise ValueError(f'unknown client {name!r}')


def outcome(call: Call) -> str | None:
    """Make one call: ``None`` if it succeeded, else what went wrong, in one line."""
    try:
        reply = call()
    except Exception as exc:  # every client raises its own classes
        return f'{type(exc).__name__}: {exc}'[:300]
    if isinstance(reply, dict) and reply.get('error'):
        return ', '.join(map(str, reply['error']))
    return None


async def async_outcome(call: AsyncCall) -> str | None:
    """:func:`outcome` for an asyncio call."""
    try:
        reply = await call()
    except Exception as exc:  # every client raises its own classes
        return f'{type(exc).__name__}: {exc}'[:300]
    if isinstance(reply, dict) and reply.get('error'):
        return ', '.join(map(str, reply['error']))
    return None


def is_invalid_nonce(error: str) -> bool:
    text = error.lower()
    return 'invalid nonce' in text or 'invalidnonce' in text


def is_rate_limit(error: str) -> bool:
    text = error.lower()
    return 'rate limit' in text or 'ratelimit' in text or 'apilimitexceeded' in text


@dataclass
class Tally:
    """Calls made and what went wrong, with the first error of each kind as evidence."""

    calls: int = 0
    errors: int = 0
    invalid_nonce: int = 0
    rate_limit: int = 0
    first_error: str = ''

    def add(self, error: str | None) -> None:
        self.calls += 1
        if error is not None:
            self.errors += 1
            self.invalid_nonce += is_invalid_nonce(error)
            self.rate_limit += is_rate_limit(error)
            self.first_error = self.first_error or error

    def merge(self, other: Tally) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.invalid_nonce += other.invalid_nonce
        self.rate_limit += other.rate_limit
        self.first_error = self.first_error or other.first_error


def run_cpu(client: Client, call: str, n: int) -> dict[str, Any]:
    """``n`` calls in a row: CPU (user + system) and wall time of this process."""
    fn = getattr(client, call)
    tally = Tally()
    add = tally.add
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(n):
        add(outcome(fn))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {'user': after.ru_utime - before.ru_utime, 'sys': after.ru_stime - before.ru_stime,
            'wall': wall, **vars(tally)}


def run_async_cpu(loop: asyncio.AbstractEventLoop, client: AsyncClient, call: str,
                  n: int) -> dict[str, Any]:
    """:func:`run_cpu` for an asyncio client: ``n`` calls awaited one after another."""
    fn = getattr(client, call)
    tally = Tally()

    async def calls() -> None:
        for _ in range(n):
            tally.add(await async_outcome(fn))

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    loop.run_until_complete(calls())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {'user': after.ru_utime - before.ru_utime, 'sys': after.ru_stime - before.ru_stime,
            'wall': wall, **vars(tally)}


def run_burst(loop: asyncio.AbstractEventLoop, client: AsyncClient, call: str,
              n: int) -> dict[str, Any]:
    """``n`` calls started at once with ``asyncio.gather``: wall time to the last reply."""
    fn = getattr(client, call)

    async def burst() -> list[str | None]:
        return await asyncio.gather(*(async_outcome(fn) for _ in range(n)))

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    errors = loop.run_until_complete(burst())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    tally = Tally()
    for error in errors:
        tally.add(error)
    return {'user': after.ru_utime - before.ru_utime, 'sys': after.ru_stime - before.ru_stime,
            'wall': wall, **vars(tally)}


def run_threads(client: Client, threads: int, seconds: float) -> dict[str, Any]:
    """``threads`` threads calling Balance on one shared client for ``seconds``."""
    tallies = [Tally() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def loop(tally: Tally) -> None:
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            tally.add(outcome(client.balance))

    workers = [threading.Thread(target=loop, args=(t,), daemon=True) for t in tallies]
    for w in workers:
        w.start()
    deadline[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    barrier.wait()
    for w in workers:
        w.join()
    total = Tally()
    for t in tallies:
        total.merge(t)
    return {'elapsed': time.perf_counter() - started, **vars(total)}


def run_pacing(client: Client, seconds: float) -> dict[str, Any]:
    """Ledgers in a loop; count the calls whose reply came within ``seconds`` of the first."""
    tally = Tally()
    started = time.perf_counter()
    while True:
        error = outcome(client.ledgers)
        elapsed = time.perf_counter() - started
        if elapsed > seconds:
            break
        tally.add(error)
    return {'window': seconds, 'completed': tally.calls - tally.errors, **vars(tally)}


def async_setup(loop: asyncio.AbstractEventLoop,
                request: dict[str, Any]) -> tuple[AsyncClient, Tally]:
    """Build an asyncio client in ``loop``, run its setup call and its warm-up calls."""
    client = loop.run_until_complete(make_async_client(request))

    async def warm_up() -> Tally:
        if client.setup is not None:
            try:
                await client.setup()
            except Exception as exc:  # warm-up only: report and go on
                print(f'setup call failed: {exc!r}', file=sys.stderr)
        tally = Tally()
        for _ in range(request.get('warmup', 0)):
            tally.add(await async_outcome(client.ticker))
            tally.add(await async_outcome(client.balance))
        return tally

    return client, loop.run_until_complete(warm_up())


def leave_the_allocator_as_tls_would() -> None:
    """Free a 1 MiB block once, as every client's process does when it talks to Kraken.

    An asyncio connection reads into a new 256 KiB buffer each time. Over plain
    HTTP, as to the sandbox, glibc gives each such buffer its own mapping unless
    the process once freed a larger block: then an mmap, an mremap and a munmap
    per call, which cost this machine's client about a quarter of its CPU per call.
    Over TLS, as to Kraken, the first read frees such a block and the cost is gone
    (strace counts no mapping per call), and ccxt frees one anyway when it loads the
    markets. So every worker frees one before it measures, and no client pays a cost,
    or is spared it, by what its start-up happened to allocate.
    """
    block = bytes(1 << 20)
    del block


def worker_main() -> None:
    """Serve requests from the driver: one JSON object per line in, one per line out."""
    leave_the_allocator_as_tls_would()
    # Keep the protocol's stdout to ourselves: whatever a client prints goes to stderr.
    out = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    client: Client | None = None
    aclient: AsyncClient | None = None
    # One loop for the worker's life: an asyncio client's connections belong to it.
    # It keeps running while the worker waits for the driver, as in a program that
    # lives in its loop, so a connection the server closes meanwhile is seen closed
    # (a stopped loop would hand it to the next call, which then fails).
    loop = asyncio.new_event_loop()
    while line := loop.run_until_complete(loop.run_in_executor(None, sys.stdin.readline)):
        request = json.loads(line)
        try:
            op = request['op']
            if op == 'setup' and request['client'] in ASYNC_CLIENTS:
                aclient, tally = async_setup(loop, request)
                reply: dict[str, Any] = {'version': aclient.version, 'warmup': vars(tally)}
            elif op == 'setup':
                client = make_client(request)
                if client.setup is not None:
                    try:
                        client.setup()
                    except Exception as exc:  # warm-up only: report and go on
                        print(f'setup call failed: {exc!r}', file=sys.stderr)
                tally = Tally()
                for _ in range(request.get('warmup', 0)):
                    tally.add(outcome(client.ticker))
                    tally.add(outcome(client.balance))
                reply = {'version': client.version, 'warmup': vars(tally)}
            elif op == 'quit':
                break
            elif aclient is not None and op == 'cpu':
                reply = run_async_cpu(loop, aclient, request['call'], request['n'])
            elif aclient is not None and op == 'burst':
                reply = run_burst(loop, aclient, request['call'], request['n'])
            elif client is None:
                raise RuntimeError('no setup yet')
            elif op == 'cpu':
                reply = run_cpu(client, request['call'], request['n'])
            elif op == 'threads':
                reply = run_threads(client, request['threads'], request['seconds'])
            elif op == 'pacing':
                reply = run_pacing(client, request['seconds'])
            else:
                raise ValueError(f'unknown op {op!r}')
        except Exception:  # reported to the driver
            reply = {'error': traceback.format_exc()}
        out.write(json.dumps(reply) + '\n')
    if aclient is not None:
        try:
            loop.run_until_complete(aclient.close())
        except Exception as exc:  # closing only: report and go on
            print(f'close failed: {exc!r}', file=sys.stderr)
    loop.close()


# =================================================================== driver side

class BenchError(Exception):
    """A measurement that could not be made."""


@dataclass
class Env:
    """A Python to run a client in, and what to add to its environment."""

    name: str
    python: str
    extra: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'PYTHONDONTWRITEBYTECODE',
                            'KRAKEN_API_KEY', 'KRAKEN_API_SECRET')}
        env.update(self.extra)
        return env

    def run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.python, *args], capture_output=True, text=True,
                              env=self.environ(), cwd=tempfile.gettempdir(), timeout=timeout)


def log(message: str) -> None:
    print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def venv_python(name: str) -> Path:
    return VENVS / name / 'bin' / 'python'


def pip(python: Path, *args: str) -> None:
    done = subprocess.run([str(python), '-m', 'pip', 'install', '--quiet',
                           '--disable-pip-version-check', *args],
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise BenchError(f'pip install {" ".join(args)} failed:\n{done.stderr[-2000:]}')


def make_venv(name: str) -> Path:
    python = venv_python(name)
    if not python.exists():
        log(f'creating {VENVS.name}/{name}')
        done = subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENVS / name)],
                              capture_output=True, text=True)
        if done.returncode:
            raise BenchError(f'could not create a virtual environment (on Debian and Ubuntu: '
                             f'apt-get install python3-venv):\n{done.stderr[-2000:]}')
    return python


def install_checkout(python: Path) -> None:
    """``pip install .`` of this checkout, built from a copy so the tree gets no build files."""
    skip = shutil.ignore_patterns('.git', '.bench-venvs', '.venv*', 'build', 'dist', '*.egg-info',
                                  '__pycache__', '.*_cache', '_build')
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / 'krakenex'
        shutil.copytree(REPO, source, ignore=skip)
        if installed_version(python, 'requests') is None or \
                installed_version(python, 'aiohttp') is None:
            pip(python, f'{source}[async]')  # AsyncAPI needs aiohttp
        else:
            pip(python, '--force-reinstall', '--no-deps', str(source))


def installed_version(python: Path, dist: str) -> str | None:
    # Run away from the checkout: its krakenex.egg-info would answer for 'krakenex'.
    return dist_versions(Env(python.parent.parent.name, str(python)), [dist]).get(dist)


def dist_versions(env: Env, dists: list[str]) -> dict[str, str]:
    script = ('import importlib.metadata as m, json, sys\nv = {}\n'
              f'for d in {dists!r}:\n'
              '    try: v[d] = m.version(d)\n'
              '    except m.PackageNotFoundError: pass\n'
              'print(json.dumps(v))')
    done = env.run(['-c', script])
    return json.loads(done.stdout) if done.returncode == 0 else {}


def krakenex_env(quick: bool) -> Env:
    """This checkout's krakenex: the current Python in quick mode, else its own venv."""
    if quick:
        env = Env('current', sys.executable, {'PYTHONPATH': str(REPO)})
        done = env.run(['-c', 'import krakenex, requests; print(krakenex.__version__)'])
        if done.returncode:
            raise BenchError(f'krakenex cannot be imported from {REPO}:\n{done.stderr}')
        env.versions = {'krakenex': done.stdout.strip(),
                        **dist_versions(env, ['requests', 'aiohttp'])}
        return env
    VENVS.mkdir(exist_ok=True)
    python = make_venv('krakenex')
    # Installed (not editable) from this checkout on every run, so what is
    # measured is what a user gets from `pip install .` of this tree.
    log('installing this checkout into .bench-venvs/krakenex')
    install_checkout(python)
    env = Env('krakenex', str(python))
    env.versions = dist_versions(env, ['krakenex', 'requests', 'urllib3', 'aiohttp'])
    return env


def peer_env(name: str, requirement: str, dist: str) -> Env:
    python = make_venv(name)
    wanted = requirement.split('==')[1]
    if installed_version(python, dist) != wanted:
        log(f'installing {requirement} into {VENVS.name}/{name}')
        pip(python, requirement)
    env = Env(name, str(python))
    env.versions = dist_versions(env, [dist, 'requests', 'urllib3'])
    return env


# ----------------------------------------------------------------- processes

class Sandbox:
    """``python -m krakenex.sandbox`` in a process of its own, on 127.0.0.1."""

    def __init__(self, env: Env, tier: str | None = None, seed: int = 1) -> None:
        args = [env.python, '-u', '-m', 'krakenex.sandbox', '--port', '0', '--seed', str(seed)]
        # The sandbox keeps Kraken's starter limits by default; throughput runs turn them off.
        args += ['--tier', tier or 'none']
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env.environ(),
                                     cwd=tempfile.gettempdir())
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.banner: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        found: dict[str, str] = {}
        give_up = time.monotonic() + 30
        while not {'url', 'key', 'secret'} <= found.keys():
            try:
                line = self.lines.get(timeout=max(0.0, give_up - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise BenchError(f'the sandbox did not print its url, key and secret '
                                 f'({" ".join(args)}):\n' + ''.join(self.banner[-20:]))
            self.banner.append(line)
            if match := re.match(r'\s*(url|key|secret)\s*[:=]\s*(\S+)', line, re.I):
                found.setdefault(match.group(1).lower(), match.group(2))
        self.url, self.key, self.secret = found['url'].rstrip('/'), found['key'], found['secret']

    def _drain(self, stream: IO[str] | None) -> None:
        # Read everything the server prints so that a full pipe never blocks it.
        assert stream is not None
        for line in stream:
            if len(self.banner) < 40:
                self.lines.put(line)
        self.lines.put(None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Worker:
    """This file run with ``--worker`` in one client's environment, set up for one sandbox."""

    def __init__(self, env: Env, client: str, sandbox: Sandbox, *, warmup: int = 0,
                 paced: Any = None) -> None:
        self.client = client
        self.stderr = tempfile.TemporaryFile('w+')  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([env.python, str(BENCH), '--worker'], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=env.environ(), cwd=tempfile.gettempdir(), bufsize=1)
        setup = self.ask({'op': 'setup', 'client': client, 'url': sandbox.url, 'key': sandbox.key,
                          'secret': sandbox.secret, 'warmup': warmup, 'paced': paced},
                         timeout=300)
        self.version: str = setup['version']
        self.warmup: dict[str, Any] = setup['warmup']

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + '\n')
        self.proc.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            watchdog.cancel()
        if not line:
            self.stderr.seek(0)
            raise BenchError(f'the {self.client} worker died (exit {self.proc.wait()}):\n'
                             f'{self.stderr.read()[-3000:]}')
        reply: dict[str, Any] = json.loads(line)
        if 'error' in reply:
            raise BenchError(f'the {self.client} worker failed:\n{reply["error"]}')
        return reply

    def ask(self, request: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        self.send(request)
        return self.receive(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({'op': 'quit'})
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


@contextmanager
def stopping(*things: Sandbox | Worker) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            thing.stop()


def open_client(env: Env, client: str, sandbox_env: Env, *, warmup: int = 0,
                tier: str | None = None, paced: Any = None) -> tuple[Sandbox, Worker]:
    """A fresh sandbox (its own key and nonce) and a worker for ``client`` set up against it."""
    sandbox = Sandbox(sandbox_env, tier=tier)
    try:
        return sandbox, Worker(env, client, sandbox, warmup=warmup, paced=paced)
    except BaseException:
        sandbox.stop()
        raise


# ----------------------------------------------------------------- measurements

@dataclass
class Subject:
    """A client under test: the key used in results, its label and where it runs."""

    key: str
    label: str
    env: Env
    client: str


def measure_cpu(subjects: list[Subject], sandbox_env: Env, calls: int, repeats: int,
                warmup: int) -> dict[str, Any]:
    """Per-call CPU and wall time: every client, each repeat, in alternating order."""
    opened: list[Sandbox | Worker] = []
    workers: dict[str, Worker] = {}
    results: dict[str, Any] = {}
    try:
        for s in subjects:
            log(f'cpu: starting {s.label}')
            try:
                sandbox, worker = open_client(s.env, s.client, sandbox_env, warmup=warmup)
            except BenchError as exc:
                results[s.key] = {'failed': str(exc)}
                log(f'cpu: {s.label} failed: {exc}')
                continue
            opened += [worker, sandbox]
            workers[s.key] = worker
            results[s.key] = {'version': worker.version, 'warmup': worker.warmup,
                              'ticker': [], 'balance': []}
        order = [s for s in subjects if s.key in workers]
        for repeat in range(repeats):
            log(f'cpu: repeat {repeat + 1} of {repeats}')
            # Forward, then backward (ABBA): drift over the run hits every client alike.
            for s in order if repeat % 2 == 0 else order[::-1]:
                for call in ('ticker', 'balance'):
                    results[s.key][call].append(workers[s.key].ask(
                        {'op': 'cpu', 'call': call, 'n': calls}))
    finally:
        for thing in opened:
            thing.stop()
    for data in results.values():
        for call in ('ticker', 'balance'):
            runs = data.get(call)
            if runs:
                data[call + '_summary'] = summarize_cpu(runs, calls)
    return results


def summarize_cpu(runs: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    cpu = [(r['user'] + r['sys']) / calls * 1000 for r in runs]
    wall = [r['wall'] / calls * 1000 for r in runs]
    return {'cpu_ms': statistics.median(cpu), 'cpu_min': min(cpu), 'cpu_max': max(cpu),
            'wall_ms': statistics.median(wall), 'wall_min': min(wall), 'wall_max': max(wall),
            'user_ms': statistics.median(r['user'] / calls * 1000 for r in runs),
            'sys_ms': statistics.median(r['sys'] / calls * 1000 for r in runs),
            'calls': calls * len(runs), 'errors': sum(r['errors'] for r in runs),
            'invalid_nonce': sum(r['invalid_nonce'] for r in runs),
            'first_error': next((r['first_error'] for r in runs if r['first_error']), '')}


def measure_threads(subjects: list[Subject], sandbox_env: Env, seconds: float) -> dict[str, Any]:
    """8 threads on one shared client each, one client at a time, each on a fresh sandbox."""
    results: dict[str, Any] = {}
    for s in subjects:
        log(f'threads: {s.label}, {THREADS} threads for {seconds:g} s')
        try:
            sandbox, worker = open_client(s.env, s.client, sandbox_env, warmup=2)
            with stopping(worker, sandbox):
                data = worker.ask({'op': 'threads', 'threads': THREADS, 'seconds': seconds},
                                  timeout=seconds + 120)
        except BenchError as exc:
            results[s.key] = {'failed': str(exc)}
            log(f'threads: {s.label} failed: {exc}')
            continue
        data['per_second'] = data['calls'] / data['elapsed']
        results[s.key] = data
    return results


def measure_bursts(subjects: list[Subject], sandbox_env: Env, calls: int, rounds: int,
                   warmup: int) -> dict[str, Any]:
    """``calls`` public calls at once on one asyncio client, clients taking turns each round.

    Each client has a sandbox of its own. Round 0 opens the connections and
    is left out of the times; its failures count like any other.
    """
    opened: list[Sandbox | Worker] = []
    workers: dict[str, Worker] = {}
    results: dict[str, Any] = {}
    try:
        for s in subjects:
            log(f'bursts: starting {s.label}')
            try:
                sandbox, worker = open_client(s.env, s.client, sandbox_env, warmup=warmup)
            except BenchError as exc:
                results[s.key] = {'failed': str(exc)}
                log(f'bursts: {s.label} failed: {exc}')
                continue
            opened += [worker, sandbox]
            workers[s.key] = worker
            results[s.key] = {'version': worker.version, 'rounds': []}
        order = [s for s in subjects if s.key in workers]
        for repeat in range(rounds + 1):
            log(f'bursts: round {repeat} of {rounds} ({calls} calls at once)')
            for s in order if repeat % 2 == 0 else order[::-1]:
                if 'failed' in results[s.key]:
                    continue
                try:
                    results[s.key]['rounds'].append(workers[s.key].ask(
                        {'op': 'burst', 'call': 'ticker', 'n': calls}, timeout=300))
                except BenchError as exc:
                    results[s.key] = {'failed': str(exc)}
                    log(f'bursts: {s.label} failed: {exc}')
    finally:
        for thing in opened:
            thing.stop()
    for data in results.values():
        runs = data.get('rounds')
        if not runs:
            continue
        timed = runs[1:] or runs
        wall = [r['wall'] * 1000 for r in timed]
        data.update(
            calls_at_once=calls, timed_rounds=len(timed), wall_ms=statistics.median(wall),
            wall_min=min(wall), wall_max=max(wall),
            per_second=calls / statistics.median(wall) * 1000,
            cpu_ms=statistics.median((r['user'] + r['sys']) / calls * 1000 for r in timed),
            calls=sum(r['calls'] for r in runs), errors=sum(r['errors'] for r in runs),
            first_error=next((r['first_error'] for r in runs if r['first_error']), ''))
    return results


def time_runs(commands: dict[str, tuple[Env, list[str]]], runs: int) -> dict[str, list[float]]:
    """Wall time of each command ``runs`` times, the commands interleaved."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, (env, args) in commands.items():   # once untimed: bytecode caches, disk
        done = env.run(args)
        if done.returncode:
            raise BenchError(f'{name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}')
    for _ in range(runs):
        for name, (env, args) in commands.items():
            started = time.perf_counter()
            env.run(args)
            times[name].append(time.perf_counter() - started)
    return times


PEAK = ('import resource, sys; '
        'sys.stdout.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))')


def peak_kib(env: Env, statement: str, runs: int = 5) -> float:
    """Median peak resident memory (KiB) of a Python that runs ``statement``."""
    peaks = []
    for _ in range(runs):
        done = env.run(['-c', f'{statement}\n{PEAK}'])
        if done.returncode:
            raise BenchError(f'python -c {statement!r} failed:\n{done.stderr[-2000:]}')
        peaks.append(float(done.stdout))
    return statistics.median(peaks)


def import_statement(name: str) -> str:
    """``import a.b; a.b.C`` for ``'a.b.C'``: touching the name defeats a lazy package."""
    module = name.rsplit('.', 1)[0]
    return f'import {module}; {name}'


def measure_imports(imports: list[tuple[str, str, Env, str]], runs: int) -> dict[str, Any]:
    """``python -c "import X"`` minus ``python -c "pass"``: wall time and peak memory."""
    commands: dict[str, tuple[Env, list[str]]] = {}
    for key, _label, env, name in imports:
        commands[f'pass@{env.name}'] = (env, ['-c', 'pass'])
        commands[key] = (env, ['-c', import_statement(name)])
    log(f'imports: {len(commands)} commands x {runs} runs')
    times = time_runs(commands, runs)
    results: dict[str, Any] = {}
    bare_peak: dict[str, float] = {}
    for key, label, env, name in imports:
        if env.name not in bare_peak:
            bare_peak[env.name] = peak_kib(env, 'pass')
        bare = statistics.median(times[f'pass@{env.name}'])
        results[key] = {
            'label': label, 'statement': import_statement(name), 'env': env.name,
            'wall_ms': (statistics.median(times[key]) - bare) * 1000,
            'total_ms': statistics.median(times[key]) * 1000, 'bare_ms': bare * 1000,
            'peak_mib': (peak_kib(env, import_statement(name)) - bare_peak[env.name]) / 1024,
        }
    return results


def own_import_ms(env: Env, runs: int) -> float:
    """What krakenex's own modules take to import once requests is loaded, in one process.

    Less noisy than the difference of two process start-ups: the share of
    ``import krakenex`` that krakenex itself can change.
    """
    code = ('import time, requests; t = time.perf_counter(); import krakenex; krakenex.API; '
            'print(time.perf_counter() - t)')
    times = []
    for _ in range(runs):
        done = env.run(['-c', code])
        if done.returncode:
            raise BenchError(f'python -c {code!r} failed:\n{done.stderr[-2000:]}')
        times.append(float(done.stdout) * 1000)
    return statistics.median(times)


def cli_command(env: Env, quick: bool) -> list[str]:
    """How to run the `krakenex` command: the installed script, or ``-m`` in quick mode."""
    if quick:
        if (REPO / 'krakenex' / '__main__.py').exists():
            return [env.python, '-m', 'krakenex']
        return [env.python, '-c', 'import sys; from krakenex.cli import main; sys.exit(main())']
    return [str(Path(env.python).parent / 'krakenex')]


def measure_cli(env: Env, quick: bool, runs: int) -> dict[str, Any]:
    """`krakenex --help` and `krakenex --sandbox Time`, end to end, against a bare interpreter."""
    command = cli_command(env, quick)
    script = Env(env.name, command[0], env.extra)
    commands = {'python -c pass': (env, ['-c', 'pass']),
                'krakenex --help': (script, [*command[1:], '--help']),
                'krakenex --sandbox Time': (script, [*command[1:], '--sandbox', 'Time'])}
    log(f'cli: {len(commands)} commands x {runs} runs ({" ".join(command)})')
    times = time_runs(commands, runs)
    return {name: {'wall_ms': statistics.median(t) * 1000, 'min_ms': min(t) * 1000}
            for name, t in times.items()}


def start_pacing(subjects: list[tuple[Subject, Any]], sandbox_env: Env, tier: str,
                 seconds: float) -> list[tuple[Subject, Sandbox, Worker]]:
    """Start Ledgers loops in the background, each on a fresh sandbox enforcing ``tier``."""
    started = []
    for s, paced in subjects:
        log(f'pacing: {s.label} on tier {tier} for {seconds:g} s (in the background)')
        sandbox, worker = open_client(s.env, s.client, sandbox_env, tier=tier, paced=paced)
        worker.send({'op': 'pacing', 'seconds': seconds})
        started.append((s, sandbox, worker))
    return started


def finish_pacing(running: list[tuple[Subject, Sandbox, Worker]],
                  seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for s, sandbox, worker in running:
        with stopping(worker, sandbox):
            try:
                data = worker.receive(timeout=seconds + 300)
            except BenchError as exc:
                results[s.key] = {'failed': str(exc)}
                continue
        data['max'] = calls_max(seconds)
        data['ratio'] = data['completed'] / data['max']
        results[s.key] = data
    return results


# ----------------------------------------------------------------- report

def fmt(value: float | None, digits: int = 3) -> str:
    return '—' if value is None else f'{value:.{digits}f}'


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def cpu_table(cpu: dict[str, Any], labels: dict[str, str]) -> str:
    floor = cpu.get('floor', {}).get('balance_summary', {}).get('cpu_ms')
    floor_noenv = cpu.get('floor-noenv', {}).get('balance_summary', {}).get('cpu_ms')
    rows = []
    for key, label in labels.items():
        data = cpu.get(key)
        if data is None:
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 6)
            continue
        t, b = data['ticker_summary'], data['balance_summary']
        errors = t['errors'] + b['errors']
        rows.append([
            label,
            f'{t["cpu_ms"]:.3f}', f'{t["wall_ms"]:.3f}',
            f'{b["cpu_ms"]:.3f} ({b["cpu_min"]:.3f}–{b["cpu_max"]:.3f})', f'{b["wall_ms"]:.3f}',
            fmt(b['cpu_ms'] / floor if floor else None, 2),
            fmt(b['cpu_ms'] / floor_noenv if floor_noenv else None, 2),
            f'{errors}' + (f' ({b["invalid_nonce"] + t["invalid_nonce"]} invalid nonce)'
                           if b['invalid_nonce'] + t['invalid_nonce'] else ''),
        ])
    notes = [f'- {label}: the first error was "{first}"'
             for key, label in labels.items()
             if (first := cpu.get(key, {}).get('ticker_summary', {}).get('first_error')
                 or cpu.get(key, {}).get('balance_summary', {}).get('first_error'))]
    return table(['Client', 'Ticker CPU ms', 'Ticker wall ms', 'Balance CPU ms (min–max)',
                  'Balance wall ms', 'Balance CPU ÷ floor', '÷ floor trust_env=False',
                  'errors'], rows) + ('\n\n' + '\n'.join(notes) if notes else '')


def import_table(imports: dict[str, Any]) -> str:
    base = imports.get('requests', {})
    rows = []
    for data in imports.values():
        ratio = data['wall_ms'] / base['wall_ms'] if base.get('wall_ms') else None
        rows.append([data['label'], f'{data["wall_ms"]:.1f}', fmt(ratio, 2),
                     f'{data["peak_mib"]:.2f}',
                     f'{data["peak_mib"] - base["peak_mib"]:+.2f}' if base else '—'])
    return table(['Import', 'wall ms (minus bare python)', '÷ import requests',
                  'peak MiB (above bare python)', 'MiB vs import requests'], rows)


def cli_table(cli: dict[str, Any]) -> str:
    return table(['Command', 'wall ms (median)', 'fastest ms'],
                 [[name, f'{d["wall_ms"]:.1f}', f'{d["min_ms"]:.1f}'] for name, d in cli.items()])


def threads_table(threads: dict[str, Any], labels: dict[str, str]) -> str:
    rows = []
    for key, label in labels.items():
        data = threads.get(key)
        if data is None:
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 4)
            continue
        ok = (data['calls'] - data['errors']) / data['elapsed']
        rows.append([label, f'{data["per_second"]:.0f}', f'{ok:.0f}', str(data['calls']),
                     str(data['errors']), str(data['invalid_nonce'])])
    return table(['Client (8 threads, one object)', 'calls/s', 'successful calls/s', 'calls',
                  'errors', 'EAPI:Invalid nonce'], rows)


def bursts_table(bursts: dict[str, Any], labels: dict[str, str]) -> str:
    rows = []
    for key, label in labels.items():
        data = bursts.get(key)
        if data is None:
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 5)
            continue
        wall = f'{data["wall_ms"]:.0f} ({data["wall_min"]:.0f}–{data["wall_max"]:.0f})'
        rows.append([label, wall,
                     f'{data["per_second"]:.0f}', f'{data["cpu_ms"]:.3f}', str(data['calls']),
                     str(data['errors']), data['first_error'][:80].replace('|', '/') or '—'])
    return table(['Client (asyncio, one object)', 'wall ms for all at once (min–max)',
                  'calls/s', 'client CPU ms per call', 'calls', 'errors', 'first error'],
                 rows)


def pacing_table(pacing: dict[str, Any], labels: dict[str, str], note: str) -> str:
    rows = []
    for key, label in labels.items():
        data = pacing.get(key)
        if data is None:
            continue
        if 'failed' in data or 'skipped' in data:
            reason = data.get('failed') or data['skipped']
            rows.append([label, reason.splitlines()[0][:80], '', '', '', '', ''])
            continue
        rows.append([label, f'{data["window"]:g}', str(data['completed']), str(data['max']),
                     f'{data["ratio"] * 100:.0f}%', str(data['rate_limit']),
                     str(data['errors'] - data['rate_limit'])])
    header = ['Client (Ledgers, ' + note + ' tier)', 'window s', 'completed',
              'theoretical max', '% of max', 'rate-limit errors', 'other errors']
    return table(header, rows)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Each target, what was measured, and whether it is met (None: not measured)."""
    out: list[tuple[str, str, bool | None]] = []
    cpu = results['cpu']

    def balance(key: str) -> float | None:
        value = cpu.get(key, {}).get('balance_summary', {}).get('cpu_ms')
        return float(value) if value is not None else None

    ours, floor = balance('krakenex'), balance('floor')
    if ours is not None and floor is not None:
        ratio = ours / floor
        out.append((f'Client CPU per Balance ≤ {TARGET_CPU_RATIO}× the default requests.Session '
                    'floor', f'{ours:.3f} ms = {ratio:.2f}× {floor:.3f} ms',
                    ratio <= TARGET_CPU_RATIO))
    peers = {results['labels'][k]: balance(k) for k in results['peer_keys']}
    measured = {label: v for label, v in peers.items() if v is not None}
    if ours is not None and measured:
        best_peer = min(measured.values())
        out.append(('Client CPU per Balance lower than every peer',
                    ', '.join(f'{label} {v:.3f} ms' for label, v in measured.items()),
                    ours < best_peer and len(measured) == len(peers)))
    else:
        out.append(('Client CPU per Balance lower than every peer', 'peers not measured', None))
    out.append(asyncio_lowest(results))
    imports = results['imports']
    if 'krakenex' in imports and 'requests' in imports:
        k, r = imports['krakenex'], imports['requests']
        ratio = k['wall_ms'] / r['wall_ms']
        out.append((f'import krakenex ≤ {TARGET_IMPORT_RATIO}× import requests (wall)',
                    f'{k["wall_ms"]:.1f} ms vs {r["wall_ms"]:.1f} ms = {ratio:.2f}×',
                    ratio <= TARGET_IMPORT_RATIO))
        extra = k['peak_mib'] - r['peak_mib']
        out.append((f'import krakenex ≤ {TARGET_IMPORT_MIB:g} MiB above import requests (peak)',
                    f'{extra:+.2f} MiB', extra <= TARGET_IMPORT_MIB))
    ours_threads = results['threads'].get('krakenex', {})
    if 'invalid_nonce' in ours_threads:
        out.append(('0 invalid nonces with 8 threads',
                    f'{ours_threads["invalid_nonce"]} in {ours_threads["calls"]} calls',
                    ours_threads['invalid_nonce'] == 0 and ours_threads['errors'] == 0))
    pacing = results['pacing'].get('krakenex', {})
    if 'ratio' in pacing:
        out.append((f'Pacing ≥ {TARGET_PACING:.0%} of the theoretical maximum, 0 rate-limit '
                    'errors', f'{pacing["completed"]} of {pacing["max"]} '
                    f'({pacing["ratio"]:.0%}), {pacing["rate_limit"]} rate-limit errors',
                    pacing['ratio'] >= TARGET_PACING and pacing['rate_limit'] == 0))
    else:
        out.append(('Pacing ≥ 95% of the theoretical maximum, 0 rate-limit errors',
                    pacing.get('skipped', 'not measured'), None))
    return out


def report(results: dict[str, Any]) -> str:
    labels: dict[str, str] = results['labels']
    meta = results['meta']
    parts = [
        '# krakenex benchmarks',
        '',
        f'Run `{meta["command"]}` on {meta["date"]}. '
        f'{meta["cpus"]} CPUs, Python {meta["python"]} ({meta["platform"]}), '
        f'{meta["environ"]} environment variables (the default floor reads them all on every '
        'call; see benchmarks/README.md).',
        '',
        'Versions: ' + '; '.join(f'{label}: {v}' for label, v in meta['versions'].items()) + '.',
        '',
        f'## Client CPU and wall time per call\n\nMedian over {meta["repeats"]} repeats of '
        f'{meta["calls"]} calls each, after a warm-up; CPU is user + system time of the '
        'client process only (the sandbox runs in its own process). The floors are a plain '
        '`requests.Session` that signs by hand. The asyncio clients await each call before '
        'the next, on one event loop.\n',
        cpu_table(results['cpu'], labels),
        '',
        '## Import and command line\n\nMedian of '
        f'{meta["import_runs"]} runs of `python -c "import X; X.Name"` (the name a user '
        'takes, such as `krakenex.API`) minus `python -c "pass"` in the same environment, '
        'runs interleaved; peak memory is `ru_maxrss` above the bare interpreter. The '
        'command line runs end to end, against `python -c "pass"`.\n',
        import_table(results['imports']),
        '',
        f'Of `import krakenex`, krakenex\'s own modules take {results["own_import_ms"]:.1f} ms '
        '(imported after `requests` in the same process, median of '
        f'{meta["import_runs"]}).',
        '',
        cli_table(results['cli']),
        '',
        f'## Threads\n\n{THREADS} threads share one client object and call Balance for '
        f'{meta["thread_seconds"]:g} s against a fresh sandbox key.\n',
        threads_table(results['threads'], labels),
        '',
        f'## asyncio: {meta["burst_calls"]} calls at once\n\n{meta["burst_calls"]} public '
        '`Ticker` calls started together with `asyncio.gather` on one client object, each '
        'client against a sandbox of its own; wall time from the start to the last reply, '
        f'median of {meta["burst_rounds"]} rounds after a round that opens the connections, '
        'clients taking turns. Every call of every round is checked: `errors` counts the calls '
        'that raised or returned an error. AsyncAPI runs with `retries=0` so that no '
        'failure is retried away; ccxt\'s rate limiter is off, as in the CPU runs.\n',
        bursts_table(results['bursts'], labels),
        '',
        '## Pacing\n\n' + results['pacing_note'] + '\n',
        pacing_table(results['pacing'], {**labels, **results['pacing_labels']},
                     meta['pacing_tier']),
        '',
        '## Targets\n',
        table(['Target', 'measured', 'met'],
              [[name, value, {True: 'yes', False: '**no**', None: 'not measured'}[met]]
               for name, value, met in targets(results)]),
    ]
    return '\n'.join(parts) + '\n'


def asyncio_table(cpu: dict[str, Any], labels: dict[str, str]) -> str:
    """The asyncio clients' CPU per call, each also as a multiple of AsyncAPI's."""
    ours = cpu.get('krakenex-async', {})
    rows = []
    for key, label in labels.items():
        data = cpu.get(key)
        if data is None or not key.endswith('-async'):
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 4)
            continue
        cells = [label]
        for call in ('ticker', 'balance'):
            mine, base = data[call + '_summary'], ours.get(call + '_summary', {}).get('cpu_ms')
            cells += [f'{mine["cpu_ms"]:.3f} ({mine["cpu_min"]:.3f}–{mine["cpu_max"]:.3f})',
                      fmt(mine['cpu_ms'] / base if base else None, 2)]
        rows.append(cells + [str(data['ticker_summary']['errors']
                                 + data['balance_summary']['errors'])])
    return table(['Client (asyncio)', 'Ticker CPU ms (min–max)', '÷ AsyncAPI',
                  'Balance CPU ms (min–max)', '÷ AsyncAPI', 'errors'], rows)


def asyncio_lowest(results: dict[str, Any]) -> tuple[str, str, bool | None]:
    """The target of the asyncio clients: AsyncAPI's CPU per call below every peer's."""
    cpu, labels = results['cpu'], results['labels']
    name = 'AsyncAPI CPU per Ticker and per Balance lower than every peer\'s asyncio client'
    ours = cpu.get('krakenex-async', {})
    peers = [key for key in cpu if key.endswith('-async') and key != 'krakenex-async']
    if 'ticker_summary' not in ours or not peers:
        return name, 'peers not measured', None
    met, seen = True, []
    for key in peers:
        data = cpu[key]
        if 'ticker_summary' not in data:
            return name, f'{labels[key]} failed', None
        for call in ('ticker', 'balance'):
            peer, mine = data[call + '_summary']['cpu_ms'], ours[call + '_summary']['cpu_ms']
            met = met and mine < peer
            seen.append(f'{call.title()} {mine:.3f} vs {peer:.3f} ms ({labels[key]})')
    return name, '; '.join(seen), met


def run_asyncio(args: argparse.Namespace, results: dict[str, Any], subjects: list[Subject],
                ours: Env, calls: int, repeats: int, burst_rounds: int, warmup: int,
                output: Path | None) -> int:
    """``--asyncio``: the asyncio clients alone, CPU per call and the calls at once."""
    results['cpu'] = measure_cpu(subjects, ours, calls, repeats, warmup)
    results['bursts'] = measure_bursts(subjects, ours, args.burst_calls, burst_rounds, warmup=2)
    labels = results['labels']
    name, measured, met = asyncio_lowest(results)
    versions = f'aiohttp {ours.versions.get("aiohttp", "?")} for AsyncAPI'
    text = '\n'.join([
        '# krakenex benchmarks: the asyncio clients',
        '',
        f'Run `python benchmarks/bench.py {" ".join(sys.argv[1:])}` on '
        f'{datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}, '
        f'{os.cpu_count()} CPUs, Python {platform.python_version()}. {versions}.',
        '',
        f'Median over {repeats} repeats of {calls} calls each, after a warm-up, the '
        'clients taking turns; CPU is user + system time of the client process only.',
        '',
        asyncio_table(results['cpu'], labels),
        '',
        f'{args.burst_calls} public `Ticker` calls at once, median of {burst_rounds} rounds:',
        '',
        bursts_table(results['bursts'], labels),
        '',
        table(['Target', 'measured', 'met'],
              [[name, measured, {True: 'yes', False: '**no**', None: 'not measured'}[met]]]),
    ]) + '\n'
    print(text)
    if output:
        output.write_text(text, encoding='utf-8')
        log(f'wrote {output}')
    failed = [part for part in ('cpu', 'bursts')
              if 'failed' in results[part].get('krakenex-async', {'failed': 'not run'})]
    return 1 if failed else 0


# ----------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='smoke run in under a minute: krakenex and the requests floors '
                             'only, in the current Python, no virtual environments')
    parser.add_argument('--no-peers', action='store_true', help='skip the peer clients')
    parser.add_argument('--asyncio', action='store_true',
                        help='the asyncio clients alone: CPU per call and the calls at once, '
                             'in a few minutes; writes no report unless given --output')
    parser.add_argument('--calls', type=int, help='calls per repeat (default 1000; quick 100)')
    parser.add_argument('--repeats', type=int, help='repeats per client (default 5; quick 3)')
    parser.add_argument('--thread-seconds', type=float, help='default 10; quick 2')
    parser.add_argument('--pacing-seconds', type=float,
                        help='pacing window (default 60; quick mode skips pacing)')
    parser.add_argument('--burst-calls', type=int, default=200,
                        help='asyncio calls started at once (default 200)')
    parser.add_argument('--burst-rounds', type=int,
                        help='timed rounds of them (default 5; quick 2)')
    parser.add_argument('--import-runs', type=int, help='default 20; quick 5')
    parser.add_argument('--output', type=Path,
                        help=f'where to write the report (default {RESULTS.relative_to(REPO)}; '
                             'quick mode writes none unless told)')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    # On SIGTERM, unwind through the finally blocks that stop the sandboxes and workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        return run(args)
    except BenchError as exc:
        log(f'cannot benchmark: {exc}')
        return 1


def run(args: argparse.Namespace) -> int:
    """Measure everything the arguments ask for, print the tables, write the report."""
    quick = args.quick
    calls = args.calls or (100 if quick else 1000)
    repeats = args.repeats or (3 if quick else 5)
    thread_seconds = args.thread_seconds or (2.0 if quick else 10.0)
    import_runs = args.import_runs or (5 if quick else 20)
    burst_rounds = args.burst_rounds or (2 if quick else 5)
    pacing_seconds = args.pacing_seconds or (None if quick else 60.0)
    warmup = 20 if quick else 100
    output = args.output or (None if quick or args.asyncio else RESULTS)

    ours = krakenex_env(quick)
    envs: dict[str, Env] = {}
    peer_failures: dict[str, str] = {}
    if not quick and not args.no_peers:
        for name, _label, requirement, dist, _module in PEERS:
            if args.asyncio and name == 'krakenex-2.2.2':
                continue  # it has no asyncio client
            try:
                envs[name] = peer_env(name, requirement, dist)
            except (BenchError, subprocess.SubprocessError, OSError) as exc:
                peer_failures[name] = str(exc)
                log(f'{name} unavailable: {exc}')

    labels = {'krakenex': f'krakenex {ours.versions.get("krakenex", "")} (this checkout)',
              'floor': 'requests.Session floor (default)',
              'floor-noenv': 'requests.Session floor (trust_env=False)'}
    subjects = [Subject('krakenex', labels['krakenex'], ours, 'krakenex'),
                Subject('floor', labels['floor'], ours, 'floor'),
                Subject('floor-noenv', labels['floor-noenv'], ours, 'floor-noenv')]
    peer_subjects = []
    for name, label, _requirement, dist, _module in PEERS:
        if name in envs:
            full = f'{label} {envs[name].versions.get(dist, "")}'.strip()
            if name == 'krakenex-2.2.2':
                full = label
            labels[name] = full
            peer_subjects.append(Subject(name, full, envs[name], name))
        elif name in peer_failures:
            labels[name] = label
    subjects += peer_subjects

    # The asyncio clients: AsyncAPI beside the peers' own asyncio clients.
    labels['krakenex-async'] = (f'krakenex {ours.versions.get("krakenex", "")} AsyncAPI '
                                '(this checkout)')
    async_subjects = [Subject('krakenex-async', labels['krakenex-async'], ours,
                              'krakenex-async')]
    for name, kind in (('python-kraken-sdk', 'SpotAsyncClient'),
                       ('ccxt', 'async_support.kraken')):
        if name in envs:
            key = f'{name}-async'
            labels[key] = f'{labels[name]} {kind}'
            async_subjects.append(Subject(key, labels[key], envs[name], key))

    results: dict[str, Any] = {'labels': labels, 'peer_keys': [s.key for s in peer_subjects]}
    if args.asyncio:
        return run_asyncio(args, results, async_subjects, ours, calls, repeats, burst_rounds,
                           warmup, output)

    # Pacing runs in the background while the rest is measured: it spends its
    # time waiting for Kraken's counter, and what it measures is wall-clock time.
    pacing_labels: dict[str, str] = {}
    running: list[tuple[Subject, Sandbox, Worker]] = []
    pacing_tier = 'starter'
    if pacing_seconds:
        paced: list[tuple[Subject, Any]] = [(subjects[0], 'starter')]
        if 'ccxt' in envs:
            pacing_labels['ccxt-paced'] = f'{labels["ccxt"]} (enableRateLimit)'
            paced.append((Subject('ccxt-paced', pacing_labels['ccxt-paced'], envs['ccxt'],
                                  'ccxt'), True))
        running = start_pacing(paced, ours, pacing_tier, pacing_seconds)
        results['pacing_note'] = (
            f'Ledgers in a loop for {pacing_seconds:g} s against a sandbox enforcing the '
            f'starter tier (maximum {STARTER_MAX:g}, decay {STARTER_DECAY}/s, Ledgers costs '
            f'{LEDGERS_COST:g}), krakenex with `tier=\'starter\'` and retries off so that '
            f'any rate-limit error shows. Theoretical maximum in a window of T seconds from '
            f'an empty counter: calls_max(T) = floor((15 + 0.33·T) / 2) = '
            f'{calls_max(pacing_seconds)} for T = {pacing_seconds:g} s '
            f'(a burst of 7, then 9.9 a minute).')
    try:
        results['cpu'] = measure_cpu(subjects + async_subjects, ours, calls, repeats, warmup)
        results['bursts'] = measure_bursts(async_subjects, ours, args.burst_calls, burst_rounds,
                                           warmup=2)
        results['threads'] = measure_threads(
            [s for s in subjects if not s.key.startswith('floor')], ours, thread_seconds)
        imports = [('krakenex', 'import krakenex', ours, 'krakenex.API'),
                   ('requests', 'import requests', ours, 'requests.Session')]
        for name, _label, _requirement, _dist, what in PEERS:
            if name in envs:
                module = what.rsplit('.', 1)[0]
                imports.append((name, f'import {module} ({labels[name]})', envs[name], what))
        results['imports'] = measure_imports(imports, import_runs)
        results['own_import_ms'] = own_import_ms(ours, import_runs)
        results['cli'] = measure_cli(ours, quick, max(3, import_runs // 2 if quick else 20))
        if running:
            log('pacing: waiting for the background runs')
        results['pacing'] = finish_pacing(running, pacing_seconds or 0)
    finally:
        for _s, sandbox, worker in running:
            worker.stop()
            sandbox.stop()
    if not pacing_seconds:
        results['pacing'] = {'krakenex': {'skipped': 'skipped in quick mode (a window under a '
                                                     'minute says little about pacing)'}}
        results['pacing_note'] = 'Not measured in this run.'

    versions = {'krakenex (this checkout)': ours.versions.get('krakenex', '?'),
                'requests': ours.versions.get('requests', '?'),
                'aiohttp (for AsyncAPI)': ours.versions.get('aiohttp', 'not installed')}
    for name, label, _requirement, dist, _module in PEERS:
        if name in envs:
            versions[label] = envs[name].versions.get(dist, '?')
        elif name in peer_failures:
            versions[label] = 'not installed: ' + peer_failures[name].splitlines()[0]
    results['meta'] = {
        'command': 'python benchmarks/bench.py' + (' ' + ' '.join(sys.argv[1:])
                                                   if sys.argv[1:] else ''),
        'date': datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
        'cpus': os.cpu_count(), 'python': platform.python_version(),
        'environ': len(ours.environ()),
        'platform': f'{platform.system()} {platform.machine()}', 'versions': versions,
        'calls': calls, 'repeats': repeats, 'thread_seconds': thread_seconds,
        'import_runs': import_runs, 'pacing_seconds': pacing_seconds,
        'burst_calls': args.burst_calls, 'burst_rounds': burst_rounds,
        'pacing_tier': pacing_tier,
    }
    results['pacing_labels'] = pacing_labels
    text = report(results)
    print(text)
    if output:
        output.write_text(text, encoding='utf-8')
        log(f'wrote {output}')
    failed = [key for part in ('cpu', 'threads', 'bursts')
              for key in ('krakenex', 'floor', 'floor-noenv', 'krakenex-async')
              if 'failed' in results[part].get(key, {})]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
