"""API honours its requests.Session as requests itself does, over real HTTP on 127.0.0.1.

Each test sends the same call through ``API`` and, where it matters, through
``requests`` directly, to servers that echo what reached them.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from krakenex import API, KrakenAPIError, KrakenConnectionError, KrakenHTTPError, NotSentError

#: Order lists as a server that ignores the userref filter would send them.
ORDERS = {
    'OpenOrders': {'open': {'O-MINE': {'userref': 7, 'status': 'open'},
                            'O-OTHER': {'userref': 8, 'status': 'open'}}},
    'ClosedOrders': {'closed': {'C-OTHER': {'userref': 70, 'status': 'closed'}}, 'count': 1},
}


class Echo(ThreadingHTTPServer):
    """A server that answers every request with a Kraken envelope describing the request."""

    daemon_threads = True

    def __init__(self, name: str, context: ssl.SSLContext | None = None) -> None:
        super().__init__(('127.0.0.1', 0), EchoHandler)
        self.name = name
        self.seen: list[dict[str, Any]] = []
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = 'https' if context else 'http'
        self.url = f'{self.scheme}://127.0.0.1:{self.server_address[1]}'


class EchoHandler(BaseHTTPRequestHandler):
    server: Echo

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._echo()

    def do_POST(self) -> None:
        self._echo()

    def _echo(self) -> None:
        length = int(self.headers.get('Content-Length') or 0)
        seen = {'server': self.server.name, 'path': self.path,
                'headers': {k.lower(): v for k, v in self.headers.items()},
                'body': self.rfile.read(length).decode()}
        self.server.seen.append(seen)
        if self.path.endswith('/redirect'):
            self.send_response(301)
            self.send_header('Location', 'https://elsewhere.example/0/public/Time')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        errors = ['EGeneral:Invalid arguments'] if 'fail' in self.path else []
        result: Any = ORDERS.get(self.path.rsplit('/', 1)[-1], seen)
        body = json.dumps({'error': errors, 'result': result}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serving(server: Echo) -> Iterator[Echo]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def target() -> Iterator[Echo]:
    yield from serving(Echo('target'))


@pytest.fixture
def proxy() -> Iterator[Echo]:
    yield from serving(Echo('proxy'))


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY',
                 'all_proxy', 'NO_PROXY', 'no_proxy'):
        monkeypatch.delenv(name, raising=False)


def through_api(api: API, method: str = 'Time') -> dict[str, Any]:
    return api.query_public(method)['result']  # type: ignore[no-any-return]


def through_requests(session: requests.Session, url: str) -> dict[str, Any]:
    return session.get(url + '/0/public/Time', timeout=5).json()['result']  # type: ignore[no-any-return]


def test_session_headers_cookies_auth_and_params_reach_the_server(
        target: Echo, no_proxy_env: None) -> None:
    api = API(uri=target.url)
    api.session.headers['X-Trace'] = 'abc'
    api.session.cookies.set('session-id', 's1')
    api.session.auth = ('user', 'pass')
    api.session.params = {'trace': '1'}
    seen = through_api(api)
    assert seen['headers']['x-trace'] == 'abc'
    assert seen['headers']['user-agent'].startswith('krakenex/')
    assert seen['headers']['cookie'] == 'session-id=s1'
    assert seen['headers']['authorization'] == 'Basic dXNlcjpwYXNz'
    assert seen['path'] == '/0/public/Time?trace=1'
    api.key, api.secret = 'k', 'c2VjcmV0'
    private = api.query_private('Balance')['result']
    assert private['headers']['cookie'] == 'session-id=s1'
    assert private['headers']['authorization'] == 'Basic dXNlcjpwYXNz'
    assert private['headers']['api-key'] == 'k'


def test_session_settings_changed_after_the_first_call_apply(
        target: Echo, no_proxy_env: None) -> None:
    api = API('k', 'c2VjcmV0', uri=target.url)
    assert 'x-trace' not in through_api(api)['headers']
    api.session.headers['X-Trace'] = 'abc'
    api.session.headers['Accept'] = None  # None removes a header, as in requests
    api.session.cookies.set('session-id', 's1')
    api.session.auth = ('user', 'pass')
    api.session.params = {'trace': '1'}
    for seen in (through_api(api), api.query_private('Balance')['result']):
        assert seen['headers']['x-trace'] == 'abc'
        assert 'accept' not in seen['headers']
        assert seen['headers']['cookie'] == 'session-id=s1'
        assert seen['headers']['authorization'] == 'Basic dXNlcjpwYXNz'
        assert seen['path'].endswith('?trace=1')
    del api.session.headers['X-Trace']
    assert 'x-trace' not in through_api(api)['headers']


def test_netrc_credentials_apply_when_the_session_trusts_the_environment(
        target: Echo, no_proxy_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / 'netrc'
    netrc.write_text('machine 127.0.0.1 login user password pass\n')
    netrc.chmod(0o600)
    monkeypatch.setenv('NETRC', str(netrc))
    expected = through_requests(requests.Session(), target.url)['headers']['authorization']
    assert expected == 'Basic dXNlcjpwYXNz'
    assert through_api(API(uri=target.url))['headers']['authorization'] == expected
    private = API('k', 'c2VjcmV0', uri=target.url).query_private('Balance')['result']
    assert private['headers']['authorization'] == expected
    untrusting = API(uri=target.url)
    untrusting.session.trust_env = False
    assert 'authorization' not in through_api(untrusting)['headers']


def test_response_hooks_of_the_session_run(target: Echo, no_proxy_env: None) -> None:
    api = API(uri=target.url)
    statuses: list[int] = []
    api.session.hooks['response'].append(lambda r, *a, **k: statuses.append(r.status_code))
    through_api(api)
    assert statuses == [200]


def test_a_mounted_adapter_carries_the_calls(target: Echo, no_proxy_env: None) -> None:
    sent: list[str] = []

    class Counting(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any,
                 **kwargs: Any) -> requests.Response:
            sent.append(request.url or '')
            return super().send(request, *args, **kwargs)

    api = API(uri=target.url)
    api.session.mount(target.url, Counting())
    through_api(api)
    assert sent == [target.url + '/0/public/Time']


# ------------------------------------------------------------------ proxies

ProxySetup = Callable[[pytest.MonkeyPatch, requests.Session, Echo, Echo], None]


def env_proxy(monkeypatch: pytest.MonkeyPatch, session: requests.Session, target: Echo,
              proxy: Echo) -> None:
    monkeypatch.setenv('HTTP_PROXY', proxy.url)


def session_proxy(monkeypatch: pytest.MonkeyPatch, session: requests.Session, target: Echo,
                  proxy: Echo) -> None:
    session.proxies = {'http': proxy.url}


def env_proxy_with_no_proxy(monkeypatch: pytest.MonkeyPatch, session: requests.Session,
                            target: Echo, proxy: Echo) -> None:
    monkeypatch.setenv('HTTP_PROXY', proxy.url)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')


def env_proxy_without_trust_env(monkeypatch: pytest.MonkeyPatch, session: requests.Session,
                                target: Echo, proxy: Echo) -> None:
    monkeypatch.setenv('HTTP_PROXY', proxy.url)
    session.trust_env = False


def both_proxies(monkeypatch: pytest.MonkeyPatch, session: requests.Session, target: Echo,
                 proxy: Echo) -> None:
    monkeypatch.setenv('HTTP_PROXY', 'http://127.0.0.1:9')  # requests lets this one win
    session.proxies = {'http': proxy.url}


@pytest.mark.parametrize('setup', [env_proxy, session_proxy, env_proxy_with_no_proxy,
                                   env_proxy_without_trust_env, both_proxies],
                         ids=lambda f: f.__name__)
def test_proxies_are_chosen_as_requests_chooses_them(
        target: Echo, proxy: Echo, no_proxy_env: None, monkeypatch: pytest.MonkeyPatch,
        setup: ProxySetup) -> None:
    plain = requests.Session()
    setup(monkeypatch, plain, target, proxy)
    api = API(uri=target.url, retries=0, timeout=2)
    setup(monkeypatch, api.session, target, proxy)
    try:
        expected = through_requests(plain, target.url)['server']
    except requests.ConnectionError:
        expected = 'unreachable'
    try:
        got = through_api(api)['server']
    except NotSentError:
        got = 'unreachable'
    assert got == expected


def test_a_proxy_set_on_the_session_after_the_first_call_applies(
        target: Echo, proxy: Echo, no_proxy_env: None) -> None:
    api = API(uri=target.url)
    assert through_api(api)['server'] == 'target'
    api.session.proxies['http'] = proxy.url
    assert through_api(api)['server'] == 'proxy'


# ------------------------------------------------------------------- TLS

@pytest.fixture(scope='module')
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    folder = tmp_path_factory.mktemp('tls')
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True)
    return cert, key


def tls_server(certificate: tuple[Path, Path], client_cert: bool) -> Echo:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cert)
    return Echo('tls', context)


@pytest.fixture
def https(certificate: tuple[Path, Path]) -> Iterator[Echo]:
    yield from serving(tls_server(certificate, client_cert=False))


@pytest.fixture
def https_with_client_cert(certificate: tuple[Path, Path]) -> Iterator[Echo]:
    yield from serving(tls_server(certificate, client_cert=True))


def test_an_unknown_certificate_is_refused_and_nothing_was_sent(
        https: Echo, no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        monkeypatch.delenv(name, raising=False)
    api = API('k', 'c2VjcmV0', uri=https.url, retries=0)
    with pytest.raises(NotSentError, match='certificate'):
        api.query_private('AddOrder', {'pair': 'XBTUSD'})
    assert https.seen == []


def test_session_verify_is_honoured(https: Echo, certificate: tuple[Path, Path],
                                    no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        monkeypatch.delenv(name, raising=False)
    api = API(uri=https.url)
    api.session.verify = str(certificate[0])
    assert through_api(api)['server'] == 'tls'
    unchecked = API(uri=https.url)
    unchecked.session.verify = False
    with pytest.warns(Warning):  # urllib3 says the request was not verified
        assert through_api(unchecked)['server'] == 'tls'


def test_session_cert_is_presented_to_the_server(
        https_with_client_cert: Echo, certificate: tuple[Path, Path], no_proxy_env: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        monkeypatch.delenv(name, raising=False)
    api = API(uri=https_with_client_cert.url, retries=0)
    api.session.verify = str(certificate[0])
    with pytest.raises(KrakenConnectionError):
        through_api(api)
    api.session.cert = (str(certificate[0]), str(certificate[1]))
    assert through_api(api)['server'] == 'tls'


# -------------------------------------------------------------- redirects

def test_a_redirect_is_an_http_error_that_names_where_it_points(
        target: Echo, no_proxy_env: None) -> None:
    api = API(uri=target.url, retries=0)
    with pytest.raises(KrakenHTTPError, match=r'HTTP 301.*redirects to '
                                              r'https://elsewhere\.example/0/public/Time.*API\.uri'):
        api.query_public('redirect')
    assert [s['path'] for s in target.seen] == ['/0/public/redirect']


# ------------------------------------------------- one response per thread

def test_an_error_carries_its_own_threads_response(target: Echo, no_proxy_env: None) -> None:
    barrier = threading.Barrier(2)

    class Paused(API):
        """Holds the first thread between its reply and its error, while another call runs."""

        def _attempt(self, call: Any, timeout: Any) -> Any:
            reply = super()._attempt(call, timeout)
            if threading.current_thread().name == 'first':
                barrier.wait(5)
                barrier.wait(5)
            return reply

    api = Paused(uri=target.url, raise_errors=True, retries=0)
    caught: list[BaseException] = []

    def first() -> None:
        try:
            api.query_public('Time', {'fail': 1})
        except KrakenAPIError as exc:
            caught.append(exc)

    def second() -> None:
        barrier.wait(5)
        api.query_public('Time', {'other': 1})
        barrier.wait(5)

    threads = [threading.Thread(target=first, name='first'),
               threading.Thread(target=second, name='second')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(caught) == 1
    assert 'fail=1' in caught[0].response.url  # type: ignore[attr-defined]
    assert api.response is not None and 'other=1' in api.response.url


def test_find_order_keeps_only_matching_orders_whatever_the_server_sends(
        target: Echo, no_proxy_env: None) -> None:
    api = API('k', 'c2VjcmV0', uri=target.url)
    assert set(api.find_order(userref=7)) == {'O-MINE'}
    assert api.find_order(userref=9) == {}
