"""Drive the sandbox with Kraken clients nobody here wrote; print a JSON summary.

Run with the peer virtualenv's python (see tests/test_peers.py):

    python peer_check.py URL KEY1 SECRET1 KEY2 SECRET2 KEY3 SECRET3 [KEY4 SECRET4]

Each client gets its own key, as Kraken advises: krakenex 2.x counts nonces in
milliseconds and python-kraken-sdk in 10-nanosecond units, so one key shared
between them would fail on nonces. The optional fourth key holds only the
``query-funds`` permission: python-kraken-sdk and ccxt then meet Kraken's
``EGeneral:Permission denied`` as their own permission errors. Exits 1 if any
check fails.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from typing import Any

checks: list[dict[str, Any]] = []


def check(client: str, name: str, run: Callable[[], Any]) -> Any:
    """Run one check; record what it returned or how it failed."""
    try:
        value = run()
    except Exception as exc:  # every failure is evidence for the summary
        checks.append({'client': client, 'check': name, 'ok': False,
                       'error': f'{type(exc).__name__}: {exc}',
                       'trace': traceback.format_exc(limit=3)})
        return None
    checks.append({'client': client, 'check': name, 'ok': True})
    return value


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def ok(reply: dict[str, Any]) -> Any:
    """krakenex 2.x returns the raw envelope."""
    expect(reply.get('error') == [], f'Kraken error: {reply}')
    return reply['result']


def run_krakenex(url: str, key: str, secret: str) -> None:
    import krakenex

    installed = importlib.metadata.version('krakenex')
    expect(installed == '2.2.2' and krakenex.__file__.startswith(sys.prefix),
           f'krakenex {installed} from {krakenex.__file__} is not the installed 2.2.2')
    k = krakenex.API(key, secret)
    k.uri = url

    def private(method: str, data: dict[str, Any] | None = None) -> Any:
        time.sleep(0.002)  # krakenex 2.x's nonce is in ms: two calls in one ms collide
        return ok(k.query_private(method, data))

    check('krakenex', 'Time', lambda: expect(ok(k.query_public('Time'))['unixtime'] > 0, 'time'))
    check('krakenex', 'Ticker', lambda: expect(
        'XXBTZUSD' in ok(k.query_public('Ticker', {'pair': 'XBTUSD'})), 'ticker'))
    check('krakenex', 'Balance', lambda: expect(
        Decimal(private('Balance')['ZUSD']) > 0, 'balance'))
    placed = check('krakenex', 'AddOrder', lambda: private('AddOrder', {
        'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'volume': '0.01',
        'price': '50000', 'userref': 2222}))
    txid = placed['txid'][0] if placed else ''
    check('krakenex', 'OpenOrders', lambda: expect(
        txid in private('OpenOrders')['open'], 'order not open'))
    check('krakenex', 'CancelOrder', lambda: expect(
        private('CancelOrder', {'txid': txid})['count'] == 1, 'not canceled'))

    def all_ledgers() -> None:
        seen: list[str] = []
        while True:
            page = private('Ledgers', {'ofs': len(seen)})
            if not page['ledger']:
                break
            seen += list(page['ledger'])
        expect(len(seen) == page['count'] == len(set(seen)), f'{len(seen)} rows, {page["count"]}')
        expect(len(seen) > 150, 'short ledger')

    check('krakenex', 'Ledgers paging', all_ledgers)


def run_kraken_sdk(url: str, key: str, secret: str) -> None:
    from kraken.spot import Market, Trade, User

    market, user, trade = Market(url=url), User(key, secret, url=url), Trade(key, secret, url=url)
    check('python-kraken-sdk', 'Ticker', lambda: expect(
        'XXBTZUSD' in market.get_ticker(pair='XBTUSD'), 'ticker'))
    check('python-kraken-sdk', 'Balance', lambda: expect(
        Decimal(user.get_account_balance()['ZUSD']) > 0, 'balance'))
    check('python-kraken-sdk', 'BalanceEx', lambda: expect(
        user.get_balance('USD')['balance'] > 0, 'balance'))
    placed = check('python-kraken-sdk', 'create_order', lambda: trade.create_order(
        ordertype='limit', side='buy', pair='XBTUSD', volume='0.01', price='50000'))
    txid = placed['txid'][0] if placed else ''
    check('python-kraken-sdk', 'cancel_order', lambda: expect(
        trade.cancel_order(txid=txid)['count'] == 1, 'not canceled'))
    batch = [{'ordertype': 'limit', 'type': 'buy', 'volume': 0.01, 'price': 49000 + i,
              'timeinforce': 'GTC'} for i in range(2)]
    check('python-kraken-sdk', 'create_order_batch (JSON body)', lambda: expect(
        len(trade.create_order_batch(orders=batch, pair='BTC/USD')['orders']) == 2, 'batch'))
    check('python-kraken-sdk', 'cancel_all_orders', lambda: expect(
        trade.cancel_all_orders()['count'] == 2, 'not canceled'))

    placed = check('python-kraken-sdk', 'create_order (to amend)', lambda: trade.create_order(
        ordertype='limit', side='buy', pair='XBTUSD', volume='0.01', price='50000'))
    txid = placed['txid'][0] if placed else ''

    def order_amends() -> None:
        amends = user.get_order_amends(order_id=txid)
        expect(amends['count'] == 1 and amends['amends'][0]['amend_type'] == 'original',
               f'amends: {amends}')
        expect(trade.cancel_order(txid=txid)['count'] == 1, 'not canceled')

    check('python-kraken-sdk', 'get_order_amends', order_amends)
    from kraken.spot import Earn

    earn = Earn(key, secret, url=url)
    strategies = check('python-kraken-sdk', 'list_earn_strategies', lambda: [
        s for s in earn.list_earn_strategies(asset='XBT')['items'] if s['asset'] == 'XBT'])
    strategy = strategies[0]['id'] if strategies else ''
    check('python-kraken-sdk', 'allocate_earn_funds', lambda: expect(
        earn.allocate_earn_funds(amount='0.01', strategy_id=strategy) is True, 'not allocated'))
    check('python-kraken-sdk', 'get_allocation_status', lambda: expect(
        earn.get_allocation_status(strategy_id=strategy) == {'pending': False}, 'pending'))


def run_ccxt(url: str, key: str, secret: str) -> None:
    import ccxt

    # ccxt appends '/0/public/...' and '/0/private/...' to these base URLs.
    exchange = ccxt.kraken({'apiKey': key, 'secret': secret,
                            'urls': {'api': {'public': url, 'private': url}}})
    check('ccxt', 'load_markets', lambda: expect('BTC/USD' in exchange.load_markets(), 'markets'))
    check('ccxt', 'fetch_ticker', lambda: expect(
        exchange.fetch_ticker('BTC/USD')['bid'] > 0, 'no bid'))
    check('ccxt', 'fetch_balance', lambda: expect(
        exchange.fetch_balance()['total']['USD'] > 0, 'no USD'))
    order = check('ccxt', 'create_order', lambda: exchange.create_order(
        'BTC/USD', 'limit', 'buy', 0.01, 50000))
    check('ccxt', 'fetch_open_orders', lambda: expect(
        order is not None and order['id'] in [o['id'] for o in exchange.fetch_open_orders()],
        'order not open'))
    check('ccxt', 'cancel_order', lambda: exchange.cancel_order(order['id'] if order else ''))
    orders = [exchange.create_order('BTC/USD', 'limit', 'sell', 0.01, 70000) for _ in range(2)]
    check('ccxt', 'cancel_orders (JSON CancelOrderBatch)', lambda: expect(
        exchange.cancel_orders([o['id'] for o in orders])[0]['info']['result']['count'] == 2,
        'not canceled'))
    check('ccxt', 'market order', lambda: expect(
        exchange.create_order('ETH/USD', 'market', 'sell', 0.5)['id'] is not None, 'no id'))

    def trigger_order(name: str, value: float) -> None:
        placed = exchange.create_order('BTC/USD', 'market', 'sell', 0.01, None, {name: value})
        order = exchange.fetch_order(placed['id'])
        expect(order['status'] == 'open', f'{name}: {order["status"]}')

    check('ccxt', 'create_order stopLossPrice', lambda: trigger_order('stopLossPrice', 30000))
    check('ccxt', 'create_order takeProfitPrice', lambda: trigger_order('takeProfitPrice', 90000))
    check('ccxt', 'create_order trailingAmount', lambda: trigger_order('trailingAmount', 500))
    check('ccxt', 'cancel_all_orders', lambda: exchange.cancel_all_orders())
    check('ccxt', 'fetch_positions', lambda: expect(exchange.fetch_positions() == [],
                                                     'positions'))
    check('ccxt', 'create_market_buy_order_with_cost', lambda: expect(
        exchange.create_market_buy_order_with_cost('BTC/USD', 100)['id'] is not None, 'no id'))


def run_refused(url: str, key: str, secret: str) -> None:
    """A key that may only query funds: each client's own permission error, not a crash."""
    import ccxt
    from kraken.exceptions import KrakenPermissionDeniedError
    from kraken.spot import Trade, User

    def refused(run: Callable[[], Any], error: type[Exception]) -> None:
        try:
            run()
        except error:
            return
        raise AssertionError(f'not refused with {error.__name__}')

    # ccxt first: its nonces (milliseconds) are smaller than python-kraken-sdk's
    exchange = ccxt.kraken({'apiKey': key, 'secret': secret,
                            'urls': {'api': {'public': url, 'private': url}}})
    check('ccxt', 'fetch_balance with a query-funds key', lambda: expect(
        exchange.fetch_balance()['total']['USD'] > 0, 'no USD'))
    check('ccxt', 'create_order refused', lambda: refused(
        lambda: exchange.create_order('BTC/USD', 'limit', 'buy', 0.01, 50000),
        ccxt.PermissionDenied))
    check('ccxt', 'fetch_ledger refused', lambda: refused(
        exchange.fetch_ledger, ccxt.PermissionDenied))
    user, trade = User(key, secret, url=url), Trade(key, secret, url=url)
    check('python-kraken-sdk', 'Balance with a query-funds key', lambda: expect(
        Decimal(user.get_account_balance()['ZUSD']) > 0, 'balance'))
    check('python-kraken-sdk', 'create_order refused', lambda: refused(
        lambda: trade.create_order(ordertype='limit', side='buy', pair='XBTUSD',
                                   volume='0.01', price='50000'),
        KrakenPermissionDeniedError))


def main(argv: list[str]) -> int:
    if len(argv) not in (7, 9):
        print(__doc__, file=sys.stderr)
        return 2
    url, *keys = argv
    credentials = zip(keys[::2], keys[1::2], strict=True)
    runs = (run_krakenex, run_kraken_sdk, run_ccxt, run_refused)[:len(keys) // 2]
    for run, (key, secret) in zip(runs, credentials, strict=True):
        try:
            run(url, key, secret)
        except ImportError as exc:
            checks.append({'client': run.__name__, 'check': 'import', 'ok': False,
                           'error': str(exc)})
    passed: dict[str, list[int]] = {}
    for c in checks:
        counts = passed.setdefault(c['client'], [0, 0])
        counts[0] += c['ok']
        counts[1] += 1
    print(json.dumps({'ok': all(c['ok'] for c in checks), 'passed': passed, 'checks': checks},
                     indent=1))
    return 0 if all(c['ok'] for c in checks) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
