"""Kraken's spot REST methods: public or private, read-only or state-changing, cost.

One table, from Kraken's REST reference (https://docs.kraken.com/api/docs/rest-api/) and
rate-limit guide (:data:`REST_LIMITS`). The client uses it to decide what may be retried
and what a call costs on Kraken's rate counter; the command line uses it for help and to
pick public or private. Parameters marked ``*`` are required.

Every cost says where it comes from (:attr:`Method.cost_basis`, :data:`COST_BASES`).
Kraken's REST rate-limit page says: "Ledger/trade history calls increase the counter
by 2. All other API calls increase this counter by 1 (except AddOrder, CancelOrder
which operate on a different limiter)". It names no other method, so:

* ``Ledgers`` and ``TradesHistory`` cost 2, and ``AddOrder`` and ``CancelOrder`` 0, as
  named there;
* ``QueryLedgers`` and ``QueryTrades`` cost 2 as ledger and trade-history calls, which
  the page does not say in so many words: not documented, chosen so that pacing never
  undercounts;
* ``AddOrderBatch``, ``CancelOrderBatch``, ``AmendOrder``, ``EditOrder`` and every other
  private call cost 1 by the page's rule for "all other API calls"; Kraken's
  trading-engine page (:data:`TRADING_LIMITS`) gives what the order calls also cost on
  the per-pair counter of the engine, which is a separate limiter;
* public calls cost 0: the counter belongs to an API key, and public calls carry none
  (they are limited per IP address instead, :data:`PUBLIC_LIMITS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ['Method', 'METHODS', 'GROUPS', 'PAGE_SIZE', 'valid_name', 'lookup', 'changes_state',
           'cost', 'cost_source', 'COST_BASES', 'REST_LIMITS', 'TRADING_LIMITS', 'PUBLIC_LIMITS']

#: Kraken's REST call counter: what a call costs, per-tier maximum and decay.
REST_LIMITS = 'https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits'
#: Kraken's trading-engine limits: the per-pair counter and open orders per pair.
TRADING_LIMITS = 'https://docs.kraken.com/api/docs/guides/spot-ratelimits'
#: Kraken's public-endpoint limits, per IP address (a support article).
PUBLIC_LIMITS = 'https://support.kraken.com/articles/206548367-what-are-the-api-rate-limits'

#: How a cost was settled, and the page it comes from.
COST_BASES = {
    'named': ('the rate-limit page names the method', REST_LIMITS),
    'rule': ('the rate-limit page\'s rule for "all other API calls"', REST_LIMITS),
    'not documented': ('not documented: krakenex counts it as a ledger or trade-history '
                       'call', REST_LIMITS),
    'public': ('public: no API key, so no key counter; limited per IP address', PUBLIC_LIMITS),
}

#: Rows in one page of ClosedOrders, TradesHistory and Ledgers (Kraken's docs: "50 results
#: at a time, the most recent by default").
PAGE_SIZE = 50

#: Kraken's method names: letters and digits, with one ``/`` for the ``Earn/...`` family.
_NAME = re.compile(r'[A-Za-z][A-Za-z0-9]*(?:/[A-Za-z][A-Za-z0-9]*)?')


class Method(NamedTuple):
    """One of Kraken's REST methods."""

    #: Kraken's name, as in the path ``/0/private/<name>``.
    name: str
    #: The help group, a key of :data:`GROUPS`.
    group: str
    #: What the method does, in a line.
    summary: str
    #: Its parameters, space-separated; ``*`` marks a required one.
    params: str = ''
    #: Whether it needs a key (a signed POST) rather than being public (a GET).
    private: bool = True
    #: Whether a call can change the account (place, cancel, move money).
    changes_state: bool = False
    #: What a call adds to Kraken's per-key REST call counter.
    cost: int = 1
    #: How :attr:`cost` was settled, a key of :data:`COST_BASES`.
    cost_basis: str = 'rule'


#: Help groups, in the order the command line lists them.
GROUPS = {
    'market': 'Market data (public)',
    'account': 'Account data',
    'trading': 'Trading',
    'funding': 'Funding',
    'earn': 'Earn',
    'export': 'Data export',
    'subaccounts': 'Subaccounts',
}


def _public(name: str, summary: str, params: str = '') -> Method:
    return Method(name, 'market', summary, params, private=False, cost=0, cost_basis='public')


def _read(name: str, group: str, summary: str, params: str = '', cost: int = 1,
          basis: str = 'rule') -> Method:
    return Method(name, group, summary, params, cost=cost, cost_basis=basis)


def _write(name: str, group: str, summary: str, params: str = '', cost: int = 1,
           basis: str = 'rule') -> Method:
    return Method(name, group, summary, params, changes_state=True, cost=cost, cost_basis=basis)


_TABLE = (
    _public('Time', 'server time'),
    _public('SystemStatus', 'exchange status: online, maintenance, cancel_only, post_only'),
    _public('Assets', 'asset names, decimals and status', 'asset aclass'),
    _public('AssetPairs', 'tradable pairs with decimals, minimums and fees',
            'pair info aclass_base country_code'),
    _public('Ticker', 'best prices, last trade, volume; one, several or all pairs',
            'pair asset_class'),
    _public('OHLC', 'candles (at most the last 720)', 'pair* interval since asset_class'),
    _public('Depth', 'order book', 'pair* count asset_class'),
    _public('Trades', 'recent trades, paged with since/last', 'pair* since count asset_class'),
    _public('Spread', 'recent best bid and ask', 'pair* since asset_class'),
    _public('GroupedBook', 'order book grouped into price bands', 'pair* depth grouping'),
    _public('MaintenanceSchedule', 'planned maintenance'),
    _public('PreTrade', 'pre-trade transparency data', 'symbol*'),
    _public('PostTrade', 'post-trade transparency data', 'symbol from_ts to_ts count'),

    _read('Balance', 'account', 'balance of every asset', 'rebase_multiplier'),
    _read('BalanceEx', 'account', 'balances with amounts held by orders', 'rebase_multiplier'),
    _read('CreditLines', 'account', 'credit lines', 'rebase_multiplier'),
    _read('TradeBalance', 'account', 'margin, equity and value in one asset', 'asset'),
    _read('OpenOrders', 'account', 'open orders', 'trades userref cl_ord_id'),
    _read('ClosedOrders', 'account', 'closed orders, 50 a page, newest first',
          'trades userref cl_ord_id start end ofs closetime consolidate_taker without_count'),
    _read('QueryOrders', 'account', 'orders by txid (at most 50)',
          'txid* trades userref consolidate_taker'),
    _read('OrderAmends', 'account', 'the amendments of one order', 'order_id*'),
    _read('TradesHistory', 'account', 'trades, 50 a page, newest first',
          'type trades start end ofs consolidate_taker ledgers', cost=2, basis='named'),
    _read('QueryTrades', 'account', 'trades by txid (at most 20)', 'txid* trades', cost=2,
          basis='not documented'),
    _read('OpenPositions', 'account', 'open margin positions', 'txid docalcs consolidation'),
    _read('Ledgers', 'account', 'ledger entries, 50 a page, newest first',
          'asset aclass type start end ofs without_count', cost=2, basis='named'),
    _read('QueryLedgers', 'account', 'ledger entries by id (at most 20)', 'id* trades', cost=2,
          basis='not documented'),
    _read('TradeVolume', 'account', '30-day volume and fee tiers', 'pair'),
    _read('GetApiKeyInfo', 'account', 'what this API key may do'),
    _read('ListWalletAccounts', 'account', 'wallet accounts'),
    _read('Level3', 'account', 'order book with individual orders', 'pair* depth'),
    _read('GetWebSocketsToken', 'trading', 'a token for the authenticated WebSocket API'),

    _write('AddOrder', 'trading', 'place an order',
           'pair* type* ordertype* volume* price price2 userref cl_ord_id oflags timeinforce '
           'starttm expiretm leverage reduce_only stptype displayvol trigger deadline validate',
           cost=0, basis='named'),
    _write('AddOrderBatch', 'trading', 'place 2 to 15 orders on one pair',
           'orders* pair* deadline validate'),
    _write('AmendOrder', 'trading', 'change an open order in place',
           'txid cl_ord_id order_qty display_qty limit_price trigger_price post_only deadline'),
    _write('EditOrder', 'trading', 'replace an open order (new txid)',
           'txid* pair* volume displayvol price price2 oflags deadline cancel_response '
           'validate userref'),
    _write('CancelOrder', 'trading', 'cancel an order by txid, userref or cl_ord_id',
           'txid cl_ord_id', cost=0, basis='named'),
    _write('CancelAll', 'trading', 'cancel every open order'),
    _write('CancelAllOrdersAfter', 'trading', "dead man's switch: cancel all after a timeout",
           'timeout*'),
    _write('CancelOrderBatch', 'trading', 'cancel up to 50 orders', 'orders cl_ord_ids'),

    _read('DepositMethods', 'funding', 'ways to deposit an asset', 'asset* aclass'),
    _read('DepositAddresses', 'funding', 'deposit addresses (new=true makes one)',
          'asset* method* new amount'),
    _read('DepositStatus', 'funding', 'recent deposits',
          'asset aclass method start end cursor limit'),
    _read('WithdrawMethods', 'funding', 'ways to withdraw', 'asset aclass network'),
    _read('WithdrawAddresses', 'funding', 'saved withdrawal addresses',
          'asset aclass method key verified'),
    _read('WithdrawInfo', 'funding', 'fee and limit of a withdrawal', 'asset* key* amount*'),
    _write('Withdraw', 'funding', 'withdraw to a saved address',
           'asset* key* amount* aclass address max_fee'),
    _read('WithdrawStatus', 'funding', 'recent withdrawals',
          'asset aclass method start end cursor limit'),
    _write('WithdrawCancel', 'funding', 'cancel a withdrawal', 'asset* refid*'),
    _write('WalletTransfer', 'funding', 'move funds to the futures wallet',
           'asset* from* to* amount*'),

    _write('CreateSubaccount', 'subaccounts', 'create a subaccount', 'username* email*'),
    _write('AccountTransfer', 'subaccounts', 'move funds between accounts',
           'asset* amount* from* to* asset_class'),

    _write('Earn/Allocate', 'earn', 'allocate funds to a strategy', 'amount* strategy_id*'),
    _write('Earn/Deallocate', 'earn', 'deallocate funds from a strategy',
           'amount* strategy_id*'),
    _read('Earn/AllocateStatus', 'earn', 'state of the last allocation', 'strategy_id*'),
    _read('Earn/DeallocateStatus', 'earn', 'state of the last deallocation', 'strategy_id*'),
    _read('Earn/Strategies', 'earn', 'earn strategies',
          'ascending asset cursor limit lock_type'),
    _read('Earn/Allocations', 'earn', 'current allocations',
          'ascending converted_asset hide_zero_allocations'),

    _write('AddExport', 'export', 'request a report of trades or ledgers',
           'report* description* format fields starttm endtm'),
    _read('ExportStatus', 'export', 'state of requested reports', 'report*'),
    _read('RetrieveExport', 'export', 'download a report (a zip archive, as bytes)', 'id*'),
    _write('RemoveExport', 'export', 'cancel or delete a report', 'id* type*'),
)

#: Every known method by name.
METHODS: Mapping[str, Method] = {m.name: m for m in _TABLE}

#: A private method not in the table: assume the worst, it changes state.
_UNKNOWN_PRIVATE = Method('', 'other', '', changes_state=True)


def lookup(name: str) -> Method | None:
    """Return the method called ``name``, or ``None`` if it is not in the table."""
    return METHODS.get(name)


def valid_name(name: object) -> bool:
    """Whether ``name`` has the shape of a Kraken method name (``Ticker``, ``Earn/Allocate``).

    The rule is the same in the client, which refuses other names before
    sending, and in the sandbox, which answers them ``EGeneral:Unknown method``.
    """
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def changes_state(name: str, data: Mapping[str, Any] | None = None) -> bool:
    """Whether a private call may change the account, so it must never be re-sent.

    Unknown methods count as state-changing. ``DepositAddresses`` changes state
    when it asks for a new address (``new`` set).
    """
    if name == 'DepositAddresses':
        new = (data or {}).get('new')
        return bool(new) and str(new).lower() not in ('false', '0')
    return METHODS.get(name, _UNKNOWN_PRIVATE).changes_state


def cost(name: str) -> int:
    """What a private call adds to Kraken's REST call counter (1 if unknown)."""
    return METHODS.get(name, _UNKNOWN_PRIVATE).cost


def cost_source(name: str) -> tuple[str, str]:
    """How the cost of ``name`` was settled, and the URL of Kraken's page it comes from."""
    return COST_BASES[METHODS.get(name, _UNKNOWN_PRIVATE).cost_basis]
