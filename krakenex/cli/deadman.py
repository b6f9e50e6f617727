"""``krakenex dead-man-switch TIMEOUT COMMAND``: a bot run with Kraken's dead man's switch armed.

::

    krakenex dead-man-switch 60 -- python bot.py --live

It arms the key's switch (CancelAllOrdersAfter, or ``cancelallordersafter`` with
``--futures``) for TIMEOUT seconds, runs COMMAND, and re-arms every ``--every``
seconds (a third of TIMEOUT unless given) while COMMAND runs
(:mod:`krakenex.deadman`). When COMMAND exits 0 the switch is disarmed and its
orders stay. When it fails, or is killed, the switch stays armed and Kraken
cancels every order of the key TIMEOUT seconds after the last re-arm; so it
does when this command itself is killed. The exit code is COMMAND's (128 + N
when signal N ended it). A re-arm that fails is one line on stderr. Once the
first arming was sent, a failure of the switch itself (Ctrl-C included) exits 4
and says until when the switch may be armed and how to disarm it; a Ctrl-C
during the final disarm is ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import KrakenAPIError, NotSentError
from .frame import (
    EXIT_UNKNOWN,
    Call,
    Parser,
    UsageError,
    add_share_option,
    check_uri_option,
    default_key_file,
    load_credentials,
    log_to_stderr,
    run_command,
    warn,
)

__all__ = ['main', 'USAGE']

PROG = 'krakenex dead-man-switch'

USAGE = (f'{PROG} [--every SECONDS] [--futures] [--key-file F] [--uri URL] TIMEOUT '
         f'[--] COMMAND [ARG ...]')

#: The options before TIMEOUT that take a value, to find where TIMEOUT and COMMAND start.
#: The exit code when COMMAND's own is not known (this command stopped waiting for it).
EXIT_FAILED = 1

_VALUED = frozenset({'--every', '--key-file', '--uri', '--share'})


def main(argv: Sequence[str]) -> int:
    """Run ``krakenex dead-man-switch`` with ``argv`` (the arguments after it); the exit code."""
    argv = list(argv)
    at = _timeout_index(argv)
    command = argv[at + 1:]
    if command[:1] == ['--']:
        command = command[1:]
    return run_command(Call(PROG), _parser(), argv[:at + 1],
                       lambda args, call: _run(args, call, command))


def _timeout_index(argv: list[str]) -> int:
    """Where TIMEOUT is: the first argument that is neither an option nor an option's value."""
    at = 0
    while at < len(argv) and argv[at].startswith('-') and argv[at] != '--':
        at += 2 if argv[at] in _VALUED else 1
    return min(at, len(argv))


def _parser() -> Parser:
    parser = Parser(prog=PROG, allow_abbrev=False, help_command=PROG, usage=USAGE,
                    description='Run COMMAND with the key\'s dead man\'s switch armed: '
                                'Kraken cancels every order of the key TIMEOUT seconds '
                                'after the last re-arm. COMMAND exiting 0 disarms it; '
                                'COMMAND failing or killed, or this command killed, '
                                'leaves it armed. The exit code is COMMAND\'s.')
    parser.add_argument('timeout', metavar='TIMEOUT', type=int,
                        help='seconds, 1 to 86399 (Kraken advises 60)')
    parser.add_argument('--every', metavar='SECONDS', type=float,
                        help='seconds between two re-arms, at most TIMEOUT/2 '
                             '(default TIMEOUT/3; Kraken advises 15 to 30)')
    parser.add_argument('--futures', action='store_true',
                        help='the switch of a Kraken Futures key (KRAKEN_FUTURES_KEY, ...)')
    parser.add_argument('--key-file', metavar='PATH',
                        help='API key on the first line, secret on the second '
                             f'(default: the environment, else {default_key_file()})')
    parser.add_argument('--uri', metavar='URL', help='another server, such as a sandbox\'s URL')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='log each call to stderr (never a secret)')
    add_share_option(parser.add_argument)
    return parser


def _run(args: argparse.Namespace, call: Call, command: list[str]) -> int:
    call.verbose = args.verbose
    if not command:
        raise UsageError(f'no COMMAND given: {PROG} 60 -- python bot.py')
    check_uri_option(args.uri)
    with log_to_stderr(args.verbose, PROG), _client(args) as client:
        keeper = client.dead_man_switch(args.timeout, args.every)
        # From the first arming on, a failure (Ctrl-C included) may leave the switch armed.
        call.sending(_method(args), {'timeout': args.timeout})
        try:
            code = _keep_armed(keeper, command)
            call.settled = True  # disarmed, or left armed as COMMAND's exit asked
            return code
        except BaseException as exc:
            call.settled = True  # first: a Ctrl-C from here changes nothing
            if isinstance(exc, SystemExit):
                raise
            if isinstance(exc, UsageError) or \
                    isinstance(exc, (KrakenAPIError, NotSentError)) and not keeper.arms:
                # COMMAND could not start and the switch was disarmed again, or the first
                # arming was refused by Kraken or never sent: nothing is armed.
                call.method = None
                raise
            warn(_maybe_armed(exc, args), PROG)
            return EXIT_UNKNOWN


def _keep_armed(keeper: Any, command: list[str]) -> int:
    """Arm the switch, run COMMAND, disarm it when COMMAND exits 0; COMMAND's exit code."""
    keeper.start()  # before COMMAND: it never trades without the switch
    try:
        child = _start(command)
    except BaseException:
        _stop(keeper, disarm=True)  # nothing ran
        raise
    code = EXIT_FAILED
    try:
        code = _wait_for(child)
    finally:
        _stop(keeper, disarm=code == 0)
    return code


def _stop(keeper: Any, disarm: bool) -> None:
    """Stop re-arming and disarm if asked, with Ctrl-C ignored: it cannot cut a disarm short."""
    main = threading.current_thread() is threading.main_thread()
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        keeper.stop(disarm=disarm)
    finally:
        if main:
            signal.signal(signal.SIGINT, saved)


def _method(args: argparse.Namespace) -> str:
    return 'cancelallordersafter' if args.futures else 'CancelAllOrdersAfter'


def _maybe_armed(exc: BaseException, args: argparse.Namespace) -> str:
    """What a failure after the first arming means: until when the switch may be armed, and
    how to disarm it."""
    what = 'interrupted' if isinstance(exc, KeyboardInterrupt) else \
        str(exc) or type(exc).__name__
    until = time.strftime('%H:%M:%S', time.gmtime(math.ceil(time.time()) + args.timeout))
    disarm = 'krakenex --futures cancelallordersafter timeout=0' if args.futures else \
        'krakenex CancelAllOrdersAfter timeout=0'
    return (f'outcome unknown: {what}; the dead man\'s switch may be armed until {until} UTC, '
            f'when Kraken cancels every order of the key. To disarm it: {disarm}')


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """The spot API, or with ``--futures`` the Kraken Futures API, with its credentials."""
    options: dict[str, Any] = {} if args.share is None else {'share': args.share}
    if args.futures:
        from ..futures import FuturesAPI

        client: Any = FuturesAPI(uri=args.uri, **options)
        needed = 'cancelallordersafter'
    else:
        from ..api import API

        client = API(uri=args.uri, **options)
        needed = 'CancelAllOrdersAfter'
    with client:
        load_credentials(client, args.key_file, needed, PROG, key_file_default=not args.futures,
                         missing=f'the dead man\'s switch needs an API key ({needed}); none '
                                 f'found in --key-file, {" and ".join(client.KEY_VARIABLES)}'
                                 + ('' if args.futures else f', or {default_key_file()}'))
        yield client


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(command)
    except OSError as exc:
        raise UsageError(f'cannot run {command[0]}: {exc.strerror or exc}') from None


def _wait_for(child: subprocess.Popen[bytes]) -> int:
    """Wait for COMMAND to end; its exit code, 128 + N for signal N.

    Ctrl-C reaches COMMAND from the terminal and COMMAND decides what it means;
    a SIGTERM sent to this command is passed on to it.
    """
    main = threading.current_thread() is threading.main_thread()
    saved: list[Any] = []
    if main:
        saved = [signal.signal(signal.SIGINT, signal.SIG_IGN),
                 signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))]
    try:
        code = child.wait()
    finally:
        if main:
            signal.signal(signal.SIGINT, saved[0])
            signal.signal(signal.SIGTERM, saved[1])
    return 128 - code if code < 0 else code
