"""Call Kraken in a loop at the highest rate its call counter allows, and never above it.

    python examples/paced_loop.py --tier intermediate --calls 40
    python examples/paced_loop.py --sandbox        # a local sandbox keeping the same counter

Kraken counts private calls per key: +1 a call (+2 for Ledgers and
TradesHistory), minus a decay every second, up to a maximum that depends on
your verification tier. API(tier=...) waits before a call that would go over,
so a loop runs flat out until the counter is full, then at the decay rate.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from krakenex import API, unwrap
from krakenex.pacing import parse_tier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tier', type=parse_tier, default='starter',
                        help='starter, intermediate, pro, or MAX,DECAY (default starter)')
    parser.add_argument('--calls', type=int, default=25)
    parser.add_argument('--key-file', default='kraken.key')
    parser.add_argument('--uri', default='https://api.kraken.com', help='the server to ask')
    parser.add_argument('--sandbox', action='store_true',
                        help='start a local sandbox that refuses calls over the same tier')
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.sandbox:
            from krakenex.sandbox import Sandbox

            sandbox = stack.enter_context(Sandbox(tier=args.tier))
            api = stack.enter_context(API(sandbox.key, sandbox.secret, uri=sandbox.url,
                                          tier=args.tier))
        else:
            api = stack.enter_context(API(uri=args.uri, tier=args.tier))
            if not api.key:
                api.load_key(args.key_file)

        started = time.monotonic()
        for n in range(1, args.calls + 1):
            open_orders = unwrap(api.query_private('OpenOrders'))['open']
            level = api.counter.level() if api.counter else 0.0
            print(f'{time.monotonic() - started:6.2f} s  call {n:3}: {len(open_orders)} open '
                  f'orders, counter at {level:.1f}')
    print(f'{args.calls} calls in {time.monotonic() - started:.1f} s, none refused')


if __name__ == '__main__':
    main()
