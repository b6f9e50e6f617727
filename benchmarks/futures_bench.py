#!/usr/bin/env python3
"""Client CPU per Kraken Futures private call: krakenex's FuturesAPI beside python-kraken-sdk.

    python benchmarks/futures_bench.py [--calls N] [--peer-python PATH]

The sandbox runs in a process of its own (its budget switched off), so only
the client's work is counted: user + system CPU of the client process over N
``openorders`` calls after a warm-up, and wall time per call. The
python-kraken-sdk run needs a Python with python-kraken-sdk installed (the
peer virtualenv of tests/test_peers.py, ``.peer-venv/bin/python``); it is
skipped without one. Standard library only, so it runs in either environment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SERVER = """
import json, sys
from krakenex.sandbox import Sandbox
with Sandbox() as sandbox:
    sandbox.futures.budget = None
    other = sandbox.futures.add_account()  # python-kraken-sdk's nonces are in other units
    print(json.dumps({'krakenex': [sandbox.futures_url, sandbox.futures.key,
                                   sandbox.futures.secret],
                      'python-kraken-sdk': [sandbox.futures_url, other.key, other.secret]}),
          flush=True)
    sys.stdin.read()
"""

WORKER = """
import json, resource, sys, time
url, key, secret, client, calls = sys.argv[1:6]
calls = int(calls)
if client == 'krakenex':
    from krakenex.futures import FuturesAPI
    api = FuturesAPI(key, secret, uri=url)
    call = lambda: api.query_private('openorders')
else:
    from kraken.futures import User
    user = User(key, secret, url=url)
    call = user.get_open_orders
for _ in range(20):
    call()
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu, wall = usage.ru_utime + usage.ru_stime, time.perf_counter()
for _ in range(calls):
    assert call()['result'] == 'success'
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({'cpu': (usage.ru_utime + usage.ru_stime - cpu) / calls,
                  'wall': (time.perf_counter() - wall) / calls}))
"""


def measure(python: str, server: list[str], client: str, calls: int,
            isolated: bool) -> dict[str, float]:
    flags = ['-I'] if isolated else []
    run = subprocess.run([python, *flags, '-c', WORKER, *server, client, str(calls)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    if run.returncode != 0:
        raise SystemExit(f'{client} failed:\n{run.stderr[-2000:]}')
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=500)
    parser.add_argument('--peer-python', default=str(REPO / '.peer-venv' / 'bin' / 'python'))
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    sandbox = subprocess.Popen([sys.executable, '-c', SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert sandbox.stdout is not None
        server = json.loads(sandbox.stdout.readline())
        clients = [('krakenex', sys.executable, False)]
        if Path(args.peer_python).exists():
            clients.append(('python-kraken-sdk', args.peer_python, True))
        else:
            print(f'no {args.peer_python}: python-kraken-sdk skipped', file=sys.stderr)
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in clients}
        for _ in range(args.rounds):  # interleaved, so both see the same machine
            for name, python, isolated in clients:
                results[name].append(measure(python, server[name], name, args.calls, isolated))
    finally:
        sandbox.communicate('', timeout=30)
    print(f'{"client":<20} {"CPU µs/call":>12} {"wall µs/call":>13}  '
          f'(best of {args.rounds}, {args.calls} openorders calls)')
    for name, rows in results.items():
        cpu = min(r['cpu'] for r in rows) * 1e6
        wall = min(r['wall'] for r in rows) * 1e6
        print(f'{name:<20} {cpu:>12.0f} {wall:>13.0f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
