"""Kraken's funding, earn, export and subaccount methods, as the sandbox answers them.

Deposits and withdrawals are booked in the ledger at once; earn allocations
move funds between the spot balance and the earn balance; exports are zip
archives made on request.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import time
import zipfile
from decimal import Decimal

from . import networks
from .exchange import (
    Account,
    Exchange,
    Export,
    PrivateHandler,
    PublicHandler,
    asset_places,
    quantize,
)
from .market import (
    ASSETS,
    AssetSpec,
    find_asset,
)
from .params import (
    ApiError,
    Params,
    amount,
    flag,
    integer,
    invalid,
    number,
    required,
    text,
)
from .replies import Reply

D = Decimal

__all__ = ['Funding']

WITHDRAW_FEES = {'XXBT': D('0.00015'), 'XETH': D('0.0025'), 'SOL': D('0.01'), 'ZUSD': D('5')}
WITHDRAW_KEY = 'sandbox'  # the one withdrawal key (address book entry) of every asset
EARN_MINIMUM = '0.0001'


class Funding:
    """Kraken's funding, earn, export and subaccount methods over an exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: Public handlers by Kraken method name.
        self.public: dict[str, PublicHandler] = {}
        #: Private handlers by Kraken method name.
        self.private: dict[str, PrivateHandler] = {
            'DepositMethods': self.deposit_methods,
            'DepositAddresses': self.deposit_addresses,
            'DepositStatus': self.deposit_status,
            'WithdrawMethods': self.withdraw_methods,
            'WithdrawAddresses': self.withdraw_addresses,
            'WithdrawInfo': self.withdraw_info,
            'Withdraw': self.withdraw,
            'WithdrawStatus': self.withdraw_status,
            'WithdrawCancel': self.withdraw_cancel,
            'WalletTransfer': self.wallet_transfer,
            'Earn/Strategies': self.earn_strategies,
            'Earn/Allocations': self.earn_allocations,
            'Earn/Allocate': self.earn_allocate,
            'Earn/Deallocate': self.earn_deallocate,
            'Earn/AllocateStatus': self.earn_allocate_status,
            'Earn/DeallocateStatus': self.earn_deallocate_status,
            'CreateSubaccount': self.create_subaccount,
            'AccountTransfer': self.account_transfer,
            'AddExport': self.add_export,
            'ExportStatus': self.export_status,
            'RetrieveExport': self.retrieve_export,
            'RemoveExport': self.remove_export,
        }

    def _asset(self, params: Params) -> AssetSpec:
        asset = find_asset(required(params, 'asset'))
        if asset is None:
            raise ApiError('EFunding:Unknown asset')
        return asset

    def deposit_methods(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        return [{'method': networks.method(asset.name), 'limit': False,
                 'fee': asset_places(asset.name, D(0)), 'gen-address': asset.name != 'ZUSD',
                 'minimum': asset_places(asset.name, D('0.0001'))}]

    def deposit_addresses(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        if required(params, 'method') != networks.method(asset.name):
            raise ApiError('EFunding:Unknown method')
        seed = f'{account.key}/{asset.name}'.encode()
        return [{'address': 'sandbox-' + hashlib.sha256(seed).hexdigest()[:34],
                 'expiretm': '0', 'new': flag(params, 'new')}]

    def _funding(self, account: Account, params: Params, kind: str) -> object:
        """DepositStatus and WithdrawStatus: newest first, filtered, paged as Kraken pages."""
        named = text(params, 'asset')
        asset = find_asset(named) if named else None
        if named and asset is None:  # never every deposit for a name it does not know
            raise ApiError('EFunding:Unknown asset')
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
        if isinstance(cursor, str) and cursor.lower() in ('true', 'false'):
            cursor = cursor.lower()  # Kraken reads a boolean in any case: Python's "False" too
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
        chosen = text(params, 'network')
        return [{'asset': a.name, 'method': networks.method(a.name),
                 'network': networks.network(a.name),
                 'minimum': asset_places(a.name, WITHDRAW_FEES[a.name] * 2)} for a in assets
                if chosen in (None, networks.network(a.name))]

    def withdraw_addresses(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        rows = [{'address': _withdraw_address(a), 'asset': a.name,
                 'method': networks.method(a.name), 'key': WITHDRAW_KEY, 'verified': True}
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
        return {'method': networks.method(asset.name),
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
        items = [{'id': _strategy_id(a), 'asset': a.altname,
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
            items.append({'strategy_id': _strategy_id(asset), 'native_asset': asset.altname,
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

    def create_subaccount(self, account: Account, params: Params) -> object:
        username, email = required(params, 'username'), required(params, 'email')
        if not re.fullmatch(r'[^@\s]+@[^@\s]+\.[^@\s]+', email):
            raise invalid('email')
        if not account.master:
            raise ApiError('EGeneral:Permission denied')
        if username in account.usernames:
            raise invalid('username')
        sub = self.exchange.add_account({}, otp=None, nonce_window=0)
        sub.parent = account
        account.usernames.add(username)
        return True

    def account_transfer(self, account: Account, params: Params) -> object:
        if not account.master:
            raise ApiError('EGeneral:Permission denied')
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

    def add_export(self, account: Account, params: Params) -> object:
        report = required(params, 'report')
        if report not in ('trades', 'ledgers'):
            raise invalid('report')
        fmt = (text(params, 'format', 'CSV') or 'CSV').upper()
        if fmt not in ('CSV', 'TSV'):
            raise invalid('format')
        description = required(params, 'description')
        start = integer(params, 'starttm', 0, 0, 10**11)  # Kraken: from the account's start
        end = integer(params, 'endtm', 0, 0, 10**11) or time.time()  # Kraken: to now
        if start > end:
            raise invalid('starttm')
        export_id = self.exchange.new_id('')[:4]
        export = Export(export_id, report, fmt, description, time.time(),
                        _zip_report(account, report, fmt, start, end), start, end)
        account.exports[export_id] = export
        return {'id': export_id}

    def export_status(self, account: Account, params: Params) -> object:
        report = required(params, 'report')
        created = [e for e in account.exports.values() if e.report == report]
        return [{'id': e.id, 'descr': e.description, 'format': e.format, 'report': e.report,
                 'subtype': 'all', 'status': 'Processed', 'flags': '0', 'fields': 'all',
                 'createdtm': str(int(e.created)), 'expiretm': str(int(e.created) + 86400 * 30),
                 'starttm': str(int(e.created)), 'completedtm': str(int(e.created)),
                 'datastarttm': str(int(e.data_start)), 'dataendtm': str(int(e.data_end)),
                 'aclass': 'forex',
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

    def deposit_status(self, account: Account, params: Params) -> object:
        return self._funding(account, params, 'deposit')

    def withdraw_status(self, account: Account, params: Params) -> object:
        return self._funding(account, params, 'withdrawal')

    def earn_allocate(self, account: Account, params: Params) -> object:
        return self._earn_move(account, params, 'allocate')

    def earn_deallocate(self, account: Account, params: Params) -> object:
        return self._earn_move(account, params, 'deallocate')

    def earn_allocate_status(self, account: Account, params: Params) -> object:
        return self._earn_status(account, params, 'allocate')

    def earn_deallocate_status(self, account: Account, params: Params) -> object:
        return self._earn_status(account, params, 'deallocate')


def _withdraw_address(asset: AssetSpec) -> str:
    """The address of the one withdrawal key of ``asset``."""
    return f'sandbox-{asset.altname.lower()}-address'


def _strategy_id(asset: AssetSpec) -> str:
    """The sandbox's earn strategy of an asset, in Kraken's id format."""
    raw = base64.b32encode(hashlib.sha256(asset.name.encode()).digest()).decode()
    return f'ES{raw[:5]}-{raw[5:10]}-{raw[10:16]}'


def _zip_report(account: Account, report: str, fmt: str, start: float, end: float) -> bytes:
    """A zip holding ``trades.csv`` or ``ledgers.csv`` (tab-separated for TSV), oldest first,
    of the rows from ``start`` to ``end`` (Unix times, both included)."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter='\t' if fmt == 'TSV' else ',', quoting=csv.QUOTE_ALL,
                        lineterminator='\n')

    def stamp(when: float) -> str:
        return time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when)) + f'.{int(when % 1 * 1e4):04d}'

    if report == 'trades':
        writer.writerow(['txid', 'ordertxid', 'pair', 'time', 'type', 'ordertype', 'price',
                         'cost', 'fee', 'vol', 'margin', 'misc', 'ledgers'])
        for f in account.fills.values():
            if not start <= f.time <= end:
                continue
            k = f.to_kraken()
            writer.writerow([f.txid, k['ordertxid'], k['pair'], stamp(f.time), k['type'],
                             k['ordertype'], k['price'], k['cost'], k['fee'], k['vol'],
                             k['margin'], '', ','.join(f.ledgers)])
    else:
        writer.writerow(['txid', 'refid', 'time', 'type', 'subtype', 'aclass', 'asset',
                         'amount', 'fee', 'balance'])
        for e in account.ledger.values():
            if not start <= e.time <= end:
                continue
            k = e.to_kraken()
            writer.writerow([e.id, e.refid, stamp(e.time), e.type, e.subtype, 'currency',
                             e.asset, k['amount'], k['fee'], k['balance']])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f'{report}.{fmt.lower()}', text.getvalue())
    return buffer.getvalue()
