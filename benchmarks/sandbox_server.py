"""The sandbox as a server under idle, silent and slow clients: CPU, memory and fairness.

Each measurement starts ``python -m krakenex.sandbox`` in a process of its own on
127.0.0.1 and reads that process's CPU time and memory from ``/proc`` (Linux):

* **idle**: the sandbox's CPU with N WebSocket connections open that send nothing
  (default 1,000), over 5 s;
* **silent**: 2,000 silent WebSocket connections (the default connection cap), then
  whether a REST call (``Time``) and a new WebSocket client are still served, and the
  sandbox's CPU meanwhile;
* **unfinished**: 2,000 WebSocket connections that each send 60 KiB of a message and
  never finish it, then the sandbox's memory (``VmRSS``), how many of them it
  disconnected, and whether a REST call and a new WebSocket client are served;
* **charts**: the sandbox's peak memory (``VmHWM``) under the futures chart requests
  ``trade/PF_XBTUSD/1m?from=0`` (every minute since 1970) and ``?from=-3e9``;
* **futures requests**: requests a second, and the sandbox's CPU per request, of
  ``openorders``, ``sendorder`` (a resting limit order) and ``tickers`` over one
  keep-alive connection, the futures budget switched off;
* **serialization**: the feed's time to write a book snapshot as JSON at depth 10,
  100 and 1,000 (in this process; linear growth is about 10x a step);
* **slow readers**: the book messages (depth 1,000, ``--motion 0.05``) a reading
  client gets in 5 s alone, beside 20 clients that subscribe and never read, and
  while 50 more such clients subscribe during those 5 s.

Run from the repository root::

    python benchmarks/sandbox_server.py            # writes benchmarks/SANDBOX_RESULTS.md
    python benchmarks/sandbox_server.py --quick    # a smoke run: fewer connections, no file

To measure another checkout (the code before a change, say), put it first on the
path: ``PYTHONPATH=/path/to/other/checkout python benchmarks/sandbox_server.py
--output before.md``. Nothing reaches the network.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HANDSHAKE = ('GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
             'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
             'Sec-WebSocket-Version: 13\r\n\r\n')
BOOK = json.dumps({'method': 'subscribe', 'params': {'channel': 'book', 'symbol': ['BTC/USD'],
                                                     'depth': 1000}})


@contextlib.contextmanager
def sandbox(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """A sandbox in a process of its own: (process, url, port)."""
    # started outside the repository, so that PYTHONPATH chooses the checkout (``-m`` puts
    # the working directory first on the path)
    process = subprocess.Popen([sys.executable, '-m', 'krakenex.sandbox', '--tier', 'none', *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               cwd=tempfile.gettempdir())
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[1]
        yield process, url, int(url.rsplit(':', 1)[1])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # a sandbox that cannot stop is not waited for
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def memory_mib(pid: int, key: str = 'VmRSS') -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    return float('nan')


def cpu_percent(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / seconds


def frame(text: str) -> bytes:
    data, mask = text.encode(), os.urandom(4)
    size = (bytes([0x80 | len(data)]) if len(data) < 126
            else bytes([0x80 | 126]) + struct.pack('!H', len(data)))
    return b'\x81' + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def open_ws(port: int, path: str = '/v2', *, extra: bytes = b'',
            timeout: float = 10.0) -> tuple[socket.socket, int, bytes]:
    """A WebSocket handshake by hand: the socket, the HTTP status of the answer and what
    came after it in the same reads (the first messages, often)."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    sock.sendall(HANDSHAKE.format(path=path).encode() + extra)
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            raise ConnectionError('closed during the handshake')
        head += chunk
    head, _, rest = head.partition(b'\r\n\r\n')
    return sock, int(head.split()[1]), rest


def open_many(port: int, count: int, limit: float) -> tuple[list[socket.socket], int, float]:
    """Open up to ``count`` silent connections within ``limit`` seconds: the open ones,
    how many were refused or failed, and the seconds it took."""
    opened: list[socket.socket] = []
    refused = 0
    started = time.monotonic()
    for _ in range(count):
        if time.monotonic() - started > limit:
            break
        try:
            sock, status, _ = open_ws(port, timeout=5)
        except OSError:
            refused += 1
            continue
        if status == 101:
            opened.append(sock)
        else:
            refused += 1
            sock.close()
    return opened, refused, time.monotonic() - started


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


# -- the measurements ------------------------------------------------------------------------

def idle(count: int, seconds: float) -> dict[str, Any]:
    with sandbox() as (process, _, port):
        quiet = cpu_percent(process.pid, seconds)
        sockets, refused, _ = open_many(port, count, 120)
        time.sleep(1)
        busy = cpu_percent(process.pid, seconds)
        row = {'connections': len(sockets), 'refused': refused, 'cpu_none': quiet,
               'cpu': busy, 'rss': memory_mib(process.pid)}
        for sock in sockets:
            sock.close()
    return row


def silent(count: int) -> dict[str, Any]:
    import requests

    with sandbox() as (process, url, port):
        sockets, refused, took = open_many(port, count, 120)
        before = cpu_seconds(process.pid)
        started = time.monotonic()
        try:
            reply = requests.get(url + '/0/public/Time', timeout=10)
            rest = f'HTTP {reply.status_code} in {1000 * (time.monotonic() - started):.0f} ms'
        except requests.RequestException as exc:
            rest = f'failed ({type(exc).__name__})'
        try:
            newcomer, status, first = open_ws(port)
            while status == 101 and b'"status"' not in first:
                more = newcomer.recv(4096)
                if not more:
                    break
                first += more
            greeted = b'"status"' in first
            newcomer.close()
            websocket = f'HTTP {status}, status message {"received" if greeted else "missing"}'
        except OSError as exc:
            websocket = f'failed ({type(exc).__name__})'
        time.sleep(2)
        used = 100 * (cpu_seconds(process.pid) - before) / (time.monotonic() - started)
        row = {'connections': len(sockets), 'refused': refused, 'open_seconds': took,
               'rest': rest, 'websocket': websocket, 'cpu': used}
        for sock in sockets:
            sock.close()
    return row


def closed(sock: socket.socket) -> bool:
    """Whether the sandbox has closed ``sock`` (what it sent before is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(1 << 16):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def unfinished_frame(size: int) -> bytes:
    """A masked text frame of ``size`` bytes (under 64 KiB), all but its last byte."""
    mask = os.urandom(4)
    head = b'\x81' + bytes([0x80 | 126]) + struct.pack('!H', size) + mask
    return head + bytes(b ^ mask[i % 4] for i, b in enumerate(b'x' * (size - 1)))


def unfinished(count: int) -> dict[str, Any]:
    """``count`` connections, each holding an unfinished 60 KiB message."""
    import requests

    partial = unfinished_frame(60 * 1024)
    with sandbox() as (process, url, port):
        before = memory_mib(process.pid)
        sockets = []
        for _ in range(count):
            try:
                sock, status, _ = open_ws(port, timeout=5)
                sock.sendall(partial)
                sockets.append(sock)
            except OSError:
                continue
        time.sleep(2)
        rss = memory_mib(process.pid)
        cut = sum(map(closed, sockets))
        try:
            reply = requests.get(url + '/0/public/Time', timeout=10)
            rest = f'HTTP {reply.status_code}'
        except requests.RequestException as exc:
            rest = f'failed ({type(exc).__name__})'
        try:
            newcomer, status, _ = open_ws(port)
            newcomer.close()
            websocket = f'HTTP {status}'
        except OSError as exc:
            websocket = f'failed ({type(exc).__name__})'
        row = {'connections': len(sockets), 'before': before, 'rss': rss, 'cut': cut,
               'rest': rest, 'websocket': websocket}
        for sock in sockets:
            sock.close()
    return row


def charts() -> list[dict[str, Any]]:
    import requests

    rows = []
    for query in ('from=0', 'from=-3e9'):
        with sandbox() as (process, url, _):
            before = memory_mib(process.pid, 'VmHWM')
            try:
                reply = requests.get(f'{url}/api/charts/v1/trade/PF_XBTUSD/1m?{query}',
                                     timeout=300)
                body = reply.json()
                found = (f'{len(body["candles"])} candles' if 'candles' in body
                         else body.get('error'))
                answer = f'HTTP {reply.status_code}, {found}'
            except (requests.RequestException, ValueError) as exc:
                answer = f'failed ({type(exc).__name__})'
            rows.append({'query': query, 'answer': answer, 'before': before,
                         'peak': memory_mib(process.pid, 'VmHWM')})
    return rows


FUTURES_SERVER = """
import json, sys
from krakenex.sandbox import Sandbox
with Sandbox(tier=None) as sandbox:
    sandbox.futures.budget = None
    print(json.dumps([sandbox.futures_url, sandbox.futures.key, sandbox.futures.secret]),
          flush=True)
    sys.stdin.read()
"""


def futures_requests(calls: int) -> list[dict[str, Any]]:
    """Requests a second and sandbox CPU per request of three futures endpoints."""
    from krakenex.futures import FuturesAPI

    process = subprocess.Popen([sys.executable, '-c', FUTURES_SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    rows = []
    try:
        assert process.stdout is not None
        url, key, secret = json.loads(process.stdout.readline())
        order = {'orderType': 'lmt', 'symbol': 'PF_XBTUSD', 'side': 'buy', 'size': '0.001',
                 'limitPrice': '1000'}
        with FuturesAPI(key, secret, uri=url) as api:
            for name, call in (
                    ('openorders', lambda: api.query_private('openorders')),
                    ('sendorder', lambda: api.query_private('sendorder', order)),
                    ('tickers', lambda: api.query_public('tickers'))):
                for _ in range(10):
                    call()
                cpu, wall = cpu_seconds(process.pid), time.perf_counter()
                for _ in range(calls):
                    call()
                wall = time.perf_counter() - wall
                rows.append({'endpoint': name, 'per_second': calls / wall,
                             'cpu_ms': 1000 * (cpu_seconds(process.pid) - cpu) / calls})
    finally:
        process.communicate('', timeout=30)
    return rows


def serialization(repeats: int) -> list[dict[str, Any]]:
    from krakenex.sandbox import Sandbox
    from krakenex.sandbox import feed as feed_module
    from krakenex.sandbox.market import PAIRS

    # the feed's serializer: ``dumps`` (``_dumps`` in checkouts before it was made linear)
    dumps = getattr(feed_module, 'dumps', None) or feed_module._dumps  # type: ignore[attr-defined]
    raw = getattr(feed_module, 'Raw', None) or feed_module._Raw  # type: ignore[attr-defined]
    market = Sandbox().exchange.market
    rows = []
    for depth in (10, 100, 1000):
        book = market.top(PAIRS['XXBTZUSD'], depth)
        message = {'channel': 'book', 'type': 'snapshot', 'data': [{
            'symbol': 'BTC/USD', 'checksum': 1, 'timestamp': '2026-01-01T00:00:00.000000Z',
            'bids': [{'price': raw(p), 'qty': raw(q)} for p, q in book['bids']],
            'asks': [{'price': raw(p), 'qty': raw(q)} for p, q in book['asks']]}]}
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            text = dumps(message)
            times.append(time.perf_counter() - started)
        rows.append({'depth': depth, 'ms': 1000 * min(times), 'bytes': len(text)})
    return rows


def slow_readers(hogs: int, burst_count: int, seconds: float) -> dict[str, Any]:
    from websockets.sync.client import connect

    with sandbox('--motion', '0.05') as (process, url, port):
        def messages() -> int:
            with connect(url.replace('http', 'ws', 1) + '/v2', max_size=None) as client:
                client.send(BOOK)
                count, end = 0, time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    try:
                        text = str(client.recv(timeout=left))
                    except TimeoutError:
                        break
                    count += text.startswith('{"channel": "book"')
                return count

        def subscribe_and_never_read(count: int) -> None:
            for _ in range(count):
                sock, _, _ = open_ws(port, extra=frame(BOOK))
                silent_readers.append(sock)

        alone = messages()
        silent_readers: list[socket.socket] = []
        subscribe_and_never_read(hogs)
        time.sleep(3)
        before = cpu_seconds(process.pid)
        crowded = messages()
        used = 100 * (cpu_seconds(process.pid) - before) / seconds
        burst = threading.Timer(min(0.5, seconds / 4), subscribe_and_never_read,
                                args=(burst_count,))
        burst.start()
        during = messages()
        burst.join()
        row = {'alone': alone, 'crowded': crowded, 'hogs': hogs, 'cpu': used,
               'rss': memory_mib(process.pid), 'burst': burst_count, 'during': during}
        for sock in silent_readers:
            sock.close()
    return row


def source(checkout: Path) -> str:
    """The checkout's commit (and whether it has changes), or its path."""
    try:
        commit = subprocess.run(['git', '-C', str(checkout), 'rev-parse', '--short', 'HEAD'],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(checkout), 'status', '--porcelain',
                                'krakenex'], capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(checkout)
    return f'commit {commit}' + (' with changes' if dirty else '')


# -- the report ------------------------------------------------------------------------------

def report(results: dict[str, Any], idle_seconds: float, read_seconds: float) -> str:
    i, s, r = results['idle'], results['silent'], results['slow']
    lines = ['# The sandbox as a server', '',
             f'Python {sys.version.split()[0]}, {os.cpu_count()} cores; krakenex at '
             f'{results["source"]}. Serialization: the fastest of the runs.', '',
             '| measurement | result |', '|---|---|',
             f'| CPU, no connection ({idle_seconds:.0f} s) | {i["cpu_none"]:.1f}% |',
             f'| CPU, {i["connections"]} idle WebSocket connections ({idle_seconds:.0f} s) | '
             f'{i["cpu"]:.1f}% (RSS {i["rss"]:.0f} MiB) |',
             f'| {s["connections"]} silent WebSocket connections opened '
             f'({s["refused"]} refused) | in {s["open_seconds"]:.1f} s |',
             f'| REST `Time` beside them | {s["rest"]} |',
             f'| a new WebSocket client beside them | {s["websocket"]} |',
             f'| CPU meanwhile | {s["cpu"]:.0f}% |']
    u = results['unfinished']
    lines.append(f'| {u["connections"]} connections holding an unfinished 60 KiB message | '
                 f'sandbox RSS {u["before"]:.0f} -> {u["rss"]:.0f} MiB, {u["cut"]} '
                 f'disconnected; REST {u["rest"]}, new WebSocket {u["websocket"]} |')
    for row in results['charts']:
        lines.append(f'| futures charts `1m?{row["query"]}` | {row["answer"]}; peak memory '
                     f'{row["before"]:.0f} -> {row["peak"]:.0f} MiB |')
    for row in results['futures']:
        lines.append(f'| futures `{row["endpoint"]}` | {row["per_second"]:.0f} requests/s, '
                     f'sandbox CPU {row["cpu_ms"]:.2f} ms a request |')
    previous = None
    for row in results['serialization']:
        growth = f', {row["ms"] / previous:.1f}x the depth before' if previous else ''
        lines.append(f'| book snapshot to JSON, depth {row["depth"]} ({row["bytes"]:,} bytes) | '
                     f'{row["ms"]:.2f} ms{growth} |')
        previous = row['ms']
    lines += [f'| book messages to a reader in {read_seconds:.0f} s, depth 1000, alone | '
              f'{r["alone"]} |',
              f'| the same beside {r["hogs"]} clients that never read | {r["crowded"]} '
              f'(sandbox CPU {r["cpu"]:.0f}%, RSS {r["rss"]:.0f} MiB) |',
              f'| the same while {r["burst"]} more subscribe at depth 1000 and never read | '
              f'{r["during"]} |', '']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 100 connections, 1 s windows, no file written')
    parser.add_argument('--output', type=Path,
                        help='where to write the table (default: benchmarks/SANDBOX_RESULTS.md, '
                        'none with --quick)')
    args = parser.parse_args(argv)
    idle_count, silent_count = (100, 200) if args.quick else (1000, 2000)
    idle_seconds = read_seconds = 1.0 if args.quick else 5.0
    raise_file_limit(2 * silent_count + 500)
    import krakenex

    results = {
        'source': source(Path(krakenex.__file__).resolve().parent.parent),
        'idle': idle(idle_count, idle_seconds),
        'silent': silent(silent_count),
        'unfinished': unfinished(silent_count),
        'charts': charts(),
        'futures': futures_requests(100 if args.quick else 500),
        'serialization': serialization(5 if args.quick else 25),
        'slow': slow_readers(4 if args.quick else 20, 10 if args.quick else 50, read_seconds),
    }
    text = report(results, idle_seconds, read_seconds)
    print(text)
    output = args.output or (None if args.quick else REPO / 'benchmarks' / 'SANDBOX_RESULTS.md')
    if output is not None:
        output.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
