"""The code passes ruff and mypy, and the documentation builds without a warning.

Each check runs the tool exactly as a developer would, from the repository root,
with the settings in pyproject.toml and doc/conf.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each tool may run up to 600 s (:func:`run`), longer than the suite's default timeout.
pytestmark = pytest.mark.timeout(900)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <args>`` from the repository root and capture what it prints."""
    return subprocess.run([sys.executable, '-m', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def report(result: subprocess.CompletedProcess[str]) -> str:
    command = ' '.join(result.args[2:])
    return f'{command} exited {result.returncode}:\n{result.stdout}{result.stderr}'


def test_ruff_finds_nothing_to_fix() -> None:
    folders = [name for name in ('krakenex', 'tests', 'benchmarks') if (ROOT / name).is_dir()]
    result = run('ruff', 'check', *folders)
    assert result.returncode == 0, report(result)


def test_mypy_passes_with_the_strict_settings_for_krakenex() -> None:
    result = run('mypy', 'krakenex')
    assert result.returncode == 0, report(result)


def test_docs_build_without_a_single_warning(tmp_path: Path) -> None:
    result = run('sphinx', '-W', '-q', '-b', 'html', 'doc', str(tmp_path))
    assert result.returncode == 0, report(result)


def test_every_install_advice_names_an_extra_a_checkout_has_never_the_package_index() -> None:
    """Asking the package index for krakenex with an extra installs 2.2.2, which has none."""
    import configparser
    import re

    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg')
    extras = set(config['options.extras_require'])
    pages = [ROOT / 'README.rst', *(ROOT / 'doc').glob('*.rst'), *(ROOT / 'examples').rglob('*.py'),
             *(ROOT / 'examples').rglob('*.ipynb'), *(ROOT / 'krakenex').rglob('*.py')]
    from_index, unknown = [], []
    for page in pages:
        text = page.read_text(encoding='utf-8')
        relative = page.relative_to(ROOT)
        from_index += [f'{relative}: {m.group(0)}' for m in re.finditer(
            r"pip install\s+['\"]?krakenex\[[^\]]*\]", text)]
        unknown += [f'{relative}: {name}' for m in re.finditer(r"'\.\[([a-z,]+)\]'", text)
                    for name in m.group(1).split(',') if name not in extras]
    assert from_index == [] and unknown == []


def test_a_ctrl_c_test_passes_when_the_suite_runs_as_a_background_job() -> None:
    """A shell starts ``pytest &`` with SIGINT ignored; the commands the tests interrupt are not."""
    test = ('tests/test_cli.py::'
            'test_addorder_interrupted_while_in_flight_exits_4_and_names_its_userref')
    result = subprocess.run(
        ['sh', '-c', f'"$0" -m pytest -q -p no:cacheprovider {test} & wait $!', sys.executable],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert '1 passed' in result.stdout
