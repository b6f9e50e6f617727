"""``krakenex METHOD``: every Kraken spot REST call from the shell.

It reads like the request it sends::

    krakenex Ticker pair=XBTUSD
    krakenex --sandbox AddOrder pair=XBTUSD type=buy ordertype=limit price=37500 volume=0.01

A method from Kraken's list (:mod:`krakenex.methods` decides public or
private), then its parameters as ``name=value``, or ``name:=JSON`` for a JSON
value. The result goes to stdout as JSON (or CSV); an error goes to stderr as
one line, and the exit code says what kind it was (:data:`~krakenex.cli.frame.EXIT_CODES`).

Only the standard library and :mod:`krakenex.methods` are imported up front,
so ``krakenex --help`` starts fast; requests, the API and the sandbox are
imported when a call is made.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import methods, order_ids
from .._tables import TABLES, table
from ..engine import parse_engine
from ..paging import PAGED, Progress, fetch_all
from ..version import __version__
from .frame import (
    EXIT_CODES,
    EXIT_OK,
    Call,
    Output,
    Parser,
    UsageError,
    add_shared_options,
    check_uri_option,
    default_key_file,
    default_key_file_text,
    indent,
    load_credentials,
    log_to_stderr,
    parse_params,
    run_command,
    sending_through,
    to_json,
    warn,
    write_text,
)

if TYPE_CHECKING:
    from ..api import API
    from ..sandbox import Sandbox

__all__ = ['main', 'method_help']


#: Kraken's public endpoints allow about one call a second per IP
#: (https://support.kraken.com/hc/en-us/articles/206548367).
PUBLIC_RATE = 1.0


#: The options of ``krakenex sandbox`` (:func:`krakenex.cli.sandbox.main`), as the usage shows
#: them; written out so that ``krakenex --help`` need not import the sandbox.
SANDBOX_OPTIONS = ('[--port N]', '[--tier T]', '[--seed S]', '[--nonce-window N]',
                   '[--motion SECONDS]', '[--env]')


#: The commands beside the REST call, as ``krakenex --help`` lists them.
COMMANDS = (
    ('krakenex --futures ENDPOINT ...', 'Kraken Futures REST (krakenex --futures --help)'),
    ('krakenex ws CHANNEL|METHOD ...', 'WebSocket v2: ticker, book, add_order, ... '
                                       '(krakenex ws --help)'),
    ('krakenex ws --unified ...', 'the Unified WebSocket (derivatives): book PF_XBTUSD, '
                                  'positions, add_order, ...'),
    ('krakenex sandbox ...', 'a local Kraken (spot, futures, WebSocket) until Ctrl-C'),
    ('krakenex share status|reset', 'show or forget what is shared for a key'),
    ('krakenex dead-man-switch ...', 'run a bot with Kraken\'s dead man\'s switch kept armed'),
)


#: Parameters that Kraken takes as a JSON list, shown as ``name:=JSON`` in help.
JSON_PARAMS = ('orders', 'cl_ord_ids')


def main(argv: Sequence[str]) -> int:
    """Run ``krakenex METHOD ...`` with ``argv``; the exit code (:data:`EXIT_CODES`)."""
    return run_command(Call(), _parser(), argv, _run)


def _run(args: argparse.Namespace, call: Call) -> int:
    """Check the input, make the call (or fetch every page) and write the result."""
    call.verbose = args.verbose
    if args.method is None:
        raise UsageError('no method given: try krakenex Time, krakenex --sandbox Balance, '
                         'or krakenex --help for the list')
    if args.method == 'help':
        return _print_help(args.params)
    if args.method == 'sandbox':
        raise UsageError(f'sandbox takes its own options and goes first: '
                         f'krakenex sandbox {" ".join(SANDBOX_OPTIONS)}')
    method, private = _resolve_method(args)
    data = parse_params(args.params)
    _check_options(args, method)
    with log_to_stderr(args.verbose) as log, Output(args.output) as out, \
            _endpoint(args) as sandbox, _api(args, sandbox, method if private else None) as api:
        query = api.query_private if private else api.query_public
        log.debug('%s %s call to %s with parameters: %s', method,
                  'private' if private else 'public', api.uri, ', '.join(data) or 'none')
        if args.all:
            progress = Progress(method, sys.stderr if sys.stderr.isatty() else None)
            result = fetch_all(api, method, data, pace=False, progress=progress)
            envelope: Any = {'error': [], 'result': result}
        else:
            if private and methods.changes_state(method, data):
                # Named here, so that the advice after a Ctrl-C can name the id too.
                data = dict(order_ids.named(method, data, order_ids.SPOT_REST))
                sending_through(call, api.session, method, data)
            envelope = query(method, data)
            _answered(call, envelope)
            if isinstance(envelope, bytes):
                call.delivering()
                _write_file(out, method, envelope)
                return EXIT_OK
            result = None if args.raw else _result(method, envelope)
        if args.raw:
            try:
                text = to_json(envelope, indent(out)) + '\n'
                call.delivering()
                write_text(out, text)
            finally:  # Kraken's errors still go to stderr and set the exit code
                _result(method, envelope)
        else:
            text = _csv(method, result) if args.csv else to_json(result, indent(out)) + '\n'
            call.delivering()
            write_text(out, text)
    return EXIT_OK


def _answered(call: Call, envelope: Any) -> None:
    """Note Kraken's answer to a state-changing call: accepted (with its result) or refused."""
    from ..errors import failures

    if call.method is None or not isinstance(envelope, dict):
        return
    errors = envelope.get('error', [])
    if isinstance(errors, list):  # a Kraken reply, not some other JSON
        call.answered = True
        call.refused = failures(errors)
        call.result = envelope.get('result')


def _parser() -> Parser:
    parser = Parser(
        prog='krakenex', allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage='krakenex [options] METHOD [name=value | name:=JSON ...]\n'
              '       krakenex help METHOD\n'
              '       krakenex --futures [options] ENDPOINT [name=value | name:=JSON ...]\n'
              '       krakenex ws [options] CHANNEL|METHOD [SYMBOL ...] [name=value ...]\n'
              '       krakenex share status|reset [--key-file F] [--uri URL | --futures] '
              '[--share S]\n'
              f'       krakenex sandbox {" ".join(SANDBOX_OPTIONS[:4])}\n'
              f'                        {" ".join(SANDBOX_OPTIONS[4:])}',
        description='Call one of Kraken\'s REST methods and print its result as JSON.\n'
                    'Public or private is decided from Kraken\'s method list (below).',
        epilog=_epilog())
    parser.add_argument('method', nargs='?', metavar='METHOD', help=argparse.SUPPRESS)
    parser.add_argument('params', nargs='*', metavar='name=value', help=argparse.SUPPRESS)
    parser.add_argument('--version', action='version', version=f'krakenex {__version__}')
    call = parser.add_argument_group('the call').add_argument
    output = parser.add_argument_group('output').add_argument
    where = parser.add_argument_group('where to, and how').add_argument
    call('--all', action='store_true',
         help=f'fetch every page and merge them: {", ".join(PAGED)}')
    output('--raw', action='store_true',
           help='print Kraken\'s whole reply {"error": [...], "result": ...}')
    output('--csv', action='store_true',
           help=f'write the result as CSV with a header row: {", ".join(TABLES)}')
    where('--key-file', metavar='PATH', help='API key on the first line, secret on the second')
    where('--uri', metavar='URL', help='another server, such as a sandbox\'s URL (default: '
                                       '$KRAKEN_API_URL, else Kraken, https://api.kraken.com)')
    where('--sandbox', action='store_true',
          help='start the embedded sandbox for this one command and use its funded account: '
               'offline, no key needed')
    add_shared_options(call, output, where, what='METHOD', tier_help=(
        'pace calls under Kraken\'s rate limit of this tier: starter, intermediate, pro, '
        'MAX,DECAY or none (default: none, or starter with --all unless --sandbox)'))
    where('--engine', metavar='TIER', type=_engine,
          help='pace order calls under Kraken\'s per-pair trading-engine limit of this tier, '
               'shared with the key\'s other users: starter, intermediate, pro, '
               'THRESHOLD,DECAY or none (default: none)')
    return parser


def _engine(text: str) -> str | tuple[float, float]:
    """An argparse type: ``none``, or a tier as :func:`krakenex.engine.parse_engine` reads it."""
    if text == 'none':
        return text
    try:
        return parse_engine(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'{exc} (or none for no pacing)') from None


def _epilog() -> str:
    width = max(map(len, methods.METHODS)) + 2
    groups = dict(methods.GROUPS)
    groups.update((m.group, m.group) for m in methods.METHODS.values() if m.group not in groups)
    lines = ['methods (krakenex help METHOD shows its parameters):']
    for group, title in groups.items():
        members = [m for m in methods.METHODS.values() if m.group == group]
        lines += ['', f'  {title}:'] + [f'    {m.name:<{width}}{m.summary}' for m in members]
    lines += ['', 'other commands:'] + [f'  {name:<33}{text}' for name, text in COMMANDS]
    lines += ['', 'credentials for private methods, first found wins:',
              '  --key-file PATH',
              '  the environment variables KRAKEN_API_KEY and KRAKEN_API_SECRET',
              f'  {default_key_file_text()}',
              '', 'the server: --uri, else the environment variable KRAKEN_API_URL, else '
                  'https://api.kraken.com',
              '', 'exit codes:']
    lines += [f'  {code}  {text}' for code, text in EXIT_CODES.items()]
    lines += ['', 'examples:',
              '  krakenex Ticker pair=XBTUSD',
              '  krakenex --sandbox Balance',
              '  krakenex --sandbox AddOrder pair=XBTUSD type=buy ordertype=limit '
              'price=37500 volume=0.01',
              '  krakenex --all --csv Ledgers asset=XBT > ledgers.csv',
              '  krakenex --futures --sandbox accounts',
              '  krakenex ws --sandbox book BTC/USD --top 5 --count 3',
              '  krakenex ws --unified --sandbox book PF_XBTUSD --top 5 --count 1',
              '  krakenex sandbox --port 8080 --motion 1']
    return '\n'.join(lines)


def _resolve_method(args: argparse.Namespace) -> tuple[str, bool]:
    """The method's name and whether it is private, or a usage error for an unknown name."""
    name: str = args.method
    if args.private and args.public:
        raise UsageError('give --private or --public, not both')
    if args.private or args.public:
        return name, bool(args.private)
    known = methods.METHODS.get(name)
    if known is None:
        raise UsageError(_unknown(name) + '; to call a method krakenex does not know, '
                                          'add --private (or --public)')
    return name, known.private


def _unknown(name: str) -> str:
    """Say that a method is unknown, suggesting the names it resembles."""
    import difflib

    names = list(methods.METHODS)
    close = [n for n in names if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if len(close) > 1:
        close = [', '.join(close[:-1]), close[-1]]
    hint = f' (did you mean {" or ".join(close)}?)' if close else ''
    return f'{name!r} is not one of Kraken\'s methods{hint}; krakenex --help lists them'


def _check_options(args: argparse.Namespace, method: str) -> None:
    """Refuse options that do not go together, before anything is sent."""
    if args.sandbox and (args.uri or args.key_file):
        raise UsageError('--sandbox runs its own server with its own account: leave out '
                         f'{"--uri" if args.uri else "--key-file"}')
    check_uri_option(args.uri)
    if args.all and method not in PAGED:
        raise UsageError(f'{method} has no pages; --all works with {", ".join(PAGED)}')
    if args.csv and args.raw:
        raise UsageError('give --csv or --raw, not both')
    if args.csv and method not in TABLES:
        raise UsageError(f'{method} does not answer with a table; --csv works with '
                         f'{", ".join(TABLES)}')


def _print_help(names: Sequence[str]) -> int:
    """``krakenex help [METHOD]``: the full help, or one method's."""
    if not names:
        _parser().print_help()
        return EXIT_OK
    if len(names) > 1:
        raise UsageError('help takes one method name, such as: krakenex help AddOrder')
    method = methods.METHODS.get(names[0])
    if method is None:
        raise UsageError(_unknown(names[0]))
    print(method_help(method))
    return EXIT_OK


def method_help(method: methods.Method) -> str:
    """What ``krakenex help METHOD`` prints: group, access, state, parameters, an example."""
    params = method.params.split()
    if method.private:
        access = 'private: a signed POST that needs an API key'
    else:
        access = 'public: a GET, no key needed'
    if method.changes_state:
        state = 'yes: never sent twice; a lost reply gives exit code 4 (outcome unknown)'
    else:
        state = 'no: read-only, retried after transient faults'
    listed = textwrap.fill('  '.join(params), width=78, initial_indent=' ' * 4,
                           subsequent_indent=' ' * 4) if params else '    (none)'
    required = [p.rstrip('*') for p in params if p.endswith('*')]
    example = ' '.join([f'krakenex {method.name}'] + [
        f'{p}:=JSON' if p in JSON_PARAMS else f'{p}=...' for p in required])
    lines = [f'{method.name}: {method.summary}', '',
             f'  group:          {methods.GROUPS.get(method.group, method.group)}',
             f'  access:         {access}',
             f'  changes state:  {state}']
    if method.name in PAGED:
        lines.append('  pages:          --all fetches every page')
    if method.name in TABLES:
        lines.append('  table:          --csv writes it as CSV')
    lines += ['', '  parameters (* = required):', listed, '', f'  usage: {example}']
    return '\n'.join(lines)


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[Sandbox | None]:
    """The sandbox this command runs against (``--sandbox``), or ``None`` for ``--uri``/Kraken."""
    if not args.sandbox:
        yield None
        return
    from ..sandbox import Sandbox

    tier = 'starter' if args.tier is None else None if args.tier == 'none' else args.tier
    with Sandbox(tier=tier) as sandbox:  # Kraken's limits, as on a real key
        yield sandbox


def _api(args: argparse.Namespace, sandbox: Sandbox | None, private_method: str | None) -> API:
    """An API object set up from the options, with credentials for a private call."""
    from ..api import API

    tier = args.tier
    if tier is None and args.all:
        tier = 'starter'
    if tier == 'none':
        tier = None
    options: dict[str, Any] = {'tier': tier, 'public_rate': PUBLIC_RATE if tier else None}
    if args.engine not in (None, 'none'):
        options['engine'] = args.engine
    if args.timeout is not None:
        options['timeout'] = args.timeout
    if args.retries is not None:
        options['retries'] = args.retries
    if args.otp:
        options['otp'] = args.otp
    if args.share is not None:
        options['share'] = args.share
    if sandbox is not None:
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, **options)
    else:
        api = API(uri=args.uri, **options)
        try:
            load_credentials(api, args.key_file, private_method, 'krakenex', missing=(
                f'{private_method} is a private method and needs an API key; none found in '
                f'--key-file, KRAKEN_API_KEY and KRAKEN_API_SECRET, or {default_key_file()} '
                f'(or try it offline with --sandbox)'))
        except BaseException:
            api.close()
            raise
    return api.json_options(parse_float=Decimal)


def _result(method: str, envelope: Any) -> Any:
    """The ``result`` of a reply; Kraken's errors raise, its warnings go to stderr."""
    from ..errors import unwrap

    result = unwrap(envelope, method)
    for warning in envelope.get('error') or ():
        warn(f'Kraken warns: {warning}')
    return result


def _write_file(out: Output, method: str, content: bytes) -> None:
    """Write a binary reply (RetrieveExport's zip) as it came, never to a terminal."""
    if out.is_terminal():
        raise UsageError(f'{method} answered with a file ({len(content)} bytes), not shown on '
                         f'a terminal: save it with --output FILE or redirect stdout')
    out.write(content)


def _csv(method: str, result: Any) -> str:
    import csv
    import io

    try:
        header, rows = table(method, result)
    except ValueError as exc:
        raise UsageError(f'{exc}, so it cannot be written as CSV; leave out --csv') from None
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()
