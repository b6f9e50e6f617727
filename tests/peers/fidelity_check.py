"""The peer calls that found where the sandbox answered unlike Kraken; print a JSON summary.

Run with the peer virtualenv's python (see tests/test_peers.py):

    python fidelity_check.py URL WS_AUTH_URL KEY1 SECRET1 KEY2 SECRET2 FKEY FSECRET

ccxt (REST and ccxt.pro over WebSocket v2) uses the first key, python-kraken-sdk
the second, ccxt's krakenfutures the futures key. Each check is the peer's own
call, unmodified, with what a user of it would expect. Exits 1 if any check fails.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

checks: list[dict[str, Any]] = []


async def check(family: str, name: str, run: Callable[[], Awaitable[Any]]) -> Any:
    """Run one check; record what it returned or how it failed."""
    try:
        value = await run()
    except Exception as exc:  # every failure is evidence for the summary
        checks.append({'family': family, 'check': name, 'ok': False,
                       'error': f'{type(exc).__name__}: {exc}'[:400],
                       'trace': traceback.format_exc(limit=2)[-800:]})
        return None
    checks.append({'family': family, 'check': name, 'ok': True})
    return value


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def run_ccxt(url: str, ws_auth: str, key: str, secret: str) -> None:
    import ccxt
    import ccxt.pro

    rest = ccxt.kraken({'apiKey': key, 'secret': secret,
                        'urls': {'api': {'public': url, 'private': url}}})

    async def deposit_address() -> None:
        found = rest.fetch_deposit_address('BTC')
        expect(bool(found['address']), f'no address: {found}')

    await check('ccxt', 'fetch_deposit_address', deposit_address)

    async def trading_fee() -> None:
        fee = rest.fetch_trading_fee('BTC/USD')
        expect(fee['taker'] == 0.0026 and fee['maker'] == 0.0016, f'fee: {fee}')

    await check('ccxt', 'fetch_trading_fee', trading_fee)

    pro = ccxt.pro.kraken({'apiKey': key, 'secret': secret, 'urls': {'api': {
        'public': url, 'private': url, 'ws': {'privateV2': ws_auth}}}})
    try:
        await pro.load_markets()
        last = (await pro.fetch_ticker('BTC/USD'))['last']

        async def post_only() -> None:
            placed = await pro.create_order_ws('BTC/USD', 'limit', 'buy', 0.01, last * 2,
                                               {'postOnly': True})
            order = await pro.fetch_order(placed['id'])
            expect(order['status'] == 'canceled' and not order['filled'],
                   f'a crossing post-only order: {order["status"]}, filled {order["filled"]}')

        async def triggered(name: str, value: float, kind: str) -> None:
            placed = await pro.create_order_ws('BTC/USD', 'market', 'sell', 0.01, None,
                                               {name: value})
            order = await pro.fetch_order(placed['id'])
            expect(order['status'] == 'open' and order['info']['descr']['ordertype'] == kind,
                   f'{name}: {order["status"]} {order["info"]["descr"]}')

        async def preset_stop_loss() -> None:
            await pro.create_order_ws('BTC/USD', 'limit', 'buy', 0.01, last * 2,
                                      {'stopLoss': {'triggerPrice': round(last * 0.8)}})
            kinds = [o['info']['descr']['ordertype'] for o in await pro.fetch_open_orders()]
            expect('stop-loss' in kinds, f'no close order among {kinds}')

        async def reduce_only() -> None:
            try:
                await pro.create_order_ws('BTC/USD', 'limit', 'buy', 0.01, round(last * 0.9),
                                          {'reduceOnly': True})
            except ccxt.BaseError as refused:
                expect('reduce_only' in str(refused), f'refused without the name: {refused}')
                return
            raise AssertionError('reduce_only dropped: the order was placed')

        await check('ccxt.pro', 'create_order_ws postOnly', post_only)
        await check('ccxt.pro', 'create_order_ws stopLossPrice',
                    lambda: triggered('stopLossPrice', round(last * 0.7), 'stop-loss'))
        await check('ccxt.pro', 'create_order_ws takeProfitPrice',
                    lambda: triggered('takeProfitPrice', round(last * 1.3), 'take-profit'))
        await check('ccxt.pro', 'create_order_ws trailingAmount',
                    lambda: triggered('trailingAmount', 500, 'trailing-stop'))
        await check('ccxt.pro', 'create_order_ws stopLoss (conditional)', preset_stop_loss)
        await check('ccxt.pro', 'create_order_ws reduceOnly', reduce_only)
    finally:
        await pro.close()


async def run_kraken_sdk(url: str, key: str, secret: str) -> None:
    from kraken.exceptions import KrakenUnknownAssetError
    from kraken.spot import Funding

    funding = Funding(key, secret, url=url)

    async def unknown_asset() -> None:
        try:
            deposits = funding.get_recent_deposits_status(asset='DOGE')
        except KrakenUnknownAssetError:
            return
        raise AssertionError(f'{len(deposits)} deposits of an asset Kraken does not list')

    async def deposit_address() -> None:
        method = funding.get_deposit_methods(asset='XBT')[0]['method']
        expect(method == 'Bitcoin', f'method {method!r}')
        expect(bool(funding.get_deposit_address(asset='XBT', method=method)), 'no address')

    async def deposits() -> None:
        found = funding.get_recent_deposits_status(asset='XBT')
        expect(bool(found) and {d['asset'] for d in found} == {'XXBT'}, f'deposits: {found}')

    await check('python-kraken-sdk', 'get_recent_deposits_status', deposits)
    await check('python-kraken-sdk', 'get_recent_deposits_status unknown asset', unknown_asset)
    await check('python-kraken-sdk', 'get_deposit_methods and get_deposit_address',
                deposit_address)


async def run_krakenfutures(url: str, key: str, secret: str) -> None:
    import ccxt

    futures = ccxt.krakenfutures({'apiKey': key, 'secret': secret})
    futures.urls['api'] = {'public': f'{url}/derivatives/api/', 'private':
                           f'{url}/derivatives/api/', 'charts': f'{url}/api/charts/',
                           'history': f'{url}/api/history/'}
    futures.load_markets()
    order = futures.create_order('BTC/USD:USD', 'limit', 'buy', 0.01, 50000)
    futures.cancel_order(order['id'], 'BTC/USD:USD')

    async def canceled() -> None:  # ccxt reads /api/history/v2/orders
        # ccxt lists the order twice, and that is ccxt's own: it takes every OrderPlaced
        # event whose order has filled "0" for a cancel (an order still open too), besides
        # the OrderCancelled event; the history holds one of each, as Kraken's events do.
        found = futures.fetch_canceled_orders('BTC/USD:USD')
        expect(order['id'] in {o['id'] for o in found}, f'canceled orders: {found}')

    async def closed() -> None:
        expect(futures.fetch_closed_orders('BTC/USD:USD') == [], 'nothing filled')

    async def unmodelled() -> None:  # the account log is not modelled: Kraken's JSON refusal
        try:
            futures.fetch_ledger()
        except ccxt.BadRequest as refused:
            expect('notFound' in str(refused), f'refused as {refused}')
            return
        raise AssertionError('an unmodelled endpoint answered')

    await check('krakenfutures', 'fetch_canceled_orders', canceled)
    await check('krakenfutures', 'fetch_closed_orders', closed)
    await check('krakenfutures', 'fetch_ledger (unmodelled, refused)', unmodelled)


async def main(argv: list[str]) -> int:
    if len(argv) != 8:
        print(__doc__, file=sys.stderr)
        return 2
    url, ws_auth, key1, secret1, key2, secret2, fkey, fsecret = argv
    await run_ccxt(url, ws_auth, key1, secret1)
    await run_kraken_sdk(url, key2, secret2)
    await run_krakenfutures(url, fkey, fsecret)
    passed: dict[str, list[int]] = {}
    for c in checks:
        counts = passed.setdefault(c['family'], [0, 0])
        counts[0] += c['ok']
        counts[1] += 1
    print(json.dumps({'ok': all(c['ok'] for c in checks), 'passed': passed, 'checks': checks},
                     indent=1))
    return 0 if all(c['ok'] for c in checks) else 1


if __name__ == '__main__':
    sys.exit(asyncio.run(main(sys.argv[1:])))
