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
import math
import os
import signal
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, NoReturn

from . import methods
from ._tables import TABLES, table
from .pacing import parse_tier
from .paging import PAGED, Progress, fetch_all
from .version import __version__

if TYPE_CHECKING:
    import logging

    from .api import API
    from .sandbox import Sandbox

__all__ = ['main', 'program', 'EXIT_CODES', 'default_key_file', 'parse_params', 'to_json', 'Call',
           'report', 'Output', 'OutputError', 'UsageError', 'add_share_option', 'sending_through',
           'add_shared_options', 'log_to_stderr', 'indent', 'check_uri_option', 'warn']

#: What each exit code means; scripts may rely on them.
EXIT_CODES = {
    0: 'success',
    1: "Kraken answered with an error (Kraken's error strings are printed on stderr)",
    2: 'usage, bad input or a local failure (an unknown method, a malformed parameter, no '
       'API key, an output file that cannot be written); nothing that changes state was sent',
    3: 'network or HTTP failure: no usable reply (after retrying read-only calls)',
    4: 'outcome unknown: a state-changing call may have reached Kraken and the command '
       'cannot say how it ended (the reply was lost, or the result could not be written); '
       'stderr says how to look it up. Never resend on 4 without looking',
    130: 'interrupted (Ctrl-C) before anything that changes state was sent',
    141: 'stdout was closed by its reader (krakenex ... | head) after a read-only call',
}
EXIT_OK, EXIT_KRAKEN, EXIT_USAGE, EXIT_NETWORK, EXIT_UNKNOWN = range(5)
EXIT_CLOSED = 141

#: Kraken's public endpoints allow about one call a second per IP
#: (https://support.kraken.com/hc/en-us/articles/206548367).
PUBLIC_RATE = 1.0

#: The options of ``krakenex sandbox`` (:func:`krakenex.sandbox.main`), as the usage shows
#: them; written out so that ``krakenex --help`` need not import the sandbox.
SANDBOX_OPTIONS = ('[--port N]', '[--tier T]', '[--seed S]', '[--nonce-window N]',
                   '[--motion SECONDS]', '[--env]')

#: The commands beside the REST call, as ``krakenex --help`` lists them.
COMMANDS = (
    ('krakenex --futures ENDPOINT ...', 'Kraken Futures REST (krakenex --futures --help)'),
    ('krakenex ws CHANNEL|METHOD ...', 'WebSocket v2: ticker, book, add_order, ... '
                                       '(krakenex ws --help)'),
    ('krakenex sandbox ...', 'a local Kraken (spot, futures, WebSocket) until Ctrl-C'),
    ('krakenex share status|reset', 'show or forget what is shared for a key'),
)

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

    Every failure is reported as one line on stderr; the exit code says what
    kind it was. Any failure after a state-changing call may have reached
    Kraken, including one here (the output cannot be written, stdout was
    closed, Ctrl-C), exits 4 with what is needed to look the call up.

    :param argv: the arguments, without the program name; ``sys.argv[1:]`` by default
    :returns: the exit code, one of :data:`EXIT_CODES`
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['sandbox']:
        from .sandbox import main as serve

        return serve(argv[1:], prog='krakenex sandbox')
    if argv[:1] == ['share']:
        return run_command(Call(), _share_parser(), argv[1:], _share)
    if argv[:1] == ['ws']:
        from .ws.cli import main as ws

        return ws(argv[1:])
    if '--futures' in argv:
        from .futures.cli import main as futures

        return futures([arg for arg in argv if arg != '--futures'])
    return run_command(Call(), _parser(), argv, _run)


def program() -> int:
    """The ``krakenex`` program (``python -m krakenex`` and the installed command): :func:`main`.

    Its exit code is final once the command has it (:attr:`Call.settled`): a
    Ctrl-C after that, up to the end of the process, is ignored, so a result
    printed whole is never turned into an interruption (130) by a late Ctrl-C.

    :returns: the exit code, for :func:`sys.exit`
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return main()  # SIGINT ignored (a background job), or handled by the caller
    signal.signal(signal.SIGINT, _Interrupts())
    code = main()
    # As Python shuts down it gives SIGINT back to the system, which would end the process
    # as interrupted; an ignored SIGINT stays ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def run_command(call: Call, parser: argparse.ArgumentParser, argv: Sequence[str],
                run: Callable[[argparse.Namespace, Call], int]) -> int:
    """Parse ``argv`` and ``run`` the command; every failure becomes one line and an exit code.

    The one entry of ``krakenex``, ``krakenex --futures`` and ``krakenex ws``:
    :func:`report` judges a failure by what ``call`` says was sent.
    """
    with _interrupting(call):
        try:
            return _judged(call, parser, argv, run)
        except KeyboardInterrupt as late:
            call.settled = True
            # A second Ctrl-C came just as a failure was caught: judge the failure.
            return report(late.__context__ or late, call)


def _judged(call: Call, parser: argparse.ArgumentParser, argv: Sequence[str],
            run: Callable[[argparse.Namespace, Call], int]) -> int:
    """Parse and run the command, and turn a failure into its exit code; settled either way."""
    try:
        try:
            args = parser.parse_intermixed_args(list(argv))
        except SystemExit as done:  # --help and --version
            call.settled = True
            return done.code if isinstance(done.code, int) else EXIT_OK
        with warnings.catch_warnings():  # a warning (such as the key's store) is one line too
            warnings.showwarning = lambda message, *_: warn(str(message), call.prog)
            code = run(args, call)
        call.settled = True
        return code
    except BaseException as exc:
        call.settled = True  # first: from here a Ctrl-C cannot change what is reported
        if isinstance(exc, SystemExit):
            raise
        return report(exc, call)


class _Interrupts:
    """The SIGINT handler of a command: Ctrl-C interrupts it until its outcome is settled
    (:attr:`Call.settled`), and changes nothing after.

    Python's own handler raises :exc:`KeyboardInterrupt` wherever the program
    is: a Ctrl-C just after an order's result was printed, or a second one
    while the first was being reported, ended the process as interrupted (130)
    with the order placed. A second Ctrl-C while the first is on its way up
    is the same interruption, judged the same. With no command running yet
    (``call`` None) it interrupts as Python's handler does.
    """

    def __init__(self, call: Call | None = None) -> None:
        self.call = call

    def __call__(self, signum: int, frame: Any) -> None:
        if self.call is not None and self.call.settled:
            return
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupting(call: Call) -> Iterator[None]:
    """Let Ctrl-C interrupt ``call``'s command as :class:`_Interrupts` says while it runs.

    The program's own handler (:func:`program`) is kept, settled, to the end
    of the process; elsewhere Python's handler comes back afterwards. A
    SIGINT that is ignored (a background job) or handled by the caller, or a
    command run outside the main thread, is left as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, _Interrupts):
        current.call = call
        yield
        return
    if current is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _Interrupts(call))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, current)


class Call:
    """What a command has sent so far: enough to say what a failure means for the account.

    The one account of a command's call that :func:`report` turns into an exit
    code, for ``krakenex``, ``krakenex --futures`` and ``krakenex ws`` alike.
    The command calls :meth:`sending` just before it sends a call that changes
    state, :meth:`accepted` (or sets :attr:`refused`) once Kraken answered,
    and :meth:`delivering` as it writes the result.
    A subclass says how to look such a call up on its own exchange
    (:meth:`advice`, :meth:`outcome_message`); this one does it for spot REST.

    :param prog: the command's name, at the start of every line it prints on stderr
    """

    def __init__(self, prog: str = 'krakenex') -> None:
        self.prog = prog
        self.verbose = False
        #: The state-changing method sent (or being sent), and its parameters.
        self.method: str | None = None
        self.data: dict[str, Any] = {}
        #: Kraken's answer to it, once one arrived: its result, or its error strings.
        self.result: Any = None
        self.answered = False
        self.refused: list[str] = []
        #: Whether the outcome is settled: the result is being written, or a failure
        #: reported. A Ctrl-C from then on no longer interrupts the command.
        self.settled = False

    @property
    def in_doubt(self) -> bool:
        """Whether a state-changing call may have reached Kraken (and was not refused)."""
        return self.method is not None and not self.refused

    def sending(self, method: str, data: dict[str, Any]) -> None:
        """Note a state-changing call about to be sent: from here a failure leaves it in doubt."""
        self.method, self.data = method, data

    def accepted(self, result: Any) -> None:
        """Note that Kraken accepted the call sent, with ``result``."""
        if self.method is not None:
            self.answered, self.result = True, result

    def delivering(self) -> None:
        """Note that the result is written now: a Ctrl-C from here on changes nothing.

        A failure to write it is still reported (exit 4 after a state change).
        """
        self.settled = True

    def advice(self) -> str:
        """What to do about a call that may have reached Kraken: how to look it up first."""
        from .errors import lookup_advice

        userref, cl_ord_id = self.data.get('userref'), self.data.get('cl_ord_id')
        return lookup_advice(self.method, userref, cl_ord_id,
                             _lookup_commands(userref, cl_ord_id))

    def outcome_message(self, exc: Any) -> str:
        """The client's account of an unknown outcome, and the commands that look the call up."""
        how = _lookup_commands(exc.userref, exc.cl_ord_id)
        return f'outcome unknown: {exc}' + (f' From the shell: {how}' if how else '')


def sending_through(call: Call, session: Any, method: str, data: dict[str, Any]) -> None:
    """Note ``method`` as sending (:meth:`Call.sending`) once its request goes to ``session``'s
    transport, and not before.

    Waiting for room on the rate counter or for the key's send lock sends
    nothing, so a Ctrl-C there exits 130; from the moment the request is handed
    to the connection it may reach Kraken.

    :param session: the client's :class:`requests.Session`
    """
    import requests

    class Noting(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any,
                 **kwargs: Any) -> requests.Response:
            call.sending(method, data)
            return super().send(request, *args, **kwargs)

    for prefix in ('https://', 'http://'):
        session.mount(prefix, Noting())


class OutputError(Exception):
    """The result could not be written; the call itself went through."""

    def __init__(self, target: str, error: OSError) -> None:
        reason = error.strerror or str(error) or type(error).__name__
        super().__init__(f'cannot write the result to {target}: {reason}')
        self.closed_pipe = isinstance(error, BrokenPipeError)


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
                _write(out, text)
            finally:  # Kraken's errors still go to stderr and set the exit code
                _result(method, envelope)
        else:
            text = _csv(method, result) if args.csv else to_json(result, indent(out)) + '\n'
            call.delivering()
            _write(out, text)
    return EXIT_OK


def _answered(call: Call, envelope: Any) -> None:
    """Note Kraken's answer to a state-changing call: accepted (with its result) or refused."""
    from .errors import failures

    if call.method is None or not isinstance(envelope, dict):
        return
    errors = envelope.get('error', [])
    if isinstance(errors, list):  # a Kraken reply, not some other JSON
        call.answered = True
        call.refused = failures(errors)
        call.result = envelope.get('result')


# ------------------------------------------------------------------- input

def _parser() -> _Parser:
    parser = _Parser(
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
    return parser


def add_shared_options(call: Callable[..., Any], output: Callable[..., Any],
                       where: Callable[..., Any], *, what: str, tier_help: str) -> None:
    """The options ``krakenex`` and ``krakenex --futures`` share, each worded once.

    :param call: adds an option to the help's "the call" group; ``output`` and
        ``where`` to its "output" and "where to, and how" groups
    :param what: what the command calls, for the help (``METHOD``, ``ENDPOINT``)
    :param tier_help: what ``--tier`` does for this command
    """
    call('--private', action='store_true',
         help=f'send {what} as a private (signed) call, for one krakenex does not know')
    call('--public', action='store_true',
         help=f'send {what} as a public call, for one krakenex does not know')
    call('--otp', metavar='CODE', help='one-time password, for a key with two-factor auth')
    output('-o', '--output', metavar='FILE',
           help='write the result to FILE (needed for a file such as RetrieveExport\'s zip '
                'when stdout is a terminal)')
    output('-v', '--verbose', action='store_true',
           help='log what is sent and received to stderr (never a secret)')
    where('--timeout', metavar='SECONDS', type=_positive(float),
          help='seconds to wait for a connection and for a reply, up to a day '
               '(default 5 and 30)')
    where('--retries', metavar='N', type=_positive(int, zero=True, maximum=100),
          help='retries of a read-only call after a transient fault, up to 100 (default 3)')
    where('--tier', metavar='TIER', type=_tier, help=tier_help)
    add_share_option(where)


def add_share_option(add: Callable[..., Any]) -> None:
    """The ``--share`` option, the same for every command that uses a key."""
    add('--share', metavar='WHERE',
        help='where the key\'s nonces and rate counter are shared: a directory, '
             'redis://HOST:PORT/DB, or none for this command alone (default: $KRAKENEX_SHARE, '
             'else the user\'s cache directory, shared by every process on this machine)')


def _share_parser() -> _Parser:
    parser = _Parser(
        prog='krakenex share', allow_abbrev=False,
        usage='krakenex share status|reset [--key-file F] [--uri URL | --futures] [--share S]',
        description='Show or forget what is shared for a key on a server: the nonce floor '
                    '(every nonce is above it), whether a call holds the key now, and the rate '
                    'counters. reset forgets the floor and the counters; the next nonce is the '
                    'clock\'s again.')
    parser.add_argument('action', choices=('status', 'reset'))
    parser.add_argument('--key-file', metavar='PATH',
                        help='API key on line 1, secret on line 2 (default: KRAKEN_API_KEY and '
                             'KRAKEN_API_SECRET, then ' + _default_key_file_text() + ')')
    parser.add_argument('--uri', metavar='URL', help='the server (default: $KRAKEN_API_URL, '
                                                     'or $KRAKEN_FUTURES_URL with --futures, '
                                                     'else Kraken)')
    parser.add_argument('--futures', action='store_true',
                        help='the key of Kraken Futures (KRAKEN_FUTURES_KEY), on its server')
    add_share_option(parser.add_argument)
    return parser


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
              f'  {_default_key_file_text()}',
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
              '  krakenex sandbox --port 8080 --motion 1']
    return '\n'.join(lines)


def _positive(kind: type[float] | type[int], zero: bool = False,
              maximum: float = 86400) -> Any:
    """An argparse type: a finite number above zero (or at least zero), at most ``maximum``."""
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f'{text!r} is not a finite number')
        if value < 0 or (value == 0 and not zero):
            bound = 'at least 0' if zero else 'above 0'
            raise argparse.ArgumentTypeError(f'{text!r} must be {bound}')
        if value > maximum:
            raise argparse.ArgumentTypeError(f'{text!r} must be at most {maximum:g}')
        return value
    return convert


def _tier(text: str) -> str | tuple[float, float]:
    """An argparse type: ``none``, or a tier as :func:`krakenex.pacing.parse_tier` reads it."""
    if text == 'none':
        return text
    try:
        return parse_tier(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'{exc} (or none for no pacing)') from None


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
            except RecursionError:
                raise UsageError(f'parameter {name}: its JSON is nested too deeply') from None
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


def check_uri_option(uri: str | None) -> None:
    """Refuse a ``--uri`` that is not a server address, before anything is sent."""
    if uri is not None:
        from .protocol import check_uri

        try:
            check_uri(uri, '--uri')
        except ValueError as exc:
            raise UsageError(str(exc)) from None


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


def _load_credentials(api: API, key_file: str | None, private_method: str | None) -> None:
    """Give ``api`` its key and secret from the first place that has them.

    The one place that decides where the command's credentials come from, in
    this order: ``--key-file``; the environment (``KRAKEN_API_KEY`` and
    ``KRAKEN_API_SECRET``, which :class:`~krakenex.API` has already read);
    the :func:`default_key_file`. A public call reads only a ``--key-file``
    given outright.

    :param private_method: the private method to be called, or ``None`` for a public one
    :raises UsageError: for a key file that cannot be used, only one of the two
        environment variables, or a private call with no credentials anywhere
    """
    if key_file:
        _load_key_file(api, key_file)
        return
    if private_method is None or (api.key and api.secret):
        return
    if api.key or api.secret:
        have, lack = (('KRAKEN_API_KEY', 'KRAKEN_API_SECRET') if api.key else
                      ('KRAKEN_API_SECRET', 'KRAKEN_API_KEY'))
        raise UsageError(f'{have} is set but {lack} is not: set both, or neither')
    path = default_key_file()
    if os.path.exists(path):
        _load_key_file(api, path)
        return
    raise UsageError(f'{private_method} is a private method and needs an API key; none found '
                     f'in --key-file, KRAKEN_API_KEY and KRAKEN_API_SECRET, or {path} '
                     f'(or try it offline with --sandbox)')


def _load_key_file(api: Any, path: str) -> None:
    """``api.load_key(path)``, with any failure as one line naming the file."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            api.load_key(path)
    except OSError as exc:  # a KeyFileError says what was wrong with the file
        raise UsageError(str(exc)) from None
    for warning in caught:
        warn(str(warning.message))


# ------------------------------------------------------------------ calls

@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[Sandbox | None]:
    """The sandbox this command runs against (``--sandbox``), or ``None`` for ``--uri``/Kraken."""
    if not args.sandbox:
        yield None
        return
    from .sandbox import Sandbox

    tier = 'starter' if args.tier is None else None if args.tier == 'none' else args.tier
    with Sandbox(tier=tier) as sandbox:  # Kraken's limits, as on a real key
        yield sandbox


def _share(args: argparse.Namespace, call: Call) -> int:
    """``krakenex share status|reset``: the key's store, shown as JSON or forgotten."""
    options: dict[str, Any] = {} if args.share is None else {'share': args.share}
    client: Any
    if args.futures:
        from .futures import FuturesAPI

        check_uri_option(args.uri)
        client = FuturesAPI(uri=args.uri, **options)
        if args.key_file:
            _load_key_file(client, args.key_file)
        elif not (client.key and client.secret):
            raise UsageError('krakenex share --futures needs the futures key: --key-file, or '
                             'KRAKEN_FUTURES_KEY and KRAKEN_FUTURES_SECRET')
    else:
        from .api import API

        check_uri_option(args.uri)
        client = API(uri=args.uri, **options)
        _load_credentials(client, args.key_file, 'krakenex share')
    with contextlib.closing(client):
        store = client._store()
        if args.action == 'reset':
            store.reset()
            warn(f'forgot the nonce floor and the rate counters in {store.where}')
            return EXIT_OK
        shown = store.status()
        shown.setdefault('server', client.uri)  # the file store keeps it; the others are told
        print(to_json(shown, 2 if sys.stdout.isatty() else None))
    return EXIT_OK


def _api(args: argparse.Namespace, sandbox: Sandbox | None, private_method: str | None) -> API:
    """An API object set up from the options, with credentials for a private call."""
    from .api import API

    tier = args.tier
    if tier is None and args.all:
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
    if args.share is not None:
        options['share'] = args.share
    if sandbox is not None:
        api = API(sandbox.key, sandbox.secret, uri=sandbox.url, **options)
    else:
        api = API(uri=args.uri, **options)
        try:
            _load_credentials(api, args.key_file, private_method)
        except BaseException:
            api.close()
            raise
    return api.json_options(parse_float=Decimal)


def _result(method: str, envelope: Any) -> Any:
    """The ``result`` of a reply; Kraken's errors raise, its warnings go to stderr."""
    from .errors import unwrap

    result = unwrap(envelope, method)
    for warning in envelope.get('error') or ():
        warn(f'Kraken warns: {warning}')
    return result


# ----------------------------------------------------------------- output

class Output:
    """Where the result goes: the ``--output`` file, or stdout.

    The file is opened before the call, so that a path that cannot be written
    sends nothing, and it is emptied only when the result is written, so that
    a failed call leaves an existing file as it was. Every failure to write is
    an :class:`OutputError`.
    """

    def __init__(self, path: str | None) -> None:
        self.file: IO[bytes] | None = None
        self.name = 'stdout'
        if path in (None, '-'):
            if sys.stdout is None:
                raise UsageError('stdout is closed: give --output FILE, or run the command '
                                 'with somewhere to write to')
            return
        self.name = str(path)
        try:
            self.file = open(self.name, 'ab')  # noqa: SIM115 - closed by close()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, 'strerror', None) or exc
            raise UsageError(f'cannot write {self.name}: {reason}') from None

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        if self.file is None:
            return
        try:
            self.file.close()
        except OSError as exc:
            if exc_type is None:
                raise OutputError(self.name, exc) from exc

    def is_terminal(self) -> bool:
        return self.file is None and sys.stdout is not None and sys.stdout.isatty()

    def write(self, content: bytes) -> None:
        """Write the whole result, replacing what the file held."""
        try:
            if self.file is not None:
                if self.file.tell():
                    self.file.truncate(0)
                self.file.write(content)
                self.file.flush()
                return
            stdout = sys.stdout
            stdout.flush()
            buffer = getattr(stdout, 'buffer', None)
            if buffer is None:  # a text-only stream put in place of stdout
                stdout.write(content.decode('utf-8', 'replace'))
                stdout.flush()
            else:
                buffer.write(content)
                buffer.flush()
        except OSError as exc:
            raise OutputError(self.name, exc) from exc


def indent(out: Output) -> int | None:
    """Indent JSON for a person at a terminal, not for a pipe or a file."""
    return 2 if out.is_terminal() else None


def _write(out: Output, text: str) -> None:
    out.write(text.encode('utf-8'))


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

@contextlib.contextmanager
def log_to_stderr(verbose: bool, prog: str = 'krakenex') -> Iterator[logging.Logger]:
    """Log the client's messages to stderr while the command runs, then restore the logger.

    Warnings (retries) only, or everything with --verbose. logging is imported
    here, not up front, to keep ``krakenex --help`` fast.
    """
    import logging

    log = logging.getLogger('krakenex')
    saved = log.level, log.propagate
    handler = logging.StreamHandler(sys.stderr)
    fmt = '%(relativeCreated)6.0f ms %(name)s %(levelname)s: %(message)s' if verbose else \
        f'{prog}: %(message)s'
    handler.setFormatter(logging.Formatter(fmt))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False
    try:
        yield log
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def report(exc: BaseException, call: Call) -> int:
    """Print a failure as one line and return its exit code (:data:`EXIT_CODES`).

    The one decision of every ``krakenex`` command: once a state-changing call
    may have reached Kraken (``call.in_doubt``), any failure but Kraken's own
    answer exits 4 with what is needed to look the call up, whatever it was
    (the reply lost, the result not written, stdout closed, Ctrl-C).
    """
    if call.verbose and not isinstance(exc, (UsageError, KeyboardInterrupt)):
        import traceback

        traceback.print_exception(exc)

    def fail(message: str, code: int) -> int:
        return _fail(message, code, call.prog)

    if isinstance(exc, UsageError) and not call.in_doubt:
        return fail(str(exc), EXIT_USAGE)
    import requests

    from . import errors

    if isinstance(exc, errors.KrakenAPIError):  # Kraken answered, so nothing is in doubt
        message = str(exc) if isinstance(exc, errors.InvalidNonceError) else \
            ', '.join(exc.errors) or str(exc)
        if isinstance(exc.__context__, OutputError):  # --raw could not write the reply
            message += f' (and {exc.__context__})'
        return fail(message, EXIT_KRAKEN)
    if isinstance(exc, errors.OutcomeUnknownError):
        return fail(call.outcome_message(exc), EXIT_UNKNOWN)
    if call.in_doubt and not isinstance(exc, (errors.NotSentError, errors.KrakenUsageError)):
        return fail(_after_sending(call, exc), EXIT_UNKNOWN)
    if isinstance(exc, OutputError):
        if exc.closed_pipe:
            return _stdout_gone()
        return fail(str(exc), EXIT_USAGE)
    if isinstance(exc, BrokenPipeError):
        return _stdout_gone()
    if isinstance(exc, KeyboardInterrupt):
        return fail('interrupted', 130)
    if isinstance(exc, (errors.KrakenUsageError, ImportError)):  # ImportError: an extra missing
        return fail(str(exc), EXIT_USAGE)
    if isinstance(exc, (errors.KrakenError, requests.RequestException)):
        return fail(str(exc) or type(exc).__name__, EXIT_NETWORK)  # HTTP, connection, timeout
    # Not an error krakenex knows: a bug, or input it should have refused with a clear message.
    return fail(f'unexpected {type(exc).__name__}: {exc} (nothing that changes state was '
                f'sent; {call.prog} --verbose shows where it happened)', EXIT_USAGE)


def _stdout_gone() -> int:
    """The reader of stdout went away (krakenex ... | head): stay quiet, as a shell would."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        # Point stdout at /dev/null so that Python's own flush at exit has nothing to complain of.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_CLOSED


def _after_sending(call: Call, exc: BaseException) -> str:
    """What a user needs after a failure here once a state-changing call may have reached Kraken."""
    what = 'it was interrupted' if isinstance(exc, KeyboardInterrupt) else \
        str(exc) or type(exc).__name__
    if call.answered:
        return (f'{call.method} was sent and Kraken accepted it, with the result '
                f'{to_json(call.result)}; but {what}. It was not sent again: do not resubmit it')
    return f'outcome unknown: {call.method} may have reached Kraken but {what}. {call.advice()}'


def _lookup_commands(userref: object, cl_ord_id: object) -> str:
    """The shell commands that find an order by its ``cl_ord_id`` or ``userref``."""
    found = next((f'{name}={value}' for name, value in
                  (('cl_ord_id', cl_ord_id), ('userref', userref)) if value is not None), '')
    return found and f'krakenex OpenOrders {found} and krakenex ClosedOrders {found}'


def warn(message: str, prog: str = 'krakenex') -> None:
    """Print one line on stderr, whatever line breaks the message had."""
    if sys.stderr is None:
        return
    with contextlib.suppress(OSError, ValueError):
        print(f'{prog}: {" ".join(message.split())}', file=sys.stderr, flush=True)


def _fail(message: str, code: int, prog: str = 'krakenex') -> int:
    warn(message, prog)
    return code
