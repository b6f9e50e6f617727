"""krakenex: a Kraken exchange client you can read in ten minutes and trust with money.

>>> from krakenex import API
>>> api = API()
>>> api.query_public('Time')                      # doctest: +SKIP
{'error': [], 'result': {'unixtime': ..., 'rfc1123': ...}}
"""

from .api import API, DEFAULT_TIMEOUT, DEFAULT_URI
from .errors import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidNonceError,
    InvalidOrderError,
    KrakenAPIError,
    KrakenConnectionError,
    KrakenConnectTimeout,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    OutcomeUnknownResponseError,
    OutcomeUnknownTimeout,
    RateLimitError,
    ServiceUnavailableError,
    UnknownAssetError,
    unwrap,
)
from .version import __url__, __version__

__all__ = [
    'API', 'DEFAULT_TIMEOUT', 'DEFAULT_URI', 'unwrap', '__version__', '__url__',
    'KrakenError', 'KrakenUsageError', 'KrakenHTTPError', 'KrakenResponseError',
    'KrakenConnectionError', 'NotSentError', 'KrakenTimeout', 'KrakenConnectTimeout',
    'KrakenAPIError', 'InvalidNonceError', 'AuthenticationError', 'RateLimitError',
    'InsufficientFundsError', 'InvalidOrderError', 'UnknownAssetError', 'ServiceUnavailableError',
    'OutcomeUnknownError', 'OutcomeUnknownHTTPError', 'OutcomeUnknownResponseError',
    'OutcomeUnknownConnectionError', 'OutcomeUnknownTimeout',
]
