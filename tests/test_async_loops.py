"""One AsyncAPI and more than one event loop: it works in turn, or refuses clearly.

An aiohttp session belongs to the loop it was opened in. An AsyncAPI whose
session is closed moves to the next loop (one ``asyncio.run`` after another);
one whose session is open, or whose calls are in flight, in another loop
refuses with a KrakenUsageError that says why, before anything is sent.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from krakenex import AsyncAPI, KrakenUsageError
from krakenex.futures import AsyncFuturesAPI
from krakenex.sandbox import Sandbox


@pytest.mark.unlimited
def test_one_async_api_serves_one_asyncio_run_after_another_when_closed_in_each(
        sandbox: Sandbox) -> None:
    api = AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url)

    async def calls() -> list[Any]:
        async with api:  # closes the session as the loop ends
            replies = await asyncio.gather(*(api.query_private('Balance') for _ in range(3)))
        return [reply['error'] for reply in replies]

    assert [asyncio.run(calls()) for _ in range(3)] == [[[], [], []]] * 3


def test_one_async_futures_api_serves_one_asyncio_run_after_another(sandbox: Sandbox) -> None:
    futures = AsyncFuturesAPI(uri=sandbox.futures_url)

    async def tickers() -> Any:
        async with futures:
            return (await futures.query_public('tickers'))['result']

    assert [asyncio.run(tickers()) for _ in range(2)] == ['success', 'success']


def test_an_async_api_left_open_in_an_ended_loop_refuses_the_next_loop_and_says_why(
        sandbox: Sandbox) -> None:
    api = AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url)
    asyncio.run(api.query_private('Balance'))  # its session stays open in a loop now gone
    sent = len(sandbox.requests_log)

    async def again() -> Any:
        return await api.query_private('Balance')

    with pytest.raises(KrakenUsageError) as caught:
        asyncio.run(again())
    assert 'that loop has ended' in str(caught.value)
    assert 'aclose()' in str(caught.value)
    assert len(sandbox.requests_log) == sent

    async def let_go_and_go_on() -> Any:
        await api.aclose()  # the ended loop's session is let go
        async with api:
            return await api.query_private('Balance')

    assert asyncio.run(let_go_and_go_on())['error'] == []


@pytest.mark.unlimited
def test_two_threads_with_loops_of_their_own_never_hang_and_one_is_refused_clearly(
        sandbox: Sandbox) -> None:
    api = AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url)
    started = threading.Barrier(2)
    outcomes: dict[int, Any] = {}

    def thread(n: int) -> None:
        async def calls() -> Any:
            started.wait(10)
            replies = []
            for _ in range(20):
                replies.append((await api.query_private('Balance'))['error'])
            await api.aclose()
            return replies

        try:
            outcomes[n] = asyncio.run(asyncio.wait_for(calls(), 20))
        except Exception as exc:  # what each thread got, judged below
            outcomes[n] = exc

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    worked = [o for o in outcomes.values() if o == [[]] * 20]
    refused = [o for o in outcomes.values() if isinstance(o, KrakenUsageError)]
    assert (len(worked), len(refused)) == (1, 1), outcomes
    assert 'give each loop its own object' in str(refused[0])
