"""python-kraken-sdk's SpotWSClient runs unmodified against the sandbox's WebSocket feed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_peers import peer_python  # noqa: F401  (the pinned peers' virtualenv)

from krakenex.sandbox import Sandbox

#: Run with the peer virtualenv's python: public ticker, book and ohlc, private executions
#: and add_order, level3 on its own endpoint, through python-kraken-sdk 3.5.1's own
#: connection code.
SCRIPT = '''\
"""python-kraken-sdk's SpotWSClient against the sandbox's feed; prints a JSON summary."""

import asyncio
import json
import sys

from kraken.spot import SpotWSClient

URL, KEY, SECRET, WS_BASE = sys.argv[1:5]


async def main() -> dict:
    seen: list[dict] = []

    async def on_message(message: dict) -> None:
        seen.append(message)

    public = SpotWSClient(callback=on_message, rest_url=URL, ws_url=WS_BASE)
    private = SpotWSClient(key=KEY, secret=SECRET, callback=on_message, no_public=True,
                           rest_url=URL, auth_ws_url=WS_BASE + '/auth')
    level3 = SpotWSClient(key=KEY, secret=SECRET, callback=on_message, no_public=True,
                          rest_url=URL, auth_ws_url=WS_BASE + '/l3')
    await public.start()
    await private.start()
    await level3.start()
    await public.subscribe(params={'channel': 'ohlc', 'symbol': ['BTC/USD'], 'interval': 5})
    await level3.subscribe(params={'channel': 'level3', 'symbol': ['SOL/USD']})
    await public.subscribe(params={'channel': 'ticker', 'symbol': ['BTC/USD']})
    await public.subscribe(params={'channel': 'book', 'symbol': ['ETH/USD'], 'depth': 10})
    await private.subscribe(params={'channel': 'executions', 'snap_orders': True})
    await asyncio.sleep(0.5)
    await private.send_message({'method': 'add_order', 'params': {
        'order_type': 'limit', 'side': 'buy', 'symbol': 'BTC/USD', 'limit_price': 40000,
        'order_qty': 0.01, 'cl_ord_id': 'sdk-ws-1'}, 'req_id': 7})

    def found() -> dict:
        return {
            'ticker': any(m.get('channel') == 'ticker' for m in seen),
            'book_snapshot': any(m.get('channel') == 'book' and m.get('type') == 'snapshot'
                                 for m in seen),
            'executions_snapshot': any(m.get('channel') == 'executions'
                                       and m.get('type') == 'snapshot' for m in seen),
            'add_order': any(m.get('method') == 'add_order' and m.get('success')
                             for m in seen),
            'ohlc_snapshot': any(m.get('channel') == 'ohlc' and m.get('type') == 'snapshot'
                                 for m in seen),
            'level3_snapshot': any(m.get('channel') == 'level3' and m.get('type') == 'snapshot'
                                   and m['data'][0]['bids'] for m in seen),
            'order_in_executions': any(
                m.get('channel') == 'executions' and m.get('type') == 'update'
                and any(d.get('cl_ord_id') == 'sdk-ws-1' for d in m['data']) for m in seen),
        }

    for _ in range(100):
        if all(found().values()):
            break
        await asyncio.sleep(0.1)
    await public.close()
    await private.close()
    await level3.close()
    return {'checks': found(), 'errors': [m for m in seen if 'error' in m
                                          and m.get('success') is not True][:3]}


print(json.dumps(asyncio.run(main())))
'''


@pytest.mark.peers
@pytest.mark.slow
def test_python_kraken_sdk_spot_ws_client_works_against_the_sandbox_feed(
        peer_python: Path, tmp_path: Path) -> None:  # noqa: F811
    script = tmp_path / 'ws_peer.py'
    script.write_text(SCRIPT)
    with Sandbox() as sandbox:
        base = sandbox.ws_url.removesuffix('/v2')  # the client appends /v2 itself
        run = subprocess.run([str(peer_python), '-I', str(script), sandbox.url, sandbox.key,
                              sandbox.secret, base], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f'{run.stdout[-3000:]}\n{run.stderr[-3000:]}'
        summary = json.loads(run.stdout)
        assert summary['checks'] == {'ticker': True, 'book_snapshot': True,
                                     'executions_snapshot': True, 'add_order': True,
                                     'ohlc_snapshot': True, 'level3_snapshot': True,
                                     'order_in_executions': True}, summary
        assert [o['cl_ord_id'] for o in sandbox.orders()] == ['sdk-ws-1']
