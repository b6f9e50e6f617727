"""Export every ledger entry of the account to a CSV file, page after page.

    python examples/export_ledgers.py --asset XBT --out ledgers.csv
    python examples/export_ledgers.py --sandbox          # a local sandbox, no key needed

The key is read from KRAKEN_API_KEY and KRAKEN_API_SECRET, or from the key
file (key on the first line, secret on the second). Standard library only:
krakenex.paging fetches the pages, paced under Kraken's starter tier.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys

from krakenex import API, paging

COLUMNS = ['id', 'time', 'type', 'subtype', 'asset', 'amount', 'fee', 'balance', 'refid']


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--asset', help='only this asset, such as XBT or ZUSD')
    parser.add_argument('--out', default='ledgers.csv', help='the CSV file to write')
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

        data = {'asset': args.asset} if args.asset else {}
        with open(args.out, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            count = 0
            for ledger_id, entry in paging.rows(api, 'Ledgers', data):
                # Pick columns by name: a field Kraken adds later changes nothing here.
                writer.writerow([ledger_id, *(entry.get(name, '') for name in COLUMNS[1:])])
                count += 1
    print(f'{args.out}: {count} ledger entries', file=sys.stderr)


if __name__ == '__main__':
    main()
