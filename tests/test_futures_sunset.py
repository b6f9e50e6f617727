"""Kraken's end date for Futures REST: one warning per process, and errors that say why after it.

The warning is shown over real HTTP against the sandbox, in fresh processes
with Python's default warning filters. "Kraken's host" after the date is a
server on 127.0.0.1 reached as a proxy, so the client's address really is
``futures.kraken.com``; the rule itself is tested as a function too.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from krakenex import (
    KrakenAPIError,
    KrakenConnectionError,
    KrakenError,
    KrakenHTTPError,
    KrakenResponseError,
    KrakenTimeout,
    KrakenUsageError,
    NotSentError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownHTTPError,
    ShareUnavailableError,
)
from krakenex.futures import AsyncFuturesAPI, FuturesAPI, KrakenSunsetWarning, sunset
from krakenex.futures.endpoints import ENDPOINTS
from krakenex.sandbox import Sandbox

KRAKEN = 'https://futures.kraken.com'
BEFORE = datetime.date(2027, 2, 28)
ON = datetime.date(2027, 3, 1)
AFTER = datetime.date(2027, 3, 2)


def order(cli: str) -> dict[str, Any]:
    return {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': 0.01,
            'limitPrice': 50000, 'cliOrdId': cli}


@pytest.fixture
def fresh() -> Iterator[None]:
    """This process as if no futures call had been made in it yet."""
    kept = sunset._announced
    sunset._announced = threading.Event()
    try:
        yield
    finally:
        sunset._announced = kept


def moved_clock(monkeypatch: pytest.MonkeyPatch, day: datetime.date) -> None:
    monkeypatch.setattr(sunset, 'today', lambda: day)


# ------------------------------------------------------------------ the date, once

def test_the_date_is_kraken_s_and_names_the_unified_websocket() -> None:
    assert sunset.DECOMMISSIONED.isoformat() == '2027-03-01'
    assert '1 March 2027' in sunset.NOTICE
    assert "WS(api, unified=True, asset_class='derivatives')" in sunset.NOTICE
    assert 'doc/futures-migration.rst' in sunset.NOTICE
    assert issubclass(KrakenSunsetWarning, FutureWarning)


# ------------------------------------------------------------- the warning, once

def python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` with the default warning filters: no -W, no PYTHONWARNINGS."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60, env=env, check=True)


TWO_CLIENTS = '''
import asyncio
from krakenex.futures import AsyncFuturesAPI, FuturesAPI
{setup}
with FuturesAPI(uri={uri!r}) as first, FuturesAPI(uri={uri!r}) as second:
    first.query_public('tickers')
    second.query_public('tickers')
    first.query_charts('trade/PF_XBTUSD/1h', {{'count': 1}})

async def main():
    async with AsyncFuturesAPI(uri={uri!r}) as third:
        await third.query_public('tickers')
        await third.query_public('instruments')

asyncio.run(main())
print('done')
'''


def test_a_process_is_warned_once_at_its_first_call_whatever_the_clients(
        sandbox: Sandbox) -> None:
    result = python(TWO_CLIENTS.format(uri=sandbox.futures_url, setup=''))
    assert result.stdout == 'done\n'
    assert result.stderr.count('KrakenSunsetWarning') == 1, result.stderr
    assert result.stderr.count('1 March 2027') == 1
    assert "krakenex.ws.WS(api, unified=True, asset_class='derivatives')" in result.stderr
    assert 'futures-migration' in result.stderr
    assert result.stderr.startswith('<string>:6: KrakenSunsetWarning')  # the caller's line


def test_importing_and_creating_clients_does_not_warn(sandbox: Sandbox) -> None:
    result = python(f'from krakenex.futures import AsyncFuturesAPI, FuturesAPI, sunset\n'
                    f'FuturesAPI(uri={sandbox.futures_url!r}).close()\n'
                    f'AsyncFuturesAPI(uri={sandbox.futures_url!r})\n')
    assert result.stderr == ''


def test_the_warning_is_silenced_by_its_class_alone(sandbox: Sandbox) -> None:
    setup = ('import warnings\n'
             'from krakenex.futures import KrakenSunsetWarning\n'
             "warnings.filterwarnings('ignore', category=KrakenSunsetWarning)\n"
             "warnings.warn('another FutureWarning', FutureWarning)")
    result = python(TWO_CLIENTS.format(uri=sandbox.futures_url, setup=setup))
    assert 'Kraken' not in result.stderr
    assert 'FutureWarning: another FutureWarning' in result.stderr


def test_the_warning_names_the_line_that_called_sync_or_async(
        sandbox: Sandbox, fresh: None) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with FuturesAPI(uri=sandbox.futures_url) as futures:
            futures.query_public('tickers')
            futures.query_public('tickers')
    assert [(w.category, w.filename) for w in caught] == [(KrakenSunsetWarning, __file__)]

    async def main() -> None:
        async with AsyncFuturesAPI(uri=sandbox.futures_url) as futures:
            await futures.query_public('tickers')

    sunset._announced.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        asyncio.run(main())
    assert [(w.category, w.filename) for w in caught] == [(KrakenSunsetWarning, __file__)]


# ---------------------------------------------------- after the date: the rule

def evidence(cls: type[KrakenError], status: int | None = None, body: str | None = None,
             **extra: Any) -> KrakenError:
    return cls('what the transport said', method='tickers', status=status, body=body, **extra)


GONE = [
    evidence(NotSentError),
    evidence(KrakenConnectionError),
    evidence(KrakenTimeout),
    evidence(OutcomeUnknownConnectionError, nonce=1, cl_ord_id='a'),
    evidence(KrakenHTTPError, 404, '{"result":"error"}'),
    evidence(KrakenHTTPError, 410),
    evidence(KrakenHTTPError, 301),
    evidence(OutcomeUnknownHTTPError, 404, nonce=1),
    evidence(KrakenHTTPError, 503, '  <!DOCTYPE html><title>Gone</title>'),
    evidence(KrakenResponseError, 200, '<html><body>Kraken Derivatives has moved</body>'),
]

KEPT = [
    evidence(KrakenAPIError, 200, '{"result":"error","error":"apiLimitExceeded"}'),
    evidence(KrakenHTTPError, 500, '{"result":"error"}'),
    evidence(KrakenHTTPError, 429),
    evidence(KrakenResponseError, 200, '{"result": "succ'),
    evidence(KrakenUsageError),
    ShareUnavailableError('/some/store', 'the disk is full'),
]


@pytest.mark.parametrize('error', GONE, ids=lambda e: f'{type(e).__name__}-{e.status}')
def test_failures_at_kraken_s_host_from_the_date_on_are_explained_by_it(
        error: KrakenError) -> None:
    assert sunset.decommissioned(KRAKEN, error, ON)
    assert sunset.decommissioned('https://FUTURES.kraken.com:443/', error, AFTER)
    assert sunset.decommissioned('http://futures.kraken.com', error, datetime.date(2031, 1, 1))
    assert not sunset.decommissioned(KRAKEN, error, BEFORE)


@pytest.mark.parametrize('uri', ['http://127.0.0.1:8080', 'https://demo-futures.kraken.com',
                                 'https://api.kraken.com', 'https://futures.kraken.com.example'])
def test_failures_at_other_hosts_are_never_explained_by_the_date(uri: str) -> None:
    assert not any(sunset.decommissioned(uri, error, AFTER) for error in GONE)


@pytest.mark.parametrize('error', KEPT, ids=lambda e: type(e).__name__)
def test_kraken_s_own_answers_and_local_mistakes_are_not_explained_by_the_date(
        error: KrakenError) -> None:
    assert not sunset.decommissioned(KRAKEN, error, AFTER)


# ------------------------------------------- after the date: over real HTTP

class _Gone(BaseHTTPRequestHandler):
    """A host that no longer serves the API: 410 and an HTML page, for any request."""

    def _answer(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        length = int(self.headers.get('Content-Length') or 0)
        self.rfile.read(length)
        page = b'<!DOCTYPE html><html><title>Gone</title><body>This API was retired.</body></html>'
        self.send_response(410)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def kraken_gone() -> Iterator[tuple[str, list[str]]]:
    """A proxy on 127.0.0.1 that plays Kraken's host after the date: its URL, the paths asked."""
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Gone)
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', server.paths  # type: ignore
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def through(proxy: str, **options: Any) -> FuturesAPI:
    """A client of ``http://futures.kraken.com`` whose requests go to ``proxy``."""
    client = FuturesAPI('key', 'c2VjcmV0', uri='http://futures.kraken.com', timeout=2,
                        retries=0, share=None, **options)
    client.session.proxies = {'http': proxy}
    client.session.trust_env = False
    return client


def test_a_read_refused_by_kraken_s_host_after_the_date_names_the_date_and_the_replacement(
        kraken_gone: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, paths = kraken_gone
    moved_clock(monkeypatch, ON)
    with through(proxy) as futures, pytest.raises(KrakenHTTPError) as raised:
        futures.query_public('tickers')
    assert paths == ['http://futures.kraken.com/derivatives/api/v3/tickers']
    message = str(raised.value)
    assert message.startswith('Kraken decommissioned its Derivatives (Futures) REST API on '
                              '1 March 2027')
    assert "WS(api, unified=True, asset_class='derivatives')" in message
    assert 'HTTP 410' in message  # and what happened, as before
    assert raised.value.status == 410 and raised.value.response is not None


def test_the_same_refusal_before_the_date_reads_as_it_always_did(
        kraken_gone: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, _ = kraken_gone
    moved_clock(monkeypatch, BEFORE)
    with through(proxy) as futures, pytest.raises(KrakenHTTPError) as raised:
        futures.query_public('tickers')
    assert 'decommissioned' not in str(raised.value)
    assert str(raised.value).startswith('Kraken Futures tickers answered HTTP 410')


def test_an_order_sent_to_kraken_s_host_after_the_date_stays_unknown_never_refused(
        kraken_gone: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, _ = kraken_gone
    moved_clock(monkeypatch, AFTER)
    with through(proxy) as futures, pytest.raises(OutcomeUnknownHTTPError) as raised:
        futures.query_private('sendorder', order('after-1'))
    assert not isinstance(raised.value, KrakenAPIError)
    assert raised.value.cl_ord_id == 'after-1' and raised.value.nonce is not None
    assert 'decommissioned' in str(raised.value) and 'after-1' in str(raised.value)


def test_a_connection_kraken_s_host_refuses_after_the_date_is_still_not_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
    moved_clock(monkeypatch, AFTER)
    with through(f'http://127.0.0.1:{port}') as futures, pytest.raises(NotSentError) as raised:
        futures.query_private('sendorder', order('after-2'))
    assert not isinstance(raised.value, OutcomeUnknownError)
    assert 'decommissioned' in str(raised.value) and 'nothing was sent' in str(raised.value)


def test_the_async_client_explains_the_same_failure_the_same_way(
        kraken_gone: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    proxy, paths = kraken_gone
    moved_clock(monkeypatch, AFTER)
    monkeypatch.setenv('HTTP_PROXY', proxy)
    monkeypatch.delenv('NO_PROXY', raising=False)
    monkeypatch.delenv('no_proxy', raising=False)

    async def main() -> None:
        async with AsyncFuturesAPI(uri='http://futures.kraken.com', timeout=2,
                                   retries=0) as futures:
            futures.session = aiohttp.ClientSession(trust_env=True)
            await futures.query_public('tickers')

    with pytest.raises(KrakenHTTPError) as raised:
        asyncio.run(main())
    assert paths == ['http://futures.kraken.com/derivatives/api/v3/tickers']
    assert str(raised.value).startswith('Kraken decommissioned')
    assert raised.value.status == 410


def test_the_sandbox_keeps_serving_futures_rest_after_the_date(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    moved_clock(monkeypatch, AFTER)
    with FuturesAPI(sandbox.futures.key, sandbox.futures.secret, uri=sandbox.futures_url,
                    raise_errors=True) as futures:
        assert futures.query_public('tickers')['result'] == 'success'
        placed = futures.query_private('sendorder', order('sandbox-1'))
        assert placed['sendStatus']['status'] == 'placed'
        with pytest.raises(KrakenHTTPError) as raised:
            futures.query_public('tickers/PF_NOSUCH/more/depth', verb='GET')
    assert 'decommissioned' not in str(raised.value)


# ------------------------------------------------------------ the migration page

def test_the_migration_page_names_every_endpoint_of_kraken_s_table() -> None:
    page = (Path(__file__).resolve().parent.parent / 'doc' / 'futures-migration.rst').read_text()
    assert [name for name in ENDPOINTS if f'``{name}``' not in page] == []
