"""The book benchmark's derivatives case keeps working (its figures are results, not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_derivatives_book_benchmark_verifies_every_message_of_each_feed():
    run = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'ws_book.py'),
                          '--derivatives', '--quick'], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(('| recorded',
                                                                         '| sandbox'))]
    assert len(rows) == 5 and 'krakenex verified every message' in run.stdout
