"""``python -m krakenex``: the ``krakenex`` command (see :mod:`krakenex.cli`)."""

import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
