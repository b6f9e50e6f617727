"""The Unified WebSocket's trading methods, carried out by the futures sandbox."""

from collections.abc import Callable
from typing import Any

METHODS: dict[str, Callable[[Any, str, dict[str, Any]], Any]] = {}
