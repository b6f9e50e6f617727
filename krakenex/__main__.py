"""``python -m krakenex``: the ``krakenex`` command (see :mod:`krakenex.cli`)."""

import sys

from .cli import program

if __name__ == '__main__':
    sys.exit(program())
