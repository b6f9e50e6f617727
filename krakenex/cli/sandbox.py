"""``krakenex sandbox`` and ``python -m krakenex.sandbox``: run a sandbox until Ctrl-C.

It prints every address the sandbox serves and its keys
(:meth:`~krakenex.sandbox.Sandbox.connection`), or with ``--env`` the same as
shell exports of the variables the clients read, then serves until Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
import threading
from typing import Any

from ..pacing import TIERS, parse_tier

__all__ = ['main', 'parser', 'environment']


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f'{text!r} is not a TCP port (0 to 65535)')
    return int(text)


def _tier_option(text: str) -> str | tuple[float, float] | None:
    if text == 'none':
        return None
    if text in TIERS:
        return text  # by name, so that the engine's limits are that tier's too
    try:
        return parse_tier(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nonce_window(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number of nonce units')
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'{text!r} is not a positive number of seconds')
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not the usage too
        self.exit(2, f'{self.prog}: error: {message}\n')


def parser(prog: str = 'python -m krakenex.sandbox') -> argparse.ArgumentParser:
    """The command's options: ``krakenex sandbox`` and ``python -m krakenex.sandbox``."""
    parser = _Parser(prog=prog, description='A local Kraken-compatible exchange: spot REST, '
                     'Kraken Futures and WebSocket v2 on one port, until Ctrl-C.')
    parser.add_argument('--port', type=_port, default=0,
                        help='TCP port (default: any free one)')
    parser.add_argument('--tier', type=_tier_option, metavar='TIER', default='starter',
                        help="Kraken's limits of this tier: " + ', '.join(TIERS)
                        + ", MAX,DECAY (the call counter's) or none (default: starter)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the market and keys')
    parser.add_argument('--nonce-window', type=_nonce_window, default=0, metavar='N',
                        help='the key\'s nonce window in nonce units, as set on a key at '
                        'Kraken: a nonce up to N below the highest is accepted once (default 0)')
    parser.add_argument('--motion', type=_seconds, metavar='SECONDS',
                        help='move every price one seeded random step each SECONDS '
                        '(default: prices stay still)')
    parser.add_argument('--env', action='store_true',
                        help='print the addresses and keys as shell exports of the variables '
                        'krakenex reads (KRAKEN_API_URL, KRAKEN_API_KEY, ...), for . FILE')
    return parser


def main(argv: list[str] | None = None, *, prog: str = 'python -m krakenex.sandbox') -> int:
    """Run a sandbox until Ctrl-C or SIGTERM; print where it serves and its keys first.

    One ``name: value`` line each (:meth:`Sandbox.connection`), or with ``--env``
    one ``export VARIABLE=value`` line each. A port that is taken, or any other
    usage error, is one line on stderr and exit status 2.

    :param argv: the arguments, without the program name; ``sys.argv[1:]`` by default
    :param prog: the program name its usage and errors show
    :returns: 0 once the sandbox has stopped; 2 if it could not start
    """
    try:
        args = parser(prog).parse_args(argv)
    except SystemExit as exited:  # --help, or a usage error already printed
        return exited.code if isinstance(exited.code, int) else 2
    from ..sandbox import Sandbox

    sandbox = Sandbox(args.port, seed=args.seed, tier=args.tier, motion=args.motion,
                      nonce_window=args.nonce_window)
    try:
        sandbox.start()
    except OSError as exc:
        print(f'{prog}: error: cannot listen on 127.0.0.1:{args.port}: '
              f'{exc.strerror or exc}', file=sys.stderr)
        return 2
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: done.set())
    try:
        connection = sandbox.connection()
        if args.env:
            lines = [f'export {variable}={shlex.quote(connection[name])}'
                     for name, variable in environment().items() if name in connection]
        else:
            lines = [f'{name}: {value}' for name, value in connection.items()]
        print(*lines, sep='\n', flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print('sandbox stopped', file=sys.stderr)
    return 0


def environment() -> dict[str, str]:
    """The environment variable each client reads each of :meth:`Sandbox.connection`'s values from.

    Taken from the clients themselves, so that each name is written once; imported
    here, for ``--env`` alone.
    """
    from ..core import KeyedCore
    from ..futures.core import FuturesCore
    from ..ws.protocol import AUTH, LEVEL3, PUBLIC, UNIFIED_URL_VARIABLES, URL_VARIABLES

    return {
        'url': KeyedCore.URL_VARIABLE, 'key': KeyedCore.KEY_VARIABLES[0],
        'secret': KeyedCore.KEY_VARIABLES[1],
        'ws_url': URL_VARIABLES[PUBLIC][0], 'ws_auth_url': URL_VARIABLES[AUTH][0],
        'ws_l3_url': URL_VARIABLES[LEVEL3][0],
        'unified_url': UNIFIED_URL_VARIABLES[PUBLIC][0],
        'unified_auth_url': UNIFIED_URL_VARIABLES[AUTH][0],
        'futures_url': FuturesCore.URL_VARIABLE, 'futures_key': FuturesCore.KEY_VARIABLES[0],
        'futures_secret': FuturesCore.KEY_VARIABLES[1],
    }
