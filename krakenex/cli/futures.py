"""``krakenex --futures``: every Kraken Futures call from the shell.

It reads like the request it sends::

    krakenex --futures tickers
    krakenex --futures --sandbox sendorder orderType=lmt symbol=PF_XBTUSD side=buy \
        size=1 limitPrice=1000

An endpoint name from Kraken's table (public or private, and the verb, come
from :data:`krakenex.futures.endpoints.ENDPOINTS`), then its parameters as
``name=value`` or ``name:=JSON``. The reply goes to stdout as JSON without
``result`` and ``serverTime`` (or CSV with ``--csv``); an error goes to stderr
as one line, with the exit codes of ``krakenex`` (:data:`krakenex.cli.frame.EXIT_CODES`).
A refused order (``sendStatus`` other than ``placed``) is an error too.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

from .. import order_ids
from ..futures import protocol
from .frame import (
    EXIT_OK,
    Call,
    Output,
    Parser,
    UsageError,
    add_shared_options,
    check_uri_option,
    indent,
    load_credentials,
    log_to_stderr,
    parse_params,
    run_command,
    sending_through,
    to_json,
)

__all__ = ['main']


class _FuturesCall(Call):
    """A futures call, looked up by its ``cliOrdId`` or ``order_id`` after a failure."""

    def __init__(self) -> None:
        super().__init__('krakenex')

    #: The parameters that identify an order, in the order advice names them.
    ID_NAMES = ('cliOrdId', 'order_id', 'orderId')
    ELSEWHERE = ('look in krakenex --futures openorders and krakenex --futures fills (next '
                 'time give it a cliOrdId)')

    def commands(self, ids: list[tuple[str, Any]]) -> str:
        return ' and '.join(f'krakenex --futures orders/status '
                            f'{"cliOrdIds" if name == "cliOrdId" else "orderIds"}={value}'
                            for name, value in ids)

    def outcome_message(self, exc: Any) -> str:
        return str(exc)  # the futures client names the order and how to look it up


def _parser() -> Parser:
    width = max(map(len, protocol.ENDPOINTS)) + 2
    listing = [f'  {e.name:<{width}}{"private" if e.private else "public"}, {e.verb}'
               f'{", changes state: never sent twice" if e.changes_state else ""}'
               for e in protocol.ENDPOINTS.values() if e.surface == 'derivatives']
    parser = Parser(prog='krakenex --futures', help_command='krakenex --futures',
                    allow_abbrev=False,
                     description='Call Kraken Futures: krakenex --futures ENDPOINT '
                                 '[name=value | name:=JSON ...]',
                     epilog='\n'.join([
                         f'endpoints under {protocol.SURFACES["derivatives"]} (and paths '
                         f'below the public ones, such as tickers/PF_XBTUSD):', *listing, '',
                         'credentials: --key-file, or KRAKEN_FUTURES_KEY and '
                         'KRAKEN_FUTURES_SECRET',
                         'the server: --uri, else KRAKEN_FUTURES_URL, else '
                         f'{protocol.DEFAULT_URI}', '',
                         'the exit codes are those of krakenex (krakenex --help)', '',
                         'examples:', '  krakenex --futures tickers',
                         '  krakenex --futures --sandbox accounts',
                         '  krakenex --futures --sandbox sendorder orderType=lmt '
                         'symbol=PF_XBTUSD side=buy size=1 limitPrice=1000']),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('endpoint', help="Kraken's endpoint name, such as tickers or sendorder")
    parser.add_argument('params', nargs='*', help='parameters as name=value or name:=JSON')
    call = parser.add_argument_group('the call').add_argument
    output = parser.add_argument_group('output').add_argument
    where = parser.add_argument_group('where to, and how').add_argument
    call('--verb', choices=['GET', 'POST', 'PUT', 'DELETE'],
         help="the HTTP verb, if not the one in Kraken's table")
    output('--csv', action='store_true', help='a list result as CSV')
    output('--raw', action='store_true', help="Kraken's whole reply as JSON")
    where('--sandbox', action='store_true',
          help='start the embedded sandbox for this one command and use its futures account')
    where('--uri', help='another server (default: $KRAKEN_FUTURES_URL, else '
                        f'{protocol.DEFAULT_URI})')
    where('--key-file', metavar='PATH',
          help='API key on line 1, secret on line 2 (else KRAKEN_FUTURES_KEY and '
               'KRAKEN_FUTURES_SECRET)')
    add_shared_options(call, output, where, what='ENDPOINT', tier_help=(
        "pace calls under Kraken Futures' budgets, which are the same for every account (500 "
        'per 10 s on /derivatives, 100 tokens per 10 min on /history): starter, '
        'intermediate or pro turns pacing on, none (the default) leaves it off'))
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``krakenex --futures`` with ``argv`` (without ``--futures``); the exit code.

    Failures are reported as ``krakenex`` reports them (:func:`krakenex.cli.frame.report`):
    any failure after a state-changing call may have reached Kraken exits 4.
    """
    return run_command(_FuturesCall(), _parser(), argv, _run)


def _run(args: argparse.Namespace, call: Call) -> int:
    from ..futures import FuturesAPI

    call.verbose = args.verbose
    data = parse_params(args.params)
    if args.sandbox and (args.uri or args.key_file):
        raise UsageError('--sandbox runs its own server with its own account: leave out '
                         '--uri and --key-file')
    if args.otp:
        raise UsageError("Kraken Futures' REST API takes no one-time password (its keys have "
                         'no two-factor password); leave out --otp')
    check_uri_option(args.uri)
    name, private, verb = _resolve(args)
    endpoint = protocol.lookup(name, private=private)
    changes_state = private and (endpoint.changes_state or
                                 (verb or endpoint.verb).upper() == 'PUT')
    if args.csv and changes_state:
        raise UsageError(f'--csv is for a list result (such as tickers, openorders or fills); '
                         f'{name} changes state and answers with one object: leave out --csv')
    options: dict[str, Any] = {'raise_errors': not args.raw,
                               'pace': args.tier not in (None, 'none')}
    for option in ('timeout', 'retries', 'share'):
        if getattr(args, option) is not None:
            options[option] = getattr(args, option)
    with log_to_stderr(args.verbose) as log, Output(args.output) as out, \
            _server(args.sandbox) as sandbox:
        client = FuturesAPI(uri=sandbox.futures_url if sandbox else args.uri, **options)
        if sandbox is not None:
            client.key, client.secret = sandbox.futures.key, sandbox.futures.secret
        else:  # a key for a private endpoint; without one the client refuses to send it
            load_credentials(client, args.key_file, name if private else None, call.prog,
                             missing=None, key_file_default=False)
        with client:
            query = client.query_private if private else client.query_public
            log.debug('%s %s call to %s with parameters: %s', name,
                      'private' if private else 'public', client.uri, ', '.join(data) or 'none')
            if changes_state:
                # Named here, so that the advice after a Ctrl-C can name the id too.
                data = dict(order_ids.named(name, data, order_ids.FUTURES))
                sending_through(call, client.session, name, data)
            reply = query(name, data, verb=verb)
        if args.raw:
            failed = protocol.reply_error(reply, name) or protocol.refusal(reply, name) \
                if isinstance(reply, dict) else None
            if failed is None:
                call.accepted(reply)
            else:
                call.refused = [str(failed)]
            try:
                text = to_json(reply, indent(out)) + '\n'
                call.delivering()
                out.write(text.encode())
            finally:  # Kraken's refusal still goes to stderr and sets the exit code
                if failed is not None:
                    raise failed
            return EXIT_OK
        call.accepted(reply)
        result = _result(reply)
        text = _csv(result) if args.csv else to_json(result, indent(out)) + '\n'
        call.delivering()
        out.write(text.encode())
    return EXIT_OK


def _resolve(args: argparse.Namespace) -> tuple[str, bool, str | None]:
    """The endpoint's name, whether it is private, and the verb to give the client.

    :raises UsageError: for a name Kraken's table lacks, unless ``--private`` or
        ``--public`` says how to send it, before anything is sent
    """
    name: str = args.endpoint
    if args.private and args.public:
        raise UsageError('give --private or --public, not both')
    known = protocol.known(name)
    if known is None and not (args.private or args.public):
        raise UsageError(f'{protocol.unknown_message(name)}; krakenex --futures --help lists '
                         f'them. To call one krakenex does not know, add --private (sent '
                         f'as a change: never twice) or --public')
    private = bool(args.private) or (not args.public and known is not None and known.private)
    verb = args.verb or (None if known else 'POST' if private else 'GET')
    return name, private, verb


@contextlib.contextmanager
def _server(wanted: bool) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    from ..sandbox import Sandbox

    with Sandbox() as sandbox:
        yield sandbox


def _result(reply: Any) -> Any:
    """The reply without ``result`` and ``serverTime``; a single member by itself."""
    if not isinstance(reply, dict):
        return reply
    rest = {k: v for k, v in reply.items() if k not in ('result', 'serverTime')}
    return next(iter(rest.values())) if len(rest) == 1 else rest


def _csv(result: Any) -> str:
    """A list of objects as CSV, one column per member (first seen first)."""
    if isinstance(result, dict) and len(result) == 1:
        result = next(iter(result.values()))
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise UsageError('--csv needs a list result (such as tickers, openorders or fills)')
    columns: dict[str, None] = {}
    for row in result:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, list(columns), lineterminator='\n')
    writer.writeheader()
    for row in result:
        writer.writerow({k: v if isinstance(v, str) else to_json(v) for k, v in row.items()})
    return out.getvalue()

