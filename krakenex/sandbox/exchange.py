"""The sandbox's exchange state: accounts and their records, Kraken's checks, matching.

:class:`Exchange` keeps the accounts of a sandbox (balances, orders, trades,
ledgers, funding records, exports), checks a private request's key, signature,
nonce and 2FA password in Kraken's order, keeps Kraken's call counter, and fills
orders against the synthetic book of :mod:`krakenex.sandbox.market`. It knows
nothing of HTTP or of Kraken's method names: :mod:`krakenex.sandbox.endpoints`
uses it through its public methods, always under :attr:`Exchange.lock`.
Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

from . import networks
from .counter import Counter
from .limits import call_cost
from .market import (
    ASSETS,
    LOT_DECIMALS,
    PAIRS,
    AssetSpec,
    Market,
    PairSpec,
    asset_decimals,
    find_asset,
    places,
)
from .params import ApiError, Params, arithmetic, invalid, parse_body
from .permissions import METHODS, PERMISSIONS, permit
from .permissions import permissions as permissions_of

log = logging.getLogger('krakenex.sandbox')
D = Decimal

TAKER_FEE = D('0.0026')  # first tier of Kraken's spot fee schedule, charged in the quote asset
MAKER_FEE = D('0.0016')
#: Order types that wait for the market to reach a trigger price.
TRIGGER_TYPES = frozenset({'stop-loss', 'take-profit', 'stop-loss-limit', 'take-profit-limit',
                           'trailing-stop', 'trailing-stop-limit'})
#: The trading engine's states Kraken's SystemStatus and the WebSocket ``status`` channel name.
SYSTEM_STATUSES = ('online', 'maintenance', 'cancel_only', 'post_only')
DEFAULT_BALANCES = {'ZUSD': '100000', 'XXBT': '10', 'XETH': '100'}
HISTORY_ROUND_TRIPS = 60  # seeded buy+sell pairs of a default-funded account

_ID_ALPHABET = string.ascii_uppercase + '234567'


def asset_places(asset: str, amount: Decimal) -> str:
    """``amount`` of ``asset`` as Kraken prints it, with the asset's decimals."""
    return places(amount, asset_decimals(asset))


def quantize(amount: Decimal, asset: str, rounding: str = ROUND_HALF_UP) -> Decimal:
    """``amount`` rounded to ``asset``'s decimals."""
    return amount.quantize(D(1).scaleb(-asset_decimals(asset)), rounding)


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
    #: OrderAmends' rows: the original order first, then each amend.
    amends: list[dict[str, Any]] = field(default_factory=list)
    #: The limit price of a stop-loss-limit or take-profit-limit order (for a
    #: trailing-stop-limit, set when it triggers).
    price2: Decimal | None = None
    #: A trailing stop's distance from the best price since it was placed.
    trailing: Decimal | None = None
    trailing_percent: bool = False
    #: A trailing-stop-limit's limit, as a signed offset from its trigger price.
    limit_offset: Decimal | None = None
    limit_percent: bool = False  # the offset is a percentage of the trigger price
    extreme: Decimal | None = None  # the best price a trailing stop has seen
    triggered: bool = False
    stopprice: Decimal | None = None  # the price it triggered at
    starttm: float = 0.0
    expiretm: float = 0.0
    displayvol: Decimal | None = None  # an iceberg order's visible volume
    #: Conditional close: (ordertype, price, price2) of the order placed once this fills.
    close_order: tuple[str, Decimal | None, Decimal | None] | None = None
    #: The txid of the order whose conditional close this order is (Kraken's ``refid``).
    refid: str | None = None

    @property
    def amended(self) -> bool:
        return any(a['amend_type'] == 'user' for a in self.amends)

    def age(self, now: float) -> float:
        """Seconds since the order was placed or last amended (the engine's penalty age)."""
        touched = [float(a['timestamp']) / 1e9 for a in self.amends
                   if a['amend_type'] == 'user']
        return now - max([self.opentm, *touched])

    @property
    def is_trigger(self) -> bool:
        return self.ordertype in TRIGGER_TYPES

    @property
    def limit(self) -> Decimal | None:
        """The limit price it matches at now: None for a market order (or a triggered
        stop without a limit); an untriggered stop does not match at all."""
        if self.ordertype in ('limit', 'iceberg'):
            return self.price
        if self.is_trigger:
            return self.price2 if self.triggered and self.ordertype.endswith('-limit') else None
        return None

    @property
    def matches(self) -> bool:
        """Whether it may trade now (an untriggered stop or a scheduled order may not)."""
        return self.status == 'open' and (not self.is_trigger or self.triggered)

    def trigger_price(self) -> Decimal | None:
        """The price that triggers it (a trailing stop's moves with the market)."""
        if not self.is_trigger:
            return None
        if self.trailing is None or self.extreme is None:
            return self.price
        offset = self.extreme * self.trailing / 100 if self.trailing_percent else self.trailing
        raw = self.extreme - offset if self.side == 'sell' else self.extreme + offset
        tick = self.pair.tick_size
        return (raw / tick).to_integral_value(ROUND_HALF_UP) * tick

    def hold_price(self) -> Decimal | None:
        """The price a buy holds its quote funds at while it rests."""
        if not self.is_trigger or self.triggered:
            return self.limit
        return self.price2 if self.price2 is not None else self.trigger_price()

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.vol_exec

    def _price_text(self) -> str:
        d = self.pair.pair_decimals
        if self.trailing is not None:
            return f'+{self.trailing.normalize():f}' + ('%' if self.trailing_percent else '')
        return places(self.price, d) if self.price is not None else ''

    def description(self) -> str:
        """Kraken's ``descr.order`` text, e.g. ``buy 1.25000000 XBTUSD @ limit 37500.0``."""
        volume = places(self.volume, LOT_DECIMALS)
        kind = self.ordertype.removesuffix('-limit') if self.is_trigger else self.ordertype
        text = f'{self.side} {volume} {self.pair.altname} @ {kind.replace("-", " ")}'
        if self.price is not None or self.trailing is not None:
            text += f' {self._price_text()}'
        if self.ordertype.endswith('-limit') and self.is_trigger:
            if self.price2 is not None:
                text += f' -> limit {places(self.price2, self.pair.pair_decimals)}'
            elif self.limit_offset is not None:
                text += f' -> limit {self.limit_offset:+f}' + ('%' if self.limit_percent else '')
        return text

    def close_description(self) -> str:
        if self.close_order is None:
            return ''
        kind, price, price2 = self.close_order
        d = self.pair.pair_decimals
        if price2 is not None:  # Kraken: "close position @ stop loss 38000.0 -> limit 36000.0"
            kind = kind.removesuffix('-limit')
        text = f'close position @ {kind.replace("-", " ")}'
        if price is not None:
            text += f' {places(price, d)}'
        if price2 is not None:
            text += f' -> limit {places(price2, d)}'
        return text

    def to_kraken(self, with_trades: bool = False) -> dict[str, Any]:
        """The order as OpenOrders, ClosedOrders and QueryOrders show it."""
        d, c = self.pair.pair_decimals, self.pair.cost_decimals
        average = self.cost / self.vol_exec if self.vol_exec else D(0)
        info: dict[str, Any] = {
            'refid': self.refid, 'userref': self.userref, 'status': self.status,
            'opentm': round(self.opentm, 4), 'starttm': round(self.starttm, 4) or 0,
            'expiretm': round(self.expiretm, 4) or 0,
            'descr': {'pair': self.pair.altname, 'type': self.side, 'ordertype': self.ordertype,
                      'price': self._price_text() or places(D(0), d),
                      'price2': places(self.price2, d) if self.price2 is not None else '0',
                      'leverage': 'none', 'order': self.description(),
                      'close': self.close_description()},
            'vol': places(self.volume, LOT_DECIMALS),
            'vol_exec': places(self.vol_exec, LOT_DECIMALS),
            'cost': places(self.cost, c), 'fee': places(self.fee, c), 'price': places(average, d),
            'stopprice': places(self.stopprice or D(0), d),
            'limitprice': places((self.limit if self.triggered else None) or D(0), d),
            'misc': 'amended' if self.amended else '',
            'oflags': ','.join(sorted(self.oflags)) or 'fciq', 'timeinforce': self.timeinforce,
        }
        if self.cl_ord_id is not None:
            info['cl_ord_id'] = self.cl_ord_id
        if self.displayvol is not None:
            info['display_volume'] = places(self.displayvol, LOT_DECIMALS)
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
    trade_id: int = 0  # the public trade's id on the pair's tape

    def to_kraken(self, with_ledgers: bool = False) -> dict[str, Any]:
        pair, c = self.order.pair, self.order.pair.cost_decimals
        info: dict[str, Any] = {
            'ordertxid': self.order.txid, 'postxid': self.postxid, 'pair': pair.name,
            'time': round(self.time, 4), 'type': self.order.side,
            'ordertype': self.order.ordertype, 'price': places(self.price, pair.pair_decimals),
            'cost': places(self.cost, c), 'fee': places(self.fee, c),
            'vol': places(self.volume, LOT_DECIMALS), 'margin': places(D(0), c),
            'leverage': '0', 'misc': '', 'trade_id': self.trade_id, 'maker': self.maker,
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
                'amount': asset_places(self.asset, self.amount),
                'fee': asset_places(self.asset, self.fee),
                'balance': asset_places(self.asset, self.balance)}


@dataclass(eq=False)
class Export:
    """A report made by AddExport: the zip is built at once, in memory."""

    id: str
    report: str
    format: str
    description: str
    created: float
    data: bytes
    data_start: float = 0.0  # the rows' span, AddExport's starttm and endtm
    data_end: float = 0.0


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
    #: Kraken's REST call counter of the key.
    counter: Counter = field(default_factory=Counter)
    #: The trading engine's rate counter of the key, by pair name.
    engine: dict[str, Counter] = field(default_factory=dict)
    cancel_at: float | None = None  # CancelAllOrdersAfter's deadline (Unix time)
    iiban: str = ''  # the account's Kraken IIBAN, e.g. 'AA88 N84G WOAK NMOI'
    created: float = 0.0
    last_used: float = 0.0
    parent: Account | None = None  # the master account of a subaccount
    usernames: set[str] = field(default_factory=set)  # subaccounts made by CreateSubaccount
    #: The outcome of the last Earn (de)allocation by (kind, strategy id): None or an error.
    earn_status: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: The key's permissions, by the names of :data:`.permissions.PERMISSIONS`.
    permissions: frozenset[str] = frozenset(PERMISSIONS)
    #: A master (institutional) account: only it may CreateSubaccount and AccountTransfer.
    master: bool = False

    def __repr__(self) -> str:  # never the secret
        return f'<Account {self.key[:8]}...>'

    def open_orders(self) -> list[Order]:
        """Orders not yet closed: open ones and scheduled (``pending``) ones."""
        return [o for o in self.orders.values() if o.status in ('open', 'pending')]

    def held(self) -> dict[str, Decimal]:
        """What open orders hold: a buy its quote at the limit price plus the taker fee."""
        held: dict[str, Decimal] = {}
        for order in self.open_orders():
            asset, amount = _needs(order, [])
            held[asset] = held.get(asset, D(0)) + amount
        return held

    def available(self, asset: str) -> Decimal:
        return self.balances.get(asset, D(0)) - self.held().get(asset, D(0))


#: A public method's handler: its parameters in, its ``result`` out.
PublicHandler = Callable[[Params], object]
#: A private method's handler: the caller's account and its parameters in, its
#: ``result`` (or a whole :class:`~krakenex.sandbox.replies.Reply`) out.
PrivateHandler = Callable[[Account, Params], object]


def _costs(pair: PairSpec, price: Decimal, volume: Decimal, maker: bool) -> tuple[Decimal, Decimal]:
    """The cost and fee of a fill, in the quote asset's precision."""
    cost = quantize(price * volume, pair.quote)
    return cost, quantize(cost * (MAKER_FEE if maker else TAKER_FEE), pair.quote)


def _needs(order: Order, plan: list[tuple[Decimal, Decimal]]) -> tuple[str, Decimal]:
    """The asset and amount ``order`` needs: its immediate ``plan`` at the taker fee,
    plus (for a buy limit) the rest held at the limit price plus the taker fee."""
    pair = order.pair
    if order.side == 'sell':
        return pair.base, order.remaining
    need = sum((sum(_costs(pair, p, v, False), D(0)) for p, v in plan), D(0))
    hold = order.hold_price()
    if hold is not None:
        rest = order.remaining - sum((v for _, v in plan), D(0))
        need += quantize(rest * hold * (1 + TAKER_FEE), pair.quote, ROUND_UP)
    return pair.quote, need


# -- the exchange: accounts, request checks, call counter, matching -----------------------

def penalty(order: Order, table: tuple[tuple[int, int], ...], now: float) -> int:
    """The engine's age-weighted extra cost of amending, editing or cancelling ``order``."""
    age = order.age(now)
    return next((cost for under, cost in table if age < under), 0)


class Exchange:
    """In-memory accounts over the synthetic market, with Kraken's checks (no HTTP).

    Callers hold :attr:`lock` around every use, so that one request's changes
    are seen whole by the next. Each method does work bounded by the size of
    the book and of the account, never by the numbers in a request.
    """

    def __init__(self, *, seed: int, start: float, tier: tuple[float, float] | None,
                 costs: dict[str, float] | None, public_rate: float | None,
                 engine: tuple[float, float, int] | None = None) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.market = Market(seed, start)
        self.tier = tier
        #: The trading engine's limits: (threshold, decay per second, open orders per
        #: pair), or None to keep none.
        self.engine = engine
        self.costs = dict(costs or {})  # overrides of Kraken's costs, by method
        self.public_rate = public_rate
        #: The public calls of each client address (the ``public_rate`` bucket's level).
        self.buckets: dict[str, Counter] = {}
        self.accounts: dict[str, Account] = {}
        self.requests_log: list[tuple[str, str | None]] = []
        #: The trading engine's status, one of :data:`SYSTEM_STATUSES` (SystemStatus shows it).
        self.status = 'online'
        self._rng = random.Random(f'{seed}/ids')
        self._ids: set[str] = set()

    # -- request checks ----------------------------------------------------------------

    def authenticate(self, path: str, headers: dict[str, str],
                      body: bytes) -> tuple[Account, Params, str]:
        """Kraken's checks, in Kraken's order: key, signature, nonce, 2FA password, then
        the key's permission for the method named at the end of ``path``."""
        account = self.accounts.get(headers.get('api-key', ''))
        if account is None:
            raise ApiError('EAPI:Invalid key')
        params = parse_body(headers.get('content-type', ''), body)
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
            raise invalid('nonce')  # Kraken's text for a missing nonce is not documented
        if not re.fullmatch(r'\d{1,20}', nonce_text) or int(nonce_text) >= 2**64:
            raise ApiError('EAPI:Invalid nonce')
        self._use_nonce(account, int(nonce_text))
        # A key with 2FA and a missing or wrong otp: users report EGeneral:Permission denied.
        if account.otp is not None and params.get('otp') != account.otp:
            raise ApiError('EGeneral:Permission denied')
        self.permit(account, path.partition('/private/')[2])
        return account, params, nonce_text

    @staticmethod
    def permit(account: Account, method: str) -> None:
        """Refuse a private method outside the key's permissions, as Kraken does.

        :raises ApiError: ``EGeneral:Permission denied``
        """
        permit(account.permissions, method, METHODS)

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

    def charge(self, account: Account, method: str, *, refused: bool = False) -> None:
        """Kraken's call counter: decays per second; a call over the maximum adds nothing.

        A call ``refused`` for its signature, nonce or password still counts (Kraken's
        support pages: failed calls count against the limits), and is never refused
        for the rate on top.
        """
        if self.tier is None:
            return
        maximum, decay = self.tier
        cost = self.costs.get(method, call_cost(method))
        if not account.counter.charge(cost, maximum, decay, time.monotonic()) and not refused:
            raise ApiError('EAPI:Rate limit exceeded')

    def engine_counter(self, account: Account, pair: PairSpec) -> float:
        """The trading engine's rate counter of ``account`` on ``pair``, decayed to now."""
        if self.engine is None:
            return 0.0
        return account.engine.setdefault(pair.name, Counter()).drain(self.engine[1],
                                                                     time.monotonic())

    def engine_charge(self, account: Account, pair: PairSpec, cost: float, *,
                      always: bool = False) -> None:
        """Add ``cost`` to the engine's counter on ``pair``, or refuse with ``EOrder:Rate
        limit exceeded`` if that passes the threshold (unless ``always``: batch cancels)."""
        if self.engine is None:
            return
        threshold, decay, _ = self.engine
        counter = account.engine.setdefault(pair.name, Counter())
        if not counter.charge(cost, threshold, decay, time.monotonic(), always=always) \
                and not always:
            raise ApiError('EOrder:Rate limit exceeded')

    def check_open_orders(self, account: Account, pair: PairSpec, adding: int = 1) -> None:
        """Refuse with ``EOrder:Orders limit exceeded`` past the open orders per pair."""
        if self.engine is None:
            return
        if sum(o.pair is pair for o in account.open_orders()) + adding > self.engine[2]:
            raise ApiError('EOrder:Orders limit exceeded')

    def throttle(self, client: str) -> None:
        """Public calls per client address: a token bucket refilled at ``public_rate``/s."""
        if self.public_rate is None:
            return
        # a bucket of max(1, rate) tokens refilled at rate/s: a counter of that maximum
        capacity = max(1.0, self.public_rate)
        bucket = self.buckets.setdefault(client, Counter())
        if not bucket.charge(1, capacity, self.public_rate, time.monotonic()):
            raise ApiError('EGeneral:Too many requests')

    def expire_timers(self) -> None:
        """Fire what time brings: CancelAllOrdersAfter deadlines, order start and expiry times."""
        now = time.time()
        for account in self.accounts.values():
            if account.cancel_at is not None and account.cancel_at <= now:
                account.cancel_at = None
                for order in account.open_orders():
                    self.close(order, 'canceled', 'Cancel all orders after timeout', now)
            for order in account.open_orders():
                if order.expiretm and order.expiretm <= now:
                    self.close(order, 'expired', None, order.expiretm)
                elif order.status == 'pending' and order.starttm <= now:
                    order.status = 'open'
                    self.execute(account, order)

    # -- accounts ------------------------------------------------------------------------

    def add_account(self, balances: dict[str, str] | None, *, otp: str | None,
                    nonce_window: int, permissions: Iterable[str] | None = None,
                    master: bool = False) -> Account:
        """A new key; ``balances=None`` funds it with a seeded trading history,
        ``permissions=None`` gives it every permission, and ``master`` lets it manage
        subaccounts."""
        granted = permissions_of(permissions)
        with self.lock:
            rng = random.Random(f'{self.seed}/account/{len(self.accounts)}')
            key = base64.b64encode(rng.randbytes(42)).decode()
            secret = base64.b64encode(rng.randbytes(64)).decode()
            account = Account(key, secret, otp, nonce_window)
            account.permissions, account.master = granted, master
            iban = ''.join(rng.choice(_ID_ALPHABET) for _ in range(12))
            account.iiban = f'AA{len(self.accounts) % 90 + 10} {iban[:4]} {iban[4:8]} {iban[8:]}'
            account.created = self.market.start - 86400
            if balances is None:
                self._seed_history(account, rng, DEFAULT_BALANCES)
            else:
                when = self.market.start - 86400
                for name, amount in balances.items():
                    asset = find_asset(name)
                    if asset is None:
                        raise ValueError(f'unknown asset {name!r}; known: {", ".join(ASSETS)}')
                    if D(amount) > 0:
                        self.deposit(account, asset, D(amount), when)
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
            self.deposit(account, ASSETS[name], amount, start + index * 3600)
        step = 58 * 86400 / len(fills)
        for index, (pair, side, volume, price, maker) in enumerate(fills):
            when = start + 86400 + index * step + rng.uniform(0, step / 2)
            order = Order(self.new_id('O'), pair, side, 'limit' if maker else 'market', volume,
                          price if maker else None, when, status='open', seeded=True)
            account.orders[order.txid] = order
            self.fill(account, order, price, volume, maker, when)

    def deposit(self, account: Account, asset: AssetSpec, amount: Decimal, when: float) -> None:
        refid = self.new_id('F')
        self.book(account, asset.name, amount, D(0), 'deposit', refid, when)
        account.funding.append({
            'kind': 'deposit', 'method': networks.method(asset.name), 'aclass': 'currency',
            'asset': asset.name, 'refid': refid, 'txid': hashlib.sha256(refid.encode()).hexdigest(),
            'info': 'sandbox', 'amount': asset_places(asset.name, amount),
            'fee': asset_places(asset.name, D(0)), 'time': int(when), 'status': 'Success'})

    def token(self) -> str:
        """A fresh random token, such as GetWebSocketsToken's."""
        return base64.b64encode(self._rng.randbytes(24)).decode()

    def new_id(self, prefix: str) -> str:
        """A fresh id in Kraken's 6-5-6 format, e.g. ``OQCLML-BW3P3-BUCMWZ``."""
        while True:
            raw = ''.join(self._rng.choice(_ID_ALPHABET) for _ in range(16))
            new = f'{prefix}{raw[:5]}-{raw[5:10]}-{raw[10:]}'
            if new not in self._ids:
                self._ids.add(new)
                return new

    def book(self, account: Account, asset: str, amount: Decimal, fee: Decimal, kind: str,
              refid: str, when: float, subtype: str = '') -> LedgerEntry:
        """Change a balance by ``amount - fee`` and write the ledger row that says so."""
        balance = account.balances.get(asset, D(0)) + amount - fee
        account.balances[asset] = balance
        entry = LedgerEntry(self.new_id('L'), refid, when, kind, subtype, asset, amount, fee,
                            balance)
        account.ledger[entry.id] = entry
        return entry

    # -- matching ------------------------------------------------------------------------

    def plan(self, order: Order) -> list[tuple[Decimal, Decimal]]:
        """The (price, volume) fills ``order`` gets at once by walking the synthetic book."""
        plan: list[tuple[Decimal, Decimal]] = []
        if order.is_trigger and not order.triggered:
            return plan
        left, limit = order.remaining, order.limit
        for price, size in self.market.levels(order.pair, 'a' if order.side == 'buy' else 'b'):
            if left <= 0 or limit is not None and (
                    price > limit if order.side == 'buy' else price < limit):
                break
            plan.append((price, min(left, size)))
            left -= plan[-1][1]
        return plan

    def check_funds(self, account: Account,
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

    def fires(self, order: Order) -> bool:
        """Whether an untriggered stop's trigger is reached by the last trade (and track
        a trailing stop's best price)."""
        last = self.market.last_price(order.pair)
        if order.trailing is not None:
            best = max if order.side == 'sell' else min
            order.extreme = last if order.extreme is None else best(order.extreme, last)
        trigger = order.trigger_price()
        if trigger is None:
            return False
        rising = (order.side == 'buy') == order.ordertype.startswith(('stop-loss', 'trailing'))
        return last >= trigger if rising else last <= trigger

    def _trigger(self, account: Account, order: Order) -> bool:
        """Turn a stop whose trigger is reached into its market or limit order."""
        trigger = order.trigger_price()
        order.triggered, order.stopprice = True, trigger
        if order.limit_offset is not None and trigger is not None:
            offset = (trigger * order.limit_offset / 100 if order.limit_percent
                      else order.limit_offset)
            price2 = (trigger + offset) / order.pair.tick_size
            order.price2 = max(order.pair.tick_size, price2.to_integral_value(ROUND_HALF_UP)
                               * order.pair.tick_size)
        try:
            self.check_funds(account, [(order, self.plan(order))], released=order)
        except ApiError:
            self.close(order, 'canceled', 'Insufficient funds')
            return False
        return True

    def execute(self, account: Account, order: Order) -> None:
        """Fill what crosses now (taker); then rest, or cancel as the flags say.

        An untriggered stop rests until the last trade reaches its trigger.
        """
        if order.status != 'open':
            return
        if order.is_trigger and not order.triggered and (
                not self.fires(order) or not self._trigger(account, order)):
            return
        plan = self.plan(order)
        if plan and 'post' in order.oflags:
            self.close(order, 'canceled', 'Post only order')
            return
        if order.timeinforce == 'FOK' and sum(v for _, v in plan) < order.remaining:
            self.close(order, 'canceled', 'Fill or kill')
            return
        for price, volume in plan:
            self.fill(account, order, price, volume, False)
        if order.status == 'open' and (order.limit is None or order.timeinforce == 'IOC'):
            self.close(order, 'canceled', 'Immediate or cancel')

    def fill(self, account: Account, order: Order, price: Decimal, volume: Decimal,
              maker: bool, when: float | None = None) -> None:
        """Trade ``volume`` of ``order`` at ``price``: balances, ledger, trade, order, tape."""
        when = time.time() if when is None else when
        pair = order.pair
        cost, fee = _costs(pair, price, volume, maker)
        txid = self.new_id('T')
        sign = 1 if order.side == 'buy' else -1
        base = self.book(account, pair.base, sign * volume, D(0), 'trade', txid, when, 'tradespot')
        quote = self.book(account, pair.quote, -sign * cost, fee, 'trade', txid, when, 'tradespot')
        trade_id = (self.market.record_trade(pair, price, volume, 'b' if order.side == 'buy'
                                             else 's', 'l' if maker else 'm')
                    if not order.seeded else self._rng.randrange(10**6, 10**7))
        account.fills[txid] = Fill(txid, order, self.new_id('P'), when, price, volume, cost, fee,
                                   maker, [base.id, quote.id], trade_id)
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        order.trades.append(txid)
        if order.remaining <= 0:
            self.close(order, 'closed', None, when)
            if order.close_order is not None and not order.seeded:
                self._place_close(account, order)

    def place(self, account: Account, order: Order) -> Order:
        """Give a checked ``order`` its txid, open it (or schedule it) and fill what crosses."""
        now = time.time()
        order.txid, order.opentm = self.new_id('O'), now
        order.status = 'pending' if order.starttm > now else 'open'
        account.orders[order.txid] = order
        self.record_amend(order, 'original')
        self.execute(account, order)
        return order

    def _place_close(self, account: Account, parent: Order) -> None:
        """Conditional close: once ``parent`` has filled, place its closing order."""
        assert parent.close_order is not None
        kind, price, price2 = parent.close_order
        side = 'sell' if parent.side == 'buy' else 'buy'
        order = Order('', parent.pair, side, kind, parent.vol_exec, price, time.time(),
                      parent.userref, price2=price2, refid=parent.txid)
        try:
            self.check_funds(account, [(order, self.plan(order))])
        except ApiError:
            return  # the proceeds were spent meanwhile: there is nothing to close
        self.place(account, order)

    def record_amend(self, order: Order, kind: str, reason: str | None = None) -> str:
        """Add a row to the order's OrderAmends history; its amend id."""
        amend_id = self.new_id('T')
        row: dict[str, Any] = {
            'amend_id': amend_id, 'amend_type': kind,
            'order_qty': places(order.volume, LOT_DECIMALS),
            'remaining_qty': places(order.remaining, LOT_DECIMALS),
            'post_only': 'post' in order.oflags, 'timestamp': time.time_ns()}
        if order.price is not None:
            row['limit_price'] = places(order.price, order.pair.pair_decimals)
        if reason:
            row['reason'] = reason
        order.amends.append(row)
        return amend_id

    def debit(self, account: Account, asset: AssetSpec, amount: Decimal, fee: Decimal,
              kind: str, subtype: str = '') -> str:
        """Take ``amount`` plus ``fee`` out (a withdrawal or transfer); its refid."""
        if amount + fee > account.available(asset.name):
            raise ApiError('EFunding:Insufficient funds')
        refid = self.new_id('F')
        now = time.time()
        self.book(account, asset.name, -amount, fee, kind, refid, now, subtype)
        account.funding.append({
            'kind': kind, 'method': networks.method(asset.name),
            'network': networks.network(asset.name),
            'aclass': 'currency', 'asset': asset.name, 'refid': refid,
            'txid': hashlib.sha256(refid.encode()).hexdigest(), 'info': 'sandbox',
            'amount': asset_places(asset.name, amount), 'fee': asset_places(asset.name, fee),
            'time': int(now), 'status': 'Success'})
        return refid

    @staticmethod
    def close(order: Order, status: str, reason: str | None, when: float | None = None) -> None:
        order.status, order.reason = status, reason
        order.closetm = time.time() if when is None else when

    def set_price(self, pair: PairSpec, price: Decimal) -> None:
        """The market trades at ``price``: resting limit orders at or through it fill (maker).

        Outside the ``online`` status the engine matches nothing, so nothing fills.
        """
        with self.lock, arithmetic():
            mid = self.market.set_price(pair, price)
            if self.status != 'online':
                return
            for account in self.accounts.values():
                for order in account.open_orders():
                    if order.pair is not pair or order.status != 'open':
                        continue
                    if order.is_trigger and not order.triggered:
                        self.execute(account, order)  # triggers if the price reached it
                        continue
                    limit = order.limit
                    if limit is not None and order.status == 'open' and (
                            limit >= mid if order.side == 'buy' else limit <= mid):
                        self.fill(account, order, limit, order.remaining, True)

    def usd_price(self, asset: str) -> Decimal:
        if asset == 'ZUSD':
            return D(1)
        pair = next(p for p in PAIRS.values() if p.base == asset and p.quote == 'ZUSD')
        return self.market.mid(pair)
