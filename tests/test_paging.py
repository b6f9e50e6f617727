"""krakenex.paging: every row of a paged method exactly once, over real HTTP to the sandbox."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from krakenex import API, KrakenAPIError, KrakenUsageError, paging
from krakenex.sandbox import Sandbox


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[API]:
    with API(sandbox.key, sandbox.secret, uri=sandbox.url) as api:
        yield api


def every_ledger_id(api: API) -> list[str]:
    """The account's ledger ids, paged by hand while nothing changes."""
    ids: list[str] = []
    while True:
        page = api.query_private('Ledgers', {'ofs': len(ids)})['result']
        ids += page['ledger']
        if not page['ledger'] or len(ids) >= page['count']:
            return ids


@pytest.mark.unlimited  # reads every page by hand first, then pages again
def test_rows_yields_every_ledger_entry_exactly_once(api: API, sandbox: Sandbox) -> None:
    expected = every_ledger_id(api)
    sandbox.requests_log.clear()
    found = list(paging.rows(api, 'Ledgers'))
    ids = [ledger_id for ledger_id, _ in found]
    assert len(ids) == len(set(ids)) == len(expected) > 150
    assert set(ids) == set(expected)
    assert all(isinstance(entry, dict) and 'amount' in entry for _, entry in found)
    assert [m for m, _ in sandbox.requests_log].count('Ledgers') == -(-len(expected) // 50)


@pytest.mark.unlimited  # reads every page by hand first, then pages again
def test_an_entry_booked_while_paging_shifts_the_pages_without_a_row_given_twice(
        api: API) -> None:
    before = every_ledger_id(api)
    ids = []
    for n, (ledger_id, _) in enumerate(paging.rows(api, 'Ledgers')):
        ids.append(ledger_id)
        if n == 0:  # the first page is in: book two entries, shifting every later page by two
            api.query_private('AddOrder', {'pair': 'XBTUSD', 'type': 'buy',
                                           'ordertype': 'market', 'volume': '0.01'})
    assert len(every_ledger_id(api)) >= len(before) + 2
    assert len(ids) == len(set(ids)), 'a shifted row was given twice'
    assert set(before) <= set(ids), 'a row was missed'


def test_closed_orders_and_trades_history_page_by_ofs_too(api: API) -> None:
    for method in ('ClosedOrders', 'TradesHistory'):
        count = api.query_private(method)['result']['count']
        ids = [txid for txid, _ in paging.rows(api, method)]
        assert len(ids) == len(set(ids)) == count > 50, method


@pytest.mark.unlimited  # reads every page by hand first, then pages again
@pytest.mark.unlimited
def test_start_and_ofs_narrow_the_rows(api: API) -> None:
    # Three fetches in a row on one key: paced, they wait for the key's counter (tested apart).
    everything = list(paging.rows(api, 'Ledgers', pace=False))
    skipped = list(paging.rows(api, 'Ledgers', {'ofs': 60}, pace=False))
    assert skipped == everything[60:]
    newest_time = everything[0][1]['time']
    middle = everything[len(everything) // 2][1]['time']
    window = list(paging.rows(api, 'Ledgers', {'start': middle}, pace=False))
    assert window and all(middle < entry['time'] <= newest_time for _, entry in window)


def test_trades_page_forward_by_since_and_last_to_the_present_each_trade_once(
        api: API, sandbox: Sandbox) -> None:
    newest = api.query_public('Trades', {'pair': 'XBTUSD'})['result']['XXBTZUSD'][-1]
    since = str(int(time.time()) - 3 * 3600)
    sandbox.requests_log.clear()
    found = list(paging.rows(api, 'Trades', {'pair': 'XBTUSD', 'since': since, 'count': 300},
                             pace=False))
    trade_ids = [row[6] for _, row in found]
    assert {pair for pair, _ in found} == {'XXBTZUSD'}
    assert trade_ids == list(range(trade_ids[0], trade_ids[0] + len(trade_ids)))  # no gap
    assert trade_ids[-1] == newest[6]
    assert float(found[0][1][2]) > int(since)
    calls = [m for m, _ in sandbox.requests_log].count('Trades')
    assert calls == -(-len(trade_ids) // 300) > 2


def test_ohlc_is_one_call_since_kraken_serves_every_candle_it_has_at_once(
        api: API, sandbox: Sandbox) -> None:
    sandbox.requests_log.clear()
    found = list(paging.rows(api, 'OHLC', {'pair': 'ETHUSD', 'interval': 60}))
    times = [row[0] for _, row in found]
    assert len(times) == 720 and times == sorted(set(times))
    assert sandbox.requests_log == [('OHLC', None)]


def test_fetch_all_returns_one_result_shaped_like_a_page(api: API) -> None:
    merged = paging.fetch_all(api, 'Ledgers')
    assert set(merged) == {'ledger', 'count'}
    assert len(merged['ledger']) == merged['count']
    spread = paging.fetch_all(api, 'Spread', {'pair': 'XBTUSD'}, pace=False)
    assert set(spread) == {'XXBTZUSD', 'last'} and len(spread['XXBTZUSD']) > 100


@pytest.mark.parametrize('ofs', ['abc', '-1', '1.5', 'nan', True, 2.0])
def test_an_ofs_that_is_not_a_row_count_is_refused_before_anything_is_sent(
        api: API, sandbox: Sandbox, ofs: object) -> None:
    sandbox.requests_log.clear()
    with pytest.raises(KrakenUsageError, match='ofs must be a whole number'):
        list(paging.rows(api, 'Ledgers', {'ofs': ofs}))
    assert sandbox.requests_log == []


@pytest.mark.parametrize('since', ['yesterday', '-5', 'inf'])
def test_a_since_that_is_not_a_time_is_refused_before_anything_is_sent(
        api: API, sandbox: Sandbox, since: str) -> None:
    sandbox.requests_log.clear()
    with pytest.raises(KrakenUsageError, match='since must be a Unix time'):
        paging.rows(api, 'Trades', {'pair': 'XBTUSD', 'since': since})
    assert sandbox.requests_log == []


def test_a_method_without_pages_is_refused(api: API) -> None:
    with pytest.raises(KrakenUsageError, match='Balance has no pages'):
        paging.rows(api, 'Balance')


def test_the_command_refuses_a_bad_ofs_in_one_line(sandbox: Sandbox) -> None:
    env = {'KRAKEN_API_KEY': sandbox.key, 'KRAKEN_API_SECRET': sandbox.secret,
           'PATH': '/usr/bin:/bin'}
    result = subprocess.run([sys.executable, '-m', 'krakenex', '--uri', sandbox.url, '--all',
                             'Ledgers', 'ofs=abc'], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "krakenex: ofs must be a whole number of rows to skip (0 or more), not 'abc'"]


def test_private_pages_are_paced_under_the_default_tier_when_the_api_paces_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A strict tier so that the test is quick: two units, a page costs two.
    monkeypatch.setattr(paging, 'DEFAULT_TIER', (2.0, 10.0))
    with Sandbox(tier=(2, 10)) as strict, \
            API(strict.key, strict.secret, uri=strict.url, retries=0) as api:
        with pytest.raises(KrakenAPIError, match='EAPI:Rate limit exceeded'):
            list(paging.rows(api, 'Ledgers', pace=False))
        time.sleep(0.3)  # let the sandbox's counter decay
        assert len(list(paging.rows(api, 'Ledgers'))) > 150


def test_public_pages_are_paced_at_kraken_s_public_rate_when_the_api_paces_nothing() -> None:
    since = str(int(time.time()) - 3 * 3600)
    params = {'pair': 'XBTUSD', 'since': since, 'count': 600}
    with Sandbox(public_rate=1.0) as strict, API(uri=strict.url, retries=0) as api, \
            pytest.raises(KrakenAPIError, match='EGeneral:Too many requests'):
        list(paging.rows(api, 'Trades', params, pace=False))
    with Sandbox(public_rate=1.0) as strict, API(uri=strict.url, retries=0) as api:
        assert len(list(paging.rows(api, 'Trades', params))) > 600


def test_progress_shows_rows_of_the_total_after_every_page(api: API) -> None:
    stream = io.StringIO()
    count = len(list(paging.rows(api, 'Ledgers', progress=paging.Progress('Ledgers', stream))))
    shown = stream.getvalue().split('\r')[1:]
    assert len(shown) == -(-count // 50)
    assert shown[0].startswith('Ledgers: [') and f'] 50/{count} rows, 1 page' in shown[0]
    assert f'] {count}/{count} rows' in shown[-1] and shown[-1].endswith('pages\x1b[K\n')


def test_no_progress_is_shown_when_nobody_can_see_it(
        api: API, capsys: pytest.CaptureFixture[str]) -> None:
    list(paging.rows(api, 'Ledgers'))
    assert capsys.readouterr() == ('', '')


@pytest.mark.unlimited  # reads every page by hand first, then pages again
def test_without_count_the_first_short_page_is_the_last(api: API, sandbox: Sandbox) -> None:
    expected = every_ledger_id(api)
    sandbox.requests_log.clear()
    ids = [i for i, _ in paging.rows(api, 'Ledgers', {'without_count': True})]
    assert sorted(ids) == sorted(expected) and len(expected) % 50
    assert [m for m, _ in sandbox.requests_log].count('Ledgers') == -(-len(expected) // 50)


# ------------------------------------------------------------------ AsyncAPI

@pytest.mark.unlimited  # reads every page by hand first, then pages again
def test_with_an_async_api_rows_is_an_async_iterator_giving_every_row_once(
        api: API, sandbox: Sandbox) -> None:
    aio = pytest.importorskip('krakenex.aio')
    expected = every_ledger_id(api)

    async def collect() -> tuple[list[str], dict[str, Any]]:
        async with aio.AsyncAPI(sandbox.key, sandbox.secret, uri=sandbox.url) as async_api:
            ids = [ledger_id async for ledger_id, _ in paging.rows(async_api, 'Ledgers')]
            merged = await paging.fetch_all(async_api, 'Trades', {'pair': 'XBTUSD'}, pace=False)
            return ids, merged

    ids, merged = asyncio.run(collect())
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == set(expected)
    assert set(merged) == {'XXBTZUSD', 'last'} and len(merged['XXBTZUSD']) == 1000


def test_async_pages_are_paced_without_blocking_the_event_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    aio = pytest.importorskip('krakenex.aio')
    monkeypatch.setattr(paging, 'DEFAULT_TIER', (2.0, 10.0))  # a page costs 2: 0.2 s a page

    async def page_while_ticking() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        with Sandbox(tier=(2, 10)) as strict:
            async with aio.AsyncAPI(strict.key, strict.secret, uri=strict.url,
                                    retries=0) as async_api:
                ticker = asyncio.create_task(tick())
                rows = [row async for row in paging.rows(async_api, 'Ledgers')]
                ticker.cancel()
        return len(rows), ticks

    count, ticks = asyncio.run(page_while_ticking())
    assert count > 150  # five pages, none refused by the strict tier
    assert ticks > 20  # the loop went on while paging waited about 0.8 s
