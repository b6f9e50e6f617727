"""Follow a pair's order book over Kraken's WebSocket and print the best bid, ask and spread.

    python examples/follow_book.py BTC/USD --seconds 60
    python examples/follow_book.py --sandbox --count 10   # a local sandbox whose price moves

Needs websockets, the ws extra: pip install '.[ws]' in a checkout of krakenex.
Public data only, no key.
krakenex checks the book against Kraken's checksum after every update, so a
line is printed only for a verified book whose best bid or ask changed.
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from krakenex.ws import URL, WS, BookUnavailableError

MOVE_EVERY = 0.5  # seconds between the sandbox's price moves in --sandbox mode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('symbol', nargs='?', default='BTC/USD', help="Kraken's v2 name: BTC/USD")
    parser.add_argument('--depth', type=int, default=10, choices=(10, 25, 100, 500, 1000))
    parser.add_argument('--count', type=int, metavar='N', help='stop after N changes')
    parser.add_argument('--seconds', type=float, metavar='S', help='stop after S seconds')
    parser.add_argument('--url', default=URL, help='the WebSocket endpoint to follow')
    parser.add_argument('--sandbox', action='store_true',
                        help='start a local sandbox whose prices move every half second')
    args = parser.parse_args(argv)
    started = time.monotonic()
    stop_at = None if args.seconds is None else started + args.seconds
    changes = 0
    try:
        with contextlib.ExitStack() as stack:
            if args.sandbox:
                from krakenex.sandbox import Sandbox

                # its prices take a seeded random step every MOVE_EVERY seconds
                sandbox = stack.enter_context(Sandbox(motion=MOVE_EVERY))
                args.url = sandbox.ws_url
            ws = stack.enter_context(WS(url=args.url))
            ws.subscribe('book', symbol=[args.symbol], depth=args.depth)
            best = None
            while args.count is None or changes < args.count:
                wait = None if stop_at is None else stop_at - time.monotonic()
                if wait is not None and wait <= 0:
                    break
                try:
                    message = ws.recv(timeout=wait)
                except TimeoutError:
                    continue
                if message.get('channel') == 'krakenex':
                    print(f'krakenex: {message["type"]}')  # a reconnect or a resync
                if message.get('channel') != 'book':
                    continue
                try:
                    book = ws.book(args.symbol)
                except BookUnavailableError:
                    continue  # not verified yet: wait for the next snapshot
                if not book.bids or not book.asks or (book.bids[0], book.asks[0]) == best:
                    continue
                best = book.bids[0], book.asks[0]
                (bid, bid_qty), (ask, ask_qty) = best
                print(f'{time.strftime("%H:%M:%S")}  {args.symbol}  bid {bid} x {bid_qty}  '
                      f'ask {ask} x {ask_qty}  spread {ask - bid}', flush=True)
                changes += 1
    except KeyboardInterrupt:
        print(f'interrupted: {changes} changes in {time.monotonic() - started:.1f} s')
        raise SystemExit(130) from None
    print(f'{changes} changes in {time.monotonic() - started:.1f} s')


if __name__ == '__main__':
    main()
