"""The ``krakenex`` command: every Kraken call from the shell.

It reads like the request it sends::

    krakenex Ticker pair=XBTUSD
    krakenex --sandbox AddOrder pair=XBTUSD type=buy ordertype=limit price=37500 volume=0.01

A method from Kraken's list (:mod:`krakenex.methods` decides public or
private), then its parameters as ``name=value``, or ``name:=JSON`` for a JSON
value. The result goes to stdout as JSON (or CSV); an error goes to stderr as
one line, and the exit code says what kind it was (:data:`EXIT_CODES`).

Only the standard library and :mod:`krakenex.methods` are imported up front,
so ``krakenex --help`` starts fast; requests, the API and the sandbox are
imported when a call is made.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, NoReturn

from . import methods
from ._paging import PAGED, TABLES, Progress, fetch_all, table
from .pacing import TIERS
from .version import __version__

if TYPE_CHECKING:
    import logging

    from .api import API
    from .sandbox import Sandbox

__all__ = ['main', 'EXIT_CODES', 'default_key_file', 'parse_params', 'to_json']

#: What each exit code means; scripts may rely on them.
EXIT_CODES = {
    0: 'success',
    1: "Kraken answered with an error (Kraken's error strings are printed on stderr)",
    2: 'usage or bad input (an unknown method, a malformed parameter, no API key, ...)',
    3: 'network or HTTP failure: no usable reply (after retrying read-only calls)',
    4: 'outcome unknown: a state-changing call was sent and its reply lost; it may or may '
       'not have taken effect',
}
EXIT_OK, EXIT_KRAKEN, EXIT_USAGE, EXIT_NETWORK, EXIT_UNKNOWN = range(5)

#: Kraken's public endpoints allow about one call a second per IP (kraken-protocol.md §5.2).
PUBLIC_RATE = 1.0

#: Parameters that Kraken takes as a JSON list, shown as ``name:=JSON`` in help.
JSON_PARAMS = ('orders', 'cl_ord_ids')


class UsageError(Exception):
    """Bad input caught by the command itself; exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line (exit code 2), not a usage screen."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f'{message} (krakenex --help shows the options)')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``krakenex`` command.

    :param argv: the arguments, without the program name; ``sys.argv[1:]`` by default
    :returns: the exit code, one of :data:`EXIT_CODES`
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['sandbox']:
        from .sandbox import main as serve

        return serve(argv[1:], prog='krakenex sandbox')
    if argv[:1] == ['ws']:
        from .ws.cli import main as ws

        return ws(argv[1:])
    verbose = False
    try:
        try:
            args = _parser().parse_intermixed_args(argv)
        except SystemExit as done:  # --help and --version
            return done.code if isinstance(done.code, int) else EXIT_OK
        verbose = args.verbose
        return _run(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail('interrupted', 130)
    except BrokenPipeError:
        # The reader of stdout went away (krakenex ... | head): stay quiet, as a shell would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        return _report(exc)


def _run(args: argparse.Namespace) -> int:
    """Check the input, make the call (or fetch every page) and write the result."""
    if args.method is None:
        raise UsageError('no method given: try krakenex Time, krakenex --sandbox Balance, '
                         'or krakenex --help for the list')
    if args.method == 'help':
        return _print_help(args.params)
    if args.method == 'sandbox':
        raise UsageError('sandbox takes its own options and goes first: '
                         'krakenex sandbox [--port N] [--tier T] [--seed S]')
    method, private = _resolve_method(args)
    data = parse_params(args.params)
    _check_options(args, method)
    log = _configure_logging(args.verbose)
    with _output_file(args.output) as out, _endpoint(args) as sandbox, \
            _api(args, sandbox, method if private else None) as api:
        query = api.query_private if private else api.query_public
        log.debug('%s %s call to %s with parameters: %s', method,
                  'private' if private else 'public', api.uri, ', '.join(data) or 'none')
        if args.all:
            progress = Progress(method, sys.stderr if sys.stderr.isatty() else None)
            result = fetch_all(lambda m, d: _result(m, query(m, d)), method, data, progress)
            envelope: Any = {'error': [], 'result': result}
        else:
            envelope = query(method, data)
            if isinstance(envelope, bytes):
                return _write_file(out, method, envelope)
            result = None if args.raw else _result(method, envelope)
    if args.raw:
        _write(out, to_json(envelope, _indent(out)) + '\n')
        _result(method, envelope)  # Kraken's errors still go to stderr and set the exit code
    elif args.csv:
        _write(out, _csv(method, result))
    else:
        _write(out, to_json(result, _indent(out)) + '\n')
    return EXIT_OK


# ------------------------------------------------------------------- input

def _parser() -> _Parser:
    parser = _Parser(
        prog='krakenex', allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage='krakenex [options] METHOD [name=value | name:=JSON ...]\n'
              '       krakenex help METHOD\n'
              '       krakenex sandbox [--port N] [--tier T] [--seed S]',
        description='Call one of Kraken\'s REST methods and print its result as JSON.\n'
                    'Public or private is decided from Kraken\'s method list (below).',
        epilog=_epilog())
    parser.add_argument('method', nargs='?', metavar='METHOD', help=argparse.SUPPRESS)
    parser.add_argument('params', nargs='*', metavar='name=value', help=argparse.SUPPRESS)
    parser.add_argument('--version', action='version', version=f'krakenex {__version__}')
    add = parser.add_argument_group('the call').add_argument
    add('--private', action='store_true',
        help='send METHOD as a private (signed) call, for a method not in the list')
    add('--public', action='store_true',
        help='send METHOD as a public call, for a method not in the list')
    add('--all', action='store_true',
        help=f'fetch every page and merge them: {", ".join(PAGED)}')
    add('--otp', metavar='CODE', help='one-time password, for a key with two-factor auth')
    add = parser.add_argument_group('output').add_argument
    add('--raw', action='store_true',
        help='print Kraken\'s whole reply {"error": [...], "result": ...}')
    add('--csv', action='store_true',
        help=f'write the result as CSV with a header row: {", ".join(TABLES)}')
    add('-o', '--output', metavar='FILE',
        help='write the result to FILE (needed for a file such as RetrieveExport\'s zip '
             'when stdout is a terminal)')
    add('-v', '--verbose', action='store_true',
        help='log what is sent and received to stderr (never a secret)')
    add = parser.add_argument_group('where to, and how').add_argument
    add('--key-file', metavar='PATH', help='API key on the first line, secret on the second')
    add('--uri', metavar='URL', help='another server, such as a sandbox\'s URL '
                                     '(default: Kraken, https://api.kraken.com)')
    add('--sandbox', action='store_true',
        help='start the embedded sandbox for this one command and use its funded account: '
             'offline, no key needed')
    add('--timeout', metavar='SECONDS', type=_positive(float),
        help='seconds to wait for a connection and for a reply (default 5 and 30)')
    add('--retries', metavar='N', type=_positive(int, zero=True),
        help='retries of a read-only call after a transient fault (default 3)')
    add('--tier', metavar='TIER', type=_tier,
        help='pace calls under Kraken\'s rate limit of this tier: starter, intermediate, '
             'pro, MAX,DECAY or none (default: none, or starter with --all unless --sandbox)')
    return parser


def _epilog() -> str:
    width = max(map(len, methods.METHODS)) + 2
    groups = dict(methods.GROUPS)
    groups.update((m.group, m.group) for m in methods.METHODS.values() if m.group not in groups)
    lines = ['methods (krakenex help METHOD shows its parameters):']
    for group, title in groups.items():
        members = [m for m in methods.METHODS.values() if m.group == group]
        lines += ['', f'  {title}:'] + [f'    {m.name:<{width}}{m.summary}' for m in members]
    lines += ['', 'credentials for private methods, first found wins:',
              '  --key-file PATH',
              '  the environment variables KRAKEN_API_KEY and KRAKEN_API_SECRET',
              f'  {_default_key_file_text()}',
              '', 'exit codes:']
    lines += [f'  {code}  {text}' for code, text in EXIT_CODES.items()]
    lines += ['', 'examples:',
              '  krakenex Ticker pair=XBTUSD',
              '  krakenex --sandbox Balance',
              '  krakenex --sandbox AddOrder pair=XBTUSD type=buy ordertype=limit '
              'price=37500 volume=0.01',
              '  krakenex --all --csv Ledgers asset=XBT > ledgers.csv',
              '  krakenex sandbox --port 8080']
    return '\n'.join(lines)


def _positive(kind: type[float] | type[int], zero: bool = False) -> Any:
    """An argparse type: a number above zero (or at least zero)."""
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
        if value < 0 or (value == 0 and not zero):
            bound = 'at least 0' if zero else 'above 0'
            raise argparse.ArgumentTypeError(f'{text!r} must be {bound}')
        return value
    return convert


def _tier(text: str) -> str | tuple[float, float]:
    """An argparse type: a tier name, ``none``, or ``MAX,DECAY``."""
    if text in TIERS or text == 'none':
        return text
    try:
        maximum, decay = (float(part) for part in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a tier: use {", ".join(TIERS)}, none or MAX,DECAY '
            f'such as 15,0.33') from None
    if maximum <= 0 or decay <= 0:
        raise argparse.ArgumentTypeError(f'{text!r}: MAX and DECAY must be above 0')
    return maximum, decay


def parse_params(tokens: Sequence[str]) -> dict[str, Any]:
    """Turn ``name=value`` and ``name:=JSON`` arguments into the call's parameters.

    :raises UsageError: for an argument without ``=``, invalid JSON, or a name given twice
    """
    data: dict[str, Any] = {}
    for token in tokens:
        name, equals, value = token.partition('=')
        is_json = name.endswith(':')
        name = name.removesuffix(':')
        if not equals or not name:
            raise UsageError(f'expected name=value (or name:=JSON), not {token!r}: '
                             f'for example pair=XBTUSD')
        if name in data:
            raise UsageError(f'parameter {name!r} is given twice; give it once (a list goes '
                             f'comma-separated, or as {name}:=JSON)')
        if is_json:
            try:
                data[name] = json.loads(value)
            except ValueError as exc:
                raise UsageError(f'parameter {name}: {value!r} is not valid JSON ({exc})') from None
        else:
            data[name] = value
    return data


def _resolve_method(args: argparse.Namespace) -> tuple[str, bool]:
    """The method's name and whether it is private, or a usage error for an unknown name."""
    name: str = args.method
    if args.private and args.public:
        raise UsageError('give --private or --public, not both')
    if args.private or args.public:
        return name, bool(args.private)
    known = methods.lookup(name)
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
    if args.uri:
        import urllib.parse

        parts = urllib.parse.urlsplit(args.uri)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise UsageError(f'--uri {args.uri!r} is not a server address: give one such as '
                             f'https://api.kraken.com or http://127.0.0.1:8080')
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
    method = methods.lookup(names[0])
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


# ------------------------------------------------------------ credentials

def default_key_file() -> str:
    """Where the command looks for a key file when none is given.

    ``$XDG_CONFIG_HOME/krakenex/kraken.key``, which is
    ``~/.config/krakenex/kraken.key`` unless ``XDG_CONFIG_HOME`` is set
    (``%APPDATA%\\krakenex\\kraken.key`` on Windows).
    """
    base = os.environ.get('XDG_CONFIG_HOME', '')
    if not os.path.isabs(base):
        appdata = os.environ.get('APPDATA', '') if os.name == 'nt' else ''
        base = appdata or os.path.join(os.path.expanduser('~'), '.config')
    return os.path.join(base, 'krakenex', 'kraken.key')


def _default_key_file_text() -> str:
    path = default_key_file()
    home = os.path.expanduser('~')
    shown = '~' + path[len(home):] if path.startswith(home + os.sep) else path
    return f'the key file {shown} ($XDG_CONFIG_HOME/krakenex/kraken.key)'


def _load_credentials(api: API, key_file: str | None, method: str | None) -> None:
    """Give ``api`` the key and secret from the first place that has them.

    :param method: the private method to be called, or ``None`` for a public one
        (which reads only a ``--key-file`` given outright)
    """
    if key_file:
        _load_key_file(api, key_file)
        return
    if method is None:
        return
    key, secret = os.environ.get('KRAKEN_API_KEY', ''), os.environ.get('KRAKEN_API_SECRET', '')
    if key and secret:
        api.key, api.secret = key, secret
        return
    if key or secret:
        have, lack = (('KRAKEN_API_KEY', 'KRAKEN_API_SECRET') if key else
                      ('KRAKEN_API_SECRET', 'KRAKEN_API_KEY'))
        raise UsageError(f'{have} is set but {lack} is not: set both, or neither')
    path = default_key_file()
    if os.path.exists(path):
        _load_key_file(api, path)
        return
    raise UsageError(f'{method} is a private method and needs an API key; none found in '
                     f'--key-file, KRAKEN_API_KEY and KRAKEN_API_SECRET, or {path} '
                     f'(or try it offline with --sandbox)')


def _load_key_file(api: API, path: str) -> None:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            api.load_key(path)
    except OSError as exc:  # a KeyFileError says what was wrong with the file
        raise UsageError(str(exc)) from None
    for warning in caught:
        _warn(str(warning.message))


# ------------------------------------------------------------------ calls

@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[Sandbox | None]:
    """The sandbox this command runs against (``--sandbox``), or ``None`` for ``--uri``/Kraken."""
    if not args.sandbox:
        yield None
        return
    from .sandbox import Sandbox

    tier = args.tier if args.tier not in (None, 'none') else None
    with Sandbox(tier=tier) as sandbox:
        yield sandbox


def _api(args: argparse.Namespace, sandbox: Sandbox | None, private_method: str | None) -> API:
    """An API object set up from the options, with credentials for a private call."""
    from .api import API, DEFAULT_URI

    tier = args.tier
    if tier is None and args.all and not args.sandbox:
        tier = 'starter'
    if tier == 'none':
        tier = None
    options: dict[str, Any] = {'tier': tier, 'public_rate': PUBLIC_RATE if tier else None}
    if args.timeout is not None:
        options['timeout'] = args.timeout
    if args.retries is not None:
        options['retries'] = args.retries
    if args.otp:
        options['otp'] = args.otp
    if sandbox is not None:
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, **options)
    else:
        api = API(uri=args.uri or DEFAULT_URI, **options)
        # API() reads KRAKEN_API_KEY itself; the command's own order decides instead.
        api.key = api.secret = ''
        _load_credentials(api, args.key_file, private_method)
    return api.json_options(parse_float=Decimal)


def _result(method: str, envelope: Any) -> Any:
    """The ``result`` of a reply; Kraken's errors raise, its warnings go to stderr."""
    from .errors import unwrap

    result = unwrap(envelope, method)
    for warning in envelope.get('error') or ():
        _warn(f'Kraken warns: {warning}')
    return result


# ----------------------------------------------------------------- output

@contextlib.contextmanager
def _output_file(path: str | None) -> Iterator[IO[bytes] | None]:
    """The ``--output`` file, opened before the call so that a bad path sends nothing."""
    if path in (None, '-'):
        yield None
        return
    try:
        f = open(path, 'wb')  # noqa: SIM115 - closed below, after the call
    except OSError as exc:
        raise UsageError(f'cannot write {path}: {exc.strerror or exc}') from None
    with f:
        yield f


def _indent(out: IO[bytes] | None) -> int | None:
    """Indent JSON for a person at a terminal, not for a pipe or a file."""
    return 2 if out is None and sys.stdout.isatty() else None


def _write(out: IO[bytes] | None, text: str) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        out.write(text.encode('utf-8'))


def _write_file(out: IO[bytes] | None, method: str, content: bytes) -> int:
    """Write a binary reply (RetrieveExport's zip) as it came, never to a terminal."""
    if out is not None:
        out.write(content)
    elif sys.stdout.isatty():
        raise UsageError(f'{method} answered with a file ({len(content)} bytes), not shown on '
                         f'a terminal: save it with --output FILE or redirect stdout')
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    return EXIT_OK


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


def to_json(value: Any, indent: int | None = None, level: int = 0) -> str:
    """JSON text of a decoded reply, with every number written as Kraken sent it.

    Like ``json.dumps(value, ensure_ascii=False, indent=indent)``, except that a
    :class:`~decimal.Decimal` (from ``parse_float=Decimal``) keeps its digits:
    ``0.00000001`` stays ``0.00000001`` and ``1.50`` stays ``1.50``. (A number
    with an exponent, which Kraken does not send, is written out in full.)
    """
    if isinstance(value, Decimal):
        return format(value, 'f') if value.is_finite() else json.dumps(float(value))
    if isinstance(value, dict):
        colon = ': ' if indent is not None else ':'
        items = [json.dumps(str(k), ensure_ascii=False) + colon + to_json(v, indent, level + 1)
                 for k, v in value.items()]
        return _container('{', items, '}', indent, level)
    if isinstance(value, (list, tuple)):
        return _container('[', [to_json(v, indent, level + 1) for v in value], ']', indent, level)
    return json.dumps(value, ensure_ascii=False)


def _container(start: str, items: list[str], end: str, indent: int | None, level: int) -> str:
    if not items:
        return start + end
    if indent is None:
        return start + ','.join(items) + end
    inner = '\n' + ' ' * indent * (level + 1)
    return start + inner + (',' + inner).join(items) + '\n' + ' ' * indent * level + end


# ----------------------------------------------------------------- errors

def _configure_logging(verbose: bool) -> logging.Logger:
    """Log the client's messages to stderr: warnings (retries), or everything with --verbose.

    logging is imported here, not up front, to keep ``krakenex --help`` fast.
    """
    import logging

    log = logging.getLogger('krakenex')
    for previous in [h for h in log.handlers if h.get_name() == 'krakenex-cli']:
        log.removeHandler(previous)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name('krakenex-cli')
    fmt = '%(relativeCreated)6.0f ms %(name)s %(levelname)s: %(message)s' if verbose else \
        'krakenex: %(message)s'
    handler.setFormatter(logging.Formatter(fmt))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False
    return log


def _report(exc: Exception) -> int:
    """Print a failure as one line and return its exit code; re-raise what is not Kraken's."""
    import requests

    from . import errors

    if isinstance(exc, errors.OutcomeUnknownError):
        return _fail(_outcome_message(exc), EXIT_UNKNOWN)
    if isinstance(exc, errors.KrakenUsageError):
        return _fail(str(exc), EXIT_USAGE)
    if isinstance(exc, errors.InvalidNonceError):
        return _fail(str(exc), EXIT_KRAKEN)
    if isinstance(exc, errors.KrakenAPIError):
        return _fail(', '.join(exc.errors) or str(exc), EXIT_KRAKEN)
    if isinstance(exc, (errors.KrakenError, requests.RequestException)):
        return _fail(str(exc), EXIT_NETWORK)  # what is left: HTTP, connection, timeout, body
    raise exc


def _outcome_message(exc: Any) -> str:
    """What a user needs after an unknown outcome: what was sent, and how to look it up."""
    ids = [f'{name}={value}' for name, value in
           (('cl_ord_id', exc.cl_ord_id), ('userref', exc.userref)) if value is not None]
    known = methods.lookup(exc.method or '')
    if ids:
        check = (f'look it up first: krakenex OpenOrders {ids[0]} and '
                 f'krakenex ClosedOrders {ids[0]}')
    elif known is not None and known.group == 'trading':
        check = ('check OpenOrders and ClosedOrders first (give an order userref= or '
                 'cl_ord_id= to look it up by next time)')
    else:
        check = 'check the account first'
    sent = ', '.join([f'nonce {exc.nonce}', *ids])
    return (f'outcome unknown: {exc.method} was sent ({sent}) but {exc.__cause__ or exc}. It '
            f'may or may not have taken effect at Kraken, and it was not sent again; before '
            f'you resubmit, {check}')


def _warn(message: str) -> None:
    """Print one line on stderr, whatever line breaks the message had."""
    print(f'krakenex: {" ".join(message.split())}', file=sys.stderr)


def _fail(message: str, code: int) -> int:
    _warn(message)
    return code
