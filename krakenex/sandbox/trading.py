"""Kraken's trading methods, as the sandbox answers them: place, amend, edit, cancel.

Orders are checked as Kraken checks them (parameters, sizes, ticks, funds, the
trading engine's limits), then placed, changed or closed through the
exchange's public methods.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import replace
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from .exchange import (
    TRIGGER_TYPES,
    Account,
    Exchange,
    Order,
    PrivateHandler,
    PublicHandler,
    penalty,
)
from .limits import AMEND_PENALTY, CANCEL_PENALTY, EDIT_PENALTY
from .market import (
    LOT_DECIMALS,
    PairSpec,
    places,
)
from .order_views import descr, prices_of
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
    requested_pair,
    required,
    text,
)
from .replies import iso
from .scope import check

D = Decimal

__all__ = ['Trading']

ORDER_FLAGS = {'post', 'fciq', 'nompp', 'viqc'}  # fees are charged in the quote currency only
TIME_IN_FORCE = {'GTC', 'IOC', 'GTD', 'FOK'}
ORDER_TYPES = {'market', 'limit', 'iceberg', *TRIGGER_TYPES}
CLOSE_TYPES = {'limit', 'stop-loss', 'take-profit', 'stop-loss-limit', 'take-profit-limit'}
PLACING = {'AddOrder', 'AddOrderBatch', 'AmendOrder', 'EditOrder'}


class Trading:
    """Kraken's trading methods over an exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: Public handlers by Kraken method name.
        self.public: dict[str, PublicHandler] = {}
        #: Private handlers by Kraken method name; each first asks :func:`status_refusal`.
        self.private: dict[str, PrivateHandler] = {
            'AddOrder': self.add_order,
            'AddOrderBatch': self.add_order_batch,
            'AmendOrder': self.amend_order,
            'EditOrder': self.edit_order,
            'CancelOrder': self.cancel_order,
            'CancelAll': self.cancel_all,
            'CancelAllOrdersAfter': self.cancel_all_after,
            'CancelOrderBatch': self.cancel_order_batch,
        }

    def _in_status(self, method: str, params: Params) -> None:
        """Refuse a call the engine's status forbids, with Kraken's error."""
        refusal = status_refusal(self.exchange.status, method, params)
        if refusal is not None:
            raise ApiError(refusal)

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

    def _base_for_quote(self, pair: PairSpec, quote: Decimal) -> Decimal:
        """The base volume that ``quote`` buys walking the asks (``viqc``), rounded down
        to the lot decimals; the fee comes on top, in the quote currency."""
        left, base = quote, D(0)
        for price, size in self.exchange.market.levels(pair, 'a'):
            take = min(size, left / price)
            base, left = base + take, left - take * price
            if left <= 0:
                break
        return base.quantize(D(1).scaleb(-LOT_DECIMALS), ROUND_FLOOR)

    def _new_order(self, account: Account, params: Params, pair: PairSpec | None = None,
                   ignore: Order | None = None) -> Order:
        """An order from AddOrder's parameters, checked as Kraken checks it (funds aside)."""
        pair = pair or requested_pair(params)
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
            raise invalid('oflags')  # fcib (fee in base): not modelled
        if 'viqc' in flags:  # volume in quote currency: market buys only
            if ordertype != 'market' or side != 'buy':
                raise invalid('oflags')
            order.volume = volume = self._base_for_quote(pair, volume)
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
            if value[:1] not in ('+', '-'):
                raise invalid('price2')
            order.limit_percent = value.endswith('%')  # Kraken: +X, -X, +X% or -X%
            offset = number(value[1:].removesuffix('%'), 'price2')
            if order.limit_percent and offset >= 100:
                raise invalid('price2')
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
        self._in_status('AddOrder', params)
        _deadline(params)
        pair = requested_pair(params)
        self.exchange.engine_charge(account, pair, 1)  # charged even if the order is refused
        order = self._new_order(account, params, pair)
        self.exchange.check_open_orders(account, pair)
        self.exchange.check_funds(account, [(order, self.exchange.plan(order))])
        if flag(params, 'validate'):
            return {'descr': descr(order)}
        self.exchange.place(account, order)
        return {'descr': descr(order), 'txid': [order.txid]}

    def add_order_batch(self, account: Account, params: Params) -> object:
        self._in_status('AddOrderBatch', params)
        _deadline(params)
        pair = requested_pair(params)
        raw = indexed(params, 'orders')
        if not isinstance(raw, list) or not 2 <= len(raw) <= 15 or not all(
                isinstance(r, dict) for r in raw):
            raise invalid('orders')
        self.exchange.engine_charge(account, pair, len(raw) / 2)
        rows: list[dict[str, Any]] = []
        accepted: list[tuple[Order, list[tuple[Decimal, Decimal]]]] = []
        for row in raw:  # each order on its own: a refused one is dropped, the rest go on
            try:
                check('AddOrder', row, skip={'nonce', 'otp'})
                order = self._new_order(account, row, pair)
                self.exchange.check_open_orders(account, pair, len(accepted) + 1)
                if order.cl_ord_id is not None and any(
                        order.cl_ord_id == o.cl_ord_id for o, _ in accepted):
                    raise ApiError('EOrder:Duplicate order')
                plan = self.exchange.plan(order)
                self.exchange.check_funds(account, [*accepted, (order, plan)])
            except ApiError as refused:
                rows.append({'error': str(refused)})
                continue
            accepted.append((order, plan))
            rows.append({'descr': descr(order), 'order': order})
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
        self._in_status('AmendOrder', params)
        _deadline(params)
        order = self._find_open(account, params)
        self.exchange.engine_charge(account, order.pair,
                                    1 + penalty(order, AMEND_PENALTY, time.time()))
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
        self._in_status('EditOrder', params)
        _deadline(params)
        old = self._find_open(account, params)
        self.exchange.engine_charge(account, old.pair, 1 + penalty(old, EDIT_PENALTY, time.time()))
        pair = requested_pair(params)
        if pair is not old.pair:
            raise invalid('pair')
        merged = {'type': old.side, 'ordertype': old.ordertype, 'volume': str(old.volume),
                  **prices_of(old), 'oflags': ','.join(sorted(old.oflags)), **params}
        merged.pop('cl_ord_id', None)
        new = self._new_order(account, merged, pair, ignore=old)
        if new.userref is None:
            new.userref = old.userref
        self.exchange.check_funds(account, [(new, self.exchange.plan(new))], released=old)
        result = {'descr': {'order': new.description()}, 'status': 'ok',
                  'volume': places(new.volume, LOT_DECIMALS),
                  'price': places(new.price or D(0), pair.pair_decimals),
                  'price2': places(new.price2 or D(0), pair.pair_decimals)}
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
        self._in_status('CancelOrder', params)
        ident = text(params, 'txid') or text(params, 'cl_ord_id')
        if not ident:
            raise invalid('txid')
        orders = self._targets(account, ident)
        if not orders:
            raise ApiError('EOrder:Unknown order')
        self._charge_cancels(account, orders)
        for order in orders:
            self.exchange.close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    def _charge_cancels(self, account: Account, orders: list[Order], *,
                        batch: bool = False) -> None:
        """The engine's age-weighted cost of cancelling ``orders``, pair by pair; a batch
        cancel is accepted even past the threshold, as Kraken documents."""
        now = time.time()
        by_pair: dict[str, tuple[PairSpec, int]] = {}
        for order in orders:
            pair, cost = by_pair.get(order.pair.name, (order.pair, 0))
            by_pair[order.pair.name] = (pair, cost + penalty(order, CANCEL_PENALTY, now))
        for pair, cost in by_pair.values():
            self.exchange.engine_charge(account, pair, cost, always=batch)

    def cancel_all(self, account: Account, params: Params) -> object:
        self._in_status('CancelAll', params)
        orders = account.open_orders()
        self._charge_cancels(account, orders, batch=True)  # Kraken: not documented; as a batch
        for order in orders:
            self.exchange.close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    def cancel_all_after(self, account: Account, params: Params) -> object:
        self._in_status('CancelAllOrdersAfter', params)
        required(params, 'timeout')
        timeout = integer(params, 'timeout', 0, 0, 86399)
        now = time.time()
        account.cancel_at = now + timeout if timeout else None
        trigger = iso(account.cancel_at) if account.cancel_at else '0'
        return {'currentTime': iso(now), 'triggerTime': trigger}

    def cancel_order_batch(self, account: Account, params: Params) -> object:
        self._in_status('CancelOrderBatch', params)
        raw = indexed(params, 'orders') or []
        if not isinstance(raw, list):
            raise invalid('orders')
        idents = [r.get('txid') if isinstance(r, dict) else r for r in raw]
        idents += id_list(indexed(params, 'cl_ord_ids') or [], 'cl_ord_ids')
        names = [i for i in idents if isinstance(i, str)]
        if not names or len(names) > 50 or len(names) != len(idents):
            raise invalid('orders')
        orders = {o.txid: o for name in names for o in self._targets(account, name)}
        self._charge_cancels(account, list(orders.values()), batch=True)
        for order in orders.values():
            self.exchange.close(order, 'canceled', 'User requested')
        return {'count': len(orders)}


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


def status_refusal(status: str, method: str, params: Params) -> str | None:
    """Kraken's error for a trading call the engine's status forbids, or None.

    ``maintenance``: nothing is placed or canceled; ``cancel_only``: cancels only;
    ``post_only``: new orders only as post-only limit orders (and cancels).
    """
    if status == 'maintenance':
        return 'EService:Unavailable'
    if status == 'cancel_only' and method in PLACING:
        return 'EService:Market in cancel_only mode'
    if status == 'post_only' and method in ('AddOrder', 'AddOrderBatch'):
        orders = indexed(params, 'orders') if method == 'AddOrderBatch' else [params]
        if not isinstance(orders, list) or not all(
                isinstance(o, dict) and o.get('ordertype') == 'limit'
                and 'post' in str(o.get('oflags', '')).split(',') for o in orders):
            return 'EService:Market in post_only mode'
    return None


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
