"""Kraken Futures' account reads, as the sandbox answers them: balances, positions, orders, fills.

Also the leverage preferences and ``/api/history/v3/orders``, each over the
:class:`~krakenex.sandbox.futures.exchange.FuturesExchange` it is given.
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import Any

from .accounts import FuturesAccount
from .exchange import DEFAULT_LEVERAGE, HAIRCUT, FuturesExchange
from .params import Refusal, boolean, decimal, integer, iso, need, only, parse_time, whole

__all__ = ['FuturesAccountData', 'HISTORY_PARAMS']

D = Decimal

#: What ``/api/history/v3/orders`` accepts.
HISTORY_PARAMS = {'since', 'before', 'sort', 'continuation_token', 'count', 'tradeable',
                  'opened', 'closed'}


class FuturesAccountData:
    """Kraken Futures' account reads over an exchange."""

    def __init__(self, exchange: FuturesExchange) -> None:
        self.exchange = exchange

    def accounts(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        exchange = self.exchange
        margins = exchange.margins(account)
        currencies = {}
        for currency, quantity in sorted(account.balances.items()):
            value = quantity * exchange.usd(currency)
            currencies[currency] = {
                'quantity': quantity, 'value': value,
                'collateral': value * (1 if currency == 'USD' else 1 - HAIRCUT),
                'available': quantity if currency != 'USD' else
                min(quantity, margins['availableMargin'])}
        flex = {'type': 'multiCollateralMarginAccount', 'currencies': currencies, **margins,
                'unrealizedFunding': D(0), 'totalUnrealized': margins['pnl'],
                'totalUnrealizedAsMargin': margins['pnl']}
        return {'accounts': {'cash': {'type': 'cashAccount', 'balances': {}}, 'flex': flex}}

    def open_positions(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        positions = []
        for symbol, position in sorted(account.positions.items(),
                                       key=lambda item: -item[1].fill_time):
            entry: dict[str, Any] = {
                'side': 'long' if position.size > 0 else 'short', 'symbol': symbol,
                'price': position.price, 'fillTime': iso(position.fill_time),
                'size': abs(position.size), 'unrealizedFunding': D(0), 'pnlCurrency': 'USD'}
            if symbol in account.leverage:
                entry['maxFixedLeverage'] = account.leverage[symbol]
            positions.append(entry)
        return {'openPositions': positions}

    def open_orders(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        orders = sorted(account.open_orders(), key=lambda o: -o.received)
        return {'openOrders': [o.to_open_order() for o in orders]}

    def fills(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'lastFillTime'})
        fills = account.fills
        if 'lastFillTime' in params:
            before = parse_time(params['lastFillTime'])
            fills = [f for f in fills if parse_time(f['fillTime']) < before]
        return {'fills': list(reversed(fills[-100:]))}

    def leverage_get(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        return {'leveragePreferences': [{'symbol': s, 'maxLeverage': v}
                                        for s, v in sorted(account.leverage.items())]}

    def leverage_set(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'symbol', 'maxLeverage'})
        instrument = self.exchange.market.instrument(need(params, 'symbol'))
        leverage = decimal(params, 'maxLeverage')
        if leverage is None:
            account.leverage.pop(instrument.symbol, None)
        elif not 1 <= leverage <= DEFAULT_LEVERAGE:
            raise Refusal('invalidArgument')
        else:
            account.leverage[instrument.symbol] = leverage
        return {}

    def order_history(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        """``/api/history/v3/orders``: the account's order events, paged."""
        only(params, HISTORY_PARAMS)
        sort = params.get('sort', 'desc')
        if sort not in ('asc', 'desc'):
            raise Refusal('invalidArgument')
        since, before = integer(params, 'since', 0), integer(params, 'before', 1 << 62)
        count = integer(params, 'count', 500)
        try:  # the token is the sandbox's own: base64 of the position of the next element
            token = base64.b64decode(params.get('continuation_token', 'MA=='), validate=True)
        except (binascii.Error, ValueError):
            raise Refusal('invalidArgument') from None
        start = whole(token.decode('ascii', 'replace'))
        if start < 0:
            raise Refusal('invalidArgument')
        kinds = set()
        if boolean({'opened': params.get('opened', 'true')}, 'opened'):
            kinds.add('OrderPlaced')
        if boolean({'closed': params.get('closed', 'true')}, 'closed'):
            kinds |= {'OrderUpdated', 'OrderCancelled', 'OrderRejected'}
        found = [e for e in account.events if since <= e['timestamp'] < before
                 and next(iter(e['event'])) in kinds
                 and params.get('tradeable') in (None, _order_of(e)['tradeable'])]
        if sort == 'desc':
            found.reverse()
        page = found[start:start + max(1, count)]
        reply: dict[str, Any] = {'accountUid': account.uid, 'len': len(page), 'elements': page}
        if start + len(page) < len(found):
            reply['continuationToken'] = base64.b64encode(
                str(start + len(page)).encode()).decode()
        return reply


def _order_of(element: dict[str, Any]) -> dict[str, Any]:
    """The order an order-history element is about (the new one of an update)."""
    event = next(iter(element['event'].values()))
    return event.get('order') or event['newOrder']  # type: ignore[no-any-return]
