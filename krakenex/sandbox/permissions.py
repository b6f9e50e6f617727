"""Kraken's API key permissions: which private method and channel each one opens.

A key made with :meth:`krakenex.sandbox.Sandbox.add_account` holds a set of
:data:`PERMISSIONS` (all of them by default). A private REST method, a private
WebSocket method or a private WebSocket channel outside that set is answered
with Kraken's ``EGeneral:Permission denied``. The names are those Kraken's
``GetApiKeyInfo`` lists; the methods each opens follow Kraken's guide to API key
permissions (https://docs.kraken.com/exchange/guides/rest/api-keys). Standard
library only.
"""

from __future__ import annotations

from collections.abc import Iterable

from .params import ApiError

__all__ = ['PERMISSIONS', 'METHODS', 'CHANNELS', 'DENIED', 'permissions', 'permit']

#: Kraken's key permissions, by the names GetApiKeyInfo lists, with Kraken's labels.
PERMISSIONS: dict[str, str] = {
    'query-funds': 'Query Funds',
    'deposit-funds': 'Deposit Funds',
    'withdraw-funds': 'Withdraw Funds',
    'query-open-trades': 'Query Open Orders & Trades',
    'query-closed-trades': 'Query Closed Orders & Trades',
    'modify-trades': 'Create & Modify Orders',
    'close-trades': 'Cancel/Close Orders',
    'query-ledger': 'Query Ledger Entries',
    'export-data': 'Export Data',
    'earn-funds': 'Earn Funds',
    'websocket-access': 'Access WebSockets API',
}

_EITHER_QUERY = 'query-open-trades query-closed-trades'

#: The permissions that open each private method (any one of them suffices). A
#: method not listed needs only a valid key.
METHODS: dict[str, frozenset[str]] = {method: frozenset(needs.split()) for method, needs in {
    'Balance': 'query-funds', 'BalanceEx': 'query-funds', 'TradeBalance': 'query-funds',
    'CreditLines': 'query-funds', 'TradeVolume': 'query-funds',
    'OpenOrders': 'query-open-trades', 'OpenPositions': 'query-open-trades',
    'ClosedOrders': 'query-closed-trades',
    'QueryOrders': _EITHER_QUERY, 'TradesHistory': _EITHER_QUERY,
    'QueryTrades': _EITHER_QUERY, 'OrderAmends': _EITHER_QUERY,
    'AddOrder': 'modify-trades', 'AddOrderBatch': 'modify-trades',
    'EditOrder': 'modify-trades', 'AmendOrder': 'modify-trades',
    'CancelOrder': 'close-trades', 'CancelAll': 'close-trades',
    'CancelAllOrdersAfter': 'close-trades', 'CancelOrderBatch': 'close-trades',
    'Ledgers': 'query-ledger', 'QueryLedgers': 'query-ledger',
    'AddExport': 'export-data', 'ExportStatus': 'export-data',
    'RetrieveExport': 'export-data', 'RemoveExport': 'export-data',
    'GetWebSocketsToken': 'websocket-access',
    'DepositMethods': 'deposit-funds', 'DepositAddresses': 'deposit-funds',
    'DepositStatus': 'deposit-funds',
    'WithdrawMethods': 'withdraw-funds', 'WithdrawAddresses': 'withdraw-funds',
    'WithdrawInfo': 'withdraw-funds', 'Withdraw': 'withdraw-funds',
    'WithdrawStatus': 'withdraw-funds', 'WithdrawCancel': 'withdraw-funds',
    'WalletTransfer': 'withdraw-funds',
    # Kraken's Earn guide: Strategies needs no permission, Allocations Query Funds,
    # the statuses Earn Funds or Query Funds
    'Earn/Allocate': 'earn-funds', 'Earn/Deallocate': 'earn-funds',
    'Earn/AllocateStatus': 'earn-funds query-funds',
    'Earn/DeallocateStatus': 'earn-funds query-funds',
    'Earn/Allocations': 'query-funds',
}.items()}

#: The permissions that open each private WebSocket v2 channel, besides the
#: token (which needs ``websocket-access``).
CHANNELS: dict[str, frozenset[str]] = {
    'balances': frozenset({'query-funds'}),
    'executions': frozenset({'query-open-trades'}),
}

#: Kraken's error for a call outside a key's permissions.
DENIED = 'EGeneral:Permission denied'


def permissions(names: Iterable[str] | None) -> frozenset[str]:
    """The permissions ``names`` grant (None: all of them); an unknown name is refused."""
    if names is None:
        return frozenset(PERMISSIONS)
    if isinstance(names, str):
        raise TypeError('permissions is a collection of names, not one string')
    chosen = frozenset(names)
    unknown = sorted(chosen - set(PERMISSIONS))
    if unknown:
        raise ValueError(f'unknown permission {unknown[0]!r}; known: {", ".join(PERMISSIONS)}')
    return chosen


def permit(held: frozenset[str], name: str, table: dict[str, frozenset[str]] = METHODS) -> None:
    """Refuse ``name`` (a method, or a channel with ``table=CHANNELS``) outside ``held``.

    :raises ApiError: ``EGeneral:Permission denied``
    """
    needs = table.get(name)
    if needs is not None and not needs & held:
        raise ApiError(DENIED)
