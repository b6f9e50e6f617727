"""python-kraken-sdk's futures clients and ccxt's krakenfutures work against the futures sandbox.

They run unmodified in the peer virtualenv of tests/test_peers.py (same pins).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_peers import peer_python  # noqa: F401  (the shared virtualenv fixture)

from krakenex.sandbox import Sandbox

SCRIPT = Path(__file__).resolve().parent / 'peers' / 'futures_check.py'


@pytest.mark.peers
def test_python_kraken_sdk_and_ccxt_futures_work_unmodified(peer_python: Path) -> None:  # noqa: F811
    with Sandbox() as sandbox:
        sdk, ccxt = sandbox.futures.add_account(), sandbox.futures.add_account()
        run = subprocess.run(
            [str(peer_python), '-I', str(SCRIPT), sandbox.futures_url, sdk.key, sdk.secret,
             ccxt.key, ccxt.secret], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f'{run.stdout[-6000:]}\n{run.stderr[-3000:]}'
        checks = json.loads(run.stdout)['checks']
        failed = [c for c in checks if not c['ok']]
        assert failed == [], failed
        assert {c['client'] for c in checks} == {'python-kraken-sdk', 'ccxt'}
        assert ('ccxt', 'create_order') in {(c['client'], c['check']) for c in checks}
        # What the clients did is what the sandbox recorded.
        sdk_orders = sandbox.futures.orders(sdk.key)
        assert [(o.cli_ord_id, o.state) for o in sdk_orders] == [('sdk-1', 'cancelled'),
                                                                 (None, 'filled')]
        ccxt_orders = sandbox.futures.orders(ccxt.key)
        assert [(o.kind, o.state) for o in ccxt_orders] == [('lmt', 'cancelled'),
                                                            ('mkt', 'filled')]
