"""WS: Kraken's WebSocket v2 without asyncio, for scripts, notebooks and the shell.

It runs an :class:`~krakenex.ws.AsyncWS` on an event loop in a thread of its
own, so it works the same whether or not the caller's thread already runs a
loop (Jupyter does). Messages are read straight from the stream, without a
round trip through that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..deadman import ADVISED_TIMEOUT, DeadManSwitch
from ..errors import KrakenConnectionError
from .book import BookView
from .client import AsyncWS, endpoint_urls
from .protocol import check_timeout
from .stream import StreamClosed

if TYPE_CHECKING:
    from ..api import API

__all__ = ['WS']

T = TypeVar('T')


class WS:
    """Kraken's WebSocket v2: ``with``, plain calls, ``for message in ws``.

    >>> with WS() as ws:                                          # doctest: +SKIP
    ...     ws.subscribe('ticker', symbol=['BTC/USD'])
    ...     for message in ws:
    ...         print(message)

    Takes the same arguments as :class:`~krakenex.ws.AsyncWS`; every method
    below does what the same method there does, and waits for it.
    """

    def __init__(self, api: API | None = None, *, url: str | None = None,
                 auth_url: str | None = None, l3_url: str | None = None,
                 unified: bool = False, **options: Any) -> None:
        # before a thread starts
        url, auth_url, l3_url = endpoint_urls(url, auth_url, l3_url, unified)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name='krakenex-ws')
        self._thread.start()

        async def make() -> AsyncWS:
            return AsyncWS(api, url=url, auth_url=auth_url, l3_url=l3_url, unified=unified,
                           **options)

        self._stopped = False
        try:
            self._ws = self._run(make())
        except BaseException:  # a bad option: leave no thread behind
            self._stopped = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            raise

    def __repr__(self) -> str:
        return repr(self._ws).replace('AsyncWS', 'WS', 1)

    def __enter__(self) -> WS:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the exception under way (Ctrl-C) says more
            self.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                message: dict[str, Any] = self._ws._stream.get(None)
            except StreamClosed:
                return
            yield message

    @property
    def api(self) -> API | None:
        """The :class:`krakenex.API` tokens come from."""
        return self._ws.api

    def subscribe(self, channel: str, *, timeout: float | None = None,
                  req_id: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """See :meth:`AsyncWS.subscribe <krakenex.ws.AsyncWS.subscribe>`."""
        return self._run(self._ws.subscribe(channel, timeout=timeout, req_id=req_id, **params))

    def unsubscribe(self, channel: str, *, timeout: float | None = None,
                    req_id: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """See :meth:`AsyncWS.unsubscribe <krakenex.ws.AsyncWS.unsubscribe>`."""
        return self._run(self._ws.unsubscribe(channel, timeout=timeout, req_id=req_id,
                                              **params))

    def connect(self, *, private: bool = False, timeout: float | None = None) -> None:
        """See :meth:`AsyncWS.connect <krakenex.ws.AsyncWS.connect>`."""
        self._run(self._ws.connect(private=private, timeout=timeout))

    def request(self, method: str, *, timeout: float | None = None,
                req_id: int | None = None, **params: Any) -> dict[str, Any]:
        """See :meth:`AsyncWS.request <krakenex.ws.AsyncWS.request>`."""
        return self._run(self._ws.request(method, timeout=timeout, req_id=req_id, **params))

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """See :attr:`krakenex.ws.AsyncWS.subscriptions`."""
        return self._ws.subscriptions

    def reconnect(self, *, timeout: float | None = None) -> None:
        """See :meth:`krakenex.ws.AsyncWS.reconnect`."""
        self._run(self._ws.reconnect(timeout=timeout))

    def dead_man_switch(self, timeout: int = ADVISED_TIMEOUT, every: float | None = None, *,
                        disarm_on_error: bool = False) -> DeadManSwitch:
        """See :meth:`AsyncWS.dead_man_switch <krakenex.ws.AsyncWS.dead_man_switch>`;
        ``with ws.dead_man_switch(timeout=60, every=20):``, re-armed from a thread."""
        def arm(seconds: int, within: float) -> None:
            self._run(asyncio.wait_for(
                self._ws.request('cancel_all_orders_after', timeout=seconds), within))

        def notify(fields: dict[str, Any]) -> None:
            if not self._stopped:
                self._loop.call_soon_threadsafe(self._ws._dead_man_notice, fields)

        return DeadManSwitch(arm, timeout, every, what=f'{self._ws.auth_url} (WebSocket)',
                             notify=notify, disarm_on_error=disarm_on_error)

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """See :meth:`AsyncWS.recv <krakenex.ws.AsyncWS.recv>`."""
        try:
            message: dict[str, Any] = self._ws._stream.get(check_timeout(timeout, poll=True))
        except StreamClosed:
            raise KrakenConnectionError('the WebSocket client is closed') from None
        return message

    def book(self, symbol: str) -> BookView:
        """See :meth:`AsyncWS.book <krakenex.ws.AsyncWS.book>`."""
        return self._ws.book(symbol)

    def positions(self) -> dict[str, dict[str, Any]]:
        """See :meth:`AsyncWS.positions <krakenex.ws.AsyncWS.positions>`."""
        return self._ws.positions()

    def margin(self) -> dict[str, Any]:
        """See :meth:`AsyncWS.margin <krakenex.ws.AsyncWS.margin>`."""
        return self._ws.margin()

    def may_have_sent_orders(self) -> bool:
        """Whether an order request may have reached Kraken through this client.

        ``False`` only if none has been handed to a socket so far; once :meth:`close`
        has returned that is final (an interrupted request ends before the client
        closes). ``True`` also if the client's thread did not stop when it closed.
        """
        return bool(self._ws.orders_sent) or (self._stopped and self._thread.is_alive())

    def close(self) -> None:
        """Close the connections and stop the thread."""
        if self._stopped:
            return
        self._stopped = True
        try:
            with contextlib.suppress(TimeoutError):  # stop the thread anyway
                self._wait(asyncio.run_coroutine_threadsafe(self._ws.close(), self._loop), 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                _finish(self._loop)
                self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._stopped:
            coroutine.close()  # never started: no "never awaited" warning
            raise KrakenConnectionError('the WebSocket client is closed')
        future = asyncio.run_coroutine_threadsafe(_retrieved(coroutine), self._loop)
        try:
            return self._wait(future, timeout)
        except BaseException:
            # Ctrl-C while it waits: stop the call on the loop too, rather than leave it
            # to go on (and send) by itself. It ends before anything queued after it.
            future.cancel()
            raise

    @staticmethod
    def _wait(future: concurrent.futures.Future[T], timeout: float | None) -> T:
        """``future.result(timeout)``, waiting where Ctrl-C can break nothing.

        ``Future.result`` waits on a ``threading.Condition`` that the loop thread takes
        to set the result; Ctrl-C in the middle of that wait can leave it held, and the
        loop blocked for good. A SimpleQueue's ``get`` cannot be left half done.
        """
        done: queue.SimpleQueue[None] = queue.SimpleQueue()
        future.add_done_callback(lambda _: done.put(None))
        try:
            done.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f'no result within {timeout} s') from None
        return future.result(0)


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on a stopped loop (a close that a second Ctrl-C cut short) and let
    it end, so that closing the loop leaves no pending task for Python to report at exit."""
    pending = asyncio.all_tasks(loop)
    if pending:
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.wait(pending, timeout=5))


async def _retrieved(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` as a task whose exception counts as seen even if nobody waits for it:
    an order request cancelled by Ctrl-C ends in an unknown outcome that the interrupted
    caller handles itself, and asyncio would otherwise log it with a traceback."""
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await coroutine
