"""Shared fixtures: sandboxes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from krakenex.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh sandbox (default seed, default funded account) for one test."""
    with Sandbox() as running:
        yield running


@pytest.fixture(scope='session')
def market_sandbox() -> Iterator[Sandbox]:
    """One sandbox shared by tests that only read public market data."""
    with Sandbox(seed=1) as running:
        yield running
