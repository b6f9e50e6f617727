"""WebSocket v2 ``add_order`` fields onto REST AddOrder's parameters: each honoured or refused.

Kraken's v2 ``add_order`` takes more than the sandbox's first translation read.
Every field Kraken documents is either turned into the REST parameter that
models it (``post_only`` into ``oflags=post``, ``triggers`` into ``price``,
``conditional`` into ``close``, ``display_qty`` into ``displayvol``,
``expire_time`` into ``expiretm``, ...) or refused with an error that names the
v2 field; a field Kraken does not document is refused as Kraken refuses one:
``Unsupported field: 'name' for the given msg type: add_order``. Nothing is
dropped. The REST handler's own refusals, which name REST's parameters, are
renamed to the v2 field the caller sent (:func:`v2_error`).
"""

from __future__ import annotations

import calendar
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from .params import ApiError

__all__ = ['ADD_ORDER_FIELDS', 'FIELDS', 'TRIGGERED', 'check_fields', 'rest_order', 'v2_error']

#: The fields of Kraken's v2 ``add_order`` (its docs' request, ``token`` included).
ADD_ORDER_FIELDS = frozenset({
    'order_type', 'side', 'order_qty', 'symbol', 'limit_price', 'limit_price_type', 'triggers',
    'time_in_force', 'margin', 'post_only', 'reduce_only', 'effective_time', 'expire_time',
    'deadline', 'cl_ord_id', 'order_userref', 'conditional', 'display_qty', 'fee_preference',
    'no_mpp', 'stp_type', 'cash_order_qty', 'validate', 'sender_sub_id', 'token'})
#: The order types whose trigger is described by ``triggers``.
TRIGGERED = ('stop-loss', 'stop-loss-limit', 'take-profit', 'take-profit-limit',
             'trailing-stop', 'trailing-stop-limit')
TRIGGER_FIELDS = frozenset({'reference', 'price', 'price_type'})
CONDITIONAL_FIELDS = frozenset({'order_type', 'limit_price', 'limit_price_type',
                                'trigger_price', 'trigger_price_type'})
PRICE_TYPES = ('static', 'pct', 'quote')
#: v2's ``stp_type`` values; the sandbox models the default one only.
STP_TYPES = ('cancel_newest', 'cancel_oldest', 'cancel_both')

#: REST parameter names in the REST handler's errors, as the v2 field that carries them.
_RENAMES = {'volume': 'order_qty', 'displayvol': 'display_qty', 'expiretm': 'expire_time',
            'starttm': 'effective_time', 'timeinforce': 'time_in_force',
            'userref': 'order_userref', 'close[ordertype]': 'conditional',
            'close[price]': 'conditional', 'close[price2]': 'conditional', 'close': 'conditional'}


def invalid(name: str) -> ApiError:
    return ApiError(f'EGeneral:Invalid arguments:{name}')


def _flag(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(f'{name.capitalize()} field must be a boolean')  # the sandbox's wording
    return value


def _number(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ApiError(f'{name.capitalize()} field must be a number_float')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid(name) from None
    if not number.is_finite() or number.adjusted() > 20:
        raise invalid(name)
    return number


def _price(value: object, kind: object, name: str) -> str:
    """A v2 price with its ``*_price_type`` as REST's text: ``static`` is the price
    itself, ``quote`` an offset in the quote currency (``+X``/``-X``) and ``pct`` an
    offset in percent (``+X%``/``-X%``), both from the reference price."""
    kind = 'static' if kind is None else kind
    if kind not in PRICE_TYPES:
        raise invalid(f'{name}_type')
    number = _number(value, name)
    if kind == 'static':
        if number <= 0:
            raise invalid(name)
        return format(number, 'f')
    sign = '-' if number < 0 else '+'
    return f'{sign}{format(abs(number), "f")}' + ('%' if kind == 'pct' else '')


def _unix(value: object, name: str) -> str:
    """An RFC 3339 time (``2026-12-31T23:59:59Z``) as REST's Unix time."""
    match = re.fullmatch(r'([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})'
                         r'(\.[0-9]{1,9})?(?:Z|\+00:00)', value if isinstance(value, str) else '')
    if match is None:
        raise invalid(name)
    try:
        return str(calendar.timegm(time.strptime(match.group(1), '%Y-%m-%dT%H:%M:%S')))
    except ValueError:
        raise invalid(name) from None


def _triggers(params: dict[str, Any], kind: str, rest: dict[str, Any]) -> None:
    """``triggers`` onto REST's ``price`` (and ``limit_price`` onto ``price2``)."""
    triggers = params.get('triggers')
    if kind not in TRIGGERED:
        if triggers is not None:
            raise invalid('triggers')  # only a triggered order type has a trigger
        return
    if not isinstance(triggers, dict) or triggers.get('price') is None:
        raise invalid('triggers')
    for name in triggers:
        if name not in TRIGGER_FIELDS:
            raise ApiError(unsupported(f'triggers.{name}'))
    if triggers.get('reference', 'last') != 'last':
        raise invalid('triggers.reference')  # index prices are not modelled
    price_type = triggers.get('price_type', 'static')
    trailing = kind.startswith('trailing-stop')
    if trailing and (price_type == 'static'
                     or _number(triggers['price'], 'triggers.price') <= 0):
        raise invalid('triggers.price_type' if price_type == 'static' else 'triggers.price')
    rest['price'] = _price(triggers['price'], price_type, 'triggers.price')
    if kind.endswith('-limit'):
        if params.get('limit_price') is None:
            raise invalid('limit_price')
        limit_type = params.get('limit_price_type')
        if trailing and limit_type in (None, 'static'):
            raise invalid('limit_price_type')  # a trailing limit is an offset from the trigger
        rest['price2'] = _price(params['limit_price'], limit_type, 'limit_price')
    elif params.get('limit_price') is not None:
        raise invalid('limit_price')


def _conditional(params: dict[str, Any], rest: dict[str, Any]) -> None:
    """``conditional`` onto REST's ``close``: the order placed once this one fills."""
    conditional = params.get('conditional')
    if conditional is None:
        return
    if not isinstance(conditional, dict) or not conditional.get('order_type'):
        raise invalid('conditional')
    for name in conditional:
        if name not in CONDITIONAL_FIELDS:
            raise ApiError(unsupported(f'conditional.{name}'))
    kind = conditional['order_type']
    close: dict[str, str] = {'ordertype': str(kind)}
    limit, trigger = conditional.get('limit_price'), conditional.get('trigger_price')
    if kind in TRIGGERED:
        if trigger is None:
            raise invalid('conditional.trigger_price')
        close['price'] = _price(trigger, conditional.get('trigger_price_type'),
                                'conditional.trigger_price')
        if kind.endswith('-limit'):
            if limit is None:
                raise invalid('conditional.limit_price')
            close['price2'] = _price(limit, conditional.get('limit_price_type'),
                                     'conditional.limit_price')
    elif limit is not None:
        close['price'] = _price(limit, conditional.get('limit_price_type'),
                                'conditional.limit_price')
    rest['close'] = close


def rest_order(params: dict[str, Any], method: str = 'add_order') -> dict[str, Any]:
    """The REST AddOrder parameters beyond pair, side, type, volume and a plain limit price,
    for the v2 ``params`` of one order: each documented field honoured or refused."""
    for name in params:
        if name not in ADD_ORDER_FIELDS:
            raise ApiError(unsupported(name, method))
    kind = str(params.get('order_type'))
    rest: dict[str, Any] = {}
    _triggers(params, kind, rest)
    flags = set()
    if _flag(params, 'post_only'):
        flags.add('post')
    if _flag(params, 'no_mpp'):
        flags.add('nompp')
    if params.get('fee_preference') is not None:
        if params['fee_preference'] != 'quote':
            raise invalid('fee_preference')  # fees in the base currency are not modelled
        flags.add('fciq')
    if flags:
        rest['oflags'] = ','.join(sorted(flags))
    for name in ('reduce_only', 'margin'):
        if _flag(params, name):
            raise invalid(name)  # margin trading is not modelled; false is the default
    if params.get('stp_type') not in (None, 'cancel_newest'):
        raise invalid('stp_type')
    for name in ('cash_order_qty', 'sender_sub_id'):
        if params.get(name) is not None:
            raise invalid(name)  # sized in quote currency, or on behalf of a subaccount
    if params.get('display_qty') is not None:
        if kind != 'iceberg':
            raise invalid('display_qty')
        rest['displayvol'] = format(_number(params['display_qty'], 'display_qty'), 'f')
    if params.get('expire_time') is not None:
        rest['expiretm'] = _unix(params['expire_time'], 'expire_time')
    if params.get('effective_time') is not None:
        rest['starttm'] = _unix(params['effective_time'], 'effective_time')
    if params.get('deadline') is not None:
        if not isinstance(params['deadline'], str):
            raise invalid('deadline')
        rest['deadline'] = params['deadline']
    _conditional(params, rest)
    return rest


#: The fields of Kraken's other v2 trading requests, and those the sandbox refuses by name
#: because it does not model them (a value that means Kraken's default is accepted).
FIELDS = {
    'amend_order': frozenset({'order_id', 'cl_ord_id', 'order_qty', 'display_qty', 'limit_price',
                              'limit_price_type', 'post_only', 'trigger_price',
                              'trigger_price_type', 'deadline', 'symbol', 'token'}),
    'edit_order': frozenset({'order_id', 'symbol', 'order_qty', 'limit_price', 'display_qty',
                             'post_only', 'reduce_only', 'triggers', 'deadline',
                             'fee_preference', 'no_mpp', 'order_userref', 'validate', 'token'}),
    'cancel_order': frozenset({'order_id', 'cl_ord_id', 'order_userref', 'token'}),
    'cancel_all': frozenset({'token'}),
    'cancel_all_orders_after': frozenset({'timeout', 'token'}),
    'batch_cancel': frozenset({'orders', 'cl_ord_id', 'token'}),
}
UNMODELLED = {
    'amend_order': ('display_qty', 'trigger_price', 'trigger_price_type', 'post_only',
                    'limit_price_type', 'deadline', 'symbol'),
    'edit_order': ('display_qty', 'post_only', 'reduce_only', 'triggers', 'deadline',
                   'fee_preference', 'no_mpp', 'validate'),
    'cancel_order': ('order_userref',),
    'batch_cancel': ('cl_ord_id',),
}
#: Values of those fields that mean Kraken's default, and so are accepted.
DEFAULTS: dict[str, tuple[object, ...]] = {
    'post_only': (False,), 'reduce_only': (False,), 'no_mpp': (False,), 'validate': (False,),
    'limit_price_type': ('static',), 'trigger_price_type': ('static',),
    'fee_preference': ('quote',)}


def check_fields(params: dict[str, Any], method: str) -> None:
    """Refuse a field ``method`` does not take (Kraken's wording), or one the sandbox does
    not model, by its name, unless its value is Kraken's default."""
    for name in params:
        if name not in FIELDS[method]:
            raise ApiError(unsupported(name, method))
    for name in UNMODELLED.get(method, ()):
        value = params.get(name)
        if value is not None and not any(value is d or (not isinstance(d, bool) and value == d)
                                         for d in DEFAULTS.get(name, ())):
            raise invalid(name)


def v2_error(error: ApiError, params: dict[str, Any]) -> ApiError:
    """A REST handler's refusal with the v2 field the caller sent in place of REST's name."""
    text = str(error)
    head, _, name = text.rpartition(':')
    if not head.startswith('EGeneral:Invalid arguments'):
        return error
    kind = str(params.get('order_type'))
    if name in ('price', 'price2'):
        if kind in TRIGGERED:
            renamed = 'triggers' if name == 'price' else 'limit_price'
        else:
            renamed = 'limit_price'
    elif name == 'oflags':
        renamed = 'post_only' if params.get('post_only') else 'order_type'
    else:
        renamed = _RENAMES.get(name, name)
    return ApiError(f'{head}:{renamed}')


def unsupported(field: str, method: str = 'add_order') -> str:
    """Kraken's refusal of a field a message does not take."""
    return f"Unsupported field: '{field}' for the given msg type: {method}"
