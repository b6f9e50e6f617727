"""Kraken's spot REST methods, as the sandbox answers them.

:class:`Endpoints` holds one handler per Kraken method (market data, account
data, exports, trading, funding and earn) and :meth:`Endpoints.serve`, which
answers one request to ``/0/public/<method>`` or ``/0/private/<method>``. The
handlers read parameters with :mod:`krakenex.sandbox.params` and change the
:class:`~krakenex.sandbox.exchange.Exchange` only through its public methods,
under its lock. Standard library only.
"""

from __future__ import annotations

import base64
import calendar
import csv
import hashlib
import io
import logging
import re
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from ..methods import PAGE_SIZE, valid_name
from .exchange import TRIGGER_TYPES, Account, Exchange, Export, Order, asset_places, quantize
from .market import (
    ASSETS,
    FEES_MAKER,
    FEES_TAKER,
    LOT_DECIMALS,
    OHLC_INTERVALS,
    PAIRS,
    AssetSpec,
    PairSpec,
    find_asset,
    find_pair,
    places,
    since_ns,
)
from .params import (
    ApiError,
    Params,
    amount,
    arithmetic,
    flag,
    id_list,
    indexed,
    integer,
    invalid,
    number,
    optional_amount,
    parse_query,
    required,
    text,
)
from .replies import Reply, envelope, error, html, iso
from .replies import text as text_reply
from .scope import check

if TYPE_CHECKING:
    from .server import Request

log = logging.getLogger('krakenex.sandbox')
D = Decimal

WITHDRAW_FEES = {'XXBT': D('0.00015'), 'XETH': D('0.0025'), 'SOL': D('0.01'), 'ZUSD': D('5')}
WITHDRAW_KEY = 'sandbox'  # the one withdrawal key (address book entry) of every asset
ORDER_FLAGS = {'post', 'fciq', 'nompp'}  # fees are charged in the quote currency only
TIME_IN_FORCE = {'GTC', 'IOC', 'GTD', 'FOK'}
ORDER_TYPES = {'market', 'limit', 'iceberg', *TRIGGER_TYPES}
CLOSE_TYPES = {'limit', 'stop-loss', 'take-profit', 'stop-loss-limit', 'take-profit-limit'}

PUBLIC_PREFIX = '/0/public/'
PRIVATE_PREFIX = '/0/private/'

PublicHandler = Callable[[Params], object]
PrivateHandler = Callable[[Account, Params], object]


class Endpoints:
    """Kraken's REST methods over an :class:`Exchange`; :meth:`serve` answers a request."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: Public handlers by Kraken method name; another module may add its own.
        self.public: dict[str, PublicHandler] = {
            'Time': self.server_time, 'SystemStatus': self.system_status, 'Assets': self.assets,
            'AssetPairs': self.asset_pairs, 'Ticker': self.ticker, 'OHLC': self.ohlc,
            'Depth': self.depth, 'Trades': self.trades, 'Spread': self.spread,
            'GroupedBook': self.grouped_book, 'PreTrade': self.pre_trade,
            'PostTrade': self.post_trade, 'MaintenanceSchedule': self.maintenance_schedule,
        }
        #: Private handlers by Kraken method name; another module may add its own.
        self.private: dict[str, PrivateHandler] = {
            'Balance': self.balance, 'BalanceEx': self.balance_ex,
            'TradeBalance': self.trade_balance, 'OpenOrders': self.open_orders,
            'ClosedOrders': self.closed_orders, 'QueryOrders': self.query_orders,
            'TradesHistory': self.trades_history, 'QueryTrades': self.query_trades,
            'OpenPositions': self.open_positions,
            'Ledgers': self.ledgers, 'QueryLedgers': self.query_ledgers,
            'TradeVolume': self.trade_volume, 'GetWebSocketsToken': self.websockets_token,
            'AddExport': self.add_export, 'ExportStatus': self.export_status,
            'RetrieveExport': self.retrieve_export, 'RemoveExport': self.remove_export,
            'AddOrder': self.add_order, 'AddOrderBatch': self.add_order_batch,
            'AmendOrder': self.amend_order, 'EditOrder': self.edit_order,
            'CancelOrder': self.cancel_order, 'CancelAll': self.cancel_all,
            'CancelAllOrdersAfter': self.cancel_all_after,
            'CancelOrderBatch': self.cancel_order_batch,
            'DepositMethods': self.deposit_methods, 'DepositAddresses': self.deposit_addresses,
            'DepositStatus': lambda account, params: self._funding(account, params, 'deposit'),
            'WithdrawMethods': self.withdraw_methods,
            'WithdrawAddresses': self.withdraw_addresses, 'WithdrawInfo': self.withdraw_info,
            'Withdraw': self.withdraw,
            'WithdrawStatus': lambda account, params: self._funding(account, params, 'withdrawal'),
            'WithdrawCancel': self.withdraw_cancel, 'WalletTransfer': self.wallet_transfer,
            'Earn/Strategies': self.earn_strategies, 'Earn/Allocations': self.earn_allocations,
            'Earn/Allocate': lambda account, params: self._earn_move(account, params, 'allocate'),
            'Earn/Deallocate':
                lambda account, params: self._earn_move(account, params, 'deallocate'),
            'Earn/AllocateStatus':
                lambda account, params: self._earn_status(account, params, 'allocate'),
            'Earn/DeallocateStatus':
                lambda account, params: self._earn_status(account, params, 'deallocate'),
            'CreditLines': self.credit_lines, 'OrderAmends': self.order_amends,
            'GetApiKeyInfo': self.api_key_info, 'ListWalletAccounts': self.wallet_accounts,
            'Level3': self.level3, 'CreateSubaccount': self.create_subaccount,
            'AccountTransfer': self.account_transfer,
        }

    # -- requests ----------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        """The server's route for ``/0/public/`` and ``/0/private/``."""
        if not valid_name(request.method):
            return text_reply(404, 'Not Found\n')
        return self.serve(request.verb, request.prefix == PRIVATE_PREFIX, request.method,
                          request.path, request.query, request.headers, request.body,
                          request.client)

    def serve(self, verb: str, private: bool, method: str, path: str, query: str,
              headers: dict[str, str], body: bytes, client: str) -> Reply:
        """Answer one request to ``/0/public/<method>`` or ``/0/private/<method>``."""
        try:
            with arithmetic():
                if not private:
                    if verb != 'GET':
                        return html(405, '405 Not Allowed', {'Allow': 'GET'})
                    return self._public(method, query, client)
                if verb != 'POST':
                    return html(405, '405 Not Allowed', {'Allow': 'POST'})
                return self._private(method, path, headers, body)
        except ApiError as exc:
            return error(str(exc))
        except Exception:
            log.exception('sandbox failed on %s', method)
            return error('EGeneral:Internal error')

    def _public(self, method: str, query: str, client: str) -> Reply:
        handler = self.public.get(method)
        if handler is None:
            raise ApiError('EGeneral:Unknown method')
        params = parse_query(query)
        check(method, params)
        exchange = self.exchange
        with exchange.lock:
            exchange.requests_log.append((method, None))
            exchange.throttle(client)
            exchange.expire_timers()
            return envelope({'error': [], 'result': handler(params)})

    def _private(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        handler = self.private.get(method)
        if handler is None:
            raise ApiError('EGeneral:Unknown method')
        exchange = self.exchange
        with exchange.lock:
            account, params, nonce = exchange.authenticate(path, headers, body)
            exchange.requests_log.append((method, nonce))
            exchange.charge(account, method)
            check(method, params)
            exchange.expire_timers()
            result = handler(account, params)
        return result if isinstance(result, Reply) else envelope({'error': [], 'result': result})

    # -- public methods ----------------------------------------------------------------------

    def _pairs(self, params: Params, *, required: bool) -> list[PairSpec]:
        names = id_list(params.get('pair'), 'pair')
        if not names:
            if required:
                raise invalid('pair')
            return list(PAIRS.values())
        found = [find_pair(name) for name in names]
        if any(spec is None for spec in found):
            raise ApiError('EQuery:Unknown asset pair')
        return [spec for spec in found if spec is not None]

    def _pair(self, params: Params) -> PairSpec:
        pairs = self._pairs(params, required=True)
        if len(pairs) != 1:
            raise invalid('pair')
        return pairs[0]

    def server_time(self, params: Params) -> object:
        now = time.time()  # Kraken's rfc1123 has a two-digit year
        return {'unixtime': int(now),
                'rfc1123': time.strftime('%a, %d %b %y %H:%M:%S +0000', time.gmtime(now))}

    def system_status(self, params: Params) -> object:
        return {'status': 'online', 'timestamp': iso(time.time())}

    def assets(self, params: Params) -> object:
        names = id_list(params.get('asset'), 'asset') or list(ASSETS)
        found = [find_asset(name) for name in names]
        if any(spec is None for spec in found):
            raise ApiError('EQuery:Unknown asset')
        return {a.name: {'aclass': 'currency', 'altname': a.altname, 'decimals': a.decimals,
                         'display_decimals': a.display_decimals, 'status': 'enabled'}
                for a in found if a is not None}

    def asset_pairs(self, params: Params) -> object:
        info = text(params, 'info', 'info')
        if info not in ('info', 'leverage', 'fees', 'margin'):
            raise invalid('info')
        result = {}
        for p in self._pairs(params, required=False):
            full: dict[str, Any] = {
                'altname': p.altname, 'wsname': p.wsname, 'aclass_base': 'currency',
                'base': p.base, 'aclass_quote': 'currency', 'quote': p.quote, 'lot': 'unit',
                'cost_decimals': p.cost_decimals, 'pair_decimals': p.pair_decimals,
                'lot_decimals': LOT_DECIMALS, 'lot_multiplier': 1, 'leverage_buy': [],
                'leverage_sell': [], 'fees': FEES_TAKER, 'fees_maker': FEES_MAKER,
                'fee_volume_currency': 'ZUSD', 'margin_call': 80, 'margin_stop': 40,
                'ordermin': str(p.ordermin), 'costmin': str(p.costmin),
                'tick_size': str(p.tick_size), 'status': 'online'}
            keys = {'leverage': ('leverage_buy', 'leverage_sell'),
                    'fees': ('fees', 'fees_maker', 'fee_volume_currency'),
                    'margin': ('margin_call', 'margin_stop')}.get(info or 'info', tuple(full))
            result[p.name] = {k: full[k] for k in keys}
        return result

    def ticker(self, params: Params) -> object:
        return {p.name: self.exchange.market.ticker(p) for p in self._pairs(params, required=False)}

    def ohlc(self, params: Params) -> object:
        pair = self._pair(params)
        interval = integer(params, 'interval', 1, -2**31, 2**31)
        if interval not in OHLC_INTERVALS:
            raise invalid()
        since = integer(params, 'since', -1, 0, 2**63)
        rows, last = self.exchange.market.ohlc(pair, interval, None if since < 0 else since)
        return {pair.name: rows, 'last': last}

    def depth(self, params: Params) -> object:
        pair = self._pair(params)
        return {pair.name: self.exchange.market.depth(pair, integer(params, 'count', 100, 1, 500))}

    def trades(self, params: Params) -> object:
        pair = self._pair(params)
        since = text(params, 'since') or None
        try:
            since_ns(since or '0')
        except (ArithmeticError, ValueError):
            raise invalid('since') from None
        count = integer(params, 'count', 1000, 1, 1000)
        rows, last = self.exchange.market.trades(pair, since, count)
        return {pair.name: rows, 'last': last}

    def spread(self, params: Params) -> object:
        pair = self._pair(params)
        since = integer(params, 'since', -1, 0, 2**63)
        rows, last = self.exchange.market.spread(pair, None if since < 0 else since)
        return {pair.name: rows, 'last': last}

    # -- account data --------------------------------------------------------------------

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
        pairs = self._pairs(params, required=False) if params.get('pair') else []
        for key, fee, low, next_ in (('fees', '0.2600', '0.1000', '0.2400'),
                                     ('fees_maker', '0.1600', '0.0000', '0.1400')):
            if pairs:
                result[key] = {p.name: {'fee': fee, 'minfee': low, 'maxfee': fee,
                                        'nextfee': next_, 'nextvolume': '50000.0000',
                                        'tiervolume': '0.0000'} for p in pairs}
        return result

    def websockets_token(self, account: Account, params: Params) -> object:
        return {'token': self.exchange.token(), 'expires': 900}

    # -- exports ---------------------------------------------------------------------------

    def add_export(self, account: Account, params: Params) -> object:
        report = required(params, 'report')
        if report not in ('trades', 'ledgers'):
            raise invalid('report')
        fmt = (text(params, 'format', 'CSV') or 'CSV').upper()
        if fmt not in ('CSV', 'TSV'):
            raise invalid('format')
        description = required(params, 'description')
        export_id = self.exchange.new_id('')[:4]
        export = Export(export_id, report, fmt, description, time.time(),
                        _zip_report(account, report, fmt))
        account.exports[export_id] = export
        return {'id': export_id}

    def export_status(self, account: Account, params: Params) -> object:
        report = required(params, 'report')
        created = [e for e in account.exports.values() if e.report == report]
        return [{'id': e.id, 'descr': e.description, 'format': e.format, 'report': e.report,
                 'subtype': 'all', 'status': 'Processed', 'flags': '0', 'fields': 'all',
                 'createdtm': str(int(e.created)), 'expiretm': str(int(e.created) + 86400 * 30),
                 'starttm': str(int(e.created)), 'completedtm': str(int(e.created)),
                 'datastarttm': '0', 'dataendtm': str(int(e.created)), 'aclass': 'forex',
                 'asset': 'all'} for e in created]

    def _export(self, account: Account, params: Params) -> Export:
        export = account.exports.get(required(params, 'id'))
        if export is None:
            raise invalid('id')
        return export

    def retrieve_export(self, account: Account, params: Params) -> object:
        return Reply(200, self._export(account, params).data, 'application/zip')

    def remove_export(self, account: Account, params: Params) -> object:
        export = self._export(account, params)
        kind = required(params, 'type')
        if kind not in ('cancel', 'delete'):
            raise invalid('type')
        del account.exports[export.id]
        return {kind: True}

    # -- trading ---------------------------------------------------------------------------

    def _price(self, raw: str, name: str, pair: PairSpec, side: str, ordertype: str) -> Decimal:
        """A price as Kraken reads it: absolute, or relative to the last trade.

        ``+X`` and ``-X`` add X to or take it from the last traded price; ``#X``
        does whichever puts the order on its passive side (below the market for a
        buy limit or take-profit, above it for a buy stop). A ``%`` suffix makes X
        a percentage of the last price. Relative prices are rounded to the tick.
        """
        sign = raw[:1] if raw[:1] in ('+', '-', '#') else ''
        body = raw[len(sign):]
        percent = body.endswith('%')
        if percent:
            body = body[:-1]
        if (percent and not sign) or body[:1] in ('+', '-'):
            raise invalid(name)
        value = number(body, name)
        if not sign:
            if value <= 0:
                raise invalid(name)
            return value
        last = self.exchange.market.last_price(pair)
        offset = last * value / 100 if percent else value
        if sign == '#':
            passive_below = (side == 'buy') == (ordertype in ('limit', 'iceberg', 'take-profit',
                                                              'take-profit-limit'))
            sign = '-' if passive_below else '+'
        price = last + offset if sign == '+' else last - offset
        price = (price / pair.tick_size).to_integral_value(ROUND_HALF_UP) * pair.tick_size
        if price <= 0:
            raise invalid(name)
        return price

    @staticmethod
    def _check_size(pair: PairSpec, volume: Decimal, price: Decimal | None,
                    volume_name: str, market_price: Decimal) -> None:
        """Kraken's checks of an order's size: lot decimals, minimums, tick size.

        The cost minimum is checked at ``price``, or at ``market_price`` without one.
        """
        if volume != volume.quantize(D(1).scaleb(-LOT_DECIMALS), ROUND_HALF_UP):
            raise invalid(volume_name)
        if volume < pair.ordermin:
            raise ApiError('EOrder:Order minimum not met')
        if volume * (price or market_price) < pair.costmin:
            raise ApiError('EOrder:Cost minimum not met')
        if price is not None and price % pair.tick_size:
            raise ApiError('EOrder:Tick size check failed')

    def _new_order(self, account: Account, params: Params, pair: PairSpec | None = None,
                   ignore: Order | None = None) -> Order:
        """An order from AddOrder's parameters, checked as Kraken checks it (funds aside)."""
        pair = pair or self._pair(params)
        side = text(params, 'type')
        if side not in ('buy', 'sell'):
            raise invalid('type')
        ordertype = text(params, 'ordertype') or ''
        if ordertype not in ORDER_TYPES:
            raise invalid('ordertype')  # settle-position needs margin, not modelled
        volume = amount(params, 'volume')
        order = Order('', pair, side, ordertype, volume, None, time.time())
        self._order_prices(order, params)
        userref_text, cl_ord_id = text(params, 'userref'), text(params, 'cl_ord_id')
        if userref_text is not None and cl_ord_id is not None:
            raise invalid()
        if userref_text is not None:
            order.userref = integer(params, 'userref', 0, -2**31, 2**31 - 1)
        order.cl_ord_id = cl_ord_id
        flags = {f.strip() for f in (text(params, 'oflags') or '').split(',') if f.strip()}
        if not flags <= ORDER_FLAGS:
            raise invalid('oflags')  # fcib (fee in base) and viqc (volume in quote): not modelled
        if 'post' in flags and ordertype not in ('limit', 'iceberg'):
            raise invalid('oflags')
        order.oflags = flags
        order.timeinforce = (text(params, 'timeinforce') or 'GTC').upper()
        if order.timeinforce not in TIME_IN_FORCE:
            raise invalid('timeinforce')
        now = time.time()
        order.starttm = _order_time(params, 'starttm', now)
        order.expiretm = _order_time(params, 'expiretm', now)
        if (order.timeinforce == 'GTD') != bool(order.expiretm):
            raise invalid('expiretm' if order.expiretm else 'timeinforce')
        if order.expiretm and order.expiretm <= max(now, order.starttm):
            raise invalid('expiretm')
        if ordertype == 'iceberg':
            order.displayvol = shown = amount(params, 'displayvol')
            if shown != shown.quantize(D(1).scaleb(-LOT_DECIMALS), ROUND_HALF_UP) or not (
                    volume / 15 <= shown <= volume):
                raise invalid('displayvol')
        elif params.get('displayvol') is not None:
            raise invalid('displayvol')
        order.close_order = self._close_params(order, params)
        reference = order.price2 or order.price or self.exchange.market.mid(pair)
        if order.trailing is not None:
            reference = self.exchange.market.mid(pair)
        self._check_size(pair, volume, reference, 'volume', reference)
        for value in (order.price if order.trailing is None else None, order.price2):
            if value is not None and value % pair.tick_size:
                raise ApiError('EOrder:Tick size check failed')
        # Kraken enforces cl_ord_id uniqueness across a client's open orders; the
        # text of its error is not documented.
        if cl_ord_id is not None and any(o.cl_ord_id == cl_ord_id and o is not ignore
                                         for o in account.open_orders()):
            raise ApiError('EOrder:Duplicate order')
        return order

    def _order_prices(self, order: Order, params: Params) -> None:
        """``price`` and ``price2`` as the order type reads them."""
        pair, side, kind = order.pair, order.side, order.ordertype
        raw, raw2 = text(params, 'price'), text(params, 'price2')
        if kind == 'market':
            if raw not in (None, ''):
                raise invalid('price')  # a market order has no price
        elif kind.startswith('trailing-stop'):
            order.trailing, order.trailing_percent = _trailing_offset(required(params, 'price'))
        else:
            order.price = self._price(required(params, 'price'), 'price', pair, side, kind)
        if kind in ('stop-loss-limit', 'take-profit-limit'):
            order.price2 = self._price(required(params, 'price2'), 'price2', pair, side, 'limit')
        elif kind == 'trailing-stop-limit':
            value = required(params, 'price2')
            if value[:1] not in ('+', '-') or value.endswith('%'):
                raise invalid('price2')
            offset = number(value[1:], 'price2')
            order.limit_offset = offset if value[0] == '+' else -offset
        elif raw2 not in (None, ''):
            raise invalid('price2')

    def _close_params(self, parent: Order,
                      params: Params) -> tuple[str, Decimal | None, Decimal | None] | None:
        """Conditional close: ``close[ordertype]``, ``close[price]``, ``close[price2]``."""
        nested = params.get('close')
        close = dict(nested) if isinstance(nested, dict) else {
            key[6:-1]: value for key, value in params.items()
            if key.startswith('close[') and key.endswith(']')}
        if nested is not None and not isinstance(nested, dict):
            raise invalid('close')
        if not close:
            return None
        kind = close.get('ordertype')
        if kind not in CLOSE_TYPES or not set(close) <= {'ordertype', 'price', 'price2'}:
            raise invalid('close[ordertype]')
        side = 'sell' if parent.side == 'buy' else 'buy'
        probe = Order('', parent.pair, side, kind, parent.volume, None, time.time())
        try:
            self._order_prices(probe, close)
        except ApiError:
            raise invalid('close[price]') from None
        if probe.trailing is not None or probe.limit_offset is not None:
            raise invalid('close[ordertype]')  # trailing closes are not modelled
        return kind, probe.price, probe.price2

    def add_order(self, account: Account, params: Params) -> object:
        _deadline(params)
        order = self._new_order(account, params)
        self.exchange.check_funds(account, [(order, self.exchange.plan(order))])
        if flag(params, 'validate'):
            return {'descr': {'order': order.description()}}
        self.exchange.place(account, order)
        return {'descr': {'order': order.description()}, 'txid': [order.txid]}

    def add_order_batch(self, account: Account, params: Params) -> object:
        _deadline(params)
        pair = self._pair(params)
        raw = indexed(params, 'orders')
        if not isinstance(raw, list) or not 2 <= len(raw) <= 15 or not all(
                isinstance(r, dict) for r in raw):
            raise invalid('orders')
        rows: list[dict[str, Any]] = []
        accepted: list[tuple[Order, list[tuple[Decimal, Decimal]]]] = []
        for row in raw:  # each order on its own: a refused one is dropped, the rest go on
            try:
                check('AddOrder', row, skip={'nonce', 'otp'})
                order = self._new_order(account, row, pair)
                if order.cl_ord_id is not None and any(
                        order.cl_ord_id == o.cl_ord_id for o, _ in accepted):
                    raise ApiError('EOrder:Duplicate order')
                plan = self.exchange.plan(order)
                self.exchange.check_funds(account, [*accepted, (order, plan)])
            except ApiError as refused:
                rows.append({'error': str(refused)})
                continue
            accepted.append((order, plan))
            rows.append({'descr': {'order': order.description()}, 'order': order})
        validate = flag(params, 'validate')
        for row in rows:
            order = row.pop('order', None)
            if order is not None and not validate:
                row['txid'] = self.exchange.place(account, order).txid
        return {'orders': rows}

    def _find_open(self, account: Account, params: Params) -> Order:
        txid, cl_ord_id = text(params, 'txid'), text(params, 'cl_ord_id')
        for order in account.open_orders():
            if (txid and order.txid == txid) or (cl_ord_id and order.cl_ord_id == cl_ord_id):
                return order
        raise ApiError('EOrder:Unknown order')

    def amend_order(self, account: Account, params: Params) -> object:
        _deadline(params)
        order = self._find_open(account, params)
        qty = optional_amount(params, 'order_qty')
        price = optional_amount(params, 'limit_price')
        if qty is None and price is None:
            raise invalid()
        if order.is_trigger and price is not None:
            if order.ordertype not in ('stop-loss-limit', 'take-profit-limit'):
                raise invalid('limit_price')
            amended = replace(order, volume=qty or order.volume, price2=price)
        else:
            amended = replace(order, volume=qty or order.volume, price=price or order.price)
        if amended.volume <= order.vol_exec:
            raise invalid('order_qty')
        self._check_size(order.pair, amended.volume, amended.price, 'order_qty',
                         self.exchange.market.mid(order.pair))
        self.exchange.check_funds(account, [(amended, self.exchange.plan(amended))], released=order)
        order.volume, order.price, order.price2 = amended.volume, amended.price, amended.price2
        amend_id = self.exchange.record_amend(order, 'user')
        self.exchange.execute(account, order)
        return {'amend_id': amend_id}

    def edit_order(self, account: Account, params: Params) -> object:
        _deadline(params)
        old = self._find_open(account, params)
        pair = self._pair(params)
        if pair is not old.pair:
            raise invalid('pair')
        merged = {'type': old.side, 'ordertype': old.ordertype,
                  'volume': str(old.volume), 'price': str(old.price or ''),
                  'oflags': ','.join(sorted(old.oflags)), **params}
        merged.pop('cl_ord_id', None)
        new = self._new_order(account, merged, pair, ignore=old)
        if new.userref is None:
            new.userref = old.userref
        self.exchange.check_funds(account, [(new, self.exchange.plan(new))], released=old)
        result = {'descr': {'order': new.description()}, 'status': 'ok',
                  'volume': places(new.volume, LOT_DECIMALS),
                  'price': places(new.price or D(0), pair.pair_decimals), 'price2': '0'}
        if flag(params, 'validate'):
            return result
        self.exchange.close(old, 'canceled', 'Order replaced')
        new.cl_ord_id = old.cl_ord_id
        self.exchange.place(account, new)
        return {**result, 'txid': new.txid, 'originaltxid': old.txid, 'orders_cancelled': 1}

    def _targets(self, account: Account, ident: str) -> list[Order]:
        """Open orders named by txid, userref or cl_ord_id."""
        return [o for o in account.open_orders()
                if ident in (o.txid, o.cl_ord_id) or ident == str(o.userref)]

    def cancel_order(self, account: Account, params: Params) -> object:
        ident = text(params, 'txid') or text(params, 'cl_ord_id')
        if not ident:
            raise invalid('txid')
        orders = self._targets(account, ident)
        if not orders:
            raise ApiError('EOrder:Unknown order')
        for order in orders:
            self.exchange.close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    def cancel_all(self, account: Account, params: Params) -> object:
        orders = account.open_orders()
        for order in orders:
            self.exchange.close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    def cancel_all_after(self, account: Account, params: Params) -> object:
        required(params, 'timeout')
        timeout = integer(params, 'timeout', 0, 0, 86399)
        now = time.time()
        account.cancel_at = now + timeout if timeout else None
        trigger = iso(account.cancel_at) if account.cancel_at else '0'
        return {'currentTime': iso(now), 'triggerTime': trigger}

    def cancel_order_batch(self, account: Account, params: Params) -> object:
        raw = indexed(params, 'orders') or []
        if not isinstance(raw, list):
            raise invalid('orders')
        idents = [r.get('txid') if isinstance(r, dict) else r for r in raw]
        idents += id_list(indexed(params, 'cl_ord_ids') or [], 'cl_ord_ids')
        names = [i for i in idents if isinstance(i, str)]
        if not names or len(names) > 50 or len(names) != len(idents):
            raise invalid('orders')
        orders = {o.txid: o for name in names for o in self._targets(account, name)}
        for order in orders.values():
            self.exchange.close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    # -- funding and earn ------------------------------------------------------------------

    def _asset(self, params: Params) -> AssetSpec:
        asset = find_asset(required(params, 'asset'))
        if asset is None:
            raise ApiError('EFunding:Unknown asset')
        return asset

    def deposit_methods(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        return [{'method': f'{asset.altname} (sandbox)', 'limit': False,
                 'fee': asset_places(asset.name, D(0)), 'gen-address': asset.name != 'ZUSD',
                 'minimum': asset_places(asset.name, D('0.0001'))}]

    def deposit_addresses(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        if required(params, 'method') != f'{asset.altname} (sandbox)':
            raise ApiError('EFunding:Unknown method')
        seed = f'{account.key}/{asset.name}'.encode()
        return [{'address': 'sandbox-' + hashlib.sha256(seed).hexdigest()[:34],
                 'expiretm': '0', 'new': flag(params, 'new')}]

    def _funding(self, account: Account, params: Params, kind: str) -> object:
        """DepositStatus and WithdrawStatus: newest first, filtered, paged as Kraken pages."""
        asset = find_asset(text(params, 'asset') or 'all')
        method = text(params, 'method')
        start, end = (self._time(params, name) for name in ('start', 'end'))
        rows = [{k: v for k, v in record.items() if k != 'kind'}
                for record in reversed(account.funding)
                if record['kind'] == kind and (asset is None or record['asset'] == asset.name)
                and method in (None, record['method'])
                and (start is None or record['time'] >= start)
                and (end is None or record['time'] <= end)]
        limit = integer(params, 'limit', 25 if kind == 'deposit' else 500, 1, 10**6)
        cursor = params.get('cursor')
        if kind != 'deposit' or cursor in (None, False, '', 'false', '0'):
            return rows[:limit]
        if cursor in (True, 'true', '1'):
            first = 0
        elif isinstance(cursor, str) and re.fullmatch(r'ofs-[0-9]{1,9}', cursor):
            first = int(cursor[4:])
        else:
            raise invalid('cursor')
        following = f'ofs-{first + limit}' if first + limit < len(rows) else None
        return {'deposit': rows[first:first + limit], 'next_cursor': following}

    @staticmethod
    def _time(params: Params, name: str) -> float | None:
        value = text(params, name)
        return None if not value else float(number(value, name))

    def withdraw_methods(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        return [{'asset': a.name, 'method': f'{a.altname} (sandbox)', 'network': 'sandbox',
                 'minimum': asset_places(a.name, WITHDRAW_FEES[a.name] * 2)} for a in assets]

    def withdraw_addresses(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        rows = [{'address': _withdraw_address(a), 'asset': a.name,
                 'method': f'{a.altname} (sandbox)', 'key': WITHDRAW_KEY, 'verified': True}
                for a in assets]
        verified = text(params, 'verified')
        return [r for r in rows if text(params, 'method') in (None, r['method'])
                and text(params, 'key') in (None, r['key'])
                and (verified is None or flag(params, 'verified') == r['verified'])]

    def _withdrawal(self, account: Account, params: Params) -> tuple[AssetSpec, Decimal, Decimal]:
        asset = self._asset(params)
        if text(params, 'key') != WITHDRAW_KEY:
            raise ApiError('EFunding:Unknown withdraw key')
        try:
            value = amount(params, 'amount')
        except ApiError:
            raise ApiError('EFunding:Invalid amount') from None
        return asset, quantize(value, asset.name), WITHDRAW_FEES[asset.name]

    def withdraw_info(self, account: Account, params: Params) -> object:
        asset, amount, fee = self._withdrawal(account, params)
        return {'method': f'{asset.altname} (sandbox)',
                'limit': asset_places(asset.name, max(D(0), account.available(asset.name) - fee)),
                'amount': asset_places(asset.name, amount), 'fee': asset_places(asset.name, fee)}

    def withdraw(self, account: Account, params: Params) -> object:
        asset, amount, fee = self._withdrawal(account, params)
        if text(params, 'address') not in (None, _withdraw_address(asset)):
            raise ApiError('EFunding:Invalid address')
        max_fee = text(params, 'max_fee')
        if max_fee is not None and number(max_fee, 'max_fee') < fee:
            raise ApiError('EFunding:Max fee exceeded')
        return {'refid': self.exchange.debit(account, asset, amount, fee, 'withdrawal')}

    def withdraw_cancel(self, account: Account, params: Params) -> object:
        refid, asset = required(params, 'refid'), self._asset(params)
        if not any(r['refid'] == refid and r['kind'] == 'withdrawal' and r['asset'] == asset.name
                   for r in account.funding):
            raise ApiError('EFunding:Unknown reference id')
        return False  # sandbox withdrawals complete at once, too late to cancel

    def wallet_transfer(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        if (text(params, 'from'), text(params, 'to')) != ('Spot Wallet', 'Futures Wallet'):
            raise invalid('from')
        value = quantize(amount(params, 'amount'), asset.name)
        return {'refid': self.exchange.debit(account, asset, value, D(0), 'transfer',
                                             'spottofutures')}

    # -- earn ------------------------------------------------------------------------------

    def _strategy(self, params: Params) -> AssetSpec:
        """The asset of the strategy named by ``strategy_id``."""
        wanted = required(params, 'strategy_id')
        for asset in ASSETS.values():
            if asset.name != 'ZUSD' and wanted == _strategy_id(asset):
                return asset
        raise ApiError('EGeneral:Invalid arguments:Invalid strategy ID')

    def earn_strategies(self, account: Account, params: Params) -> object:
        wanted = find_asset(text(params, 'asset') or '') if params.get('asset') else None
        if params.get('asset') and wanted is None:
            raise invalid('asset')
        items = [{'id': _strategy_id(a), 'asset': a.name,
                  'lock_type': {'type': 'instant', 'payout_frequency': 604800},
                  'apr_estimate': {'low': '0.0100', 'high': '0.0300'},
                  'user_min_allocation': EARN_MINIMUM, 'allocation_fee': '0.0000',
                  'deallocation_fee': '0.0000', 'auto_compound': {'type': 'enabled'},
                  'yield_source': {'type': 'staking'}, 'can_allocate': True,
                  'can_deallocate': True, 'allocation_restriction_info': []}
                 for a in ASSETS.values() if a.name != 'ZUSD' and wanted in (None, a)]
        if not flag(params, 'ascending') and params.get('ascending') is not None:
            items.reverse()
        limit = integer(params, 'limit', len(items), 1, 2**31)
        return {'items': items[:limit], 'next_cursor': None}

    def earn_allocations(self, account: Account, params: Params) -> object:
        converted = text(params, 'converted_asset', 'USD') or 'USD'
        target = find_asset(converted)
        if target is None:
            raise invalid('converted_asset')
        rate = self.exchange.usd_price(target.name)
        items, total = [], D(0)
        for asset in ASSETS.values():
            earn = f'{asset.altname}.B'
            if asset.name == 'ZUSD' or earn not in account.balances:
                continue  # never allocated to
            amount = account.balances[earn]
            if not amount and flag(params, 'hide_zero_allocations'):
                continue
            value = amount * self.exchange.usd_price(asset.name) / rate
            total += value
            native, conv = asset_places(earn, amount), asset_places(target.name, value)
            items.append({'strategy_id': _strategy_id(asset), 'native_asset': asset.name,
                          'amount_allocated': {'total': {'native': native, 'converted': conv}},
                          'total_rewarded': {'native': asset_places(earn, D(0)),
                                             'converted': asset_places(target.name, D(0))},
                          'payout': None, 'pending': False})
        if params.get('ascending') is not None and not flag(params, 'ascending'):
            items.reverse()
        return {'converted_asset': converted, 'total_allocated': asset_places(target.name, total),
                'total_rewarded': asset_places(target.name, D(0)), 'next_cursor': None,
                'items': items}

    def _earn_move(self, account: Account, params: Params, kind: str) -> object:
        """Earn/Allocate and Earn/Deallocate: move funds between spot and earn at once.

        The minimum is checked when asked, as Kraken's preflight checks are; a
        shortage of funds is reported by the status method, as Kraken does.
        """
        asset = self._strategy(params)
        value = number(required(params, 'amount'), 'amount')
        if value < D(EARN_MINIMUM):
            raise ApiError('EEarnings:Below min:(De)allocation operation amount less than minimum')
        earn = f'{asset.altname}.B'
        value = quantize(value, asset.name)
        source, target = (asset.name, earn) if kind == 'allocate' else (earn, asset.name)
        key = (kind, _strategy_id(asset))
        if value > account.available(source) if source == asset.name else \
                value > account.balances.get(source, D(0)):
            account.earn_status[key] = ('EEarnings:Insufficient funds:Insufficient funds to '
                                        'complete the (de)allocation request')
            return True
        refid, now = self.exchange.new_id('E'), time.time()
        subtype = 'allocation' if kind == 'allocate' else 'deallocation'
        self.exchange.book(account, source, -value, D(0), 'earn', refid, now, subtype)
        self.exchange.book(account, target, value, D(0), 'earn', refid, now, subtype)
        account.earn_status[key] = None
        return True

    def _earn_status(self, account: Account, params: Params, kind: str) -> object:
        asset = self._strategy(params)
        failure = account.earn_status.get((kind, _strategy_id(asset)))
        if failure is not None:
            raise ApiError(failure)
        return {'pending': False}

    # -- account extras, subaccounts ---------------------------------------------------------

    def api_key_info(self, account: Account, params: Params) -> object:
        return {'apiKeyName': 'sandbox', 'apiKey': account.key, 'nonce': str(account.last_nonce),
                'nonceWindow': account.nonce_window,
                'permissions': ['query-funds', 'deposit-funds', 'withdraw-funds',
                                'query-open-trades', 'query-closed-trades', 'modify-trades',
                                'close-trades', 'query-ledger', 'export-data', 'earn-funds',
                                'websocket-access'],
                'iban': account.iiban, 'validUntil': '0', 'queryFrom': '0', 'queryTo': '0',
                'createdTime': str(int(account.created)),
                'modifiedTime': str(int(account.created)), 'ipAllowlist': [],
                'lastUsed': str(int(time.time()))}

    def wallet_accounts(self, account: Account, params: Params) -> object:
        return {'accounts': [{'account_id': account.iiban, 'type': 'spot', 'name': 'Spot Wallet',
                              'default': True}]}

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

    def create_subaccount(self, account: Account, params: Params) -> object:
        username, email = required(params, 'username'), required(params, 'email')
        if not re.fullmatch(r'[^@\s]+@[^@\s]+\.[^@\s]+', email):
            raise invalid('email')
        if account.parent is not None:
            raise ApiError('EGeneral:Permission denied')
        if username in account.usernames:
            raise invalid('username')
        sub = self.exchange.add_account({}, otp=None, nonce_window=0)
        sub.parent = account
        account.usernames.add(username)
        return True

    def account_transfer(self, account: Account, params: Params) -> object:
        asset = find_asset(required(params, 'asset'))
        if asset is None:
            raise ApiError('EFunding:Unknown asset')
        value = quantize(amount(params, 'amount'), asset.name)
        ends = []
        for name in ('from', 'to'):
            iiban = required(params, name)
            found = next((a for a in self.exchange.accounts.values() if a.iiban == iiban
                          and (a is account or a.parent is account)), None)
            if found is None:
                raise invalid(name)
            ends.append(found)
        source, target = ends
        if source is target:
            raise invalid('to')
        refid = self.exchange.debit(source, asset, value, D(0), 'transfer', 'spottospot')
        self.exchange.book(target, asset.name, value, D(0), 'transfer', refid, time.time(),
                           'spottospot')
        return {'transfer_id': refid, 'status': 'complete'}

    # -- more market data ----------------------------------------------------------------

    def grouped_book(self, params: Params) -> object:
        pair = self._pair(params)
        depth = integer(params, 'depth', 10, 0, 1000)
        grouping = integer(params, 'grouping', 1, 0, 1000)
        if depth not in (10, 25, 100, 250, 1000):
            raise invalid('depth')
        if grouping not in (1, 5, 10, 25, 50, 100, 250, 500, 1000):
            raise invalid('grouping')
        step = pair.tick_size * grouping
        book: dict[str, Any] = {'pair': pair.wsname, 'grouping': grouping}
        for side, key in (('b', 'bids'), ('a', 'asks')):
            levels: dict[Decimal, Decimal] = {}
            for price, volume in self.exchange.market.levels(pair, side):
                rounding = ROUND_CEILING if side == 'a' else ROUND_FLOOR
                level = (price / step).to_integral_value(rounding) * step
                if level not in levels and len(levels) == depth:
                    break
                levels[level] = levels.get(level, D(0)) + volume
            book[key] = [{'price': places(p, pair.pair_decimals), 'qty': places(v, LOT_DECIMALS)}
                         for p, v in levels.items()]
        return book

    def level3(self, account: Account, params: Params) -> object:
        pair = self._pair(params)
        depth = integer(params, 'depth', 100, 0, 1000)
        if depth not in (0, 10, 25, 100, 250, 1000):
            raise invalid('depth')
        result: dict[str, Any] = {'pair': pair.wsname}
        stamp = int(self.exchange.market.start * 1e9)
        for side, key in (('b', 'bids'), ('a', 'asks')):
            rows = []
            for index, (price, volume) in enumerate(self.exchange.market.levels(pair, side)):
                if depth and index == depth:
                    break
                seed = f'{pair.name}/{side}/{index}'.encode()
                raw = base64.b32encode(hashlib.sha256(seed).digest()).decode()[:16]
                rows.append({'price': places(price, pair.pair_decimals),
                             'qty': places(volume, LOT_DECIMALS),
                             'order_id': f'O{raw[:5]}-{raw[5:10]}-{raw[10:16]}',
                             'timestamp': stamp + index})
            result[key] = rows
        return result

    def _symbol(self, params: Params, name: str, *, needed: bool) -> PairSpec | None:
        value = text(params, name)
        if not value:
            if needed:
                raise invalid(name)
            return None
        found = find_pair(value)
        if found is None:
            raise ApiError('EQuery:Unknown asset pair')
        return found

    def pre_trade(self, params: Params) -> object:
        pair = self._symbol(params, 'symbol', needed=True)
        assert pair is not None
        now = _iso_ns(time.time_ns())
        result: dict[str, Any] = _transparency(pair)
        for side, key, word in (('b', 'bids', 'BUY'), ('a', 'asks', 'SELL')):
            levels: list[dict[str, Any]] = []
            for price, volume in self.exchange.market.levels(pair, side):
                if len(levels) == 10:
                    break
                levels.append({'side': word, 'price': places(price, pair.pair_decimals),
                               'qty': places(volume, LOT_DECIMALS), 'count': 1,
                               'submission_ts': now, 'publication_ts': now})
            result[key] = levels
        return result

    def post_trade(self, params: Params) -> object:
        pair = self._symbol(params, 'symbol', needed=False)
        start, end = _iso_param(params, 'from_ts'), _iso_param(params, 'to_ts')
        count = integer(params, 'count', 1000, 1, 1000)
        pairs = [pair] if pair else list(PAIRS.values())
        trades = []
        for spec in pairs:
            for trade in self.exchange.market.pair(spec).trades[-count:]:
                if (start is None or trade.time_ns > start) and (end is None
                                                                  or trade.time_ns <= end):
                    trades.append((trade.time_ns, spec, trade))
        trades.sort(key=lambda row: row[0])
        trades = trades[-count:]
        rows = [{'trade_id': _public_trade_id(spec, trade.trade_id),
                 'price': places(trade.price, spec.pair_decimals),
                 'quantity': places(trade.volume, LOT_DECIMALS), **_transparency(spec),
                 'trade_venue': 'PGSL', 'trade_ts': _iso_ns(ns), 'publication_venue': 'PGSL',
                 'publication_ts': _iso_ns(ns)} for ns, spec, trade in trades]
        for row in rows:
            row.pop('venue'), row.pop('system')
        last = _iso_ns(trades[-1][0]) if trades else None
        return {'last_ts': last, 'count': len(rows), 'trades': rows}

    def maintenance_schedule(self, params: Params) -> object:
        return {'maintenances': []}  # the sandbox plans none


EARN_MINIMUM = '0.0001'


def _opened(order: Order) -> float:
    return order.opentm


def _closed(order: Order) -> float:
    return order.closetm or 0.0


def _withdraw_address(asset: AssetSpec) -> str:
    """The address of the one withdrawal key of ``asset``."""
    return f'sandbox-{asset.altname.lower()}-address'


def _strategy_id(asset: AssetSpec) -> str:
    """The sandbox's earn strategy of an asset, in Kraken's id format."""
    raw = base64.b32encode(hashlib.sha256(asset.name.encode()).digest()).decode()
    return f'ES{raw[:5]}-{raw[5:10]}-{raw[10:16]}'


def _public_name(asset: str) -> str:
    return 'BTC' if asset == 'XBT' else asset


def _transparency(pair: PairSpec) -> dict[str, Any]:
    """The instrument fields of Kraken's PreTrade and PostTrade rows."""
    base, quote = (_public_name(ASSETS[a].altname) for a in (pair.base, pair.quote))
    return {'symbol': f'{base}/{quote}', 'description': f'{base} / {quote}',
            'base_asset': base, 'base_notation': 'UNIT', 'quote_asset': quote,
            'quote_notation': 'MONE', 'venue': 'PGSL', 'system': 'CLOB'}


def _iso_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 with nine decimals, such as PostTrade's."""
    seconds, rest = divmod(ns, 10**9)
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds)) + f'.{rest:09d}Z'


def _iso_param(params: Params, name: str) -> int | None:
    """An ISO 8601 UTC time parameter (``2024-05-30T12:34:56.123Z``) in nanoseconds."""
    value = text(params, name)
    if not value:
        return None
    match = re.fullmatch(r'([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})'
                         r'(?:\.([0-9]{1,9}))?Z', value)
    if match is None:
        raise invalid(name)
    try:
        seconds = calendar.timegm(time.strptime(match.group(1), '%Y-%m-%dT%H:%M:%S'))
    except ValueError:
        raise invalid(name) from None
    return seconds * 10**9 + int((match.group(2) or '0').ljust(9, '0'))


def _order_time(params: Params, name: str, now: float) -> float:
    """``starttm``/``expiretm``: 0 (none), ``+N`` seconds from now, or a Unix time."""
    value = text(params, name)
    if value in (None, '', '0'):
        return 0.0
    assert value is not None
    if value.startswith('+'):
        return now + integer({name: value[1:]}, name, 0, 0, 10**9)
    return float(integer(params, name, 0, 1, 10**11))


def _trailing_offset(value: str) -> tuple[Decimal, bool]:
    """A trailing stop's ``price``: ``+X`` or ``+X%`` (Kraken: always relative, with ``+``)."""
    if not value.startswith('+'):
        raise invalid('price')
    percent = value.endswith('%')
    offset = number(value[1:-1] if percent else value[1:], 'price')
    if offset <= 0 or (percent and offset >= 100):
        raise invalid('price')
    return offset, percent


def _deadline(params: Params) -> None:
    """Refuse a request whose ``deadline`` (RFC 3339) has passed or is over 60 s away."""
    value = text(params, 'deadline')
    if value is None:
        return
    match = re.fullmatch(r'([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})'
                         r'(\.[0-9]{1,9})?(?:Z|\+00:00)', value)
    if match is None:
        raise invalid('deadline')
    try:
        seconds = calendar.timegm(time.strptime(match.group(1), '%Y-%m-%dT%H:%M:%S'))
    except ValueError:
        raise invalid('deadline') from None
    when = seconds + float('0' + (match.group(2) or ''))
    if not time.time() < when <= time.time() + 60:
        raise invalid('deadline')


def _public_trade_id(pair: PairSpec, trade_id: int) -> str:
    raw = base64.b32encode(hashlib.sha256(f'{pair.name}/{trade_id}'.encode()).digest()).decode()
    return f'T{raw[:5]}-{raw[5:10]}-{raw[10:16]}'


def _zip_report(account: Account, report: str, fmt: str) -> bytes:
    """A zip holding ``trades.csv`` or ``ledgers.csv`` (tab-separated for TSV), oldest first."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter='\t' if fmt == 'TSV' else ',', quoting=csv.QUOTE_ALL,
                        lineterminator='\n')

    def stamp(when: float) -> str:
        return time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when)) + f'.{int(when % 1 * 1e4):04d}'

    if report == 'trades':
        writer.writerow(['txid', 'ordertxid', 'pair', 'time', 'type', 'ordertype', 'price',
                         'cost', 'fee', 'vol', 'margin', 'misc', 'ledgers'])
        for f in account.fills.values():
            k = f.to_kraken()
            writer.writerow([f.txid, k['ordertxid'], k['pair'], stamp(f.time), k['type'],
                             k['ordertype'], k['price'], k['cost'], k['fee'], k['vol'],
                             k['margin'], '', ','.join(f.ledgers)])
    else:
        writer.writerow(['txid', 'refid', 'time', 'type', 'subtype', 'aclass', 'asset',
                         'amount', 'fee', 'balance'])
        for e in account.ledger.values():
            k = e.to_kraken()
            writer.writerow([e.id, e.refid, stamp(e.time), e.type, e.subtype, 'currency',
                             e.asset, k['amount'], k['fee'], k['balance']])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f'{report}.{fmt.lower()}', text.getvalue())
    return buffer.getvalue()
