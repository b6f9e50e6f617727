"""Kraken's spot REST methods, as the sandbox answers them.

:class:`Endpoints` holds one handler per Kraken method (market data, account
data, exports, trading, funding and earn) and :meth:`Endpoints.serve`, which
answers one request to ``/0/public/<method>`` or ``/0/private/<method>``. The
handlers read parameters with :mod:`krakenex.sandbox.params` and change the
:class:`~krakenex.sandbox.exchange.Exchange` only through its public methods,
under its lock. Standard library only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import TYPE_CHECKING, Any

from .exchange import Account, Exchange, Export, Order, asset_places, quantize
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

if TYPE_CHECKING:
    from .server import Request

log = logging.getLogger('krakenex.sandbox')
D = Decimal

WITHDRAW_FEES = {'XXBT': D('0.00015'), 'XETH': D('0.0025'), 'SOL': D('0.01'), 'ZUSD': D('5')}
WITHDRAW_KEY = 'sandbox'  # the one withdrawal key (address book entry) of every asset
ORDER_FLAGS = {'post', 'fcib', 'fciq', 'nompp'}
TIME_IN_FORCE = {'GTC', 'IOC', 'GTD', 'FOK'}
PAGE_SIZE = 50  # ClosedOrders, TradesHistory and Ledgers pages

PUBLIC_PREFIX = '/0/public/'
PRIVATE_PREFIX = '/0/private/'
_METHOD_NAME = re.compile(r'[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)?')

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
        }
        #: Private handlers by Kraken method name; another module may add its own.
        self.private: dict[str, PrivateHandler] = {
            'Balance': self.balance, 'BalanceEx': self.balance_ex,
            'TradeBalance': self.trade_balance, 'OpenOrders': self.open_orders,
            'ClosedOrders': self.closed_orders, 'QueryOrders': self.query_orders,
            'TradesHistory': self.trades_history, 'QueryTrades': self.query_trades,
            'OpenPositions': lambda account, params: {},
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
        }

    # -- requests ----------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        """The server's route for ``/0/public/`` and ``/0/private/``."""
        if not _METHOD_NAME.fullmatch(request.method):
            return text_reply(404, 'Not Found\n')
        return self.serve(request.verb, request.prefix == PRIVATE_PREFIX, request.method,
                          request.path, request.query, request.headers, request.body,
                          request.client)

    def serve(self, verb: str, private: bool, method: str, path: str, query: str,
              headers: dict[str, str], body: bytes, client: str) -> Reply:
        """Answer one request to ``/0/public/<method>`` or ``/0/private/<method>``."""
        try:
            with localcontext() as context:
                context.prec = 60  # room for any product of two accepted numbers
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
        field_ = 'opentm' if text(params, 'closetime') == 'open' else 'closetm'
        done = self._window(account, params, done, lambda o: getattr(o, field_) or 0)
        page = self._page(params, done)
        return {'closed': {o.txid: o.to_kraken(trades) for o in page}, 'count': len(done)}

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

    def _new_order(self, account: Account, params: Params, pair: PairSpec | None = None,
                   ignore: Order | None = None) -> Order:
        """An order from AddOrder's parameters, checked as Kraken checks it (funds aside)."""
        pair = pair or self._pair(params)
        side = text(params, 'type')
        if side not in ('buy', 'sell'):
            raise invalid('type')
        ordertype = text(params, 'ordertype')
        if ordertype not in ('market', 'limit'):
            raise invalid('ordertype')
        volume = amount(params, 'volume')
        if volume != volume.quantize(D(1).scaleb(-LOT_DECIMALS), ROUND_HALF_UP):
            raise invalid('volume')
        price = amount(params, 'price') if ordertype == 'limit' else None
        userref_text, cl_ord_id = text(params, 'userref'), text(params, 'cl_ord_id')
        if userref_text is not None and cl_ord_id is not None:
            raise invalid()
        userref = None
        if userref_text is not None:
            if not re.fullmatch(r'-?\d+', userref_text) or not -2**31 <= int(userref_text) < 2**31:
                raise invalid('userref')
            userref = int(userref_text)
        flags = {f.strip() for f in (text(params, 'oflags') or '').split(',') if f.strip()}
        if 'viqc' in flags:
            raise invalid('viqc')  # volume in quote currency is not simulated
        if not flags <= ORDER_FLAGS:
            raise invalid('oflags')
        tif = (text(params, 'timeinforce') or 'GTC').upper()
        if tif not in TIME_IN_FORCE:
            raise invalid('timeinforce')
        if volume < pair.ordermin:
            raise ApiError('EOrder:Order minimum not met')
        if volume * (price or self.exchange.market.mid(pair)) < pair.costmin:
            raise ApiError('EOrder:Cost minimum not met')
        if price is not None and price % pair.tick_size:
            raise ApiError('EOrder:Tick size check failed')
        # Kraken enforces cl_ord_id uniqueness across a client's open orders; the
        # text of its error is not documented.
        if cl_ord_id is not None and any(o.cl_ord_id == cl_ord_id and o is not ignore
                                         for o in account.open_orders()):
            raise ApiError('EOrder:Duplicate order')
        return Order('', pair, side, ordertype, volume, price, time.time(), userref, cl_ord_id,
                     flags, tif)

    def add_order(self, account: Account, params: Params) -> object:
        order = self._new_order(account, params)
        self.exchange.check_funds(account, [(order, self.exchange.plan(order))])
        if flag(params, 'validate'):
            return {'descr': {'order': order.description()}}
        self.exchange.place(account, order)
        return {'descr': {'order': order.description()}, 'txid': [order.txid]}

    def add_order_batch(self, account: Account, params: Params) -> object:
        pair = self._pair(params)
        raw = indexed(params, 'orders')
        if not isinstance(raw, list) or not 2 <= len(raw) <= 15 or not all(
                isinstance(r, dict) for r in raw):
            raise invalid('orders')
        orders = [self._new_order(account, r, pair) for r in raw]
        ids = [o.cl_ord_id for o in orders if o.cl_ord_id is not None]
        if len(ids) != len(set(ids)):
            raise ApiError('EOrder:Duplicate order')
        self.exchange.check_funds(account, [(o, self.exchange.plan(o)) for o in orders])
        if flag(params, 'validate'):
            return {'orders': [{'descr': {'order': o.description()}} for o in orders]}
        return {'orders': [{'txid': self.exchange.place(account, o).txid,
                            'descr': {'order': o.description()}} for o in orders]}

    def _find_open(self, account: Account, params: Params) -> Order:
        txid, cl_ord_id = text(params, 'txid'), text(params, 'cl_ord_id')
        for order in account.open_orders():
            if (txid and order.txid == txid) or (cl_ord_id and order.cl_ord_id == cl_ord_id):
                return order
        raise ApiError('EOrder:Unknown order')

    def amend_order(self, account: Account, params: Params) -> object:
        order = self._find_open(account, params)
        qty = optional_amount(params, 'order_qty')
        price = optional_amount(params, 'limit_price')
        if qty is None and price is None:
            raise invalid()
        amended = replace(order, volume=qty or order.volume, price=price or order.price)
        if amended.volume <= order.vol_exec:
            raise invalid('order_qty')
        if amended.price is not None and amended.price % order.pair.tick_size:
            raise ApiError('EOrder:Tick size check failed')
        self.exchange.check_funds(account, [(amended, self.exchange.plan(amended))], released=order)
        order.volume, order.price = amended.volume, amended.price
        self.exchange.execute(account, order)
        return {'amend_id': self.exchange.new_id('T')}

    def edit_order(self, account: Account, params: Params) -> object:
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
        text = required(params, 'timeout')
        if not text.isdigit() or int(text) >= 86400:
            raise invalid('timeout')
        now = time.time()
        account.cancel_at = now + int(text) if int(text) else None
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
        seed = f'{account.key}/{asset.name}'.encode()
        return [{'address': 'sandbox-' + hashlib.sha256(seed).hexdigest()[:34],
                 'expiretm': '0', 'new': flag(params, 'new')}]

    def _funding(self, account: Account, params: Params, kind: str) -> object:
        asset = find_asset(text(params, 'asset') or 'all')
        return [{k: v for k, v in record.items() if k != 'kind'} for record in account.funding
                if record['kind'] == kind and (asset is None or record['asset'] == asset.name)]

    def withdraw_methods(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        return [{'asset': a.name, 'method': f'{a.altname} (sandbox)', 'network': 'sandbox',
                 'minimum': asset_places(a.name, WITHDRAW_FEES[a.name] * 2)} for a in assets]

    def withdraw_addresses(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        return [{'address': f'sandbox-{a.altname.lower()}-address', 'asset': a.name,
                 'method': f'{a.altname} (sandbox)', 'key': WITHDRAW_KEY, 'verified': True}
                for a in assets]

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
        max_fee = text(params, 'max_fee')
        if max_fee is not None and D(max_fee) < fee:
            raise ApiError('EFunding:Max fee exceeded')
        return {'refid': self.exchange.debit(account, asset, amount, fee, 'withdrawal')}

    def withdraw_cancel(self, account: Account, params: Params) -> object:
        refid = required(params, 'refid')
        if not any(r['refid'] == refid and r['kind'] == 'withdrawal' for r in account.funding):
            raise ApiError('EFunding:Unknown reference id')
        return False  # sandbox withdrawals complete at once, too late to cancel

    def wallet_transfer(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        if (text(params, 'from'), text(params, 'to')) != ('Spot Wallet', 'Futures Wallet'):
            raise invalid('from')
        value = quantize(amount(params, 'amount'), asset.name)
        return {'refid': self.exchange.debit(account, asset, value, D(0), 'transfer',
                                             'spottofutures')}

    def earn_strategies(self, account: Account, params: Params) -> object:
        items = [{'id': f'ESSB{a.altname}-SANDBOX', 'asset': a.name,
                  'lock_type': {'type': 'instant', 'payout_frequency': 604800},
                  'apr_estimate': {'low': '0.0100', 'high': '0.0300'},
                  'user_min_allocation': '0.01', 'allocation_fee': '0.0000',
                  'deallocation_fee': '0.0000', 'auto_compound': {'type': 'enabled'},
                  'yield_source': {'type': 'staking'}, 'can_allocate': False,
                  'can_deallocate': False, 'allocation_restriction_info': ['tier']}
                 for a in ASSETS.values() if a.name != 'ZUSD']
        return {'items': items, 'next_cursor': None}

    def earn_allocations(self, account: Account, params: Params) -> object:
        return {'converted_asset': text(params, 'converted_asset', 'USD'),
                'total_allocated': '0.0000', 'total_rewarded': '0.0000', 'next_cursor': None,
                'items': []}


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
