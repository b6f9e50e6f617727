"""``python -m krakenex.sandbox``: run a sandbox until Ctrl-C."""

import sys

from . import main

sys.exit(main())
