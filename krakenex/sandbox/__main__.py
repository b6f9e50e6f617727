"""``python -m krakenex.sandbox``: run a sandbox until Ctrl-C (:mod:`krakenex.cli.sandbox`)."""

import sys

from ..cli.sandbox import main

sys.exit(main())
