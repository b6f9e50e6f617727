"""What to install for an optional part of krakenex, said the same way everywhere.

Asking the package index for krakenex with an extra installs krakenex 2.2.2,
which has no extras. So the advice names the packages themselves, with the
versions the installed krakenex asks for (setup.cfg's extras, read from its
metadata), and the extra to install from a checkout of this repository.
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata

__all__ = ['needs']

#: Where a requirement's name ends: at a version, an extra or a marker.
_NAME_END = re.compile(r'[<>=!~\[;\s]')


def needs(what: str, extra: str) -> str:
    """The one-line message for ``what``, which needs the packages of the extra ``extra``.

    Such as ``krakenex.ws needs websockets: pip install 'websockets<18,>=15.0' (or, in a
    checkout of krakenex: pip install '.[ws]')``.
    """
    try:
        requires = metadata.requires('krakenex') or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        requires = []
    marker = re.compile(rf'extra\s*==\s*["\']{re.escape(extra)}["\']')
    wanted = [r.split(';', 1)[0].strip() for r in requires if marker.search(r)]
    checkout = f"pip install '.[{extra}]'"
    if not wanted:
        return f'{what} needs the {extra!r} extra: in a checkout of krakenex, {checkout}'
    names = ', '.join(dict.fromkeys(_NAME_END.split(r, 1)[0] for r in wanted))
    install = ' '.join(shlex.quote(r) for r in wanted)
    return (f'{what} needs {names}: pip install {install} (or, in a checkout of krakenex: '
            f'{checkout})')
