"""Drive the sandbox's Kraken Futures with clients nobody here wrote; print a JSON summary.

Run with the peer virtualenv's python (see tests/test_futures_peers.py):

    python futures_check.py URL KEY1 SECRET1 KEY2 SECRET2

python-kraken-sdk's futures clients (Market, User, Trade) use the first key,
ccxt's krakenfutures the second. Exits 1 if any check fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run with -I: add this folder
from peer_check import check, checks, expect  # the spot peers' harness


def run_sdk(url: str, key: str, secret: str) -> None:
    from kraken.futures import Market, Trade, User

    market, user, trade = Market(url=url), User(key, secret, url=url), Trade(key, secret, url=url)

    def instruments() -> None:
        symbols = {i['symbol'] for i in market.get_instruments()['instruments']}
        expect({'PF_XBTUSD', 'PF_ETHUSD'} <= symbols, f'instruments: {symbols}')

    def tickers() -> None:
        found = [t for t in market.get_tickers()['tickers'] if t['symbol'] == 'PF_XBTUSD']
        expect(len(found) == 1 and found[0]['bid'] < found[0]['ask'], f'tickers: {found}')

    def orderbook() -> None:
        book = market.get_orderbook(symbol='PF_XBTUSD')['orderBook']
        expect(book['bids'] and book['asks'], f'orderbook: {book}')

    def candles() -> None:
        ohlc = market.get_ohlc(tick_type='trade', symbol='PF_XBTUSD', resolution='1h')
        expect(len(ohlc['candles']) > 0, f'ohlc: {str(ohlc)[:200]}')

    def wallets() -> None:
        flex = user.get_wallets()['accounts']['flex']
        expect(flex['availableMargin'] > 0, f'flex: {flex}')

    def place_list_cancel() -> None:
        placed = trade.create_order(orderType='lmt', size=0.01, symbol='PF_XBTUSD', side='buy',
                                    limitPrice=50000, cliOrdId='sdk-1')
        status = placed['sendStatus']
        expect(status['status'] == 'placed', f'create_order: {placed}')
        opened = user.get_open_orders()['openOrders']
        expect([o['cliOrdId'] for o in opened] == ['sdk-1'], f'open orders: {opened}')
        cancelled = trade.cancel_order(order_id=status['order_id'])
        expect(cancelled['cancelStatus']['status'] == 'cancelled', f'cancel: {cancelled}')

    def positions() -> None:
        filled = trade.create_order(orderType='mkt', size=0.02, symbol='PF_XBTUSD', side='buy')
        expect(filled['sendStatus']['status'] == 'placed', f'market order: {filled}')
        held = user.get_open_positions()['openPositions']
        expect([(p['symbol'], p['size']) for p in held] == [('PF_XBTUSD', 0.02)],
               f'positions: {held}')

    for name, run in [('get_instruments', instruments), ('get_tickers', tickers),
                      ('get_orderbook', orderbook), ('get_ohlc', candles),
                      ('get_wallets', wallets), ('create_order', place_list_cancel),
                      ('get_open_positions', positions)]:
        check('python-kraken-sdk', name, run)


def run_ccxt(url: str, key: str, secret: str) -> None:
    import ccxt

    exchange = ccxt.krakenfutures({'apiKey': key, 'secret': secret})
    exchange.urls['api'] = {'public': f'{url}/derivatives/api/', 'private':
                            f'{url}/derivatives/api/', 'charts': f'{url}/api/charts/',
                            'history': f'{url}/api/history/'}

    def markets() -> None:
        loaded = exchange.load_markets()
        expect('BTC/USD:USD' in loaded, f'markets: {sorted(loaded)[:10]}')

    def ticker() -> None:
        found = exchange.fetch_ticker('BTC/USD:USD')
        expect(found['bid'] < found['ask'], f'ticker: {found}')

    def book() -> None:
        found = exchange.fetch_order_book('BTC/USD:USD')
        expect(found['bids'] and found['asks'], f'order book: {found}')

    def balance() -> None:
        found = exchange.fetch_balance()
        expect(found['total'].get('USD', 0) > 0, f'balance: {found["total"]}')

    def place_list_cancel() -> None:
        order = exchange.create_order('BTC/USD:USD', 'limit', 'buy', 0.01, 50000)
        opened = exchange.fetch_open_orders('BTC/USD:USD')
        expect([o['id'] for o in opened] == [order['id']], f'open orders: {opened}')
        exchange.cancel_order(order['id'], 'BTC/USD:USD')
        expect(exchange.fetch_open_orders('BTC/USD:USD') == [], 'cancel left an open order')

    def positions() -> None:
        exchange.create_order('BTC/USD:USD', 'market', 'sell', 0.03)
        held = exchange.fetch_positions(['BTC/USD:USD'])
        expect([(p['symbol'], p['side'], p['contracts']) for p in held] ==
               [('BTC/USD:USD', 'short', 0.03)], f'positions: {held}')

    for name, run in [('load_markets', markets), ('fetch_ticker', ticker),
                      ('fetch_order_book', book), ('fetch_balance', balance),
                      ('create_order', place_list_cancel), ('fetch_positions', positions)]:
        check('ccxt', name, run)


def main() -> int:
    url, sdk_key, sdk_secret, ccxt_key, ccxt_secret = sys.argv[1:6]
    run_sdk(url, sdk_key, sdk_secret)
    run_ccxt(url, ccxt_key, ccxt_secret)
    print(json.dumps({'checks': checks}, indent=1))
    return 0 if all(c['ok'] for c in checks) else 1


if __name__ == '__main__':
    sys.exit(main())
