"""The futures sandbox's state: accounts, Kraken Futures' checks and budgets, matching.

:class:`FuturesExchange` keeps the flex accounts of the futures sandbox, checks
a private request's ``APIKey``, ``Authent`` and ``Nonce``, keeps each key's
budgets (:mod:`~krakenex.sandbox.futures.limits`) and fills orders against the
market of :mod:`~krakenex.sandbox.futures.market`. It knows nothing of HTTP or
of Kraken's endpoint names: :mod:`~krakenex.sandbox.futures.endpoints` uses it
through its public methods, always under :attr:`FuturesExchange.lock`.
Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..counter import Counter
from .accounts import FuturesAccount, FuturesOrder, Position
from .limits import BUDGET, HISTORY_POOL
from .market import BY_SYMBOL, FuturesMarket
from .params import Refusal, iso, whole

__all__ = ['FuturesExchange', 'TAKER_FEE', 'MAKER_FEE', 'HAIRCUT', 'DEFAULT_LEVERAGE']

D = Decimal

TAKER_FEE = D('0.0005')  # Kraken Futures' first fee tier, charged in USD on the notional
MAKER_FEE = D('0.0002')
DEFAULT_BALANCES = {'USD': '50000', 'XBT': '0.5'}
HAIRCUT = D('0.02')  # collateral value of a non-USD balance: value * (1 - haircut)
DEFAULT_LEVERAGE = D(50)  # cross margin: initial margin 2% of the notional
MAINTENANCE = D('0.5')  # maintenance margin as a share of initial margin
STATUS_WINDOW = 5.0  # orders/status reports orders changed within this many seconds


class FuturesExchange:
    """Kraken Futures' markets and flex accounts, with Kraken's checks (no HTTP).

    Callers hold :attr:`lock` around every use.

    :param seed: makes keys, trades and candles reproducible
    :param budget: the per-key budget ``(maximum, refill per second)``; None keeps none
    :param clock: the time source (seconds since the epoch)
    """

    def __init__(self, *, seed: int = 0, budget: tuple[Decimal, Decimal] | None = BUDGET,
                 clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.budget = budget
        self.clock = clock
        self.rng = random.Random(f'futures:{seed}')
        self.accounts: dict[str, FuturesAccount] = {}
        #: Contracts, mark prices, trades and candles.
        self.market = FuturesMarket(seed=seed, clock=clock)
        self.market.resting = self.resting
        #: Seconds ``orders/status`` keeps reporting a finished order (Kraken: 5).
        self.status_window = STATUS_WINDOW
        #: ``(endpoint, nonce)`` of every request handled, in order; None for public ones.
        self.requests_log: list[tuple[str, str | None]] = []
        default = self.add_account()
        #: The API key of the default futures account.
        self.key = default.key
        #: The API secret of the default futures account.
        self.secret = default.secret

    # -- accounts and market -----------------------------------------------------------

    def add_account(self, balances: dict[str, str] | None = None) -> FuturesAccount:
        """A new key with a flex account holding ``balances`` (USD and XBT by default)."""
        with self.lock:
            key = base64.b64encode(self.rng.randbytes(42)).decode()
            secret = base64.b64encode(self.rng.randbytes(64)).decode()
            funds = {c.upper(): D(v) for c, v in (balances or DEFAULT_BALANCES).items()}
            account = FuturesAccount(key, secret, funds, uid=self.uid())
            self.accounts[key] = account
            return account

    def set_price(self, symbol: str, price: Decimal | str | float) -> None:
        """Move a contract's mark price; resting orders and triggers it reaches execute."""
        with self.lock:
            instrument = self.market.instrument(symbol)
            self.market.marks[symbol] = D(str(price))
            self.market.trade(instrument, 'buy', D(1), self.market.marks[symbol])
            for account in self.accounts.values():
                for order in account.open_orders():
                    if order.symbol == symbol:
                        self.on_price(account, order)

    def resting(self, symbol: str) -> list[tuple[str, Decimal, Decimal]]:
        """Every account's open limit orders on a contract as ``(side, price, size left)``."""
        with self.lock:
            return [(o.side, o.limit_price, o.open_size) for account in self.accounts.values()
                    for o in account.open_orders() if o.symbol == symbol
                    and o.kind in ('lmt', 'post') and o.limit_price is not None]

    def suspend(self, symbol: str, suspended: bool = True) -> None:
        """Suspend a market (orders get ``marketSuspended``) or resume it."""
        with self.lock:
            self.market.instrument(symbol)
            (self.market.suspended.add if suspended else self.market.suspended.discard)(symbol)

    def orders(self, key: str) -> list[FuturesOrder]:
        """Every order of ``key`` accepted over the API, oldest first."""
        with self.lock:
            self.expire_timers()
            return sorted(self.accounts[key].orders.values(), key=lambda o: o.received)

    def uid(self) -> str:
        """A seeded UUID, as Kraken Futures names orders, fills and trades."""
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    # -- request checks ----------------------------------------------------------------

    def authenticate(self, path: str, query: str, headers: dict[str, str],
                     body: bytes) -> tuple[FuturesAccount, str | None]:
        """Kraken's checks in order: key known, Authent over the exact bytes, nonce fresh."""
        account = self.accounts.get(headers.get('apikey', ''))
        sent = headers.get('authent', '')
        if account is None or not sent:
            raise Refusal('authenticationError')
        nonce = headers.get('nonce')
        post_data = query + body.decode('utf-8', 'replace')
        message = hashlib.sha256(
            (post_data + (nonce or '') + path.removeprefix('/derivatives')).encode()).digest()
        expected = hmac.new(base64.b64decode(account.secret), message, hashlib.sha512).digest()
        try:
            given = base64.b64decode(sent, validate=True)
        except (binascii.Error, ValueError):
            given = b''
        if not hmac.compare_digest(given, expected):
            raise Refusal('authenticationError')
        if nonce is not None:
            if nonce.startswith('-') or whole(nonce) < 0:
                raise Refusal('invalidArgument')
            if int(nonce) == account.last_nonce:
                raise Refusal('nonceDuplicate')
            if int(nonce) < account.last_nonce:
                raise Refusal('nonceBelowThreshold')
            account.last_nonce = int(nonce)
        return account, nonce

    def charge(self, account: FuturesAccount, cost: float) -> None:
        """Take ``cost`` from the key's ``/derivatives`` budget.

        :raises Refusal: ``apiLimitExceeded`` if it does not fit
        """
        if self.budget is not None:
            self._take(account.budget, cost, self.budget)

    def charge_history(self, account: FuturesAccount, cost: float) -> None:
        """Take ``cost`` from the key's ``/history`` pool.

        :raises Refusal: ``apiLimitExceeded`` if it does not fit
        """
        self._take(account.pool, cost, HISTORY_POOL)

    def _take(self, counter: Counter, cost: float, limits: tuple[Decimal, Decimal]) -> None:
        maximum, refill = limits
        if not counter.charge(cost, float(maximum), float(refill), self.clock()):
            raise Refusal('apiLimitExceeded')

    def expire(self, account: FuturesAccount) -> None:
        """Run the key's dead man's switch if it is due."""
        if account.deadline is not None and self.clock() >= account.deadline:
            account.deadline = None
            for order in account.open_orders():
                self.cancel(account, order, 'DEAD_MAN_SWITCH')

    def expire_timers(self) -> None:
        """Run every dead man's switch that is due."""
        with self.lock:
            for account in self.accounts.values():
                self.expire(account)

    # -- order events ------------------------------------------------------------------

    def record(self, account: FuturesAccount, kind: str, **event: Any) -> None:
        """Keep an order event for ``/api/history/v3/orders``."""
        account.events.append({'uid': self.uid(), 'timestamp': int(self.clock() * 1000),
                               'event': {kind: event}})

    @staticmethod
    def historical(account: FuturesAccount, order: FuturesOrder) -> dict[str, Any]:
        """An order as the history endpoints show it."""
        kinds = {'lmt': 'Limit', 'ioc': 'IoC', 'post': 'Post', 'mkt': 'Market'}
        return {'uid': order.order_id, 'accountUid': account.uid, 'tradeable': order.symbol,
                'direction': order.side.capitalize(), 'quantity': str(order.size),
                'filled': str(order.filled), 'timestamp': int(order.received * 1000),
                'limitPrice': str(order.limit_price or 0),
                'orderType': kinds.get(order.kind, order.kind),
                'clientId': order.cli_ord_id or '', 'reduceOnly': order.reduce_only,
                'lastUpdateTimestamp': int(order.updated * 1000), 'spotData': None}

    # -- margin ------------------------------------------------------------------------

    def usd(self, currency: str) -> Decimal:
        """What one unit of ``currency`` is worth in USD, at the mark price."""
        if currency == 'USD':
            return D(1)
        instrument = BY_SYMBOL.get(f'PF_{currency}USD')
        return self.market.marks[instrument.symbol] if instrument else D(0)

    @staticmethod
    def rate(account: FuturesAccount, symbol: str) -> Decimal:
        """Initial margin as a share of the notional: 1 / leverage."""
        return 1 / account.leverage.get(symbol, DEFAULT_LEVERAGE)

    def margins(self, account: FuturesAccount) -> dict[str, Decimal]:
        """The flex account's values and margins, by Kraken's names."""
        marks = self.market.marks
        balance = sum((q * self.usd(c) for c, q in account.balances.items()), D(0))
        collateral = sum((q * self.usd(c) * (1 if c == 'USD' else 1 - HAIRCUT)
                          for c, q in account.balances.items()), D(0))
        pnl = sum((p.size * (marks[s] - p.price) for s, p in account.positions.items()), D(0))
        initial = sum((abs(p.size) * marks[s] * self.rate(account, s)
                       for s, p in account.positions.items()), D(0))
        with_orders = initial + sum(
            (o.open_size * (o.limit_price or o.stop_price or marks[o.symbol])
             * self.rate(account, o.symbol) for o in account.open_orders()), D(0))
        equity = collateral + pnl
        return {'balanceValue': balance, 'collateralValue': collateral, 'pnl': pnl,
                'initialMargin': initial, 'initialMarginWithOrders': with_orders,
                'maintenanceMargin': initial * MAINTENANCE, 'portfolioValue': balance + pnl,
                'marginEquity': equity, 'availableMargin': equity - with_orders}

    # -- matching ----------------------------------------------------------------------

    def fill(self, account: FuturesAccount, order: FuturesOrder, price: Decimal, *,
             taker: bool) -> None:
        """Execute the rest of an order at ``price``: position, fees, fill record."""
        now = self.clock()
        size = order.open_size
        old = self.historical(account, order)
        order.filled += size
        order.state, order.updated, order.reason = 'filled', now, 'FULL_FILL'
        self.record(account, 'OrderUpdated', oldOrder=old,
                    newOrder=self.historical(account, order), reason='full_fill')
        signed = size if order.side == 'buy' else -size
        position = account.positions.get(order.symbol)
        if position is None:
            account.positions[order.symbol] = Position(signed, price, now)
        else:
            held = position.size
            if held * signed > 0:
                total = abs(held) + size
                position.price = (abs(held) * position.price + size * price) / total
            else:
                closed = min(abs(held), size)
                realised = closed * (price - position.price) * (1 if held > 0 else -1)
                account.balances['USD'] = account.balances.get('USD', D(0)) + realised
                if size > abs(held):
                    position.price = price
            position.size = held + signed
            position.fill_time = now
            if position.size == 0:
                del account.positions[order.symbol]
        fee = size * price * (TAKER_FEE if taker else MAKER_FEE)
        account.balances['USD'] = account.balances.get('USD', D(0)) - fee
        fill: dict[str, Any] = {
            'fill_id': self.uid(), 'symbol': order.symbol,
            'side': order.side, 'order_id': order.order_id, 'size': size, 'price': price,
            'fillTime': iso(now), 'fillType': 'taker' if taker else 'maker'}
        if order.cli_ord_id is not None:
            fill['cliOrdId'] = order.cli_ord_id
        account.fills.append(fill)
        self.market.trade(BY_SYMBOL[order.symbol], order.side, size, price)

    def on_price(self, account: FuturesAccount, order: FuturesOrder) -> None:
        """Execute a resting order or trigger that the new mark price reaches."""
        mark = self.market.marks[order.symbol]
        if order.is_trigger:
            assert order.stop_price is not None
            above = (order.side == 'buy') == (order.kind == 'stp')
            if (mark >= order.stop_price) if above else (mark <= order.stop_price):
                order.kind, order.reason = 'lmt', 'STOP_ORDER_TRIGGERED'
                bid, ask = self.market.quote(BY_SYMBOL[order.symbol])
                market = ask if order.side == 'buy' else bid
                limit = order.limit_price
                if limit is None or (limit >= market if order.side == 'buy' else limit <= market):
                    self.fill(account, order, market, taker=True)
            return
        assert order.limit_price is not None
        if (mark <= order.limit_price) if order.side == 'buy' else (mark >= order.limit_price):
            self.fill(account, order, order.limit_price, taker=False)

    def cancel(self, account: FuturesAccount, order: FuturesOrder,
               reason: str) -> dict[str, Any]:
        """Cancel an open order; the ``CANCEL`` order event that says so."""
        order.state, order.updated, order.reason = 'cancelled', self.clock(), reason
        self.record(account, 'OrderCancelled', order=self.historical(account, order),
                    reason=reason.lower())
        return {'type': 'CANCEL', 'uid': order.order_id, 'order': order.to_kraken()}
