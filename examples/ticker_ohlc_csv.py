"""Save every pair's ticker and one pair's candles as CSV files.

    python examples/ticker_ohlc_csv.py XBTUSD --interval 1h --out data
    python examples/ticker_ohlc_csv.py --sandbox        # a local sandbox instead of Kraken

Needs pandas, the pandas extra: pip install '.[pandas]' in a checkout of krakenex.
Public data only, no key.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from krakenex import API, frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('pair', nargs='?', default='XBTUSD')
    parser.add_argument('--interval', default='1h', help='candle length: 1min, 15min, 1h, 1D, ...')
    parser.add_argument('--out', type=Path, default=Path('.'), help='folder for the CSV files')
    parser.add_argument('--uri', default='https://api.kraken.com', help='the server to ask')
    parser.add_argument('--sandbox', action='store_true', help='start a local sandbox and ask it')
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.sandbox:
            from krakenex.sandbox import Sandbox

            args.uri = stack.enter_context(Sandbox()).url
        api = stack.enter_context(API(uri=args.uri))

        args.out.mkdir(parents=True, exist_ok=True)
        ticker = frames.ticker(api)
        ticker.to_csv(args.out / 'ticker.csv')
        candles = frames.ohlc(api, args.pair, interval=args.interval)
        name = f'ohlc-{args.pair}-{args.interval}.csv'
        candles.to_csv(args.out / name)
    print(f'{args.out / "ticker.csv"}: {len(ticker)} pairs')
    print(f'{args.out / name}: {len(candles)} candles, '
          f'{candles.index[0]:%Y-%m-%d %H:%M} to {candles.index[-1]:%Y-%m-%d %H:%M} UTC')


if __name__ == '__main__':
    main()
