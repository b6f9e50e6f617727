"""What the sandbox models of each method's parameters, and what it refuses.

Every parameter Kraken documents for a method (:data:`krakenex.methods.METHODS`)
is either modelled, or accepted only with the value that means Kraken's default
(such as ``leverage=none``), or refused. A parameter Kraken does not document
for the method is refused too, by every method, read-only or not: a misspelt
``userref`` on AddOrder would place an order without one, and a misspelt
``start`` on Ledgers would read the wrong page. A refusal is Kraken's
``EGeneral:Invalid arguments:<name>``, so a test never passes against the
sandbox with a parameter silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..methods import METHODS
from .params import invalid

__all__ = ['NOT_MODELLED', 'check']

_COMMON = {'nonce', 'otp'}
_NEVER: frozenset[str] = frozenset()

#: By method, the parameters the sandbox does not model: each maps to the values
#: that mean Kraken's default, which are accepted (an empty set: always refused).
NOT_MODELLED: dict[str, dict[str, frozenset[str]]] = {
    **{name: {'asset_class': frozenset({'forex', 'currency'})}
       for name in ('Ticker', 'OHLC', 'Depth', 'Trades', 'Spread')},
    'Assets': {'aclass': frozenset({'currency'})},
    'AssetPairs': {'aclass_base': frozenset({'currency'}), 'country_code': _NEVER},
    **{name: {'rebase_multiplier': frozenset({'rebased'})}
       for name in ('Balance', 'BalanceEx', 'CreditLines')},
    **{name: {'consolidate_taker': frozenset({'true', '1'})}
       for name in ('ClosedOrders', 'QueryOrders', 'TradesHistory')},
    'Ledgers': {'aclass': frozenset({'currency'})},
    'AddOrder': {
        'leverage': frozenset({'none'}), 'reduce_only': frozenset({'false', '0'}),
        'stptype': frozenset({'cancel-newest'}), 'trigger': frozenset({'last'})},
    'AmendOrder': {'display_qty': _NEVER, 'trigger_price': _NEVER,
                   'post_only': frozenset({'false', '0'})},
    'EditOrder': {'displayvol': _NEVER, 'price2': _NEVER,
                  'cancel_response': frozenset({'false', '0'})},
    'DepositMethods': {'aclass': frozenset({'currency'})},
    'DepositAddresses': {'amount': _NEVER},
    'DepositStatus': {'aclass': frozenset({'currency'})},
    'WithdrawStatus': {'aclass': frozenset({'currency'}), 'cursor': frozenset({'false', '0'})},
    'WithdrawMethods': {'aclass': frozenset({'currency'}), 'network': frozenset({'sandbox'})},
    'WithdrawAddresses': {'aclass': frozenset({'currency'})},
    'Withdraw': {'aclass': frozenset({'currency'})},
    'Earn/Strategies': {'cursor': frozenset({'false', '0'}), 'lock_type': frozenset({'instant'})},
    'AddExport': {'fields': frozenset({'all'}), 'starttm': _NEVER, 'endtm': _NEVER},
}

#: Parameters a method takes beyond those :data:`krakenex.methods.METHODS` lists.
_EXTRA: dict[str, set[str]] = {
    'AddOrder': {'close[ordertype]', 'close[price]', 'close[price2]', 'close'},
    'EditOrder': {'cl_ord_id'},
}


def _names(method: str) -> set[str]:
    listed = METHODS[method].params.split() if method in METHODS else []
    return {name.rstrip('*') for name in listed} | _EXTRA.get(method, set())


def check(method: str, params: Mapping[str, object], *, skip: Iterable[str] = ()) -> None:
    """Refuse a parameter ``method`` does not take, or one the sandbox does not model.

    :param skip: names the caller checks itself (the nonce and 2FA of a private call
        are always allowed)
    :raises ApiError: ``EGeneral:Invalid arguments:<name>``
    """
    known = _names(method) | _COMMON | set(skip)
    strict = method in METHODS
    limits = NOT_MODELLED.get(method, {})
    for key, value in params.items():
        name = key.split('[', 1)[0] if key.split('[', 1)[0] in ('orders', 'cl_ord_ids') else key
        if name not in known and strict:
            raise invalid(name)
        allowed = limits.get(name)
        if allowed is not None:
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, (str, bool)) and str(v).lower() in allowed
                       for v in values):
                raise invalid(name)
