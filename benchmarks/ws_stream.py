"""Messages per second through WS and AsyncWS against a bare websockets loop.

A server in a process of its own (127.0.0.1) answers a ``book`` subscription
with the recorded feed of ``ws_book.py`` (depth 10, Kraken's checksum on every
message) as fast as the socket takes it. Each client subscribes and reads every
message:

* bare websockets: ``recv()`` and :func:`krakenex.ws.protocol.decode` (Decimal numbers),
  nothing else;
* AsyncWS: the stream, with the book maintained and verified on every message;
* WS: the same through its thread, read with ``for message in ws``.

Run from the repository root: ``python benchmarks/ws_stream.py [--messages N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ws_book

SYMBOL = ws_book.SPOT[0]  # the pair of the recorded feed


async def serve(count: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    feed = ws_book.record(10, count - 1)

    async def handle(connection: ServerConnection) -> None:
        async for raw in connection:
            request = json.loads(raw)
            params = request.get('params', {})
            reply = {'method': request['method'], 'req_id': request.get('req_id'),
                     'success': True, 'result': {'channel': params.get('channel')}}
            if params.get('channel') == 'instrument':
                await connection.send(json.dumps(reply))
                await connection.send(json.dumps({'channel': 'instrument', 'type': 'snapshot',
                                                  'data': {'pairs': [{
                                                      'symbol': SYMBOL,
                                                      'price_precision': 1,
                                                      'qty_precision': 8}]}}))
            elif params.get('channel') == 'book':
                reply['result']['symbol'] = SYMBOL
                await connection.send(json.dumps(reply))
                for line in feed:
                    await connection.send(line)

    async with serve(handle, '127.0.0.1', 0, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


BARE = 'bare websockets loop (recv + decode with Decimal)'


async def bare(url: str, count: int) -> float:
    from websockets.asyncio.client import connect

    from krakenex.ws.protocol import decode

    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({'method': 'subscribe', 'req_id': 1, 'params': {
            'channel': 'book', 'symbol': [SYMBOL]}}))
        decode(await ws.recv())  # the ack
        started = time.perf_counter()
        for _ in range(count):
            decode(await ws.recv())
        return time.perf_counter() - started


async def async_ws(url: str, count: int) -> float:
    from krakenex.ws import AsyncWS

    async with AsyncWS(url=url) as ws:
        await ws.subscribe('book', symbol=[SYMBOL])
        started, seen = time.perf_counter(), 0
        async for message in ws:
            seen += message.get('channel') == 'book'
            if seen == count:
                break
        elapsed = time.perf_counter() - started
        assert ws.book(SYMBOL).checksum
        return elapsed


def sync_ws(url: str, count: int) -> float:
    from krakenex.ws import WS

    with WS(url=url) as ws:
        ws.subscribe('book', symbol=[SYMBOL])
        started, seen = time.perf_counter(), 0
        for message in ws:
            seen += message.get('channel') == 'book'
            if seen == count:
                break
        elapsed = time.perf_counter() - started
        assert ws.book(SYMBOL).checksum
        return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=20000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--output',
                        default=str(ws_book.REPO / 'benchmarks' / 'WS_STREAM_RESULTS.md'))
    parser.add_argument('--serve', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    count = args.messages
    with subprocess.Popen([sys.executable, __file__, '--serve', str(count)],
                          stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = f'ws://127.0.0.1:{server.stdout.readline().strip()}/v2'
            runs = {
                BARE:
                    lambda: asyncio.run(bare(url, count)),
                'AsyncWS (book maintained and verified)':
                    lambda: asyncio.run(async_ws(url, count)),
                'WS (same, through its thread)': lambda: sync_ws(url, count),
            }
            rates = {name: count / min(run() for _ in range(args.repeats))
                     for name, run in runs.items()}
        finally:
            server.kill()
    floor = rates[BARE]
    table = [f'# WebSocket stream benchmark\n\n{count} book messages (depth 10) per run, best '
             f'of {args.repeats}; python benchmarks/ws_stream.py\n',
             '| client | messages/s | bare loop / client |', '|---|---|---|']
    table += [f'| {name} | {rate:,.0f} | {floor / rate:.1f}x |' for name, rate in rates.items()]
    print('\n'.join(table))
    Path(args.output).write_text('\n'.join(table) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
