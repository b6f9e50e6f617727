"""The WebSocket benchmark scripts keep working (their figures are results, not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_book_benchmark_quick_mode_verifies_every_message_and_prints_its_table():
    run = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'ws_book.py'), '--quick'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith('| 10') or
            line.startswith('| 1000')]
    assert len(rows) == 2 and 'krakenex verified every message' in run.stdout


@pytest.mark.slow
def test_stream_benchmark_runs_all_three_clients(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'ws_stream.py'),
                          '--messages', '300', '--repeats', '1',
                          '--output', str(tmp_path / 'results.md')],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count('| ') >= 3 and 'AsyncWS' in run.stdout and '| WS' in run.stdout
    assert (tmp_path / 'results.md').read_text().strip() == run.stdout.strip()
