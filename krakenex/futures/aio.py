"""The Kraken Futures REST client for asyncio: :class:`AsyncFuturesAPI` (extra ``async``).

Kraken decommissions this REST API on 1 March 2027 (:mod:`krakenex.futures.sunset`).
"""

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
from ..errors import KrakenError, OutcomeUnknownError
from ..protocol import Timeout
from . import sunset
from .core import FuturesCore
from .endpoints import Endpoint

__all__ = ['AsyncFuturesAPI']


class AsyncFuturesAPI(FuturesCore):
    """:class:`~krakenex.futures.FuturesAPI` for asyncio: the same calls, awaited.

    Kraken decommissions the REST API it speaks on 1 March 2027, as
    :class:`~krakenex.futures.FuturesAPI` says (the warning, and the errors
    after that date, are the same); its replacement for asyncio is
    ``krakenex.ws.AsyncWS(api, unified=True, asset_class='derivatives')``.

    Private calls on one key are sent one at a time, each with a ``Nonce``
    above the one before, so nonces reach Kraken in order however many tasks,
    processes and re-runs use the key (``share``). Use it as
    ``async with AsyncFuturesAPI(...) as futures`` or call :meth:`aclose`.
    The parameters are those of :class:`~krakenex.futures.FuturesAPI`. It sends
    through the sending loop of :class:`krakenex.AsyncAPI` (:meth:`~krakenex.AsyncAPI.run`),
    whose :attr:`session` it shares: assign an :class:`aiohttp.ClientSession` of your
    own before the first call to set headers, a proxy or TLS settings.
    """

    def _open(self) -> None:
        self._sender = _Sender(uri=self.uri, timeout=self.timeout, share=None)

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The :class:`aiohttp.ClientSession` calls go through; opened on the first call."""
        return self._sender.session

    @session.setter
    def session(self, value: aiohttp.ClientSession | None) -> None:
        self._sender.session = value

    @property
    def stale_after(self) -> float:
        """:attr:`krakenex.AsyncAPI.stale_after` of the sending loop, set before the first call."""
        return self._sender.stale_after

    @stale_after.setter
    def stale_after(self, value: float) -> None:
        self._sender.stale_after = value

    @property
    def response(self) -> aiohttp.ClientResponse | None:
        """The last response, overwritten by every call."""
        return self._sender.response

    async def __aenter__(self) -> AsyncFuturesAPI:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._sender.aclose()
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
        """Run one call through :meth:`krakenex.AsyncAPI.run`, with Kraken's end date in mind."""
        sunset.announce()
        timeout = self.timeout if timeout is None else timeout
        self._sender.uri = self.uri  # where this client points now, though uri was changed
        try:
            return await self._sender.run(
                self._futures_call(endpoint, verb, data, private=private), timeout)
        except KrakenError as exc:
            sunset.explain(exc, self.uri)  # the same error; its message may name the date
            raise


class _Sender(AsyncAPI):
    """:class:`~krakenex.AsyncAPI`'s sending loop with no key of its own.

    The futures core signs what it sends; the spot key in the environment is never read.
    """

    def _environment_key(self) -> tuple[str, str]:
        return '', ''
