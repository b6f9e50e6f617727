"""Place an order once, even when its reply is lost: look it up before sending it again.

    python examples/reconcile.py --pair XBTUSD --volume 0.001
    python examples/reconcile.py --sandbox     # a local sandbox that loses the first reply

krakenex never re-sends an order whose reply was lost: it raises an
OutcomeUnknownError instead, because Kraken may have placed it. This script
gives the order a cl_ord_id of its own, and after such an error asks Kraken
for it: found means placed, not found means it is safe to send it again.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import uuid

from krakenex import API, OutcomeUnknownError, unwrap


def place_once(api: API, order: dict[str, str]) -> str:
    """Place ``order`` and return its txid; after a lost reply, find it instead of re-sending."""
    order = {**order, 'cl_ord_id': str(uuid.uuid4())}
    for _attempt in range(3):
        try:
            return str(unwrap(api.query_private('AddOrder', order))['txid'][0])
        except OutcomeUnknownError as lost:
            print(f'the reply to AddOrder was lost ({lost.__cause__ or lost}); '
                  f'looking it up by cl_ord_id {order["cl_ord_id"]}')
            # The lookup's nonce is above the lost call's, so Kraken can no longer accept
            # the lost call once this is answered: not found means never placed.
            found = api.reconcile(lost)
            if found:
                txid = next(iter(found))
                print(f'found {txid}: it was placed, so it is not sent again')
                return txid
            print('not found: it was not placed, so it is sent again')
    raise SystemExit('AddOrder kept failing; check the account before trying again')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pair', default='XBTUSD')
    parser.add_argument('--volume', help="the order's size (default: the pair's minimum)")
    parser.add_argument('--key-file', default='kraken.key')
    parser.add_argument('--uri', default='https://api.kraken.com', help='the server to ask')
    parser.add_argument('--sandbox', action='store_true',
                        help='start a local sandbox that loses the first AddOrder reply')
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.sandbox:
            from krakenex.sandbox import Sandbox

            sandbox = stack.enter_context(Sandbox())
            sandbox.inject('reply_lost', method='AddOrder')  # placed, but the reply never comes
            api = stack.enter_context(API(sandbox.key, sandbox.secret, uri=sandbox.url))
        else:
            api = stack.enter_context(API(uri=args.uri))  # the key from the environment
            if not api.key:
                api.load_key(args.key_file)

        pair, info = next(iter(unwrap(api.query_public('AssetPairs', {'pair': args.pair})).items()))
        bid = decimal.Decimal(unwrap(api.query_public('Ticker', {'pair': pair}))[pair]['b'][0])
        price = (bid / 2).quantize(decimal.Decimal(1).scaleb(-info['pair_decimals']))
        volume = args.volume or info['ordermin']
        txid = place_once(api, {'pair': pair, 'type': 'buy', 'ordertype': 'limit',
                                'price': str(price), 'volume': volume})
        print(f'order {txid} is placed, once')
        unwrap(api.query_private('CancelOrder', {'txid': txid}))
        print(f'order {txid} is canceled')


if __name__ == '__main__':
    main()
