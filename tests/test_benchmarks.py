"""The benchmark script keeps working: its quick mode runs and prints every row of its table.

The figures themselves are not checked here (speed targets are benchmark results,
not timed tests); only that ``python benchmarks/bench.py --quick`` still measures
everything it reports (the AsyncAPI rows and the 200 calls at once among them), in well
under a minute. ``benchmarks/share_bench.py --quick`` (what sharing a key's store costs and
earns) is checked the same way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import krakenex

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / 'benchmarks' / 'bench.py'
SHARE_BENCH = ROOT / 'benchmarks' / 'share_bench.py'

OURS = f'krakenex {krakenex.__version__} (this checkout)'
ASYNC = f'krakenex {krakenex.__version__} AsyncAPI (this checkout)'
FLOORS = ['requests.Session floor (default)', 'requests.Session floor (trust_env=False)']

#: Every row the quick run prints, by its first cell.
ROWS = [
    OURS, *FLOORS, ASYNC,
    'import krakenex', 'import requests',
    'python -c pass', 'krakenex --help', 'krakenex --sandbox Time',
    'Client CPU per Balance ≤ 0.65× the default requests.Session floor',
    'Client CPU per Balance lower than every peer',
    'import krakenex ≤ 1.1× import requests (wall)',
    'import krakenex ≤ 2 MiB above import requests (peak)',
    '0 invalid nonces with 8 threads',
    'Pacing ≥ 95% of the theoretical maximum, 0 rate-limit errors',
]


def run_quick(output: Path, script: Path = BENCH) -> subprocess.CompletedProcess[str]:
    """Run the quick benchmark in its own process group, so that a hang leaves nothing behind."""
    proc = subprocess.Popen([sys.executable, str(script), '--quick', '--output', str(output)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        message = f'{script.name} --quick did not finish in 150 s:\n{stderr[-3000:]}'
        raise AssertionError(message) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def tables(text: str) -> dict[str, dict[str, list[str]]]:
    """The markdown tables in ``text``: by the header's second cell, the rows by their first."""
    found: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith('|'):
            current = {}
            continue
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if not current and cells[1] not in found:
            current = found[cells[1]] = {'header': cells}
        elif not line.startswith('|---'):
            current[cells[0]] = cells
    return found


def number(cell: str) -> float:
    return float(cell.split()[0])


@pytest.mark.slow
def test_quick_benchmark_prints_every_row_with_figures(tmp_path: Path) -> None:
    output = tmp_path / 'RESULTS.md'
    done = run_quick(output)
    assert done.returncode == 0, done.stderr[-3000:]
    found = tables(done.stdout)
    rows = {name for table in found.values() for name in table}
    missing = [name for name in ROWS if name not in rows]
    assert not missing, f'rows missing from the tables: {missing}\n{done.stdout}'
    assert 'failed' not in done.stdout, done.stdout

    cpu = found['Ticker CPU ms']
    for client in (OURS, *FLOORS, ASYNC):
        ticker_cpu, ticker_wall, balance_cpu, balance_wall = map(number, cpu[client][1:5])
        assert min(ticker_cpu, ticker_wall, balance_cpu, balance_wall) > 0, cpu[client]
        assert cpu[client][-1] == '0', f'{client} had errors: {cpu[client]}'
    imports = found['wall ms (minus bare python)']
    assert number(imports['import krakenex'][1]) > 0, imports
    assert number(found['wall ms (median)']['krakenex --sandbox Time'][1]) > 0
    threads = found['calls/s'][OURS]
    assert number(threads[1]) > 0 and threads[-1] == '0', threads
    bursts = found['wall ms for all at once (min–max)'][ASYNC]
    assert number(bursts[1]) > 0, bursts
    assert bursts[4] == '600' and bursts[5] == '0', f'a call at once went wrong: {bursts}'

    assert output.read_text(encoding='utf-8').strip() == done.stdout.strip()


#: share_bench.py's stores, by the first cell of their rows.
LOCAL, FILE, REDIS = ('share=None (this object alone)', 'default (file store)',
                      "share='redis://127.0.0.1:PORT/0'")


@pytest.mark.slow
def test_quick_share_benchmark_measures_every_store(tmp_path: Path) -> None:
    output = tmp_path / 'SHARE.md'
    done = run_quick(output, SHARE_BENCH)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'failed' not in done.stdout, done.stdout
    found = tables(done.stdout)
    # Redis is measured wherever redis-py and a redis-server are found (the dev extras bring both).
    stores = [LOCAL, FILE] + ([] if 'redis-server: not measured' in done.stdout else [REDIS])

    cpu = found['CPU ms per call (min–max)']
    for client in [f'krakenex, {store}' for store in stores] + FLOORS:
        assert client in cpu, f'{client} missing:\n{done.stdout}'
        assert min(map(number, cpu[client][1:5])) >= 0 and number(cpu[client][1]) > 0, \
            cpu[client]
        assert cpu[client][-1] == '0', f'{client} had errors: {cpu[client]}'

    processes = found['1 process: calls/s']
    for store in stores:
        row = processes[store]
        assert number(row[1]) > 0 and number(row[2]) > 0, row
    for store in stores[1:]:  # a shared store keeps the 4 processes' nonces in order
        assert processes[store][-2:] == ['0', '0'], processes[store]

    waits = found['calls of the first process']
    for store in stores[1:]:  # the second process waits for the counter instead of a refusal
        row = waits[store]
        required, first = number(row[4]), number(row[5])
        assert first >= required - 0.05, row
        assert row[6] == '0 of 1' and row[7].startswith('0 of'), row
    local = waits[LOCAL]
    if number(local[4]) > 0.1:  # the counter was still full: the sandbox refuses the call
        assert local[6] == '1 of 1' and 'Rate limit' in local[-1], local

    assert output.read_text(encoding='utf-8').strip() == done.stdout.strip()


INSTRUCTIONS = ROOT / 'benchmarks' / 'instructions.py'


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('valgrind') is None, reason='needs valgrind')
def test_the_instruction_count_of_a_call_is_measured(tmp_path: Path) -> None:
    result = run_quick(tmp_path / 'instructions.md', INSTRUCTIONS)
    assert result.returncode == 0, result.stderr[-3000:]
    table = tables((tmp_path / 'instructions.md').read_text())['Ticker instructions']
    row = table['krakenex AsyncAPI (this checkout)']
    # A call is hundreds of thousands of instructions: a count near zero, or the whole
    # process's, would mean the two runs were not told apart.
    for cell in (row[1], row[3]):
        assert 100_000 < float(cell.replace(',', '')) < 5_000_000, row
    assert row[2] == row[4] == '1.00'
    if shutil.which('strace'):  # a call sends and receives at least once
        assert 'sendto' in row[5] and 'recvfrom' in row[5], row
