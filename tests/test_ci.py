"""CI (``.ci/run``) runs the README's own test command, word for word.

A newcomer who copies the README's command runs what CI runs, so a suite that
passes in CI passes for them too, in the same number of processes.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
    """The command in the README's literal block after 'Run the whole test suite'."""
    text = (ROOT / 'README.rst').read_text(encoding='utf-8')
    after = text[text.index('Run the whole test suite'):].splitlines()[1:]
    return next(line.strip() for line in after if line.startswith('    '))


def test_ci_runs_the_readme_s_test_command_word_for_word() -> None:
    script = (ROOT / '.ci' / 'run').read_text(encoding='utf-8')
    commands = [line for line in script.splitlines() if line and not line.startswith('#')]
    assert commands[-1] == readme_test_command()


def test_the_readme_s_virtual_environment_variant_runs_the_same_test_command() -> None:
    text = (ROOT / 'README.rst').read_text(encoding='utf-8')
    assert f'    . .venv/bin/activate && {readme_test_command()}\n' in text


def test_the_test_command_runs_the_suite_in_two_processes() -> None:
    """Most of the suite's time is waiting (paced calls, timers, processes): two
    pytest-xdist workers finish it in about half the time, even on two cores."""
    assert readme_test_command().endswith('&& pytest -n 2')
