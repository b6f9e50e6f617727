"""The ``krakenex`` command: which of its commands the arguments ask for.

::

    krakenex METHOD ...               Kraken's spot REST (krakenex.cli.rest)
    krakenex --futures ENDPOINT ...   Kraken Futures REST (krakenex.cli.futures)
    krakenex ws CHANNEL|METHOD ...    WebSocket v2 (krakenex.cli.ws)
    krakenex share status|reset       the key's shared store (krakenex.cli.share)
    krakenex dead-man-switch T CMD    CMD run with Kraken's dead man's switch kept armed
                                      (krakenex.cli.deadman)
    krakenex sandbox ...              a local Kraken until Ctrl-C (krakenex.cli.sandbox)

What they share (options, credentials, output, exit codes, Ctrl-C) is
:mod:`krakenex.cli.frame`. Each command is imported only when it runs, so
``krakenex --help`` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .frame import (
    EXIT_CODES,
    Call,
    Output,
    OutputError,
    UsageError,
    add_share_option,
    add_shared_options,
    check_uri_option,
    default_key_file,
    indent,
    log_to_stderr,
    parse_params,
    report,
    run_program,
    sending_through,
    to_json,
    warn,
)

__all__ = ['main', 'program', 'EXIT_CODES', 'default_key_file', 'parse_params', 'to_json', 'Call',
           'report', 'Output', 'OutputError', 'UsageError', 'add_share_option', 'sending_through',
           'add_shared_options', 'log_to_stderr', 'indent', 'check_uri_option', 'warn']


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
        from .share import main as share

        return share(argv[1:])
    if argv[:1] == ['dead-man-switch']:
        from .deadman import main as dead_man_switch

        return dead_man_switch(argv[1:])
    if argv[:1] == ['ws']:
        from .ws import main as ws

        return ws(argv[1:])
    if '--futures' in argv:
        from .futures import main as futures

        return futures([arg for arg in argv if arg != '--futures'])
    from .rest import main as rest

    return rest(argv)


def program() -> int:
    """The ``krakenex`` program (``python -m krakenex`` and the installed command): :func:`main`.

    Its exit code is final once the command has it: a Ctrl-C after that, up
    to the end of the process, is ignored, so a result printed whole is never
    turned into an interruption (130) by a late Ctrl-C
    (:func:`~krakenex.cli.frame.run_program`).

    :returns: the exit code, for :func:`sys.exit`
    """
    return run_program(main)
