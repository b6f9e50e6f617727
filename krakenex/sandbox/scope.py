"""What the sandbox models of each method's parameters, and what it refuses.

Every parameter Kraken documents for a method (:data:`PARAMETERS`, the sandbox's
own table from Kraken's REST reference, https://docs.kraken.com/api/docs/rest-api/)
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

from .params import invalid

__all__ = ['PARAMETERS', 'NOT_MODELLED', 'check']

#: The parameters of each of Kraken's spot methods, by name (``nonce`` and ``otp`` aside).
PARAMETERS: dict[str, str] = {
    'Time': '',
    'SystemStatus': '',
    'Assets': 'asset aclass',
    'AssetPairs': 'pair info aclass_base country_code',
    'Ticker': 'pair asset_class',
    'OHLC': 'pair interval since asset_class',
    'Depth': 'pair count asset_class',
    'Trades': 'pair since count asset_class',
    'Spread': 'pair since asset_class',
    'GroupedBook': 'pair depth grouping',
    'MaintenanceSchedule': '',
    'PreTrade': 'symbol',
    'PostTrade': 'symbol from_ts to_ts count',
    'Balance': 'rebase_multiplier',
    'BalanceEx': 'rebase_multiplier',
    'CreditLines': 'rebase_multiplier',
    'TradeBalance': 'asset',
    'OpenOrders': 'trades userref cl_ord_id',
    'ClosedOrders': 'trades userref cl_ord_id start end ofs closetime consolidate_taker '
                    'without_count',
    'QueryOrders': 'txid trades userref consolidate_taker',
    'OrderAmends': 'order_id',
    'TradesHistory': 'type trades start end ofs consolidate_taker ledgers',
    'QueryTrades': 'txid trades',
    'OpenPositions': 'txid docalcs consolidation',
    'Ledgers': 'asset aclass type start end ofs without_count',
    'QueryLedgers': 'id trades',
    'TradeVolume': 'pair fee-info fee_schedule',
    'GetApiKeyInfo': '',
    'ListWalletAccounts': '',
    'Level3': 'pair depth',
    'GetWebSocketsToken': '',
    'AddOrder': 'pair type ordertype volume price price2 userref cl_ord_id oflags timeinforce '
                'starttm expiretm leverage reduce_only stptype displayvol trigger deadline '
                'validate close[ordertype] close[price] close[price2] close',
    'AddOrderBatch': 'orders pair deadline validate',
    'AmendOrder': 'txid cl_ord_id order_qty display_qty limit_price trigger_price post_only '
                  'deadline',
    'EditOrder': 'txid pair volume displayvol price price2 oflags deadline cancel_response '
                 'validate userref '
                 'cl_ord_id',  # Kraken: "cl_ord_id is not supported"; the sandbox ignores it
    'CancelOrder': 'txid cl_ord_id',
    'CancelAll': '',
    'CancelAllOrdersAfter': 'timeout',
    'CancelOrderBatch': 'orders cl_ord_ids',
    'DepositMethods': 'asset aclass',
    'DepositAddresses': 'asset method new amount',
    'DepositStatus': 'asset aclass method start end cursor limit',
    'WithdrawMethods': 'asset aclass network',
    'WithdrawAddresses': 'asset aclass method key verified',
    'WithdrawInfo': 'asset key amount',
    'Withdraw': 'asset key amount aclass address max_fee',
    'WithdrawStatus': 'asset aclass method start end cursor limit',
    'WithdrawCancel': 'asset refid',
    'WalletTransfer': 'asset from to amount',
    'CreateSubaccount': 'username email',
    'AccountTransfer': 'asset amount from to asset_class',
    'Earn/Allocate': 'amount strategy_id',
    'Earn/Deallocate': 'amount strategy_id',
    'Earn/AllocateStatus': 'strategy_id',
    'Earn/DeallocateStatus': 'strategy_id',
    'Earn/Strategies': 'ascending asset cursor limit lock_type',
    'Earn/Allocations': 'ascending converted_asset hide_zero_allocations',
    'AddExport': 'report description format fields starttm endtm',
    'ExportStatus': 'report',
    'RetrieveExport': 'id',
    'RemoveExport': 'id type',
}

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
    'EditOrder': {'displayvol': _NEVER,
                  'cancel_response': frozenset({'false', '0'})},
    'DepositMethods': {'aclass': frozenset({'currency'})},
    'DepositAddresses': {'amount': _NEVER},
    'DepositStatus': {'aclass': frozenset({'currency'})},
    'WithdrawStatus': {'aclass': frozenset({'currency'}), 'cursor': frozenset({'false', '0'})},
    'WithdrawMethods': {'aclass': frozenset({'currency'})},
    'WithdrawAddresses': {'aclass': frozenset({'currency'})},
    'Withdraw': {'aclass': frozenset({'currency'})},
    'Earn/Strategies': {'cursor': frozenset({'false', '0'}), 'lock_type': frozenset({'instant'})},
    'AddExport': {'fields': frozenset({'all'})},
}

def _names(method: str) -> set[str]:
    return set(PARAMETERS.get(method, '').split())


def check(method: str, params: Mapping[str, object], *, skip: Iterable[str] = ()) -> None:
    """Refuse a parameter ``method`` does not take, or one the sandbox does not model.

    :param skip: names the caller checks itself (the nonce and 2FA of a private call
        are always allowed)
    :raises ApiError: ``EGeneral:Invalid arguments:<name>``
    """
    known = _names(method) | _COMMON | set(skip)
    strict = method in PARAMETERS
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
