"""krakenex: a Kraken exchange client you can read in ten minutes and trust with money.

>>> from krakenex import API
>>> api = API()
>>> api.query_public('Time')                      # doctest: +SKIP
{'error': [], 'result': {'unixtime': ..., 'rfc1123': ...}}

The names below are imported on first use (PEP 562), so that ``krakenex
--help`` and :mod:`krakenex.methods` start without loading requests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .aio import AsyncAPI
    from .api import API, DEFAULT_TIMEOUT, DEFAULT_URI
    from .errors import (
        AuthenticationError,
        InsufficientFundsError,
        InvalidArgumentsError,
        InvalidNonceError,
        InvalidOrderArgumentsError,
        InvalidOrderError,
        KeyFileError,
        KrakenAPIError,
        KrakenConnectionError,
        KrakenConnectTimeout,
        KrakenError,
        KrakenHTTPError,
        KrakenResponseError,
        KrakenTimeout,
        KrakenUsageError,
        NotSentError,
        OrderNotFoundError,
        OrdersLimitError,
        OutcomeUnknownAPIError,
        OutcomeUnknownConnectionError,
        OutcomeUnknownError,
        OutcomeUnknownHTTPError,
        OutcomeUnknownResponseError,
        OutcomeUnknownTimeout,
        RateLimitError,
        ServiceUnavailableError,
        ShareUnavailableError,
        UnknownAssetError,
        unwrap,
    )

__all__ = [
    'API', 'AsyncAPI', 'DEFAULT_TIMEOUT', 'DEFAULT_URI', '__version__', 'unwrap',
    'AuthenticationError', 'InsufficientFundsError', 'InvalidNonceError', 'InvalidOrderError',
    'KeyFileError', 'KrakenAPIError', 'KrakenConnectTimeout', 'KrakenConnectionError',
    'KrakenError',
    'KrakenHTTPError', 'KrakenResponseError', 'KrakenTimeout', 'KrakenUsageError', 'NotSentError',
    'OutcomeUnknownAPIError', 'OutcomeUnknownConnectionError', 'OutcomeUnknownError',
    'OutcomeUnknownHTTPError',
    'OutcomeUnknownResponseError', 'OutcomeUnknownTimeout', 'RateLimitError',
    'ServiceUnavailableError', 'ShareUnavailableError', 'UnknownAssetError',
    'InvalidArgumentsError', 'InvalidOrderArgumentsError', 'OrderNotFoundError',
    'OrdersLimitError',
]

#: The module of each lazy name that is not in :mod:`krakenex.errors`.
_MODULES = {'API': 'api', 'DEFAULT_TIMEOUT': 'api', 'DEFAULT_URI': 'api', 'AsyncAPI': 'aio'}


def __getattr__(name: str) -> Any:
    """Import an exported name from its module the first time it is asked for."""
    if name not in __all__:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module = _MODULES.get(name, 'errors')
    value = getattr(importlib.import_module(f'{__name__}.{module}'), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
