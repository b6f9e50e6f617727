"""The Unified WebSocket's trading methods, carried out by the futures sandbox.

Each method reads Spot v2's parameters, refuses what derivatives do not take,
and hands the order to Kraken Futures' order handlers
(:class:`~krakenex.sandbox.futures.trading.FuturesTrading`) for the futures
account behind the token, so an order placed here is the same order that the
futures REST paths list, fill and cancel. A refusal of the futures handlers is
answered as ``EOrder:<its status>`` (such as ``EOrder:insufficientAvailableFunds``)
or ``EGeneral:Invalid arguments``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .feed import (
    BATCH_SIZES,
    check_arrays,
    check_numbers,
    check_required,
    plain_text,
    price_text,
    unsupported,
)
from .futures.account_data import FuturesAccountData
from .futures.accounts import FuturesAccount
from .futures.params import Refusal
from .futures.trading import FuturesTrading
from .params import ApiError
from .unified_rules import asset_class_error, derivatives_refused

if TYPE_CHECKING:
    from .unified_rules import Venue

__all__ = ['METHODS', 'REFUSED_FIELDS', 'ORDER_FIELDS']

#: Spot v2 order fields that derivatives do not take: refused naming the field.
REFUSED_FIELDS = ('display_qty', 'expire_time', 'fee_preference', 'margin', 'order_userref')
#: The fields of one order (``add_order``, and each order of ``batch_add``).
ORDER_FIELDS = {'order_type', 'side', 'order_qty', 'symbol', 'limit_price', 'limit_price_type',
                'triggers', 'time_in_force', 'post_only', 'reduce_only', 'cl_ord_id'}
#: The fields every private request may carry besides its own.
COMMON = {'token', 'asset_class'}
#: The futures order type of each Spot v2 ``order_type`` the derivatives take.
ORDER_TYPES = {'limit': 'lmt', 'market': 'mkt', 'stop-loss': 'stp', 'stop-loss-limit': 'stp',
               'take-profit': 'take_profit', 'take-profit-limit': 'take_profit'}
TRIGGER_REFERENCES = ('last', 'index')
#: How many ids one ``batch_cancel`` holds (Kraken: 2 to 50).
BATCH_CANCEL_SIZES = range(2, 51)
#: The longest ``cancel_all_orders_after`` timeout (Kraken Futures: a day).
MAX_TIMEOUT = 86400

Method = Callable[['Venue', str, dict[str, Any]], Any]


def _invalid(name: str) -> ApiError:
    return ApiError(f'EGeneral:Invalid arguments:{name}')


def _fields(params: dict[str, Any], allowed: set[str], method: str) -> None:
    """Refuse a field derivatives do not take, then any field the method does not know."""
    for field in REFUSED_FIELDS:
        if field in params:
            raise ApiError(derivatives_refused(field))
    unknown = sorted(set(params) - allowed - COMMON)
    if unknown:
        raise ApiError(unsupported(unknown[0], method))


def _derivatives(params: dict[str, Any]) -> None:
    error = asset_class_error(params)
    if error:
        raise ApiError(error)


def _flag(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(f'{name.capitalize()} field must be a boolean')
    return value


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise _invalid(name)
    return value


def _order(order: dict[str, Any], method: str) -> dict[str, str]:
    """One order's Spot v2 fields as the futures ``sendorder`` parameters."""
    _fields(order, ORDER_FIELDS, method)
    check_required(order, 'order_type', 'side', 'order_qty', 'symbol')
    kind = order['order_type']
    if kind not in ORDER_TYPES:
        raise _invalid('order_type')
    if order['side'] not in ('buy', 'sell'):
        raise _invalid('side')
    if not isinstance(order['symbol'], str):
        raise _invalid('symbol')
    check_numbers(order, 'order_qty', 'limit_price')
    size = plain_text(order, 'order_qty')
    assert size is not None
    fields = {'orderType': ORDER_TYPES[kind], 'symbol': order['symbol'], 'side': order['side'],
              'size': size}
    limit = price_text(order)
    needs_limit = kind in ('limit', 'stop-loss-limit', 'take-profit-limit')
    if (limit is None) == needs_limit:
        raise _invalid('limit_price')
    if limit is not None:
        fields['limitPrice'] = limit
    if order.get('limit_price_type', 'static') != 'static':
        raise ApiError(derivatives_refused('limit_price_type ' + str(order['limit_price_type'])))
    triggers = order.get('triggers')
    if kind in ('stop-loss', 'stop-loss-limit', 'take-profit', 'take-profit-limit'):
        if not isinstance(triggers, dict) or set(triggers) - {'reference', 'price',
                                                               'price_type'}:
            raise _invalid('triggers')
        check_numbers(triggers, 'price')
        stop = price_text(triggers, 'price')
        reference = triggers.get('reference', 'last')
        if stop is None or reference not in TRIGGER_REFERENCES \
                or triggers.get('price_type', 'static') != 'static':
            raise _invalid('triggers')
        fields.update(stopPrice=stop, triggerSignal=reference)
    elif triggers is not None:
        raise _invalid('triggers')
    tif = order.get('time_in_force', 'gtc')
    if tif not in ('gtc', 'ioc'):
        raise ApiError(derivatives_refused(f'time_in_force {tif}'))
    post_only = _flag(order, 'post_only')
    if kind == 'limit' and tif == 'ioc':
        fields['orderType'] = 'ioc'
    if post_only:
        if kind != 'limit' or tif == 'ioc':
            raise _invalid('post_only')
        fields['orderType'] = 'post'
    if _flag(order, 'reduce_only'):
        fields['reduceOnly'] = 'true'
    cl_ord_id = _text(order, 'cl_ord_id')
    if cl_ord_id is not None:
        fields['cliOrdId'] = cl_ord_id
    return fields


def _refusal(status: dict[str, Any], good: str) -> None:
    """Refuse with the futures handler's status unless it is ``good``."""
    if status['status'] != good:
        raise ApiError(f'EOrder:{status["status"]}')


def _place(unified: Venue, account: FuturesAccount, fields: dict[str, str]) -> dict[str, Any]:
    try:
        status = FuturesTrading(unified.exchange).send_order(account, fields)['sendStatus']
    except Refusal as refusal:
        raise ApiError(f'EGeneral:Invalid arguments:{refusal.code}') from None
    _refusal(status, 'placed')
    reply = {'order_id': status['order_id']}
    if 'cliOrdId' in fields:
        reply['cl_ord_id'] = fields['cliOrdId']
    return reply


def _add_order(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    _derivatives(params)
    order = {k: v for k, v in params.items() if k not in ('validate', 'deadline')}
    fields = _order({k: v for k, v in order.items() if k not in COMMON}, 'add_order')
    if _flag(params, 'validate'):
        return {'cl_ord_id': fields['cliOrdId']} if 'cliOrdId' in fields else {}
    with unified.exchange.lock:
        return _place(unified, unified.account(key), fields)


def _batch_add(unified: Venue, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    _derivatives(params)
    _fields(params, {'symbol', 'orders', 'validate', 'deadline'}, 'batch_add')
    check_required(params, 'symbol', 'orders')
    check_arrays(params, 'orders')
    orders = params['orders']
    if len(orders) not in BATCH_SIZES or not all(isinstance(o, dict) for o in orders):
        raise _invalid('orders')
    if any('symbol' in o for o in orders):
        raise _invalid('orders')
    every = [_order({'symbol': params['symbol'], **o}, 'batch_add') for o in orders]
    if _flag(params, 'validate'):
        return [{'cl_ord_id': f['cliOrdId']} if 'cliOrdId' in f else {} for f in every]
    with unified.exchange.lock:
        account = unified.account(key)
        return [_place(unified, account, fields) for fields in every]


def _order_id(value: Any) -> str:
    """An order id as the derivatives name orders: a UUID."""
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value.lower():
            return value
    except ValueError:
        pass
    raise _invalid('order_id')


def _one_order(params: dict[str, Any]) -> dict[str, str]:
    """The futures parameters naming the one order of ``order_id`` or ``cl_ord_id``."""
    if ('order_id' in params) == ('cl_ord_id' in params):
        raise _invalid('order_id')
    if 'order_id' in params:
        return {'orderId': _order_id(params['order_id'])}
    cl_ord_id = _text(params, 'cl_ord_id')
    assert cl_ord_id is not None
    return {'cliOrdId': cl_ord_id}


def _amend_order(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    _derivatives(params)
    _fields(params, {'order_id', 'cl_ord_id', 'order_qty', 'limit_price', 'trigger_price',
                     'deadline'}, 'amend_order')
    fields = _one_order(params)
    check_numbers(params, 'order_qty', 'limit_price', 'trigger_price')
    for futures, text in (('size', plain_text(params, 'order_qty')),
                          ('limitPrice', price_text(params)),
                          ('stopPrice', price_text(params, 'trigger_price'))):
        if text is not None:
            fields[futures] = text
    if len(fields) == 1:
        raise _invalid('order_qty')
    if 'size' in fields:
        fields['qtyMode'] = 'ABSOLUTE'
    with unified.exchange.lock:
        try:
            status = FuturesTrading(unified.exchange).edit_order(unified.account(key),
                                                                 fields)['editStatus']
        except Refusal as refusal:
            raise ApiError(f'EGeneral:Invalid arguments:{refusal.code}') from None
        _refusal(status, 'edited')
        reply = {'amend_id': unified.exchange.uid(), 'order_id': status['orderId']}
    if 'cliOrdId' in status:
        reply['cl_ord_id'] = status['cliOrdId']
    return reply


def _cancel(unified: Venue, account: FuturesAccount, fields: dict[str, str]) -> str:
    """Cancel one order named by ``fields`` (futures ``cancelorder``); its id."""
    status = FuturesTrading(unified.exchange).cancel_order(account, fields)['cancelStatus']
    if status['status'] != 'cancelled':
        raise ApiError('EOrder:Unknown order')
    return str(status['order_id'])


def _ids(params: dict[str, Any], name: str, sizes: range | None = None) -> list[dict[str, str]]:
    """The orders a cancel names, as futures ``cancelorder`` parameters."""
    check_arrays(params, 'order_id', 'cl_ord_id', name)
    found = [{'order_id': _order_id(i)} for i in params.get(name) or []]
    if name != 'order_id':
        found += [{'order_id': _order_id(i)} for i in params.get('order_id') or []]
    for cl_ord_id in params.get('cl_ord_id') or []:
        if not isinstance(cl_ord_id, str) or not cl_ord_id:
            raise _invalid('cl_ord_id')
        found.append({'cliOrdId': cl_ord_id})
    if not found or (sizes is not None and len(found) not in sizes):
        raise _invalid(name)
    return found


def _cancel_order(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    _derivatives(params)
    _fields(params, {'order_id', 'cl_ord_id'}, 'cancel_order')
    orders = _ids(params, 'order_id')
    with unified.exchange.lock:
        account = unified.account(key)
        done = [_cancel(unified, account, fields) for fields in orders]
    if len(done) > 1:
        return {'count': len(done)}
    if 'cliOrdId' in orders[0]:
        return {'order_id': done[0], 'cl_ord_id': orders[0]['cliOrdId']}
    return {'order_id': done[0]}


def _batch_cancel(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    _derivatives(params)
    _fields(params, {'orders', 'cl_ord_id'}, 'batch_cancel')
    orders = _ids(params, 'orders', BATCH_CANCEL_SIZES)
    with unified.exchange.lock:
        account = unified.account(key)
        return {'count': len([_cancel(unified, account, fields) for fields in orders])}


def _cancel_all(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    _derivatives(params)
    _fields(params, set(), 'cancel_all')
    with unified.exchange.lock:
        status = FuturesTrading(unified.exchange).cancel_all(unified.account(key), {})
    return {'count': len(status['cancelStatus']['cancelledOrders'])}


def _cancel_after(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    if 'asset_class' in params:
        _derivatives(params)
    _fields(params, {'timeout'}, 'cancel_all_orders_after')
    check_required(params, 'timeout')
    timeout = params['timeout']
    if isinstance(timeout, bool) or not isinstance(timeout, int) \
            or not 0 <= timeout <= MAX_TIMEOUT:
        raise _invalid('timeout')
    with unified.exchange.lock:
        status = FuturesTrading(unified.exchange).cancel_all_after(
            unified.account(key), {'timeout': str(timeout)})['status']
    return {'currentTime': status['currentTime'], 'triggerTime': status['triggerTime']}


def _set_preference(unified: Venue, key: str, params: dict[str, Any]) -> dict[str, Any]:
    _derivatives(params)
    _fields(params, {'leverage_mode'}, 'set_preference')
    mode = params.get('leverage_mode')
    if not isinstance(mode, dict) or set(mode) != {'symbol', 'max_leverage'} \
            or not isinstance(mode['symbol'], str):
        raise _invalid('leverage_mode')
    leverage = mode['max_leverage']
    fields = {'symbol': mode['symbol']}
    if leverage is not None:
        check_numbers(mode, 'max_leverage')
        fields['maxLeverage'] = format(Decimal(str(leverage)), 'f')
    with unified.exchange.lock:
        try:
            FuturesAccountData(unified.exchange).leverage_set(unified.account(key), fields)
        except Refusal:
            raise _invalid('leverage_mode') from None
    return {'leverage_mode': mode}


#: The trading methods of ``/v2/private``, by name.
METHODS: dict[str, Method] = {
    'add_order': _add_order, 'batch_add': _batch_add, 'amend_order': _amend_order,
    'cancel_order': _cancel_order, 'cancel_all': _cancel_all, 'batch_cancel': _batch_cancel,
    'cancel_all_orders_after': _cancel_after, 'set_preference': _set_preference,
}
