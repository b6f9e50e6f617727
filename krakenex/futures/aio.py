"""The Kraken Futures REST client on aiohttp: :class:`AsyncFuturesAPI` (extra ``async``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("AsyncFuturesAPI needs aiohttp: pip install 'krakenex[async]'") from None

from .. import protocol as spot
from ..errors import KrakenError, OutcomeUnknownError
from ..pacing import RateCounter
from ..protocol import DEFAULT_TIMEOUT, Reply, Request, Timeout
from .core import FuturesCore
from .protocol import DEFAULT_URI, Endpoint

__all__ = ['AsyncFuturesAPI']

log = logging.getLogger('krakenex')


class AsyncFuturesAPI(FuturesCore):
    """:class:`~krakenex.futures.FuturesAPI` for asyncio: the same calls, awaited.

    Private calls on one object are sent one at a time, each with a ``Nonce``
    above the one before, so nonces reach Kraken in order even when many tasks
    share the object. Use it as ``async with AsyncFuturesAPI(...) as futures``
    or call :meth:`close`. The parameters are those of
    :class:`~krakenex.futures.FuturesAPI`, plus ``session``: an
    :class:`aiohttp.ClientSession` of your own, which :meth:`close` leaves open.
    """

    def __init__(self, key: str = '', secret: str = '', *, uri: str = DEFAULT_URI,
                 timeout: Timeout = DEFAULT_TIMEOUT, nonce_unit: str = 'ms',
                 raise_errors: bool = False, retries: int = 3, backoff: float = 0.5,
                 retry_time: float = 30.0, pace: bool = False,
                 costs: Mapping[str, float] | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        super().__init__(key, secret, uri=uri, timeout=timeout, nonce_unit=nonce_unit,
                         raise_errors=raise_errors, retries=retries, backoff=backoff,
                         retry_time=retry_time, pace=pace, costs=costs)
        #: The server's address, without a trailing slash.
        self.uri = uri
        #: The last response, overwritten by every call.
        self.response: aiohttp.ClientResponse | None = None
        self._session = session
        self._own_session = session is None
        self._private_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncFuturesAPI:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session this object opened (not one passed in)."""
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

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
        fills = await self.query_private('fills')
        return self._matches(ids, statuses, fills)

    # ------------------------------------------------------------ sending

    async def _call(self, endpoint: Endpoint, verb: str, data: dict[str, Any],
                    timeout: Timeout | None, *, private: bool) -> Any:
        timeout = self.timeout if timeout is None else spot.check_timeout(timeout)
        retry = self._retry(endpoint)
        while True:
            try:
                reply = await self._send(endpoint, verb, data, timeout, private=private,
                                         once=retry.once)
            except KrakenError as exc:
                if (wait := retry.after_error(exc)) is None:
                    raise
                log.warning('%s failed (%s); retry %d in %.2f s', endpoint.name, exc,
                            retry.attempt, wait)
            else:
                if (wait := retry.after_reply(reply)) is None:
                    return self._checked(endpoint.name, reply)
                log.warning('%s answered %s; retry %d in %.2f s', endpoint.name,
                            reply.get('error'), retry.attempt, wait)
            await asyncio.sleep(wait)

    async def _send(self, endpoint: Endpoint, verb: str, data: dict[str, Any],
                    timeout: Timeout, *, private: bool, once: bool) -> Any:
        if not private:
            return await self._transmit(self._request(endpoint, verb, data, private=False),
                                        timeout)
        counter, cost = self._counter(endpoint), self._cost(endpoint, verb, data)
        async with self._private_lock:
            counted_at = await _acquire(counter, cost)
            try:
                request = self._request(endpoint, verb, data, private=True)
                try:
                    return await self._transmit(request, timeout)
                except KrakenError as exc:
                    unknown = self._unknown(exc, request, once=once)
                    if unknown is exc:
                        raise
                    raise unknown from exc.__cause__
            finally:
                if counter is not None:
                    counter.settle(cost, counted_at)

    async def _transmit(self, request: Request, timeout: Timeout) -> Any:
        """Send ``request`` and read the reply, or raise what went wrong."""
        name = request.method
        if self._session is None:
            self._session = aiohttp.ClientSession()
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        url = self.uri + request.path + ('?' + request.query if request.query else '')
        try:
            async with self._session.request(
                    request.verb, url, data=request.body, headers=dict(request.headers),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
            ) as response:
                content = await response.read()
        except (aiohttp.InvalidURL, ValueError) as exc:
            raise spot.transport_error('bad_uri', self.uri, name) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise spot.transport_error('connect_timeout', self.uri, name) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise spot.transport_error('timeout', self.uri, name) from exc
        except aiohttp.ClientConnectorError as exc:
            raise spot.transport_error('not_sent', self.uri, name, str(exc.os_error)) from exc
        except aiohttp.ClientPayloadError as exc:
            raise spot.transport_error('broken', self.uri, name, str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise spot.transport_error('dropped', self.uri, name,
                                       str(exc) or type(exc).__name__) from exc
        self.response = response
        reply = Reply(response.status, response.reason or '', response.headers, content,
                      response)
        return spot.read_reply(name, reply, self._json_options)


async def _acquire(counter: RateCounter | None, cost: float) -> float:
    """Wait without blocking the loop until ``cost`` fits on ``counter``, then count it."""
    if counter is None:
        return 0.0
    while (wait := counter.try_acquire(cost)) > 0:
        await asyncio.sleep(wait)
    return time.monotonic()
