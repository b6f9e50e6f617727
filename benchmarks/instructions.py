#!/usr/bin/env python3
"""The asyncio clients' instructions per call, counted by valgrind: the same on a busy machine.

CPU time on a shared machine moves by 10-20% between runs with the load and
with where the processes happen to run (benchmarks/README.md). Instructions
do not: valgrind's callgrind counts every instruction the client's process
executes in user space, whatever else the machine is doing. So this script
runs each asyncio client of ``bench.py --asyncio`` under callgrind against
a sandbox in a process of its own, once with ``LOW`` calls and once with
``HIGH`` (each after the same warm-up), and reports the difference divided by
``HIGH - LOW``: the instructions of one call, with start-up and warm-up taken
out. It also counts the system calls of one call with strace, when strace
is installed, since the kernel's work is not in the instruction count.

    python benchmarks/instructions.py            # prints a table, writes nothing
    python benchmarks/instructions.py --output benchmarks/INSTRUCTIONS.md
    python benchmarks/instructions.py --quick    # AsyncAPI alone, this Python, few calls

It uses bench.py's virtual environments (``.bench-venvs/``), making them
if needed, and needs valgrind (Debian: ``apt-get install valgrind``). The
quick mode measures AsyncAPI alone, in the Python running the script, with
fewer calls: the test suite runs it, so that the script cannot rot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench

#: Run in the client's environment: build the client as bench.py does, make the calls, exit.
CLIENT = '''
import asyncio, json, sys
sys.path.insert(0, {bench_dir!r})
import bench
spec, call, warmup, calls = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

async def main():
    bench.leave_the_allocator_as_tls_would()
    client = await bench.make_async_client(spec)
    if client.setup is not None:
        await client.setup()
    fn = getattr(client, call)
    for n in (warmup, calls):
        for _ in range(n):
            error = await bench.async_outcome(fn)
            if error:
                raise SystemExit(f'{{spec["client"]}} {{call}}: {{error}}')
    await client.close()

asyncio.run(main())
'''

#: Calls in the two runs, and the warm-up before each; the quick mode's.
LOW, HIGH, WARMUP = 100, 400, 50
QUICK = (10, 30, 10)


def count(env: bench.Env, spec: dict[str, Any], call: str, calls: int, warmup: int,
          tool: list[str], out: Path) -> None:
    """Run the client under ``tool`` (valgrind or strace), writing its report to ``out``."""
    script = CLIENT.format(bench_dir=str(bench.BENCH.parent))
    done = subprocess.run([*tool, env.python, '-c', script, json.dumps(spec), call,
                           str(warmup), str(calls)], capture_output=True, text=True,
                          env=env.environ(), cwd=tempfile.gettempdir(), timeout=1800)
    if done.returncode:
        raise bench.BenchError(f'{spec["client"]} {call} under {tool[0]} failed:\n'
                               f'{done.stderr[-3000:]}')


def instructions(env: bench.Env, spec: dict[str, Any], call: str, work: Path,
                 runs: tuple[int, int, int]) -> float:
    """Instructions per call: the difference of a ``low``-call and a ``high``-call run."""
    low, high, warmup = runs
    totals = []
    for calls in (low, high):
        out = work / f'{spec["client"]}.{call}.{calls}.callgrind'
        count(env, spec, call, calls, warmup,
              ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}'], out)
        match = re.search(r'^(?:summary|totals):\s+(\d+)', out.read_text(), re.M)
        if not match:
            raise bench.BenchError(f'no total in {out}')
        totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / (high - low)


def system_calls(env: bench.Env, spec: dict[str, Any], call: str, work: Path,
                 runs: tuple[int, int, int]) -> dict[str, float]:
    """System calls per call, by name: the difference of a ``low``-call and a ``high``-call run."""
    low, high, warmup = runs
    counted = []
    for calls in (low, high):
        out = work / f'{spec["client"]}.{call}.{calls}.strace'
        count(env, spec, call, calls, warmup, ['strace', '-f', '-c', '-o', str(out)], out)
        counted.append({m.group(2): int(m.group(1)) for m in re.finditer(
            r'^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$', out.read_text(), re.M)})
    names = (set(counted[0]) | set(counted[1])) - {'total'}
    per_call = {n: (counted[1].get(n, 0) - counted[0].get(n, 0)) / (high - low) for n in names}
    return {n: v for n, v in sorted(per_call.items(), key=lambda kv: -kv[1]) if v >= 0.5}


def report(rows: list[dict[str, Any]], versions: str, runs: tuple[int, int, int]) -> str:
    low, high, warmup = runs
    lines = [
        '# krakenex benchmarks: the asyncio clients\' instructions per call',
        '',
        f'Run `python benchmarks/instructions.py` on '
        f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, '
        f'{platform.machine()}, Python {platform.python_version()}; {versions}.',
        '',
        f'Instructions in user space of the client\'s process per call, counted by valgrind\'s '
        f'callgrind: a run of {warmup} + {high} calls less a run of {warmup} + {low}, divided '
        f'by {high - low}. The count does not move with the machine\'s load. System calls per '
        f'call are counted the same way with strace (the kernel\'s work is not among the '
        f'instructions); only those made at least once every two calls are listed. Each '
        f'client\'s process first frees a 1 MiB block, as bench.py\'s workers do '
        f'(`leave_the_allocator_as_tls_would`).',
        '',
        '| Client (asyncio) | Ticker instructions | ÷ AsyncAPI | Balance instructions '
        '| ÷ AsyncAPI | system calls per Ticker | system calls per Balance |',
        '|---|---|---|---|---|---|---|',
    ]
    base = rows[0]
    for row in rows:
        cells = [row['label']]
        for call in ('ticker', 'balance'):
            cells += [f'{row[call]:,.0f}', f'{row[call] / base[call]:.2f}']
        for call in ('ticker', 'balance'):
            calls = row.get(f'{call}_syscalls')
            cells.append('—' if calls is None else
                         f'{sum(calls.values()):.1f}: ' +
                         ', '.join(f'{n} {v:.1f}' for n, v in calls.items()))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--output', help='where to write the report (default: print only)')
    parser.add_argument('--quick', action='store_true',
                        help=f'AsyncAPI alone, in this Python, {QUICK[0]} and {QUICK[1]} calls')
    args = parser.parse_args(argv)
    runs = QUICK if args.quick else (LOW, HIGH, WARMUP)
    if shutil.which('valgrind') is None:
        print('instructions.py needs valgrind (Debian: apt-get install valgrind)',
              file=sys.stderr)
        return 2
    ours = bench.krakenex_env(quick=args.quick)
    subjects = [('krakenex-async', 'krakenex AsyncAPI (this checkout)', ours)]
    versions = [f'krakenex {ours.versions.get("krakenex", "")}',
                f'aiohttp {ours.versions.get("aiohttp", "")}']
    for name, _label, requirement, dist, _module in () if args.quick else bench.PEERS:
        kind = {'python-kraken-sdk': 'SpotAsyncClient', 'ccxt': 'async_support.kraken'}.get(name)
        if kind is None:
            continue  # krakenex 2.2.2 has no asyncio client
        env = bench.peer_env(name, requirement, dist)
        subjects.append((f'{name}-async', f'{name} {env.versions.get(dist, "")} {kind}', env))
        versions.append(f'{name} {env.versions.get(dist, "")}')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for client, label, env in subjects:
            # A sandbox for each client, as in bench.py: a key's nonces are its own.
            sandbox = bench.Sandbox(ours)
            try:
                spec = {'client': client, 'url': sandbox.url, 'key': sandbox.key,
                        'secret': sandbox.secret}
                row: dict[str, Any] = {'label': label}
                for call in ('ticker', 'balance'):
                    bench.log(f'{client} {call} under callgrind')
                    row[call] = instructions(env, spec, call, work, runs)
                    if shutil.which('strace'):
                        row[f'{call}_syscalls'] = system_calls(env, spec, call, work, runs)
                rows.append(row)
            finally:
                sandbox.stop()
    text = report(rows, ', '.join(versions), runs)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
        bench.log(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
