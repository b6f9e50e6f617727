"""A local Kraken-compatible spot exchange, for tests, examples and notebooks.

>>> import krakenex
>>> from krakenex.sandbox import Sandbox
>>> with Sandbox() as sandbox:                       # doctest: +SKIP
...     api = krakenex.API(sandbox.key, sandbox.secret, uri=sandbox.url)
...     print(api.query_private('Balance')['result']['ZUSD'])
100000.0000

It listens on 127.0.0.1 only, checks API-Key, API-Sign, nonces and the call
counter as Kraken does, serves seeded market data, fills paper orders against
a synthetic book, keeps ledgers, and can inject the faults Kraken's users meet
(Cloudflare HTML pages, resets, lost replies). Standard library only; it
writes no files. ``python -m krakenex.sandbox`` runs one from the shell.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import random
import re
import signal
import socket
import string
import struct
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from ._market import (
    ASSETS,
    FEES_MAKER,
    FEES_TAKER,
    LOT_DECIMALS,
    OHLC_INTERVALS,
    PAIRS,
    AssetSpec,
    Market,
    PairSpec,
    find_asset,
    find_pair,
    places,
    since_ns,
)

__all__ = ['Sandbox', 'Account', 'TIERS', 'COSTS', 'FAULT_KINDS', 'main']

log = logging.getLogger('krakenex.sandbox')
D = Decimal

# Kraken's REST call counter per tier: (maximum, decay per second), from Kraken's
# "Spot REST Rate Limits" page, https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits
TIERS: dict[str, tuple[float, float]] = {
    'starter': (15, 0.33),
    'intermediate': (20, 0.5),
    'pro': (20, 1.0),
}
# What a private call adds to the counter (same page): ledger and trade history +2;
# AddOrder and CancelOrder nothing (the trading engine limits them); every other call +1.
COSTS: dict[str, float] = {
    'Ledgers': 2, 'QueryLedgers': 2, 'TradesHistory': 2, 'QueryTrades': 2,
    'AddOrder': 0, 'CancelOrder': 0,
}
DEFAULT_COST = 1.0

TAKER_FEE = D('0.0026')  # first tier of Kraken's spot fee schedule, charged in the quote asset
MAKER_FEE = D('0.0016')
DEFAULT_BALANCES = {'ZUSD': '100000', 'XXBT': '10', 'XETH': '100'}
WITHDRAW_FEES = {'XXBT': D('0.00015'), 'XETH': D('0.0025'), 'SOL': D('0.01'), 'ZUSD': D('5')}
WITHDRAW_KEY = 'sandbox'  # the one withdrawal key (address book entry) of every asset
ORDER_FLAGS = {'post', 'fcib', 'fciq', 'nompp'}
TIME_IN_FORCE = {'GTC', 'IOC', 'GTD', 'FOK'}
PAGE = 50  # ClosedOrders, TradesHistory and Ledgers pages
MAX_BODY = 1 << 20  # bytes; a longer request body is refused with HTTP 413
HISTORY_ROUND_TRIPS = 60  # seeded buy+sell pairs of a default-funded account

FAULT_KINDS = frozenset({'html520', 'html502', 'html504', 'reset', 'delay', 'reply_lost',
                         'reply_delayed', 'not_json', 'unavailable'})
_CLOUDFLARE_TITLES = {520: 'Web server is returning an unknown error', 502: 'Bad gateway',
                      504: 'Gateway time-out'}
_ID_ALPHABET = string.ascii_uppercase + '234567'

Params = dict[str, Any]


class ApiError(Exception):
    """A Kraken error string, sent back as ``{"error": [message]}`` with HTTP 200."""


@dataclass
class Reply:
    """An HTTP reply: status, body and the headers that go with it."""

    status: int
    body: bytes
    content_type: str = 'application/json; charset=utf-8'
    headers: dict[str, str] = field(default_factory=dict)


def _json(envelope: object) -> Reply:
    return Reply(200, json.dumps(envelope, separators=(',', ':')).encode())


def _error(message: str) -> Reply:
    return _json({'error': [message]})


def _html(status: int, title: str, extra: dict[str, str] | None = None) -> Reply:
    page = f'<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n'
    return Reply(status, page.encode(), 'text/html; charset=UTF-8', extra or {})


def _cloudflare(status: int) -> Reply:
    """The HTML error page Cloudflare serves in front of api.kraken.com."""
    title = f'api.kraken.com | {status}: {_CLOUDFLARE_TITLES[status]}'
    return _html(status, title, {'Server': 'cloudflare', 'CF-RAY': f'{os.urandom(8).hex()}-AMS'})


def _iso(when: float) -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(when))


def _asset_places(asset: str, amount: Decimal) -> str:
    return places(amount, ASSETS[asset].decimals)


def _quantize(amount: Decimal, asset: str, rounding: str = ROUND_HALF_UP) -> Decimal:
    return amount.quantize(D(1).scaleb(-ASSETS[asset].decimals), rounding)


# -- reading parameters ---------------------------------------------------------------

def _invalid(name: str = '') -> ApiError:
    return ApiError('EGeneral:Invalid arguments' + (f':{name}' if name else ''))


def _text(params: Params, name: str, default: str | None = None) -> str | None:
    """A parameter as text (JSON numbers arrive as their literal text)."""
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return value
    raise _invalid(name)


def _required(params: Params, name: str) -> str:
    value = _text(params, name)
    if not value:
        raise _invalid(name)
    return value


def _amount(params: Params, name: str) -> Decimal:
    """A required positive decimal parameter."""
    try:
        value = D(_required(params, name))
    except InvalidOperation:
        raise _invalid(name) from None
    if not value.is_finite() or value <= 0:
        raise _invalid(name)
    return value


def _optional_amount(params: Params, name: str) -> Decimal | None:
    return None if params.get(name) is None else _amount(params, name)


def _integer(params: Params, name: str, default: int, low: int, high: int) -> int:
    text = _text(params, name)
    if text is None or text == '':
        return default
    if not re.fullmatch(r'-?\d+', text) or not low <= int(text) <= high:
        raise _invalid(name)
    return int(text)


def _truthy(value: object) -> bool:
    return value is True or str(value).lower() in ('true', '1', 'yes')


def _id_list(value: object, name: str) -> list[str]:
    """A comma-separated or JSON list of ids."""
    if value is None or value == '':
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(',') if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _invalid(name)


def _indexed(params: Params, name: str) -> object:
    """``name`` as a list: a JSON list, or form keys ``name[0][field]`` / ``name[0]``."""
    if name in params:
        return params[name]
    pattern = re.compile(re.escape(name) + r'\[(\d+)\](?:\[(\w+)\])?')
    rows: dict[int, Any] = {}
    for key, value in params.items():
        match = pattern.fullmatch(key)
        if match:
            index, sub = int(match.group(1)), match.group(2)
            if sub is None:
                rows[index] = value
            else:
                rows.setdefault(index, {})[sub] = value
    return [rows[i] for i in sorted(rows)] if rows else None


def _parse_body(content_type: str, body: bytes) -> Params:
    """Form or JSON body into a dict; JSON numbers keep their literal text."""
    try:
        text = body.decode('utf-8')
        if content_type.split(';')[0].strip().lower() == 'application/json':
            params = json.loads(text, parse_int=str, parse_float=str) if text.strip() else {}
        else:
            params = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    except (UnicodeDecodeError, ValueError):
        raise _invalid() from None
    if not isinstance(params, dict):
        raise _invalid()
    return params


# -- accounts and their records ---------------------------------------------------------

@dataclass(eq=False)
class Order:
    """An order as the sandbox keeps it; :meth:`to_kraken` is what the API shows."""

    txid: str
    pair: PairSpec
    side: str
    ordertype: str
    volume: Decimal
    price: Decimal | None
    opentm: float
    userref: int | None = None
    cl_ord_id: str | None = None
    oflags: set[str] = field(default_factory=set)
    timeinforce: str = 'GTC'
    status: str = 'pending'
    vol_exec: Decimal = D(0)
    cost: Decimal = D(0)
    fee: Decimal = D(0)
    closetm: float | None = None
    reason: str | None = None
    trades: list[str] = field(default_factory=list)
    seeded: bool = False  # made-up account history, not placed over the API

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.vol_exec

    def description(self) -> str:
        """Kraken's ``descr.order`` text, e.g. ``buy 1.25000000 XBTUSD @ limit 37500.0``."""
        volume = places(self.volume, LOT_DECIMALS)
        text = f'{self.side} {volume} {self.pair.altname} @ {self.ordertype}'
        if self.price is not None:
            text += f' {places(self.price, self.pair.pair_decimals)}'
        return text

    def to_kraken(self, with_trades: bool = False) -> dict[str, Any]:
        """The order as OpenOrders, ClosedOrders and QueryOrders show it."""
        d, c = self.pair.pair_decimals, self.pair.cost_decimals
        average = self.cost / self.vol_exec if self.vol_exec else D(0)
        info: dict[str, Any] = {
            'refid': None, 'userref': self.userref, 'status': self.status,
            'opentm': round(self.opentm, 4), 'starttm': 0, 'expiretm': 0,
            'descr': {'pair': self.pair.altname, 'type': self.side, 'ordertype': self.ordertype,
                      'price': places(self.price or D(0), d), 'price2': '0', 'leverage': 'none',
                      'order': self.description(), 'close': ''},
            'vol': places(self.volume, LOT_DECIMALS),
            'vol_exec': places(self.vol_exec, LOT_DECIMALS),
            'cost': places(self.cost, c), 'fee': places(self.fee, c), 'price': places(average, d),
            'stopprice': places(D(0), d), 'limitprice': places(D(0), d), 'misc': '',
            'oflags': ','.join(sorted(self.oflags)) or 'fciq', 'timeinforce': self.timeinforce,
        }
        if self.cl_ord_id is not None:
            info['cl_ord_id'] = self.cl_ord_id
        if self.closetm is not None:
            info['closetm'] = round(self.closetm, 4)
            info['reason'] = self.reason
        if with_trades and self.trades:
            info['trades'] = list(self.trades)
        return info


@dataclass(eq=False)
class Fill:
    """One of the account's trades (TradesHistory)."""

    txid: str
    order: Order
    postxid: str
    time: float
    price: Decimal
    volume: Decimal
    cost: Decimal
    fee: Decimal
    maker: bool
    ledgers: list[str]

    def to_kraken(self, with_ledgers: bool = False) -> dict[str, Any]:
        pair, c = self.order.pair, self.order.pair.cost_decimals
        info: dict[str, Any] = {
            'ordertxid': self.order.txid, 'postxid': self.postxid, 'pair': pair.name,
            'time': round(self.time, 4), 'type': self.order.side,
            'ordertype': self.order.ordertype, 'price': places(self.price, pair.pair_decimals),
            'cost': places(self.cost, c), 'fee': places(self.fee, c),
            'vol': places(self.volume, LOT_DECIMALS), 'margin': places(D(0), c),
            'leverage': '0', 'misc': '', 'maker': self.maker,
        }
        if with_ledgers:
            info['ledgers'] = list(self.ledgers)
        return info


@dataclass(eq=False)
class LedgerEntry:
    """One ledger row: ``balance`` is the asset's balance after ``amount - fee``."""

    id: str
    refid: str
    time: float
    type: str
    subtype: str
    asset: str
    amount: Decimal
    fee: Decimal
    balance: Decimal

    def to_kraken(self) -> dict[str, Any]:
        return {'refid': self.refid, 'time': round(self.time, 4), 'type': self.type,
                'subtype': self.subtype, 'aclass': 'currency', 'asset': self.asset,
                'amount': _asset_places(self.asset, self.amount),
                'fee': _asset_places(self.asset, self.fee),
                'balance': _asset_places(self.asset, self.balance)}


@dataclass(eq=False)
class Export:
    """A report made by AddExport: the zip is built at once, in memory."""

    id: str
    report: str
    format: str
    description: str
    created: float
    data: bytes


@dataclass(eq=False, repr=False)
class Account:
    """One API key: its secret, balances, orders, trades, ledger, nonce and rate counter."""

    key: str
    secret: str
    otp: str | None = None
    nonce_window: int = 0
    balances: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    funding: list[dict[str, Any]] = field(default_factory=list)
    exports: dict[str, Export] = field(default_factory=dict)
    last_nonce: int = 0
    recent_nonces: set[int] = field(default_factory=set)
    counter: float = 0.0
    counter_time: float = field(default_factory=time.monotonic)
    cancel_at: float | None = None  # CancelAllOrdersAfter's deadline (Unix time)

    def __repr__(self) -> str:  # never the secret
        return f'<Account {self.key[:8]}...>'

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status == 'open']

    def held(self) -> dict[str, Decimal]:
        """What open orders hold: a buy its quote at the limit price plus the taker fee."""
        held: dict[str, Decimal] = {}
        for order in self.open_orders():
            asset, amount = _needs(order, [])
            held[asset] = held.get(asset, D(0)) + amount
        return held

    def available(self, asset: str) -> Decimal:
        return self.balances.get(asset, D(0)) - self.held().get(asset, D(0))


def _costs(pair: PairSpec, price: Decimal, volume: Decimal, maker: bool) -> tuple[Decimal, Decimal]:
    """The cost and fee of a fill, in the quote asset's precision."""
    cost = _quantize(price * volume, pair.quote)
    return cost, _quantize(cost * (MAKER_FEE if maker else TAKER_FEE), pair.quote)


def _needs(order: Order, plan: list[tuple[Decimal, Decimal]]) -> tuple[str, Decimal]:
    """The asset and amount ``order`` needs: its immediate ``plan`` at the taker fee,
    plus (for a buy limit) the rest held at the limit price plus the taker fee."""
    pair = order.pair
    if order.side == 'sell':
        return pair.base, order.remaining
    need = sum((sum(_costs(pair, p, v, False), D(0)) for p, v in plan), D(0))
    if order.ordertype == 'limit' and order.price is not None:
        rest = order.remaining - sum((v for _, v in plan), D(0))
        need += _quantize(rest * order.price * (1 + TAKER_FEE), pair.quote, ROUND_UP)
    return pair.quote, need


# -- the exchange: Kraken's methods over the accounts and the market ----------------------

class Exchange:
    """Kraken's REST methods over in-memory accounts and the synthetic market (no HTTP)."""

    def __init__(self, *, seed: int, start: float, tier: tuple[float, float] | None,
                 costs: dict[str, float] | None, public_rate: float | None) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.market = Market(seed, start)
        self.tier = tier
        self.costs = {**COSTS, **(costs or {})}
        self.public_rate = public_rate
        self.buckets: dict[str, tuple[float, float]] = {}
        self.accounts: dict[str, Account] = {}
        self.requests_log: list[tuple[str, str | None]] = []
        self._rng = random.Random(f'{seed}/ids')
        self._ids: set[str] = set()
        self.public: dict[str, Callable[[Params], object]] = {
            'Time': self.server_time, 'SystemStatus': self.system_status, 'Assets': self.assets,
            'AssetPairs': self.asset_pairs, 'Ticker': self.ticker, 'OHLC': self.ohlc,
            'Depth': self.depth, 'Trades': self.trades, 'Spread': self.spread,
        }
        self.private: dict[str, Callable[[Account, Params], object]] = {
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

    def serve(self, verb: str, api: str, method: str, path: str, query: str,
              headers: dict[str, str], body: bytes, client: str) -> Reply:
        """Answer one request to ``/0/<api>/<method>`` as Kraken would."""
        try:
            if api == 'public':
                if verb != 'GET':
                    return _html(405, '405 Not Allowed', {'Allow': 'GET'})
                return self._public(method, query, client)
            if verb != 'POST':
                return _html(405, '405 Not Allowed', {'Allow': 'POST'})
            return self._private(method, path, headers, body)
        except ApiError as exc:
            return _error(str(exc))
        except Exception:
            log.exception('sandbox failed on %s', method)
            return _error('EGeneral:Internal error')

    def _public(self, method: str, query: str, client: str) -> Reply:
        handler = self.public.get(method)
        if handler is None:
            raise ApiError('EGeneral:Unknown method')
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        with self.lock:
            self.requests_log.append((method, None))
            self._throttle(client)
            self.expire_timers()
            return _json({'error': [], 'result': handler(params)})

    def _private(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        handler = self.private.get(method)
        if handler is None:
            raise ApiError('EGeneral:Unknown method')
        with self.lock:
            account, params, nonce = self._authenticate(path, headers, body)
            self.requests_log.append((method, nonce))
            self._charge(account, method)
            self.expire_timers()
            result = handler(account, params)
        return result if isinstance(result, Reply) else _json({'error': [], 'result': result})

    def _authenticate(self, path: str, headers: dict[str, str],
                      body: bytes) -> tuple[Account, Params, str]:
        """Kraken's checks, in Kraken's order: key, signature, nonce, then 2FA password."""
        account = self.accounts.get(headers.get('api-key', ''))
        if account is None:
            raise ApiError('EAPI:Invalid key')
        params = _parse_body(headers.get('content-type', ''), body)
        nonce = params.get('nonce')
        nonce_text = nonce if isinstance(nonce, str) else ''
        digest = hashlib.sha256(nonce_text.encode() + body).digest()
        expected = hmac.new(base64.b64decode(account.secret), path.encode() + digest,
                            hashlib.sha512).digest()
        try:
            given = base64.b64decode(headers.get('api-sign', ''), validate=True)
        except (binascii.Error, ValueError):
            given = b''
        if not hmac.compare_digest(expected, given):
            raise ApiError('EAPI:Invalid signature')
        if nonce is None:
            raise _invalid('nonce')  # Kraken's text for a missing nonce is not documented
        if not re.fullmatch(r'\d{1,20}', nonce_text) or int(nonce_text) >= 2**64:
            raise ApiError('EAPI:Invalid nonce')
        self._use_nonce(account, int(nonce_text))
        # A key with 2FA and a missing or wrong otp: users report EGeneral:Permission denied.
        if account.otp is not None and params.get('otp') != account.otp:
            raise ApiError('EGeneral:Permission denied')
        return account, params, nonce_text

    @staticmethod
    def _use_nonce(account: Account, nonce: int) -> None:
        """Accept a nonce above the last one, or (with a window) an unused one within it."""
        window = max(account.nonce_window, 0)
        if nonce <= account.last_nonce - window or nonce in account.recent_nonces:
            raise ApiError('EAPI:Invalid nonce')
        account.last_nonce = max(account.last_nonce, nonce)
        if window:
            floor = account.last_nonce - window
            account.recent_nonces = {n for n in account.recent_nonces if n > floor} | {nonce}

    def _charge(self, account: Account, method: str) -> None:
        """Kraken's call counter: decays per second; a call over the maximum adds nothing."""
        if self.tier is None:
            return
        maximum, decay = self.tier
        now = time.monotonic()
        account.counter = max(0.0, account.counter - decay * (now - account.counter_time))
        account.counter_time = now
        cost = self.costs.get(method, DEFAULT_COST)
        if account.counter + cost > maximum:
            raise ApiError('EAPI:Rate limit exceeded')
        account.counter += cost

    def _throttle(self, client: str) -> None:
        """Public calls per client address: a token bucket refilled at ``public_rate``/s."""
        if self.public_rate is None:
            return
        capacity, now = max(1.0, self.public_rate), time.monotonic()
        tokens, then = self.buckets.get(client, (capacity, now))
        tokens = min(capacity, tokens + (now - then) * self.public_rate)
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            raise ApiError('EGeneral:Too many requests')
        self.buckets[client] = (tokens - 1, now)

    def expire_timers(self) -> None:
        """Fire CancelAllOrdersAfter deadlines that have passed."""
        now = time.time()
        for account in self.accounts.values():
            if account.cancel_at is not None and account.cancel_at <= now:
                account.cancel_at = None
                for order in account.open_orders():
                    self._close(order, 'canceled', 'Cancel all orders after timeout', now)

    # -- accounts ------------------------------------------------------------------------

    def add_account(self, balances: dict[str, str] | None, *, otp: str | None,
                    nonce_window: int) -> Account:
        """A new key; ``balances=None`` funds it with a seeded trading history."""
        with self.lock:
            rng = random.Random(f'{self.seed}/account/{len(self.accounts)}')
            key = base64.b64encode(rng.randbytes(42)).decode()
            secret = base64.b64encode(rng.randbytes(64)).decode()
            account = Account(key, secret, otp, nonce_window)
            if balances is None:
                self._seed_history(account, rng, DEFAULT_BALANCES)
            else:
                when = self.market.start - 86400
                for name, amount in balances.items():
                    asset = find_asset(name)
                    if asset is None:
                        raise ValueError(f'unknown asset {name!r}; known: {", ".join(ASSETS)}')
                    if D(amount) > 0:
                        self._deposit(account, asset, D(amount), when)
            self.accounts[key] = account
            return account

    def _seed_history(self, account: Account, rng: random.Random,
                      targets: dict[str, str]) -> None:
        """Deposits and past round trips that end exactly at ``targets``.

        The deposits are sized so that the ledger replays to the target balances:
        every balance is the sum of its ledger's ``amount - fee``.
        """
        start = self.market.start - 60 * 86400
        pairs = [PAIRS['XXBTZUSD'], PAIRS['XETHZUSD'], PAIRS['XETHXXBT']]
        fills = []
        for _ in range(HISTORY_ROUND_TRIPS):
            pair = rng.choice(pairs)
            volume = (pair.lot * D(rng.uniform(0.02, 0.2))).quantize(D('1e-4'))
            for side in ('buy', 'sell'):
                price = pair.start_price * D(1 + rng.gauss(0, 0.03))
                price = (price / pair.tick_size).to_integral_value() * pair.tick_size
                fills.append((pair, side, volume, price, rng.random() < 0.5))
        net: dict[str, Decimal] = {}
        for pair, side, volume, price, maker in fills:
            cost, fee = _costs(pair, price, volume, maker)
            sign = 1 if side == 'buy' else -1
            net[pair.base] = net.get(pair.base, D(0)) + sign * volume
            net[pair.quote] = net.get(pair.quote, D(0)) - sign * cost - fee
        for index, (name, target) in enumerate(targets.items()):
            amount = D(target) - net.get(name, D(0))
            self._deposit(account, ASSETS[name], amount, start + index * 3600)
        step = 58 * 86400 / len(fills)
        for index, (pair, side, volume, price, maker) in enumerate(fills):
            when = start + 86400 + index * step + rng.uniform(0, step / 2)
            order = Order(self._new_id('O'), pair, side, 'limit' if maker else 'market', volume,
                          price if maker else None, when, status='open', seeded=True)
            account.orders[order.txid] = order
            self._fill(account, order, price, volume, maker, when)

    def _deposit(self, account: Account, asset: AssetSpec, amount: Decimal, when: float) -> None:
        refid = self._new_id('F')
        self._book(account, asset.name, amount, D(0), 'deposit', refid, when)
        account.funding.append({
            'kind': 'deposit', 'method': f'{asset.altname} (sandbox)', 'aclass': 'currency',
            'asset': asset.name, 'refid': refid, 'txid': hashlib.sha256(refid.encode()).hexdigest(),
            'info': 'sandbox', 'amount': _asset_places(asset.name, amount),
            'fee': _asset_places(asset.name, D(0)), 'time': int(when), 'status': 'Success'})

    def _new_id(self, prefix: str) -> str:
        """A fresh id in Kraken's 6-5-6 format, e.g. ``OQCLML-BW3P3-BUCMWZ``."""
        while True:
            raw = ''.join(self._rng.choice(_ID_ALPHABET) for _ in range(16))
            new = f'{prefix}{raw[:5]}-{raw[5:10]}-{raw[10:]}'
            if new not in self._ids:
                self._ids.add(new)
                return new

    def _book(self, account: Account, asset: str, amount: Decimal, fee: Decimal, kind: str,
              refid: str, when: float, subtype: str = '') -> LedgerEntry:
        """Change a balance by ``amount - fee`` and write the ledger row that says so."""
        balance = account.balances.get(asset, D(0)) + amount - fee
        account.balances[asset] = balance
        entry = LedgerEntry(self._new_id('L'), refid, when, kind, subtype, asset, amount, fee,
                            balance)
        account.ledger[entry.id] = entry
        return entry

    # -- matching ------------------------------------------------------------------------

    def _plan(self, order: Order) -> list[tuple[Decimal, Decimal]]:
        """The (price, volume) fills ``order`` gets at once by walking the synthetic book."""
        plan: list[tuple[Decimal, Decimal]] = []
        left = order.remaining
        for price, size in self.market.levels(order.pair, 'a' if order.side == 'buy' else 'b'):
            if left <= 0 or order.price is not None and (
                    price > order.price if order.side == 'buy' else price < order.price):
                break
            plan.append((price, min(left, size)))
            left -= plan[-1][1]
        return plan

    def _check_funds(self, account: Account,
                     orders: Iterable[tuple[Order, list[tuple[Decimal, Decimal]]]],
                     released: Order | None = None) -> None:
        """``EOrder:Insufficient funds`` unless the account can pay for all ``orders``."""
        needs: dict[str, Decimal] = {}
        for order, plan in orders:
            asset, amount = _needs(order, plan)
            needs[asset] = needs.get(asset, D(0)) + amount
        if released is not None:
            asset, amount = _needs(released, [])
            needs[asset] = needs.get(asset, D(0)) - amount
        if any(amount > account.available(asset) for asset, amount in needs.items()):
            raise ApiError('EOrder:Insufficient funds')

    def _execute(self, account: Account, order: Order) -> None:
        """Fill what crosses now (taker); then rest, or cancel as the flags say."""
        plan = self._plan(order)
        if plan and 'post' in order.oflags:
            self._close(order, 'canceled', 'Post only order')
            return
        if order.timeinforce == 'FOK' and sum(v for _, v in plan) < order.remaining:
            self._close(order, 'canceled', 'Fill or kill')
            return
        for price, volume in plan:
            self._fill(account, order, price, volume, False)
        if order.status == 'open' and (order.ordertype == 'market' or order.timeinforce == 'IOC'):
            self._close(order, 'canceled', 'Immediate or cancel')

    def _fill(self, account: Account, order: Order, price: Decimal, volume: Decimal,
              maker: bool, when: float | None = None) -> None:
        """Trade ``volume`` of ``order`` at ``price``: balances, ledger, trade, order, tape."""
        when = time.time() if when is None else when
        pair = order.pair
        cost, fee = _costs(pair, price, volume, maker)
        txid = self._new_id('T')
        sign = 1 if order.side == 'buy' else -1
        base = self._book(account, pair.base, sign * volume, D(0), 'trade', txid, when, 'tradespot')
        quote = self._book(account, pair.quote, -sign * cost, fee, 'trade', txid, when, 'tradespot')
        account.fills[txid] = Fill(txid, order, self._new_id('P'), when, price, volume, cost, fee,
                                   maker, [base.id, quote.id])
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        order.trades.append(txid)
        if order.remaining <= 0:
            self._close(order, 'closed', None, when)
        if not order.seeded:
            self.market.record_trade(pair, price, volume, 'b' if order.side == 'buy' else 's',
                                     'l' if maker else 'm')

    @staticmethod
    def _close(order: Order, status: str, reason: str | None, when: float | None = None) -> None:
        order.status, order.reason = status, reason
        order.closetm = time.time() if when is None else when

    def set_price(self, pair: PairSpec, price: Decimal) -> None:
        """The market trades at ``price``: resting limit orders at or through it fill (maker)."""
        with self.lock:
            mid = self.market.set_price(pair, price)
            for account in self.accounts.values():
                for order in account.open_orders():
                    if order.pair is pair and order.price is not None and (
                            order.price >= mid if order.side == 'buy' else order.price <= mid):
                        self._fill(account, order, order.price, order.remaining, True)

    def usd_price(self, asset: str) -> Decimal:
        if asset == 'ZUSD':
            return D(1)
        pair = next(p for p in PAIRS.values() if p.base == asset and p.quote == 'ZUSD')
        return self.market.mid(pair)

    # -- public methods ----------------------------------------------------------------------

    def _pairs(self, params: Params, *, required: bool) -> list[PairSpec]:
        names = _id_list(params.get('pair'), 'pair')
        if not names:
            if required:
                raise _invalid('pair')
            return list(PAIRS.values())
        found = [find_pair(name) for name in names]
        if any(spec is None for spec in found):
            raise ApiError('EQuery:Unknown asset pair')
        return [spec for spec in found if spec is not None]

    def _pair(self, params: Params) -> PairSpec:
        pairs = self._pairs(params, required=True)
        if len(pairs) != 1:
            raise _invalid('pair')
        return pairs[0]

    def server_time(self, params: Params) -> object:
        now = time.time()  # Kraken's rfc1123 has a two-digit year
        return {'unixtime': int(now),
                'rfc1123': time.strftime('%a, %d %b %y %H:%M:%S +0000', time.gmtime(now))}

    def system_status(self, params: Params) -> object:
        return {'status': 'online', 'timestamp': _iso(time.time())}

    def assets(self, params: Params) -> object:
        names = _id_list(params.get('asset'), 'asset') or list(ASSETS)
        found = [find_asset(name) for name in names]
        if any(spec is None for spec in found):
            raise ApiError('EQuery:Unknown asset')
        return {a.name: {'aclass': 'currency', 'altname': a.altname, 'decimals': a.decimals,
                         'display_decimals': a.display_decimals, 'status': 'enabled'}
                for a in found if a is not None}

    def asset_pairs(self, params: Params) -> object:
        info = _text(params, 'info', 'info')
        if info not in ('info', 'leverage', 'fees', 'margin'):
            raise _invalid('info')
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
        return {p.name: self.market.ticker(p) for p in self._pairs(params, required=False)}

    def ohlc(self, params: Params) -> object:
        pair = self._pair(params)
        interval = _integer(params, 'interval', 1, -2**31, 2**31)
        if interval not in OHLC_INTERVALS:
            raise _invalid()
        since = _integer(params, 'since', -1, 0, 2**63)
        rows, last = self.market.ohlc(pair, interval, None if since < 0 else since)
        return {pair.name: rows, 'last': last}

    def depth(self, params: Params) -> object:
        pair = self._pair(params)
        return {pair.name: self.market.depth(pair, _integer(params, 'count', 100, 1, 500))}

    def trades(self, params: Params) -> object:
        pair = self._pair(params)
        since = _text(params, 'since') or None
        try:
            since_ns(since or '0')
        except (ArithmeticError, ValueError):
            raise _invalid('since') from None
        rows, last = self.market.trades(pair, since, _integer(params, 'count', 1000, 1, 1000))
        return {pair.name: rows, 'last': last}

    def spread(self, params: Params) -> object:
        pair = self._pair(params)
        since = _integer(params, 'since', -1, 0, 2**63)
        rows, last = self.market.spread(pair, None if since < 0 else since)
        return {pair.name: rows, 'last': last}

    # -- account data --------------------------------------------------------------------

    def balance(self, account: Account, params: Params) -> object:
        return {a: _asset_places(a, b) for a, b in account.balances.items()}

    def balance_ex(self, account: Account, params: Params) -> object:
        held = account.held()
        return {a: {'balance': _asset_places(a, b),
                    'hold_trade': _asset_places(a, held.get(a, D(0)))}
                for a, b in account.balances.items()}

    def trade_balance(self, account: Account, params: Params) -> object:
        asset = find_asset(_text(params, 'asset', 'ZUSD') or 'ZUSD')
        if asset is None:
            raise ApiError('EQuery:Unknown asset')
        usd = sum((b * self.usd_price(a) for a, b in account.balances.items()), D(0))
        value = _asset_places(asset.name, usd / self.usd_price(asset.name))
        zero = _asset_places(asset.name, D(0))
        return {'eb': value, 'tb': value, 'm': zero, 'n': zero, 'c': zero, 'v': zero,
                'e': value, 'mf': value, 'uv': zero}

    def _orders_matching(self, account: Account, params: Params,
                         orders: Iterable[Order]) -> list[Order]:
        userref, cl_ord_id = _text(params, 'userref'), _text(params, 'cl_ord_id')
        return [o for o in orders
                if (userref is None or str(o.userref) == userref)
                and (cl_ord_id is None or o.cl_ord_id == cl_ord_id)]

    def open_orders(self, account: Account, params: Params) -> object:
        trades = _truthy(params.get('trades'))
        orders = self._orders_matching(account, params, account.open_orders())
        return {'open': {o.txid: o.to_kraken(trades) for o in reversed(orders)}}

    def closed_orders(self, account: Account, params: Params) -> object:
        trades = _truthy(params.get('trades'))
        done = [o for o in account.orders.values() if o.closetm is not None]
        done.sort(key=lambda o: o.closetm or 0, reverse=True)
        done = self._orders_matching(account, params, done)
        field_ = 'opentm' if _text(params, 'closetime') == 'open' else 'closetm'
        done = self._window(account, params, done, lambda o: getattr(o, field_) or 0)
        page = self._page(params, done)
        return {'closed': {o.txid: o.to_kraken(trades) for o in page}, 'count': len(done)}

    def query_orders(self, account: Account, params: Params) -> object:
        txids = _id_list(params.get('txid'), 'txid')
        if not txids or len(txids) > 50:
            raise _invalid('txid')
        trades = _truthy(params.get('trades'))
        found = self._orders_matching(
            account, params, [account.orders[t] for t in txids if t in account.orders])
        return {o.txid: o.to_kraken(trades) for o in found}

    def trades_history(self, account: Account, params: Params) -> object:
        kind = _text(params, 'type', 'all')
        if kind not in ('all', 'any position', 'closed position', 'closing position',
                        'no position'):
            raise _invalid('type')
        fills = list(reversed(account.fills.values())) if kind in ('all', 'no position') else []
        fills = self._window(account, params, fills, lambda f: f.time)
        ledgers = _truthy(params.get('ledgers'))
        return {'trades': {f.txid: f.to_kraken(ledgers) for f in self._page(params, fills)},
                'count': len(fills)}

    def query_trades(self, account: Account, params: Params) -> object:
        txids = _id_list(params.get('txid'), 'txid')
        if not txids or len(txids) > 20:
            raise _invalid('txid')
        return {t: account.fills[t].to_kraken() for t in txids if t in account.fills}

    def ledgers(self, account: Account, params: Params) -> object:
        assets = _id_list(params.get('asset'), 'asset')
        names = set()
        for name in assets:
            if name != 'all':
                spec = find_asset(name)
                if spec is None:
                    raise ApiError('EQuery:Unknown asset')
                names.add(spec.name)
        kind = _text(params, 'type', 'all')
        entries = [e for e in reversed(account.ledger.values())
                   if (not names or e.asset in names) and kind in ('all', e.type)]
        entries = self._window(account, params, entries, lambda e: e.time)
        page = self._page(params, entries)
        result: dict[str, Any] = {'ledger': {e.id: e.to_kraken() for e in page}}
        if not _truthy(params.get('without_count')):
            result['count'] = len(entries)
        return result

    def query_ledgers(self, account: Account, params: Params) -> object:
        ids = _id_list(params.get('id'), 'id')
        if not ids or len(ids) > 20:
            raise _invalid('id')
        return {i: account.ledger[i].to_kraken() for i in ids if i in account.ledger}

    def _window(self, account: Account, params: Params, rows: list[Any],
                when: Callable[[Any], float]) -> list[Any]:
        """Rows after ``start`` (exclusive) and up to ``end`` (inclusive): Unix times or ids."""
        def bound(name: str) -> float | None:
            text = _text(params, name)
            if not text:
                return None
            if text in account.orders:
                return account.orders[text].opentm
            for records in (account.fills, account.ledger):
                if text in records:
                    return records[text].time
            try:
                return float(D(text))
            except InvalidOperation:
                raise _invalid(name) from None

        start, end = bound('start'), bound('end')
        # compare times as the API shows them, rounded to 4 decimals
        return [r for r in rows if (start is None or round(when(r), 4) > round(start, 4))
                and (end is None or round(when(r), 4) <= round(end, 4))]

    @staticmethod
    def _page(params: Params, rows: list[Any]) -> list[Any]:
        offset = _integer(params, 'ofs', 0, 0, 2**31)
        return rows[offset:offset + PAGE]

    def trade_volume(self, account: Account, params: Params) -> object:
        since = time.time() - 30 * 86400
        volume = sum((f.cost * self.usd_price(f.order.pair.quote)
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
        token = base64.b64encode(self._rng.randbytes(24)).decode()
        return {'token': token, 'expires': 900}

    # -- exports ---------------------------------------------------------------------------

    def add_export(self, account: Account, params: Params) -> object:
        report = _required(params, 'report')
        if report not in ('trades', 'ledgers'):
            raise _invalid('report')
        fmt = (_text(params, 'format', 'CSV') or 'CSV').upper()
        if fmt not in ('CSV', 'TSV'):
            raise _invalid('format')
        description = _required(params, 'description')
        export_id = ''.join(self._rng.choice(string.ascii_uppercase) for _ in range(4))
        export = Export(export_id, report, fmt, description, time.time(),
                        _zip_report(account, report, fmt))
        account.exports[export_id] = export
        return {'id': export_id}

    def export_status(self, account: Account, params: Params) -> object:
        report = _required(params, 'report')
        created = [e for e in account.exports.values() if e.report == report]
        return [{'id': e.id, 'descr': e.description, 'format': e.format, 'report': e.report,
                 'subtype': 'all', 'status': 'Processed', 'flags': '0', 'fields': 'all',
                 'createdtm': str(int(e.created)), 'expiretm': str(int(e.created) + 86400 * 30),
                 'starttm': str(int(e.created)), 'completedtm': str(int(e.created)),
                 'datastarttm': '0', 'dataendtm': str(int(e.created)), 'aclass': 'forex',
                 'asset': 'all'} for e in created]

    def _export(self, account: Account, params: Params) -> Export:
        export = account.exports.get(_required(params, 'id'))
        if export is None:
            raise _invalid('id')
        return export

    def retrieve_export(self, account: Account, params: Params) -> object:
        return Reply(200, self._export(account, params).data, 'application/zip')

    def remove_export(self, account: Account, params: Params) -> object:
        export = self._export(account, params)
        kind = _required(params, 'type')
        if kind not in ('cancel', 'delete'):
            raise _invalid('type')
        del account.exports[export.id]
        return {kind: True}

    # -- trading ---------------------------------------------------------------------------

    def _new_order(self, account: Account, params: Params, pair: PairSpec | None = None,
                   ignore: Order | None = None) -> Order:
        """An order from AddOrder's parameters, checked as Kraken checks it (funds aside)."""
        pair = pair or self._pair(params)
        side = _text(params, 'type')
        if side not in ('buy', 'sell'):
            raise _invalid('type')
        ordertype = _text(params, 'ordertype')
        if ordertype not in ('market', 'limit'):
            raise _invalid('ordertype')
        volume = _amount(params, 'volume')
        if volume != volume.quantize(D(1).scaleb(-LOT_DECIMALS), ROUND_HALF_UP):
            raise _invalid('volume')
        price = _amount(params, 'price') if ordertype == 'limit' else None
        userref_text, cl_ord_id = _text(params, 'userref'), _text(params, 'cl_ord_id')
        if userref_text is not None and cl_ord_id is not None:
            raise _invalid()
        userref = None
        if userref_text is not None:
            if not re.fullmatch(r'-?\d+', userref_text) or not -2**31 <= int(userref_text) < 2**31:
                raise _invalid('userref')
            userref = int(userref_text)
        flags = {f.strip() for f in (_text(params, 'oflags') or '').split(',') if f.strip()}
        if 'viqc' in flags:
            raise _invalid('viqc')  # volume in quote currency is not simulated
        if not flags <= ORDER_FLAGS:
            raise _invalid('oflags')
        tif = (_text(params, 'timeinforce') or 'GTC').upper()
        if tif not in TIME_IN_FORCE:
            raise _invalid('timeinforce')
        if volume < pair.ordermin:
            raise ApiError('EOrder:Order minimum not met')
        if volume * (price or self.market.mid(pair)) < pair.costmin:
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

    def _place(self, account: Account, order: Order) -> Order:
        order.txid, order.status, order.opentm = self._new_id('O'), 'open', time.time()
        account.orders[order.txid] = order
        self._execute(account, order)
        return order

    def add_order(self, account: Account, params: Params) -> object:
        order = self._new_order(account, params)
        self._check_funds(account, [(order, self._plan(order))])
        if _truthy(params.get('validate')):
            return {'descr': {'order': order.description()}}
        self._place(account, order)
        return {'descr': {'order': order.description()}, 'txid': [order.txid]}

    def add_order_batch(self, account: Account, params: Params) -> object:
        pair = self._pair(params)
        raw = _indexed(params, 'orders')
        if not isinstance(raw, list) or not 2 <= len(raw) <= 15 or not all(
                isinstance(r, dict) for r in raw):
            raise _invalid('orders')
        orders = [self._new_order(account, r, pair) for r in raw]
        ids = [o.cl_ord_id for o in orders if o.cl_ord_id is not None]
        if len(ids) != len(set(ids)):
            raise ApiError('EOrder:Duplicate order')
        self._check_funds(account, [(o, self._plan(o)) for o in orders])
        if _truthy(params.get('validate')):
            return {'orders': [{'descr': {'order': o.description()}} for o in orders]}
        return {'orders': [{'txid': self._place(account, o).txid,
                            'descr': {'order': o.description()}} for o in orders]}

    def _find_open(self, account: Account, params: Params) -> Order:
        txid, cl_ord_id = _text(params, 'txid'), _text(params, 'cl_ord_id')
        for order in account.open_orders():
            if (txid and order.txid == txid) or (cl_ord_id and order.cl_ord_id == cl_ord_id):
                return order
        raise ApiError('EOrder:Unknown order')

    def amend_order(self, account: Account, params: Params) -> object:
        order = self._find_open(account, params)
        qty = _optional_amount(params, 'order_qty')
        price = _optional_amount(params, 'limit_price')
        if qty is None and price is None:
            raise _invalid()
        amended = replace(order, volume=qty or order.volume, price=price or order.price)
        if amended.volume <= order.vol_exec:
            raise _invalid('order_qty')
        if amended.price is not None and amended.price % order.pair.tick_size:
            raise ApiError('EOrder:Tick size check failed')
        self._check_funds(account, [(amended, self._plan(amended))], released=order)
        order.volume, order.price = amended.volume, amended.price
        self._execute(account, order)
        return {'amend_id': self._new_id('T')}

    def edit_order(self, account: Account, params: Params) -> object:
        old = self._find_open(account, params)
        pair = self._pair(params)
        if pair is not old.pair:
            raise _invalid('pair')
        merged = {'type': old.side, 'ordertype': old.ordertype,
                  'volume': str(old.volume), 'price': str(old.price or ''),
                  'oflags': ','.join(sorted(old.oflags)), **params}
        merged.pop('cl_ord_id', None)
        new = self._new_order(account, merged, pair, ignore=old)
        if new.userref is None:
            new.userref = old.userref
        self._check_funds(account, [(new, self._plan(new))], released=old)
        result = {'descr': {'order': new.description()}, 'status': 'ok',
                  'volume': places(new.volume, LOT_DECIMALS),
                  'price': places(new.price or D(0), pair.pair_decimals), 'price2': '0'}
        if _truthy(params.get('validate')):
            return result
        self._close(old, 'canceled', 'Order replaced')
        new.cl_ord_id = old.cl_ord_id
        self._place(account, new)
        return {**result, 'txid': new.txid, 'originaltxid': old.txid, 'orders_cancelled': 1}

    def _targets(self, account: Account, ident: str) -> list[Order]:
        """Open orders named by txid, userref or cl_ord_id."""
        return [o for o in account.open_orders()
                if ident in (o.txid, o.cl_ord_id) or ident == str(o.userref)]

    def cancel_order(self, account: Account, params: Params) -> object:
        ident = _text(params, 'txid') or _text(params, 'cl_ord_id')
        if not ident:
            raise _invalid('txid')
        orders = self._targets(account, ident)
        if not orders:
            raise ApiError('EOrder:Unknown order')
        for order in orders:
            self._close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    def cancel_all(self, account: Account, params: Params) -> object:
        orders = account.open_orders()
        for order in orders:
            self._close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    def cancel_all_after(self, account: Account, params: Params) -> object:
        text = _required(params, 'timeout')
        if not text.isdigit() or int(text) >= 86400:
            raise _invalid('timeout')
        now = time.time()
        account.cancel_at = now + int(text) if int(text) else None
        trigger = _iso(account.cancel_at) if account.cancel_at else '0'
        return {'currentTime': _iso(now), 'triggerTime': trigger}

    def cancel_order_batch(self, account: Account, params: Params) -> object:
        raw = _indexed(params, 'orders') or []
        if not isinstance(raw, list):
            raise _invalid('orders')
        idents = [r.get('txid') if isinstance(r, dict) else r for r in raw]
        idents += _id_list(_indexed(params, 'cl_ord_ids') or [], 'cl_ord_ids')
        names = [i for i in idents if isinstance(i, str)]
        if not names or len(names) > 50 or len(names) != len(idents):
            raise _invalid('orders')
        orders = {o.txid: o for name in names for o in self._targets(account, name)}
        for order in orders.values():
            self._close(order, 'canceled', 'User requested')
        return {'count': len(orders)}

    # -- funding and earn ------------------------------------------------------------------

    def _asset(self, params: Params) -> AssetSpec:
        asset = find_asset(_required(params, 'asset'))
        if asset is None:
            raise ApiError('EFunding:Unknown asset')
        return asset

    def deposit_methods(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        return [{'method': f'{asset.altname} (sandbox)', 'limit': False,
                 'fee': _asset_places(asset.name, D(0)), 'gen-address': asset.name != 'ZUSD',
                 'minimum': _asset_places(asset.name, D('0.0001'))}]

    def deposit_addresses(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        seed = f'{account.key}/{asset.name}'.encode()
        return [{'address': 'sandbox-' + hashlib.sha256(seed).hexdigest()[:34],
                 'expiretm': '0', 'new': _truthy(params.get('new'))}]

    def _funding(self, account: Account, params: Params, kind: str) -> object:
        asset = find_asset(_text(params, 'asset') or 'all')
        return [{k: v for k, v in record.items() if k != 'kind'} for record in account.funding
                if record['kind'] == kind and (asset is None or record['asset'] == asset.name)]

    def withdraw_methods(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        return [{'asset': a.name, 'method': f'{a.altname} (sandbox)', 'network': 'sandbox',
                 'minimum': _asset_places(a.name, WITHDRAW_FEES[a.name] * 2)} for a in assets]

    def withdraw_addresses(self, account: Account, params: Params) -> object:
        assets = [self._asset(params)] if params.get('asset') else list(ASSETS.values())
        return [{'address': f'sandbox-{a.altname.lower()}-address', 'asset': a.name,
                 'method': f'{a.altname} (sandbox)', 'key': WITHDRAW_KEY, 'verified': True}
                for a in assets]

    def _withdrawal(self, account: Account, params: Params) -> tuple[AssetSpec, Decimal, Decimal]:
        asset = self._asset(params)
        if _text(params, 'key') != WITHDRAW_KEY:
            raise ApiError('EFunding:Unknown withdraw key')
        try:
            amount = _amount(params, 'amount')
        except ApiError:
            raise ApiError('EFunding:Invalid amount') from None
        return asset, _quantize(amount, asset.name), WITHDRAW_FEES[asset.name]

    def withdraw_info(self, account: Account, params: Params) -> object:
        asset, amount, fee = self._withdrawal(account, params)
        return {'method': f'{asset.altname} (sandbox)',
                'limit': _asset_places(asset.name, max(D(0), account.available(asset.name) - fee)),
                'amount': _asset_places(asset.name, amount), 'fee': _asset_places(asset.name, fee)}

    def _debit(self, account: Account, asset: AssetSpec, amount: Decimal, fee: Decimal,
               kind: str, subtype: str = '') -> str:
        if amount + fee > account.available(asset.name):
            raise ApiError('EFunding:Insufficient funds')
        refid = self._new_id('F')
        now = time.time()
        self._book(account, asset.name, -amount, fee, kind, refid, now, subtype)
        account.funding.append({
            'kind': kind, 'method': f'{asset.altname} (sandbox)', 'network': 'sandbox',
            'aclass': 'currency', 'asset': asset.name, 'refid': refid,
            'txid': hashlib.sha256(refid.encode()).hexdigest(), 'info': WITHDRAW_KEY,
            'amount': _asset_places(asset.name, amount), 'fee': _asset_places(asset.name, fee),
            'time': int(now), 'status': 'Success'})
        return refid

    def withdraw(self, account: Account, params: Params) -> object:
        asset, amount, fee = self._withdrawal(account, params)
        max_fee = _text(params, 'max_fee')
        if max_fee is not None and D(max_fee) < fee:
            raise ApiError('EFunding:Max fee exceeded')
        return {'refid': self._debit(account, asset, amount, fee, 'withdrawal')}

    def withdraw_cancel(self, account: Account, params: Params) -> object:
        refid = _required(params, 'refid')
        if not any(r['refid'] == refid and r['kind'] == 'withdrawal' for r in account.funding):
            raise ApiError('EFunding:Unknown reference id')
        return False  # sandbox withdrawals complete at once, too late to cancel

    def wallet_transfer(self, account: Account, params: Params) -> object:
        asset = self._asset(params)
        if (_text(params, 'from'), _text(params, 'to')) != ('Spot Wallet', 'Futures Wallet'):
            raise _invalid('from')
        amount = _amount(params, 'amount')
        return {'refid': self._debit(account, asset, _quantize(amount, asset.name), D(0),
                                     'transfer', 'spottofutures')}

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
        return {'converted_asset': _text(params, 'converted_asset', 'USD'),
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


# -- HTTP --------------------------------------------------------------------------------

@dataclass
class _Fault:
    kind: str
    method: str | None
    seconds: float
    remaining: int


class _Server(ThreadingHTTPServer):
    """Threads per connection, tracked so that stop() can close and join every one."""

    daemon_threads = True

    def __init__(self, sandbox: Sandbox, address: tuple[str, int]) -> None:
        self.sandbox = sandbox
        self.live: set[socket.socket] = set()
        self.workers: list[threading.Thread] = []
        self.guard = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(target=self.process_request_thread, daemon=True,
                                  args=(request, client_address), name='krakenex-sandbox-conn')
        with self.guard:
            self.live.add(request)
            self.workers = [w for w in self.workers if w.is_alive()] + [worker]
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self.guard:
            self.live.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug('connection from %s failed', client_address, exc_info=True)

    def close_connections(self) -> list[threading.Thread]:
        """Shut every open connection (idle keep-alive ones too); the workers to join."""
        with self.guard:
            live, workers = list(self.live), list(self.workers)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return workers


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/0/public/*`` and ``/0/private/*``; applies injected faults first."""

    protocol_version = 'HTTP/1.1'
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug('%s ' + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        try:
            length = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(Reply(413, b'Request Entity Too Large\n', 'text/plain; charset=utf-8'))
            return
        body = self.rfile.read(length)
        path, _, query = self.path.partition('?')
        match = re.fullmatch(r'/0/(public|private)/(\w+(?:/\w+)?)', path)
        if match is None:
            self._send(Reply(404, b'Not Found\n', 'text/plain; charset=utf-8'))
            return
        api, method = match.groups()
        sandbox = self.server.sandbox
        fault = sandbox._take_fault(method)
        kind = fault.kind if fault else ''
        if kind.startswith('html'):
            self._send(_cloudflare(int(kind[4:])))
        elif kind == 'reset':
            self._reset()
        elif kind == 'unavailable':
            self._send(_error('EService:Unavailable'))
        elif kind == 'delay' and sandbox._pause(fault):
            self._reset()
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = sandbox._exchange.serve(self.command, api, method, self.path, query, headers,
                                            body, self.client_address[0])
            if kind == 'reply_lost' or (kind == 'reply_delayed' and sandbox._pause(fault)):
                self._reset()
                return
            if kind == 'not_json':
                reply = Reply(200, b'upstream connect error or disconnect/reset before headers. '
                                   b'reset reason: connection termination',
                              'text/plain')
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response_only(reply.status)
        self.send_header('Server', reply.headers.get('Server', 'krakenex-sandbox'))
        self.send_header('Date', self.date_time_string())
        self.send_header('Content-Type', reply.content_type)
        self.send_header('Content-Length', str(len(reply.body)))
        for name, value in reply.headers.items():
            if name != 'Server':
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0), sending no reply."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack('ii', 1, 0))
            self.rfile.close()  # drop the reader's reference, so close() really closes
            self.connection.close()
        except OSError:
            pass


# -- the public face ---------------------------------------------------------------------

class Sandbox:
    """A Kraken-compatible spot exchange on 127.0.0.1, started and stopped by you.

    :param port: TCP port (0: any free port; read :attr:`url` after :meth:`start`).
    :param seed: makes market data, keys and history reproducible.
    :param tier: ``'starter'``, ``'intermediate'``, ``'pro'`` or ``(max_counter,
        decay_per_second)`` to keep Kraken's call counter; None (default) keeps none.
    :param balances: the default account's funds, e.g. ``{'ZUSD': '1000'}`` (then it
        has no trading history); None funds it with a seeded history.
    :param nonce_window: the default key's nonce window, in nonce units.
    :param otp: the default key's 2FA password; every private call must send it.
    :param costs: per-method counter costs that override :data:`COSTS`.
    :param public_rate: public calls per second per client address (None: no limit).
    """

    url: str
    key: str
    secret: str
    requests_log: list[tuple[str, str | None]]

    def __init__(self, port: int = 0, *, seed: int = 0,
                 tier: str | tuple[float, float] | None = None,
                 balances: dict[str, str] | None = None, nonce_window: int = 0,
                 otp: str | None = None, costs: dict[str, float] | None = None,
                 public_rate: float | None = None) -> None:
        if isinstance(tier, str):
            if tier not in TIERS:
                raise ValueError(f'unknown tier {tier!r}; choose one of {", ".join(TIERS)}')
            tier = TIERS[tier]
        self.port = port
        self.url = ''
        self._exchange = Exchange(seed=seed, start=time.time(), tier=tier, costs=costs,
                                  public_rate=public_rate)
        self.requests_log = self._exchange.requests_log
        account = self.add_account(balances, otp=otp, nonce_window=nonce_window)
        self.key, self.secret = account.key, account.secret
        self._faults: list[_Fault] = []
        self._faults_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f'<Sandbox {self.url or "not started"}>'

    def start(self) -> Sandbox:
        """Listen and serve in background threads; returns self."""
        if self._server is not None:
            raise RuntimeError('this Sandbox was already started; make a new one')
        self._server = _Server(self, ('127.0.0.1', self.port))
        self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name='krakenex-sandbox', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread (safe to repeat)."""
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for worker in self._server.close_connections():
            worker.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def add_account(self, balances: dict[str, str] | None = None, *, otp: str | None = None,
                    nonce_window: int = 0) -> Account:
        """Another API key with its own funds, nonces and rate counter."""
        return self._exchange.add_account(balances, otp=otp, nonce_window=nonce_window)

    def inject(self, kind: str, *, times: int = 1, method: str | None = None,
               seconds: float = 1.0) -> None:
        """Give the next ``times`` requests for ``method`` (any if None) the fault ``kind``.

        Kinds: ``html520``/``html502``/``html504`` (Cloudflare page, not processed),
        ``reset`` (TCP RST, not processed), ``unavailable`` (EService:Unavailable, not
        processed), ``delay`` (wait ``seconds``, then process), ``reply_lost`` (process,
        then RST), ``reply_delayed`` (process, wait, reply), ``not_json`` (process, reply
        with plain text). Faults are used in the order they were injected.
        """
        if kind not in FAULT_KINDS:
            known = ', '.join(sorted(FAULT_KINDS))
            raise ValueError(f'unknown fault {kind!r}; choose one of {known}')
        if times < 1:
            raise ValueError('times must be at least 1')
        with self._faults_lock:
            self._faults.append(_Fault(kind, method, seconds, times))

    def clear_faults(self) -> None:
        """Forget every fault not yet used."""
        with self._faults_lock:
            self._faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _pause(self, fault: _Fault | None) -> bool:
        """Wait for the fault's seconds; True if the sandbox is stopping meanwhile."""
        return self._stopping.wait(fault.seconds if fault else 0)

    def set_price(self, pair: str, price: str | float) -> None:
        """Trade the market of ``pair`` at ``price``; resting limit orders it reaches fill."""
        spec = find_pair(pair)
        if spec is None:
            raise ValueError(f'unknown pair {pair!r}; known: {", ".join(PAIRS)}')
        self._exchange.set_price(spec, D(str(price)))

    def orders(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every order accepted over the API for ``key`` (default account), oldest first.

        Each dict is the order as QueryOrders shows it, plus ``txid``, ``userref`` and
        ``cl_ord_id``. The made-up history of a default-funded account is left out.
        """
        with self._exchange.lock:
            self._exchange.expire_timers()
            account = self._exchange.accounts.get(key or self.key)
            if account is None:
                raise ValueError('no account has that key')
            return [{**o.to_kraken(True), 'txid': o.txid, 'cl_ord_id': o.cl_ord_id}
                    for o in account.orders.values() if not o.seeded]


def main(argv: list[str] | None = None) -> int:
    """Run a sandbox until Ctrl-C or SIGTERM; print its url, key and secret first."""
    parser = argparse.ArgumentParser(prog='python -m krakenex.sandbox',
                                     description='A local Kraken-compatible spot exchange.')
    parser.add_argument('--port', type=int, default=0, help='TCP port (default: any free one)')
    parser.add_argument('--tier', choices=sorted(TIERS), help="keep Kraken's call counter")
    parser.add_argument('--seed', type=int, default=0, help='seed of the market and keys')
    args = parser.parse_args(argv)
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: done.set())
    try:
        with Sandbox(args.port, seed=args.seed, tier=args.tier) as sandbox:
            print(f'url: {sandbox.url}', f'key: {sandbox.key}', f'secret: {sandbox.secret}',
                  sep='\n', flush=True)
            while not done.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print('sandbox stopped', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
