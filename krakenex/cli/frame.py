"""What every ``krakenex`` command shares: parsing, credentials, output, exit codes, Ctrl-C.

The REST call (:mod:`krakenex.cli.rest`), ``krakenex --futures``
(:mod:`krakenex.cli.futures`), ``krakenex ws`` (:mod:`krakenex.cli.ws`) and
``krakenex share`` (:mod:`krakenex.cli.share`) each parse their options with a
:class:`Parser` and run through :func:`run_command`, which turns every failure
into one line on stderr and an exit code (:data:`EXIT_CODES`) by what the
command's :class:`Call` says was sent. Only the standard library and
:mod:`krakenex.pacing` are imported up front, so ``krakenex --help`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, NoReturn

from ..pacing import parse_tier

if TYPE_CHECKING:
    import logging

__all__ = ['EXIT_CODES', 'UsageError', 'Parser', 'run_program', 'run_command', 'Call',
           'lookup_advice', 'spot_lookup', 'sending_through', 'OutputError', 'Output',
           'add_shared_options', 'add_share_option', 'parse_params', 'check_uri_option',
           'default_key_file', 'default_key_file_text', 'load_credentials', 'indent',
           'write_text', 'to_json', 'log_to_stderr', 'report', 'warn']

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


class UsageError(Exception):
    """Bad input caught by the command itself; exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line (exit code 2), not a usage screen.

    :param help_command: the command whose ``--help`` shows the options, named in that line
    """

    def __init__(self, *args: Any, help_command: str = 'krakenex', **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_command = help_command

    def error(self, message: str) -> NoReturn:
        raise UsageError(f'{message} ({self.help_command} --help shows the options)')


def run_program(main: Callable[[], int]) -> int:
    """Run ``main`` (:func:`krakenex.cli.program`) under the Ctrl-C rules of every command.

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
        except Exception as exc:
            # argparse undoes its own changes in a finally that a Ctrl-C can cut short; the
            # error that leaves is not the user's: the interruption is
            if isinstance(exc.__context__, KeyboardInterrupt):
                raise exc.__context__ from None
            raise
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
    (:attr:`ID_NAMES`, :attr:`ELSEWHERE`, :meth:`commands`); this one does it for spot REST.

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

    #: The parameters that identify an order, in the order advice names them.
    ID_NAMES: tuple[str, ...] = ('cl_ord_id', 'userref')
    #: Where to look for a call that carried none of :attr:`ID_NAMES`.
    ELSEWHERE = 'look in OpenOrders and ClosedOrders (next time give it a userref or cl_ord_id)'

    def ids(self) -> list[tuple[str, Any]]:
        """The ids the call was sent with, each as ``(name, value)``."""
        return [(name, self.data[name]) for name in self.ID_NAMES
                if self.data.get(name) is not None]

    def commands(self, ids: list[tuple[str, Any]]) -> str:
        """The shell commands that look the call up by ``ids``; empty without one."""
        return spot_lookup(ids)

    def advice(self) -> str:
        """What to do about a call that may have reached Kraken: how to look it up first."""
        ids = self.ids()
        return lookup_advice(self.method, ids, self.commands(ids), self.ELSEWHERE)

    def outcome_message(self, exc: Any) -> str:
        """The client's account of an unknown outcome, and the commands that look the call up."""
        ids = [(name, getattr(exc, name, None) or self.data.get(name)) for name in self.ID_NAMES]
        how = self.commands([(name, value) for name, value in ids if value is not None])
        return f'outcome unknown: {exc}' + (f' From the shell: {how}' if how else '')


def lookup_advice(method: str | None, ids: list[tuple[str, Any]], how: str,
                  elsewhere: str) -> str:
    """The advice of every command after an unknown outcome: look the call up, then resubmit.

    :param ids: the call's ids as ``(name, value)``, to look it up by
    :param how: the commands that look it up by ``ids``
    :param elsewhere: where to look without ids
    """
    if ids:
        found = ', '.join(f'{name} {value}' for name, value in ids)
        lookup = f'look it up by {found} ({how})'
    else:
        lookup = elsewhere
    return (f'It may or may not have taken effect at Kraken, and krakenex did not send it '
            f'again: {lookup} before you resubmit {method or "it"}.')


def spot_lookup(ids: list[tuple[str, Any]]) -> str:
    """The REST commands that find a spot order by the first of its ids; empty without one."""
    for name, value in ids:
        value = ','.join(map(str, value)) if isinstance(value, list) else value
        if name == 'order_id':
            return f'krakenex QueryOrders txid={value}'
        rest = 'userref' if name == 'order_userref' else name
        return f'krakenex OpenOrders {rest}={value} and krakenex ClosedOrders {rest}={value}'
    return ''


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


def check_uri_option(uri: str | None) -> None:
    """Refuse a ``--uri`` that is not a server address, before anything is sent."""
    if uri is not None:
        from ..protocol import check_uri

        try:
            check_uri(uri, '--uri')
        except ValueError as exc:
            raise UsageError(str(exc)) from None


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


def default_key_file_text() -> str:
    """The default key file as the help shows it."""
    path = default_key_file()
    home = os.path.expanduser('~')
    shown = '~' + path[len(home):] if path.startswith(home + os.sep) else path
    return f'the key file {shown} ($XDG_CONFIG_HOME/krakenex/kraken.key)'


def load_credentials(client: Any, key_file: str | None, needed_by: str | None, prog: str,
                     *, missing: str | None, key_file_default: bool = True) -> None:
    """Give ``client`` its key and secret from the first place that has them.

    The one policy of every command that uses a key, in this order:
    ``--key-file``; the environment (the client's ``KEY_VARIABLES``, which it
    has already read: both, or neither); the :func:`default_key_file`, for a
    spot key only (``key_file_default``: a Kraken Futures key is another key).
    A public call reads only a ``--key-file`` given outright. What a key file
    warns of (a file others may read) is one line each on stderr.

    :param needed_by: what needs the key (a private method), or ``None`` for a public call
    :param prog: the command's name, for those lines
    :param missing: the usage error of a private call with no key anywhere; ``None``
        leaves it to the client, which refuses such a call before sending it
    :raises UsageError: for a key file that cannot be used, only one of the two
        environment variables, or a private call with no credentials anywhere
    """
    if key_file:
        _load_key_file(client, key_file, prog)
        return
    if needed_by is None or (client.key and client.secret):
        return
    if client.key or client.secret:
        have, lack = client.KEY_VARIABLES if client.key else client.KEY_VARIABLES[::-1]
        raise UsageError(f'{have} is set but {lack} is not: set both, or neither')
    path = default_key_file()
    if key_file_default and os.path.exists(path):
        _load_key_file(client, path, prog)
        return
    if missing is not None:
        raise UsageError(missing)


def _load_key_file(client: Any, path: str, prog: str) -> None:
    """``client.load_key(path)``, with any failure as one line naming the file."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            client.load_key(path)
    except OSError as exc:  # a KeyFileError says what was wrong with the file
        raise UsageError(str(exc)) from None
    for warning in caught:
        warn(str(warning.message), prog)


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


def write_text(out: Output, text: str) -> None:
    """Write the result, text, to ``out``."""
    out.write(text.encode('utf-8'))


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
    if isinstance(exc, KeyboardInterrupt) and not call.in_doubt:
        # Judged before importing anything: the Ctrl-C may have cut an import short.
        return fail('interrupted', 130)
    import requests

    from .. import errors

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


def warn(message: str, prog: str = 'krakenex') -> None:
    """Print one line on stderr, whatever line breaks the message had."""
    if sys.stderr is None:
        return
    with contextlib.suppress(OSError, ValueError):
        print(f'{prog}: {" ".join(message.split())}', file=sys.stderr, flush=True)


def _fail(message: str, code: int, prog: str = 'krakenex') -> int:
    warn(message, prog)
    return code
