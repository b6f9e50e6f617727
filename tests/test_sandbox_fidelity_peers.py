"""ccxt, ccxt.pro and python-kraken-sdk calls that once met a sandbox unlike Kraken now pass.

Each call in tests/peers/fidelity_check.py is the peer's own, unmodified, in the
peer virtualenv of tests/test_peers.py: ccxt's ``fetch_deposit_address``
(Kraken's method names) and ``fetch_trading_fee`` (TradeVolume's ``fee-info``),
ccxt.pro's ``create_order_ws`` with ``postOnly``, trigger prices, a preset
stop-loss and ``reduceOnly`` (WebSocket v2 fields honoured or refused by name),
python-kraken-sdk's deposit calls (``cursor`` as Kraken reads it, an unknown
asset refused), ccxt's krakenfutures order history (``/api/history/v2/orders``)
and an unmodelled endpoint refused with Kraken's JSON.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_peers import peer_python  # noqa: F401  (the pinned peers' virtualenv)

from krakenex.sandbox import Sandbox

SCRIPT = Path(__file__).resolve().parent / 'peers' / 'fidelity_check.py'


@pytest.mark.peers
@pytest.mark.slow
def test_peer_calls_that_found_the_sandbox_unlike_kraken_pass(
        peer_python: Path) -> None:  # noqa: F811
    with Sandbox() as sandbox:
        ccxt, sdk = sandbox.add_account(), sandbox.add_account()
        run = subprocess.run(
            [str(peer_python), '-I', str(SCRIPT), sandbox.url, sandbox.ws_auth_url,
             ccxt.key, ccxt.secret, sdk.key, sdk.secret, sandbox.futures.key,
             sandbox.futures.secret],
            capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f'{run.stdout[-6000:]}\n{run.stderr[-3000:]}'
        summary = json.loads(run.stdout)
        assert summary['passed'] == {'ccxt': [2, 2], 'ccxt.pro': [6, 6],
                                     'python-kraken-sdk': [3, 3], 'krakenfutures': [3, 3]}
        # What ccxt.pro did is what the sandbox recorded: the post-only order never took.
        first = sandbox.orders(ccxt.key)[0]
        assert (first['status'], first['reason'], first['vol_exec']) == (
            'canceled', 'Post only order', '0.00000000')
