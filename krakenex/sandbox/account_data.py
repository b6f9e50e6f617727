"""Kraken's account reads, as the sandbox answers them: balances, orders, trades, ledgers.

Read-only: each handler reads one :class:`~krakenex.sandbox.exchange.Account`
and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from .exchange import (
    Account,
    Exchange,
    Order,
    PrivateHandler,
    PublicHandler,
    asset_places,
)
from .market import (
    FEES_MAKER,
    FEES_TAKER,
    find_asset,
    places,
)
from .params import (
    ApiError,
    Params,
    flag,
    id_list,
    integer,
    invalid,
    number,
    requested_pairs,
    required,
    text,
)
from .permissions import PERMISSIONS

D = Decimal


def _percent(rate: float) -> str:
    """A fee rate of AssetPairs' tables (percent) as TradeVolume writes it: ``0.2600``."""
    return places(D(str(rate)), 4)

#: Rows in one page of ClosedOrders, TradesHistory and Ledgers (Kraken's docs: "50 results
#: at a time, the most recent by default").
PAGE_SIZE = 50

__all__ = ['AccountData']


class AccountData:
    """Kraken's account reads over an exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: Public handlers by Kraken method name.
        self.public: dict[str, PublicHandler] = {}
        #: Private handlers by Kraken method name.
        self.private: dict[str, PrivateHandler] = {
            'Balance': self.balance,
            'BalanceEx': self.balance_ex,
            'TradeBalance': self.trade_balance,
            'OpenOrders': self.open_orders,
            'ClosedOrders': self.closed_orders,
            'QueryOrders': self.query_orders,
            'TradesHistory': self.trades_history,
            'QueryTrades': self.query_trades,
            'OpenPositions': self.open_positions,
            'Ledgers': self.ledgers,
            'QueryLedgers': self.query_ledgers,
            'TradeVolume': self.trade_volume,
            'GetWebSocketsToken': self.websockets_token,
            'CreditLines': self.credit_lines,
            'OrderAmends': self.order_amends,
            'GetApiKeyInfo': self.api_key_info,
            'ListWalletAccounts': self.wallet_accounts,
        }

    def balance(self, account: Account, params: Params) -> object:
        return {a: asset_places(a, b) for a, b in account.balances.items()}

    def balance_ex(self, account: Account, params: Params) -> object:
        held = account.held()
        return {a: {'balance': asset_places(a, b),
                    'hold_trade': asset_places(a, held.get(a, D(0)))}
                for a, b in account.balances.items()}

    def trade_balance(self, account: Account, params: Params) -> object:
        asset = find_asset(text(params, 'asset', 'ZUSD') or 'ZUSD')
        if asset is None:
            raise ApiError('EQuery:Unknown asset')
        usd = sum((b * self.exchange.usd_price(a) for a, b in account.balances.items()), D(0))
        value = asset_places(asset.name, usd / self.exchange.usd_price(asset.name))
        zero = asset_places(asset.name, D(0))
        return {'eb': value, 'tb': value, 'm': zero, 'n': zero, 'c': zero, 'v': zero,
                'e': value, 'mf': value, 'uv': zero}

    def _orders_matching(self, account: Account, params: Params,
                         orders: Iterable[Order]) -> list[Order]:
        userref, cl_ord_id = text(params, 'userref'), text(params, 'cl_ord_id')
        return [o for o in orders
                if (userref is None or str(o.userref) == userref)
                and (cl_ord_id is None or o.cl_ord_id == cl_ord_id)]

    def open_orders(self, account: Account, params: Params) -> object:
        trades = flag(params, 'trades')
        orders = self._orders_matching(account, params, account.open_orders())
        return {'open': {o.txid: o.to_kraken(trades) for o in reversed(orders)}}

    def closed_orders(self, account: Account, params: Params) -> object:
        trades = flag(params, 'trades')
        done = [o for o in account.orders.values() if o.closetm is not None]
        done.sort(key=lambda o: o.closetm or 0, reverse=True)
        done = self._orders_matching(account, params, done)
        closetime = text(params, 'closetime', 'both') or 'both'
        if closetime not in ('open', 'close', 'both'):
            raise invalid('closetime')
        if closetime == 'both':  # either time in the window
            chosen = {id(o) for o in self._window(account, params, done, _opened)}
            chosen |= {id(o) for o in self._window(account, params, done, _closed)}
            done = [o for o in done if id(o) in chosen]
        else:
            field_ = 'opentm' if closetime == 'open' else 'closetm'
            done = self._window(account, params, done, lambda o: getattr(o, field_) or 0)
        page = self._page(params, done)
        result: dict[str, Any] = {'closed': {o.txid: o.to_kraken(trades) for o in page}}
        if not flag(params, 'without_count'):
            result['count'] = len(done)
        return result

    def open_positions(self, account: Account, params: Params) -> object:
        """No margin positions: an empty dict, or an empty list with consolidation=market."""
        consolidation = text(params, 'consolidation')
        if consolidation not in (None, 'market'):
            raise invalid('consolidation')
        return [] if consolidation == 'market' else {}

    def query_orders(self, account: Account, params: Params) -> object:
        txids = id_list(params.get('txid'), 'txid')
        if not txids or len(txids) > 50:
            raise invalid('txid')
        trades = flag(params, 'trades')
        found = self._orders_matching(
            account, params, [account.orders[t] for t in txids if t in account.orders])
        return {o.txid: o.to_kraken(trades) for o in found}

    def trades_history(self, account: Account, params: Params) -> object:
        kind = text(params, 'type', 'all')
        if kind not in ('all', 'any position', 'closed position', 'closing position',
                        'no position'):
            raise invalid('type')
        fills = list(reversed(account.fills.values())) if kind in ('all', 'no position') else []
        fills = self._window(account, params, fills, lambda f: f.time)
        ledgers = flag(params, 'ledgers')
        return {'trades': {f.txid: f.to_kraken(ledgers) for f in self._page(params, fills)},
                'count': len(fills)}

    def query_trades(self, account: Account, params: Params) -> object:
        txids = id_list(params.get('txid'), 'txid')
        if not txids or len(txids) > 20:
            raise invalid('txid')
        return {t: account.fills[t].to_kraken() for t in txids if t in account.fills}

    def ledgers(self, account: Account, params: Params) -> object:
        assets = id_list(params.get('asset'), 'asset')
        names = set()
        for name in assets:
            if name != 'all':
                spec = find_asset(name)
                if spec is None:
                    raise ApiError('EQuery:Unknown asset')
                names.add(spec.name)
        kind = text(params, 'type', 'all')
        entries = [e for e in reversed(account.ledger.values())
                   if (not names or e.asset in names) and kind in ('all', e.type)]
        entries = self._window(account, params, entries, lambda e: e.time)
        page = self._page(params, entries)
        result: dict[str, Any] = {'ledger': {e.id: e.to_kraken() for e in page}}
        if not flag(params, 'without_count'):
            result['count'] = len(entries)
        return result

    def query_ledgers(self, account: Account, params: Params) -> object:
        ids = id_list(params.get('id'), 'id')
        if not ids or len(ids) > 20:
            raise invalid('id')
        return {i: account.ledger[i].to_kraken() for i in ids if i in account.ledger}

    def _window(self, account: Account, params: Params, rows: list[Any],
                when: Callable[[Any], float]) -> list[Any]:
        """Rows after ``start`` (exclusive) and up to ``end`` (inclusive): Unix times or ids."""
        def bound(name: str) -> float | None:
            value = text(params, name)
            if not value:
                return None
            if value in account.orders:
                return account.orders[value].opentm
            for records in (account.fills, account.ledger):
                if value in records:
                    return records[value].time
            return float(number(value, name))

        start, end = bound('start'), bound('end')
        # compare times as the API shows them, rounded to 4 decimals
        return [r for r in rows if (start is None or round(when(r), 4) > round(start, 4))
                and (end is None or round(when(r), 4) <= round(end, 4))]

    @staticmethod
    def _page(params: Params, rows: list[Any]) -> list[Any]:
        offset = integer(params, 'ofs', 0, 0, 2**31)
        return rows[offset:offset + PAGE_SIZE]

    def trade_volume(self, account: Account, params: Params) -> object:
        since = time.time() - 30 * 86400
        volume = sum((f.cost * self.exchange.usd_price(f.order.pair.quote)
                      for f in account.fills.values() if f.time >= since), D(0))
        result: dict[str, Any] = {'currency': 'ZUSD', 'volume': places(volume, 4)}
        pairs = requested_pairs(params, required=False) if params.get('pair') else []
        if params.get('fee-info') is not None and not flag(params, 'fee-info'):
            pairs = []  # fee-info=false: the volume alone
        for key, table in (('fees', FEES_TAKER), ('fees_maker', FEES_MAKER)):
            # the sandbox charges the first tier whatever the volume (exchange.TAKER_FEE)
            rates = [_percent(rate) for _, rate in table]
            if pairs:
                result[key] = {p.name: {'fee': rates[0], 'minfee': min(rates, key=D),
                                        'maxfee': max(rates, key=D), 'nextfee': rates[1],
                                        'nextvolume': places(D(str(table[1][0])), 4),
                                        'tiervolume': places(D(str(table[0][0])), 4)}
                               for p in pairs}
            if pairs and flag(params, 'fee_schedule'):  # the tiers' shape is the sandbox's
                schedules = result.setdefault('schedules', {})
                for p in pairs:
                    schedules.setdefault(p.name, {})[key] = [
                        {'volume': places(D(str(volume)), 4), 'fee': _percent(rate)}
                        for volume, rate in table]
        return result

    def websockets_token(self, account: Account, params: Params) -> object:
        return {'token': self.exchange.token(), 'expires': 900}

    def credit_lines(self, account: Account, params: Params) -> object:
        zero = '0.0000'
        return {'asset_details': {},
                'limits_monitor': {'total_credit_usd': zero, 'total_credit_used_usd': zero,
                                   'total_collateral_value_usd': zero, 'equity_usd': zero,
                                   'ongoing_balance': zero, 'debt_to_equity': zero}}

    def order_amends(self, account: Account, params: Params) -> object:
        order = account.orders.get(required(params, 'order_id'))
        if order is None or order.seeded:
            raise ApiError('EOrder:Unknown order')
        return {'amends': [dict(row) for row in order.amends], 'count': len(order.amends)}

    def api_key_info(self, account: Account, params: Params) -> object:
        return {'apiKeyName': 'sandbox', 'apiKey': account.key, 'nonce': str(account.last_nonce),
                'nonceWindow': account.nonce_window,
                'permissions': [name for name in PERMISSIONS if name in account.permissions],
                'iban': account.iiban, 'validUntil': '0', 'queryFrom': '0', 'queryTo': '0',
                'createdTime': str(int(account.created)),
                'modifiedTime': str(int(account.created)), 'ipAllowlist': [],
                'lastUsed': str(int(time.time()))}

    def wallet_accounts(self, account: Account, params: Params) -> object:
        return {'accounts': [{'account_id': account.iiban, 'type': 'spot', 'name': 'Spot Wallet',
                              'default': True}]}


def _opened(order: Order) -> float:
    return order.opentm


def _closed(order: Order) -> float:
    return order.closetm or 0.0
