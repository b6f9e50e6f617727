"""Place a limit order far from the market, look it up, then cancel it.

    python examples/limit_order.py --pair XBTUSD --volume 0.001
    python examples/limit_order.py --sandbox           # paper trading on a local sandbox

Against Kraken this places a real order (a buy at half the best bid, so it
does not fill) and cancels it a moment later. The key is read from
KRAKEN_API_KEY and KRAKEN_API_SECRET, or from the key file.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import random

from krakenex import API, unwrap


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pair', default='XBTUSD')
    parser.add_argument('--volume', help="the order's size (default: the pair's minimum)")
    parser.add_argument('--key-file', default='kraken.key')
    parser.add_argument('--uri', default='https://api.kraken.com', help='the server to ask')
    parser.add_argument('--sandbox', action='store_true', help='start a local sandbox and ask it')
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.sandbox:
            from krakenex.sandbox import Sandbox

            sandbox = stack.enter_context(Sandbox())
            api = stack.enter_context(API(sandbox.key, sandbox.secret, uri=sandbox.url))
        else:
            api = stack.enter_context(API(uri=args.uri))  # the key from the environment
            if not api.key:
                api.load_key(args.key_file)

        # The pair's price decimals and the best bid decide a valid price that will not fill.
        pair, info = next(iter(unwrap(api.query_public('AssetPairs', {'pair': args.pair})).items()))
        bid = decimal.Decimal(unwrap(api.query_public('Ticker', {'pair': pair}))[pair]['b'][0])
        price = (bid / 2).quantize(decimal.Decimal(1).scaleb(-info['pair_decimals']))
        volume = args.volume or info['ordermin']

        # A userref of our own finds the order again, even if the reply were lost.
        userref = random.randrange(1, 2**31)
        placed = unwrap(api.query_private('AddOrder', {
            'pair': pair, 'type': 'buy', 'ordertype': 'limit', 'price': str(price),
            'volume': volume, 'userref': userref}))
        txid = placed['txid'][0]
        print(f'placed {txid}: {placed["descr"]["order"]} (userref {userref})')

        open_orders = unwrap(api.query_private('OpenOrders', {'userref': userref}))['open']
        print(f'open: {txid in open_orders}')

        canceled = unwrap(api.query_private('CancelOrder', {'txid': txid}))
        print(f'canceled: {canceled["count"]} order')
        order = unwrap(api.query_private('QueryOrders', {'txid': txid}))[txid]
        print(f'{txid} is now {order["status"]}')


if __name__ == '__main__':
    main()
