"""``krakenex share status|reset``: show or forget what is shared for a key.

What is shared is the key's store (:mod:`krakenex.share`): its nonce floor,
its send lock and its rate counters, for a spot key or, with ``--futures``, a
Kraken Futures key.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from .frame import (
    EXIT_OK,
    Call,
    Parser,
    add_share_option,
    check_uri_option,
    default_key_file,
    default_key_file_text,
    load_credentials,
    run_command,
    to_json,
    warn,
)

__all__ = ['main']


def main(argv: Sequence[str]) -> int:
    """Run ``krakenex share`` with ``argv`` (the arguments after ``share``); the exit code."""
    return run_command(Call(), _parser(), argv, _run)


def _parser() -> Parser:
    parser = Parser(
        prog='krakenex share', allow_abbrev=False,
        usage='krakenex share status|reset [--key-file F] [--uri URL | --futures] [--share S]',
        description='Show or forget what is shared for a key on a server: the nonce floor '
                    '(every nonce is above it), whether a call holds the key now, and the rate '
                    'counters. reset forgets the floor and the counters; the next nonce is the '
                    'clock\'s again.')
    parser.add_argument('action', choices=('status', 'reset'))
    parser.add_argument('--key-file', metavar='PATH',
                        help='API key on line 1, secret on line 2 (default: KRAKEN_API_KEY and '
                             'KRAKEN_API_SECRET, then ' + default_key_file_text() + ')')
    parser.add_argument('--uri', metavar='URL', help='the server (default: $KRAKEN_API_URL, '
                                                     'or $KRAKEN_FUTURES_URL with --futures, '
                                                     'else Kraken)')
    parser.add_argument('--futures', action='store_true',
                        help='the key of Kraken Futures (KRAKEN_FUTURES_KEY), on its server')
    add_share_option(parser.add_argument)
    return parser


def _run(args: argparse.Namespace, call: Call) -> int:
    """The key's store, shown as JSON or forgotten."""
    options: dict[str, Any] = {} if args.share is None else {'share': args.share}
    check_uri_option(args.uri)
    client: Any
    if args.futures:
        from ..futures import FuturesAPI

        client = FuturesAPI(uri=args.uri, **options)
        missing = ('krakenex share --futures needs the futures key: --key-file, or '
                   'KRAKEN_FUTURES_KEY and KRAKEN_FUTURES_SECRET')
    else:
        from ..api import API

        client = API(uri=args.uri, **options)
        missing = (f'krakenex share is a private method and needs an API key; none found in '
                   f'--key-file, KRAKEN_API_KEY and KRAKEN_API_SECRET, or {default_key_file()} '
                   f'(or try it offline with --sandbox)')
    with contextlib.closing(client):
        load_credentials(client, args.key_file, 'krakenex share', call.prog, missing=missing,
                         key_file_default=not args.futures)
        store = client._store()
        if args.action == 'reset':
            store.reset()
            warn(f'forgot the nonce floor and the rate counters in {store.where}')
            return EXIT_OK
        shown = store.status()
        shown.setdefault('server', client.uri)  # the file store keeps it; the others are told
        print(to_json(shown, 2 if sys.stdout.isatty() else None))
    return EXIT_OK
