"""Book maintenance with Kraken's checksum: updates per second on one core, side by side.

One recorded v2 ``book`` feed (a snapshot, then updates of one to three levels,
deletions and levels moving into range included, every message with Kraken's
checksum computed from its wire text) is replayed, at depth 10 and at depth 1000,
through:

* a floor that only decodes the JSON (``json.loads``, floats; and with Decimal
  numbers, which a correct checksum needs, through
  :func:`krakenex.ws.protocol.decode`, the fastest such decoding we know: the
  JSON scanner alone, without ``JSONDecoder.decode``'s whitespace handling);
* krakenex: decode with Decimal, :meth:`krakenex.ws.book.Book.apply`, checksum on
  every message;
* python-kraken-sdk's ``SpotOrderBookClient.on_message`` (3.5.1, in its own
  virtual environment under ``.bench-venvs/``; skipped if it cannot be installed).

Then the same for a derivatives feed of Kraken's Unified WebSocket (``--derivatives``):
the recorded feed again at a futures contract's precision (whole-dollar ticks,
quantities to 4 decimals), and a feed recorded from the sandbox's Unified WebSocket
over a real socket on 127.0.0.1 (each price move there reprices the whole book, so
every update carries every level of it), replayed from its snapshot a number of
times. No other Python client speaks the Unified WebSocket, so there is no peer.

Run from the repository root::

    python benchmarks/ws_book.py            # writes benchmarks/WS_RESULTS.md
    python benchmarks/ws_book.py --quick    # a smoke run, no peers, no file
    python benchmarks/ws_book.py --derivatives   # the Unified WebSocket's feeds

Nothing reaches the network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / '.bench-venvs' / 'python-kraken-sdk'
PEER = 'python-kraken-sdk==3.5.1'
#: A market of the recorded feed: symbol, tick, price and quantity decimals.
Market = tuple[str, Decimal, int, int]
SPOT: Market = ('BTC/USD', Decimal('0.1'), 1, 8)
#: A perpetual's book on the Unified WebSocket, at the sandbox's PF_XBTUSD precisions.
DERIVATIVES: Market = ('PF_XBTUSD', Decimal('1'), 0, 4)


def record(depth: int, updates: int, seed: int = 7, market: Market = SPOT) -> list[str]:
    """A feed as Kraken would send it to a depth-``depth`` subscriber: JSON text lines."""
    symbol, tick, price_decimals, qty_decimals = market
    rng = random.Random(seed)
    mid = Decimal('60000.0')
    sides = {'bids': {mid - tick * (i + 1): None for i in range(depth + 50)},
             'asks': {mid + tick * (i + 1): None for i in range(depth + 50)}}
    for side in sides.values():
        for price in side:
            side[price] = Decimal(rng.randint(1, 10**9)).scaleb(-qty_decimals)

    def top(name: str) -> list[Decimal]:
        return sorted(sides[name], reverse=name == 'bids')[:depth]

    def text(value: Decimal, places: int) -> str:
        return format(value, f'.{places}f')

    def crc() -> int:
        def part(name: str) -> str:
            return ''.join(text(p, price_decimals).replace('.', '').lstrip('0')
                           + text(sides[name][p], qty_decimals).replace('.', '').lstrip('0')
                           for p in top(name)[:10])
        return zlib.crc32((part('asks') + part('bids')).encode())

    def message(kind: str, levels: dict[str, list[tuple[Decimal, Decimal]]]) -> str:
        body = {name: ','.join(f'{{"price":{text(p, price_decimals)},'
                               f'"qty":{text(q, qty_decimals)}}}' for p, q in levels[name])
                for name in ('bids', 'asks')}
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
                f'"bids":[{body["bids"]}],"asks":[{body["asks"]}],"checksum":{crc()},'
                f'"timestamp":"2026-11-30T05:00:00.000000Z"}}]}}')

    lines = [message('snapshot', {n: [(p, sides[n][p]) for p in top(n)]
                                  for n in ('bids', 'asks')})]
    for _ in range(updates):
        name = rng.choice(('bids', 'asks'))
        before = set(top(name))
        changed: list[tuple[Decimal, Decimal]] = []
        for _ in range(rng.randint(1, 3)):
            ladder = top(name)
            roll = rng.random()
            if roll < 0.25 and len(sides[name]) > depth + 5:  # a level goes away
                price = rng.choice(ladder[:min(20, len(ladder))])
                del sides[name][price]
                changed.append((price, Decimal(0)))
            else:  # a level changes or appears within the top 20 ticks
                sign = -1 if name == 'bids' else 1
                price = mid + sign * tick * rng.randint(1, min(20, depth + 10))
                qty = Decimal(rng.randint(1, 10**9)).scaleb(-qty_decimals)
                sides[name][price] = qty
                changed.append((price, qty))
        after = top(name)
        entering = [(p, sides[name][p]) for p in after
                    if p not in before and all(p != c for c, _ in changed)]
        levels = {'bids': [], 'asks': []}
        levels[name] = [(p, q) for p, q in changed if q == 0 or p in after] + entering
        lines.append(message('update', levels))
    return lines


def replay_floor(lines: list[str], decimal: bool) -> float:
    from krakenex.ws.protocol import decode as decode_decimal

    decode = decode_decimal if decimal else json.loads
    started = time.perf_counter()
    for line in lines:
        decode(line)
    return time.perf_counter() - started


def replay_krakenex(lines: list[str], depth: int,
                    market: Market = SPOT) -> tuple[float, int]:
    from krakenex.ws.book import Book
    from krakenex.ws.protocol import decode

    symbol, _, price_decimals, qty_decimals = market
    book = Book(symbol, depth, price_precision=price_decimals, qty_precision=qty_decimals)
    verified = 0
    started = time.perf_counter()
    for line in lines:
        message = decode(line)
        for data in message['data']:
            verified += book.apply(data, message['type'] == 'snapshot') == 'verified'
    return time.perf_counter() - started, verified


def replay_python_kraken_sdk(lines: list[str], depth: int) -> tuple[float, int]:
    import kraken.spot.orderbook as orderbook
    from kraken.spot import SpotOrderBookClient

    async def no_wait(seconds: float) -> None:
        return None

    # After a checksum mismatch it waits 3 s and subscribes again over the network:
    # here that costs nothing, so the figure is its bookkeeping alone.
    orderbook.asyncio_sleep = no_wait

    class Counted(SpotOrderBookClient):  # type: ignore[misc]
        valid = 0

        async def on_book_update(self, pair: str, message: dict[str, Any]) -> None:
            if 'error' not in message:
                Counted.valid += bool(self.get(pair) and self.get(pair)['valid'])

        async def remove_book(self, pairs: list[str]) -> None:
            return None

        async def add_book(self, pairs: list[str]) -> None:
            return None

    async def run() -> float:
        Counted.valid = 0
        client = Counted(depth=depth)
        # the precisions it would fetch from Kraken's AssetPairs, given here: no network
        client._SpotOrderBookClient__book[SPOT[0]] = {
            'bid': {}, 'ask': {}, 'valid': True, 'price_decimals': SPOT[2],
            'qty_decimals': SPOT[3]}
        started = time.perf_counter()
        for line in lines:
            await client.on_message(json.loads(line))  # its connector decodes with json.loads
        elapsed = time.perf_counter() - started
        await client.close()
        return elapsed

    seconds = asyncio.run(run())
    return seconds, Counted.valid


def record_sandbox(depth: int, updates: int, seed: int = 7) -> list[str]:
    """A ``PF_XBTUSD`` book feed recorded from the sandbox's Unified WebSocket: its snapshot,
    then one update for each price move made on the futures sandbox."""
    from websockets.sync.client import connect

    from krakenex.sandbox import Sandbox

    rng = random.Random(seed)
    lines: list[str] = []
    with Sandbox() as sb, connect(sb.unified_url, max_size=None) as socket:
        socket.send(json.dumps({'method': 'subscribe', 'req_id': 1, 'params': {
            'channel': 'book', 'symbol': [DERIVATIVES[0]], 'depth': depth,
            'asset_class': 'derivatives'}}))
        while len(lines) <= updates:
            if lines:
                sb.futures.set_price(DERIVATIVES[0], 60000 + rng.randint(-100, 100))
            while True:
                text = socket.recv(10)
                if isinstance(text, str) and text.startswith('{"channel": "book"'):
                    lines.append(text)
                    break
    return lines


def derivatives(args: argparse.Namespace) -> str:
    """The Unified WebSocket's rows: the recorded feed at a contract's precision, and the
    sandbox's feed replayed from its snapshot ``passes`` times."""
    updates = 500 if args.quick else args.updates
    rows = []
    for depth in (10, 1000):
        for name, market in (('spot BTC/USD', SPOT), ('derivatives PF_XBTUSD', DERIVATIVES)):
            lines = record(depth, updates, market=market)
            rows.append(derivatives_row(f'recorded feed, {name}, depth {depth}', lines, depth,
                                        args.repeats, market))
    recorded = record_sandbox(10, 20 if args.quick else 200)
    passes = 2 if args.quick else 20
    rows.append(derivatives_row(f'sandbox feed, PF_XBTUSD, depth 10, {len(recorded) - 1} '
                                f'updates replayed {passes} times', recorded * passes, 10,
                                args.repeats, DERIVATIVES))
    out = ['# WebSocket book benchmark: a derivatives feed (Unified WebSocket)', '',
           "Book updates per second on one core, Kraken's checksum on every message at the "
           'precision of the market (PF_XBTUSD: 0 price decimals, 4 quantity decimals; '
           'BTC/USD: 1 and 8), best of the repeats; the spot rows are measured in the same '
           'run, for comparison. python benchmarks/ws_book.py --derivatives', '',
           '| feed | messages | bytes per message | floor: decode with Decimal | krakenex | '
           'floor(Decimal) / krakenex |', '|---|---|---|---|---|---|']
    out += [f"| {r['feed']} | {r['messages']} | {r['bytes']:,.0f} | {r['floor_decimal']:,.0f} | "
            f"{r['krakenex']:,.0f} | {r['floor_decimal'] / r['krakenex']:.1f}x |" for r in rows]
    out += ['', 'krakenex verified every message against its checksum. No other Python '
            'client speaks the Unified WebSocket (python-kraken-sdk and ccxt have none), so '
            'there is no peer to compare with.']
    return '\n'.join(out)


def derivatives_row(feed: str, lines: list[str], depth: int, repeats: int,
                    market: Market) -> dict[str, Any]:
    count = len(lines)
    floor_decimal = best(repeats, lambda: replay_floor(lines, True))
    ours, verified = best(repeats, lambda: replay_krakenex(lines, depth, market))
    assert verified == count, f'krakenex verified {verified} of {count} messages'
    return {'feed': feed, 'messages': count, 'bytes': sum(map(len, lines)) / count,
            'floor_decimal': count / floor_decimal, 'krakenex': count / ours}


def best(repeats: int, run: Any) -> Any:
    results = [run() for _ in range(repeats)]
    return min(results, key=lambda r: r[0] if isinstance(r, tuple) else r)


def peer(lines_file: Path, depth: int, repeats: int) -> tuple[float, int] | str:
    """python-kraken-sdk's figures from its own environment, or why there are none."""
    python = VENV / 'bin' / 'python'
    if not python.exists():
        made = subprocess.run([sys.executable, '-m', 'venv', str(VENV)], capture_output=True)
        installed = made.returncode == 0 and subprocess.run(
            [str(python), '-m', 'pip', 'install', '-q', PEER], capture_output=True).returncode == 0
        if not installed:
            return f'{PEER} could not be installed'
    done = subprocess.run([str(python), __file__, '--worker', str(lines_file), str(depth),
                           str(repeats)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return f'failed: {done.stderr.strip().splitlines()[-1:]}'
    seconds, valid = json.loads(done.stdout)
    return seconds, valid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--updates', type=int, default=20000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--quick', action='store_true', help='a smoke run: few updates, no peers')
    parser.add_argument('--output', default=str(REPO / 'benchmarks' / 'WS_RESULTS.md'))
    parser.add_argument('--worker', nargs=3, help=argparse.SUPPRESS)
    parser.add_argument('--derivatives', action='store_true',
                        help="a derivatives feed of the Unified WebSocket instead; writes "
                             "benchmarks/WS_UWS_RESULTS.md")
    args = parser.parse_args(argv)
    if args.derivatives:
        table = derivatives(args)
        print(table)
        if not args.quick:
            (REPO / 'benchmarks' / 'WS_UWS_RESULTS.md').write_text(table + '\n')
        return 0
    if args.worker:
        path, depth, repeats = args.worker
        lines = Path(path).read_text().splitlines()
        print(json.dumps(best(int(repeats), lambda: replay_python_kraken_sdk(lines, int(depth)))))
        return 0
    updates = 500 if args.quick else args.updates
    rows = []
    for depth in (10, 1000):
        lines = record(depth, updates)
        count = len(lines)
        floor = best(args.repeats, lambda lines=lines: replay_floor(lines, False))
        floor_decimal = best(args.repeats, lambda lines=lines: replay_floor(lines, True))
        ours, verified = best(args.repeats,
                              lambda lines=lines, depth=depth: replay_krakenex(lines, depth))
        assert verified == count, f'krakenex verified {verified} of {count} messages'
        row = {'depth': depth, 'messages': count, 'floor': count / floor,
               'floor_decimal': count / floor_decimal, 'krakenex': count / ours,
               'peer': None, 'peer_valid': None, 'peer_note': 'not run (--quick)'}
        if not args.quick:
            with tempfile.NamedTemporaryFile('w', suffix='.jsonl', delete=False) as f:
                f.write('\n'.join(lines))
            result = peer(Path(f.name), depth, 1 if depth == 1000 else args.repeats)
            Path(f.name).unlink()
            if isinstance(result, str):
                row['peer_note'] = result
            else:
                row['peer'], row['peer_valid'] = count / result[0], result[1]
                row['peer_note'] = ''
        rows.append(row)
    table = report(rows)
    print(table)
    if not args.quick:
        Path(args.output).write_text(table + '\n')
    return 0


def report(rows: list[dict[str, Any]]) -> str:
    out = ['# WebSocket book benchmark', '',
           'Book updates per second on one core, same recorded feed (snapshot + updates, '
           "Kraken's checksum on every message), best of the repeats. "
           'python benchmarks/ws_book.py', '',
           '| depth | messages | floor: json.loads | floor: decode with Decimal | krakenex | '
           'python-kraken-sdk 3.5.1 | krakenex / sdk | floor(Decimal) / krakenex |',
           '|---|---|---|---|---|---|---|---|']
    for r in rows:
        sdk = f"{r['peer']:,.0f}" if r['peer'] else r['peer_note']
        ratio = f"{r['krakenex'] / r['peer']:.1f}x" if r['peer'] else '-'
        out.append(f"| {r['depth']} | {r['messages']} | {r['floor']:,.0f} | "
                   f"{r['floor_decimal']:,.0f} | {r['krakenex']:,.0f} | {sdk} | {ratio} | "
                   f"{r['floor_decimal'] / r['krakenex']:.1f}x |")
    out += ['', 'krakenex verified every message against its checksum. '
            + ' '.join(f"python-kraken-sdk's book matched Kraken's checksum after "
                       f"{r['peer_valid']} of {r['messages']} messages at depth {r['depth']}."
                       for r in rows if r['peer_valid'] is not None)]
    if any(r['peer_valid'] is not None and r['peer_valid'] < r['messages'] for r in rows):
        out += ['', 'python-kraken-sdk cuts its book to the depth after each level rather '
                'than after the whole message, so a message that inserts one level and '
                'removes another loses the level Kraken keeps; its book then stays wrong '
                'until it subscribes again.']
    return '\n'.join(out)


if __name__ == '__main__':
    sys.exit(main())
