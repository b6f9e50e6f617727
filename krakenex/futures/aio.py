"""The Kraken Futures REST client for asyncio: :class:`AsyncFuturesAPI` (extra ``async``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on the environment
    from .._extras import needs

    raise ImportError(needs('AsyncFuturesAPI', 'async')) from None

from ..aio import AsyncAPI
from ..core import server
from ..errors import OutcomeUnknownError
from ..protocol import DEFAULT_TIMEOUT, Timeout, check_timeout
from .core import FuturesCore
from .endpoints import DEFAULT_URI, Endpoint

__all__ = ['AsyncFuturesAPI']


class AsyncFuturesAPI(FuturesCore):
    """:class:`~krakenex.futures.FuturesAPI` for asyncio: the same calls, awaited.

    Private calls on one key are sent one at a time, each with a ``Nonce``
    above the one before, so nonces reach Kraken in order however many tasks,
    processes and re-runs use the key (``share``). Use it as
    ``async with AsyncFuturesAPI(...) as futures`` or call :meth:`aclose`.
    The parameters are those of :class:`~krakenex.futures.FuturesAPI`. It sends through a
    :class:`krakenex.AsyncAPI`, whose :attr:`session` it shares: assign an
    :class:`aiohttp.ClientSession` of your own before the first call to set
    headers, a proxy or TLS settings.
    """

    def __init__(self, key: str = '', secret: str = '', *, uri: str | None = None,
                 timeout: Timeout = DEFAULT_TIMEOUT, nonce_unit: str = 'ms',
                 raise_errors: bool = False, retries: int = 3, backoff: float = 0.5,
                 retry_time: float = 30.0, pace: bool = False,
                 costs: Mapping[str, float] | None = None, share: Any = ...) -> None:
        super().__init__(key, secret, uri=uri, timeout=timeout, nonce_unit=nonce_unit,
                         raise_errors=raise_errors, retries=retries, backoff=backoff,
                         retry_time=retry_time, pace=pace, costs=costs, share=share)
        # The spot driver sends: session, lock, retries and transport failures are its.
        self._driver: AsyncAPI = AsyncAPI(uri=server(uri, self.URL_VARIABLE, DEFAULT_URI),
                                           timeout=self.timeout, share=None)

    @property
    def uri(self) -> str:
        """The server's address, without a trailing slash."""
        return self._driver.uri

    @uri.setter
    def uri(self, value: str) -> None:
        self._driver.uri = value

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The :class:`aiohttp.ClientSession` calls go through; opened on the first call."""
        return self._driver.session

    @session.setter
    def session(self, value: aiohttp.ClientSession | None) -> None:
        self._driver.session = value

    @property
    def response(self) -> aiohttp.ClientResponse | None:
        """The last response, overwritten by every call."""
        return self._driver.response

    async def __aenter__(self) -> AsyncFuturesAPI:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._driver.aclose()
        self._close_store()

    async def query_public(self, endpoint: str, data: Mapping[str, Any] | None = None, *,
                           verb: str | None = None, timeout: Timeout | None = None) -> Any:
        """Call a public endpoint; see :meth:`krakenex.futures.FuturesAPI.query_public`."""
        found, chosen = self._endpoint(endpoint, 'derivatives', verb, private=False)
        return await self._call(found, chosen, dict(data or {}), timeout, private=False)

    async def query_private(self, endpoint: str, data: Mapping[str, Any] | None = None, *,
                            verb: str | None = None, timeout: Timeout | None = None) -> Any:
        """Call a private endpoint; see :meth:`krakenex.futures.FuturesAPI.query_private`."""
        found, chosen = self._endpoint(endpoint, 'derivatives', verb)
        self._check_private(found.name)
        return await self._call(found, chosen, dict(data or {}), timeout, private=True)

    async def query_history(self, endpoint: str, data: Mapping[str, Any] | None = None, *,
                            timeout: Timeout | None = None) -> Any:
        """Call a history endpoint; see :meth:`krakenex.futures.FuturesAPI.query_history`."""
        found, chosen = self._endpoint(endpoint, 'history', None)
        self._check_private(found.name)
        return await self._call(found, chosen, dict(data or {}), timeout, private=True)

    async def query_charts(self, path: str, data: Mapping[str, Any] | None = None, *,
                           timeout: Timeout | None = None) -> Any:
        """Read candles; see :meth:`krakenex.futures.FuturesAPI.query_charts`."""
        found, chosen = self._endpoint(path, 'charts', None)
        return await self._call(found, chosen, dict(data or {}), timeout, private=False)

    async def reconcile(self, error: OutcomeUnknownError) -> dict[str, Any]:
        """Look up the orders of an unknown outcome; see :meth:`FuturesAPI.reconcile`."""
        ids = self._lookup(error)
        statuses = await self.query_private('orders/status', {'cliOrdIds': ids})
        history = await self.query_history('orders', {'count': self.RECONCILE_EVENTS})
        return self._matches(ids, statuses, history)

    async def _call(self, endpoint: Endpoint, verb: str, data: dict[str, Any],
                    timeout: Timeout | None, *, private: bool) -> Any:
        """Run one call on the spot driver: retries, lock, pacing and unknown outcomes are its."""
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        return await self._driver._run(
            self._futures_call(endpoint, verb, data, private=private), timeout)
