"""Kraken Futures on the sandbox: perpetual and fixed-maturity contracts, paper trading.

:class:`FuturesExchange` answers Kraken Futures' REST paths
(``/derivatives/api/v3/...``, ``/api/history/v3/orders``, ``/api/charts/v1/...``)
as Kraken does: it checks ``APIKey``, ``Authent`` and ``Nonce`` exactly (with
a check of its own, not the client's), keeps the 500-per-10-s budget and the
history pool with the costs of :mod:`krakenex.futures.endpoints`, serves
instruments, tickers, order books, trades and candles, keeps a
multi-collateral (flex) account per key, and fills paper orders against a
synthetic book around each contract's mark price. Refusals
carry Kraken's codes and order statuses; a parameter it does not know is
refused, never ignored. The sandbox's HTTP server routes those paths here, so
one :class:`~krakenex.sandbox.Sandbox` serves spot and futures. Standard
library only, besides krakenex's endpoint table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..futures import endpoints as kraken
from .replies import Reply

if TYPE_CHECKING:
    from . import Sandbox
    from .server import Request

__all__ = ['FuturesExchange', 'FuturesAccount', 'Instrument', 'INSTRUMENTS', 'FUTURES_PATHS',
           'attach']

D = Decimal

#: The path prefixes Kraken Futures answers on; the sandbox routes them to this module.
FUTURES_PATHS = ('/derivatives/api/v3/', '/api/charts/v1/', '/api/history/v3/')

#: The ``/derivatives`` budget per key and the ``/history`` token pool, as (maximum,
#: refill per second); what each call takes comes from :mod:`krakenex.futures.endpoints`.
BUDGET = (D(str(kraken.BUDGET[0])), D(str(kraken.BUDGET[1])))
HISTORY_POOL = (D(str(kraken.HISTORY_POOL[0])), D(str(kraken.HISTORY_POOL[1])))
TAKER_FEE = D('0.0005')  # Kraken Futures' first fee tier, charged in USD on the notional
MAKER_FEE = D('0.0002')
DEFAULT_BALANCES = {'USD': '50000', 'XBT': '0.5'}
HAIRCUT = D('0.02')  # collateral value of a non-USD balance: value * (1 - haircut)
DEFAULT_LEVERAGE = D(50)  # cross margin: initial margin 2% of the notional
MAINTENANCE = D('0.5')  # maintenance margin as a share of initial margin
STATUS_WINDOW = 5.0  # orders/status reports orders changed within this many seconds
MAX_CLIENT_ID = 100


@dataclass(frozen=True)
class Instrument:
    """One futures contract."""

    symbol: str
    base: str
    tick: Decimal
    precision: int  # contractValueTradePrecision: decimals of a size
    price: Decimal  # the mark price it starts at
    tag: str = 'perpetual'
    last_trading: str | None = None

    def to_kraken(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            'symbol': self.symbol, 'pair': f'{self.base}:USD', 'base': self.base, 'quote': 'USD',
            'type': 'flexible_futures', 'tradeable': True, 'tickSize': self.tick,
            'contractSize': 1, 'contractValueTradePrecision': self.precision,
            'impactMidSize': 1, 'maxPositionSize': 1000000, 'postOnly': False,
            'openingDate': '2022-01-01T00:00:00.000Z', 'category': 'Layer 1', 'tags': [],
            'tradfi': False, 'mtf': False, 'marginLevels': [
                {'numNonContractUnits': 0, 'initialMargin': 0.02, 'maintenanceMargin': 0.01}],
            'retailMarginLevels': [
                {'numNonContractUnits': 0, 'initialMargin': 0.02, 'maintenanceMargin': 0.01}],
        }
        if self.tag == 'perpetual':
            spec.update(fundingRateCoefficient=8, maxRelativeFundingRate=0.001)
        else:
            spec['lastTradingTime'] = self.last_trading
        return spec


INSTRUMENTS = (
    Instrument('PF_XBTUSD', 'XBT', D(1), 4, D(60000)),
    Instrument('PF_ETHUSD', 'ETH', D('0.1'), 3, D(3000)),
    Instrument('FF_XBTUSD_261225', 'XBT', D(1), 4, D(60500), 'month',
               '2026-12-25T16:00:00.000Z'),
)
_BY_SYMBOL = {i.symbol: i for i in INSTRUMENTS}
RESOLUTIONS = {'1m': 60, '5m': 300, '15m': 900, '30m': 1800, '1h': 3600, '4h': 14400,
               '12h': 43200, '1d': 86400, '1w': 604800}
TICK_TYPES = ('spot', 'mark', 'trade')


class Refusal(Exception):
    """One of Kraken Futures' error codes, sent as ``{"result": "error", "error": code}``."""

    def __init__(self, code: str, status: int = 200) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass
class FuturesOrder:
    order_id: str
    cli_ord_id: str | None
    symbol: str
    side: str
    kind: str  # lmt, post, ioc, mkt, stp, take_profit
    size: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    trigger_signal: str
    received: float
    updated: float
    filled: Decimal = D(0)
    state: str = 'open'  # open, filled, cancelled, rejected
    reason: str = 'NEW_USER_ORDER'

    @property
    def open_size(self) -> Decimal:
        return self.size - self.filled

    @property
    def is_trigger(self) -> bool:
        return self.kind in ('stp', 'take_profit')

    def to_kraken(self) -> dict[str, Any]:
        """The order as Kraken's order events show it."""
        return {'orderId': self.order_id, 'cliOrdId': self.cli_ord_id,
                'type': 'ioc' if self.kind == 'mkt' else self.kind, 'symbol': self.symbol,
                'side': self.side, 'quantity': self.size, 'filled': self.filled,
                'limitPrice': self.limit_price, 'reduceOnly': self.reduce_only,
                'timestamp': _iso(self.received), 'lastUpdateTimestamp': _iso(self.updated)}

    def to_open_order(self) -> dict[str, Any]:
        """The order as ``openorders`` lists it."""
        entry: dict[str, Any] = {
            'order_id': self.order_id, 'symbol': self.symbol, 'side': self.side,
            'orderType': {'stp': 'stop', 'post': 'lmt'}.get(self.kind, self.kind),
            'unfilledSize': self.open_size, 'filledSize': self.filled,
            'receivedTime': _iso(self.received), 'lastUpdateTime': _iso(self.updated),
            'status': 'partiallyFilled' if self.filled else 'untouched',
            'reduceOnly': self.reduce_only}
        if self.limit_price is not None:
            entry['limitPrice'] = self.limit_price
        if self.is_trigger:
            entry.update(stopPrice=self.stop_price, triggerSignal=self.trigger_signal)
        if self.cli_ord_id is not None:
            entry['cliOrdId'] = self.cli_ord_id
        return entry

    def trigger_json(self) -> dict[str, Any]:
        """A resting stop or take-profit as Kraken's trigger events show it."""
        above = (self.side == 'buy') == (self.kind == 'stp')
        return {'uid': self.order_id, 'clientId': self.cli_ord_id, 'type': 'lmt',
                'symbol': self.symbol, 'side': self.side, 'quantity': self.size,
                'limitPrice': self.limit_price, 'triggerPrice': self.stop_price,
                'triggerSide': 'trigger_above' if above else 'trigger_below',
                'triggerSignal': f'{self.trigger_signal}_price',
                'reduceOnly': self.reduce_only, 'timestamp': _iso(self.received),
                'lastUpdateTimestamp': _iso(self.updated), 'startTime': None}


@dataclass
class Position:
    size: Decimal  # signed: long above zero
    price: Decimal  # average entry price
    fill_time: float


@dataclass
class FuturesAccount:
    """One API key's flex account: balances, orders, positions, fills, nonce and budget."""

    key: str
    secret: str
    balances: dict[str, Decimal]
    last_nonce: int = 0
    orders: dict[str, FuturesOrder] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    leverage: dict[str, Decimal] = field(default_factory=dict)
    deadline: float | None = None  # cancelallordersafter
    budget: Decimal = D(0)
    budget_time: float = 0.0
    pool: Decimal = D(0)  # the /history token pool
    pool_time: float = 0.0
    uid: str = ''
    #: Order events as ``/api/history/v3/orders`` lists them, oldest first.
    events: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:  # never the secret
        return f'<FuturesAccount key={self.key[:4]}...>'

    def open_orders(self) -> list[FuturesOrder]:
        return [o for o in self.orders.values() if o.state == 'open']


def _iso(when: float) -> str:
    stamp = datetime.fromtimestamp(when, timezone.utc)
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.') + f'{stamp.microsecond // 1000:03d}Z'


def _parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()
    except ValueError:
        raise Refusal('invalidArgument') from None


def _plain(value: Any) -> Any:
    """JSON numbers for Decimals, as Kraken Futures sends them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f'{type(value).__name__} is not JSON')


def _decimal(params: dict[str, str], name: str, *, required: bool = False) -> Decimal | None:
    text = params.get(name)
    if text is None:
        if required:
            raise Refusal('requiredArgumentMissing')
        return None
    try:
        value = D(text)
    except InvalidOperation:
        raise Refusal('invalidArgument') from None
    if not value.is_finite():
        raise Refusal('invalidArgument')
    return value


def _boolean(params: dict[str, str], name: str) -> bool:
    text = params.get(name, 'false').lower()
    if text not in ('true', 'false'):
        raise Refusal('invalidArgument')
    return text == 'true'


#: What each endpoint accepts; a parameter outside its set is refused with invalidArgument.
_ORDER_PARAMS = {'orderType', 'symbol', 'side', 'size', 'limitPrice', 'stopPrice', 'cliOrdId',
                 'triggerSignal', 'reduceOnly', 'processBefore'}
_EDIT_PARAMS = {'orderId', 'cliOrdId', 'size', 'limitPrice', 'stopPrice', 'qtyMode',
                'processBefore'}
ORDER_TYPES = ('lmt', 'post', 'ioc', 'mkt', 'stp', 'take_profit')


class FuturesExchange:
    """Kraken Futures' markets and flex accounts, answering one request at a time.

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
        self.marks = {i.symbol: i.price for i in INSTRUMENTS}
        self.suspended: set[str] = set()
        #: Seconds ``orders/status`` keeps reporting a finished order (Kraken: 5).
        self.status_window = STATUS_WINDOW
        #: ``(endpoint, nonce)`` of every request handled, in order; None for public ones.
        self.requests_log: list[tuple[str, str | None]] = []
        self.trades: dict[str, list[dict[str, Any]]] = {s: [] for s in _BY_SYMBOL}
        self._seed_trades()
        default = self.add_account()
        #: The API key of the default futures account.
        self.key = default.key
        #: The API secret of the default futures account.
        self.secret = default.secret

    def route(self, request: Request) -> Reply:
        """Answer a request the sandbox's server routed here."""
        status, content_type, body = self.serve(request.verb, request.path, request.query,
                                                request.headers, request.body)
        return Reply(status, body, content_type)

    # -- accounts and market -----------------------------------------------------------

    def add_account(self, balances: dict[str, str] | None = None) -> FuturesAccount:
        """A new key with a flex account holding ``balances`` (USD and XBT by default)."""
        with self.lock:
            key = base64.b64encode(self.rng.randbytes(42)).decode()
            secret = base64.b64encode(self.rng.randbytes(64)).decode()
            funds = {c.upper(): D(v) for c, v in (balances or DEFAULT_BALANCES).items()}
            account = FuturesAccount(key, secret, funds, budget_time=self.clock(),
                                     pool_time=self.clock(), uid=self._uid())
            self.accounts[key] = account
            return account

    def set_price(self, symbol: str, price: Decimal | str | float) -> None:
        """Move a contract's mark price; resting orders and triggers it reaches execute."""
        with self.lock:
            instrument = self._instrument(symbol)
            self.marks[symbol] = D(str(price))
            self._trade(instrument, 'buy', D(1), self.marks[symbol])
            for account in self.accounts.values():
                for order in account.open_orders():
                    if order.symbol == symbol:
                        self._on_price(account, order)

    def suspend(self, symbol: str, suspended: bool = True) -> None:
        """Suspend a market (orders get ``marketSuspended``) or resume it."""
        with self.lock:
            self._instrument(symbol)
            (self.suspended.add if suspended else self.suspended.discard)(symbol)

    def _instrument(self, symbol: str | None) -> Instrument:
        instrument = _BY_SYMBOL.get((symbol or '').upper())
        if instrument is None:
            raise Refusal('invalidArgument')
        return instrument

    def _quote(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        """Best bid and ask: one basis point either side of the mark, on the tick."""
        mark, tick = self.marks[instrument.symbol], instrument.tick
        spread = max(tick, mark / 10000)
        bid = ((mark - spread) / tick).to_integral_value(ROUND_DOWN) * tick
        ask = ((mark + spread) / tick).to_integral_value(ROUND_UP) * tick
        return bid, ask

    def _seed_trades(self) -> None:
        now = self.clock()
        for instrument in INSTRUMENTS:
            for i in range(150, 0, -1):
                price = instrument.price * (1 + D(self.rng.uniform(-0.002, 0.002)))
                price = (price / instrument.tick).to_integral_value() * instrument.tick
                size = D(self.rng.randint(1, 5000)) / D(10) ** instrument.precision
                self._trade(instrument, self.rng.choice(('buy', 'sell')), size, price,
                            now - i * 30)

    def _trade(self, instrument: Instrument, side: str, size: Decimal, price: Decimal,
               when: float | None = None) -> None:
        trades = self.trades[instrument.symbol]
        trades.append({'time': _iso(self.clock() if when is None else when),
                       'trade_id': len(trades) + 1, 'price': price, 'size': size,
                       'side': side, 'type': 'fill', 'uid': self._uid()})

    def _uid(self) -> str:
        """A seeded UUID, as Kraken Futures names orders, fills and trades."""
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    # -- requests ----------------------------------------------------------------------

    def serve(self, verb: str, path: str, query: str, headers: dict[str, str],
              body: bytes) -> tuple[int, str, bytes]:
        """Answer one request: ``(HTTP status, content type, body)``.

        :param headers: the request's headers, names in lower case
        """
        with self.lock:
            try:
                payload = self._route(verb, path, query, headers, body)
                if path.startswith('/api/charts/'):  # charts replies have no envelope
                    return 200, 'application/json', json.dumps(payload).encode()
                if path.startswith('/api/history/'):
                    payload['serverTime'] = _iso(self.clock())
                    return 200, 'application/json', json.dumps(payload, default=_plain).encode()
                envelope = {'result': 'success', **payload, 'serverTime': _iso(self.clock())}
                status = 200
            except Refusal as refusal:
                envelope = {'result': 'error', 'serverTime': _iso(self.clock()),
                            'error': refusal.code}
                status = refusal.status
            except (ValueError, ArithmeticError, OverflowError):  # a number no check foresaw
                envelope = {'result': 'error', 'serverTime': _iso(self.clock()),
                            'error': 'invalidArgument'}
                status = 200
            return status, 'application/json', json.dumps(envelope, default=_plain).encode()

    def _route(self, verb: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> Any:
        if path.startswith('/api/charts/v1/'):
            if verb != 'GET':
                raise Refusal('invalidArgument', 405)
            self.requests_log.append(('charts', None))
            return self._charts(path.removeprefix('/api/charts/v1/'), _params(query, b''))
        if path.startswith('/api/history/v3/'):
            return self._history(verb, path, query, headers, body)
        name = path.removeprefix('/derivatives/api/v3/')
        if name == path:
            raise Refusal('notFound', 404)
        if name.startswith('tickers/') and verb == 'GET':
            self.requests_log.append(('tickers', None))
            return {'ticker': self._ticker(self._known(name.split('/', 1)[1]))}
        public = {'instruments': self.instruments, 'tickers': self.tickers,
                  'orderbook': self.orderbook, 'history': self.history,
                  'feeschedules': self.fee_schedules,
                  'instruments/status': self.instruments_status}
        private: dict[tuple[str, str], Callable[[FuturesAccount, dict[str, str]], Any]] = {
            ('GET', 'accounts'): self.accounts_, ('GET', 'openpositions'): self.open_positions,
            ('GET', 'openorders'): self.open_orders, ('GET', 'fills'): self.fills_,
            ('GET', 'leveragepreferences'): self.leverage_get,
            ('PUT', 'leveragepreferences'): self.leverage_set,
            ('POST', 'sendorder'): self.send_order, ('POST', 'editorder'): self.edit_order,
            ('POST', 'cancelorder'): self.cancel_order,
            ('POST', 'cancelallorders'): self.cancel_all,
            ('POST', 'cancelallordersafter'): self.cancel_all_after,
            ('POST', 'batchorder'): self.batch_order,
            ('POST', 'orders/status'): self.order_status,
        }
        if name in public:
            if verb != 'GET':
                raise Refusal('invalidArgument', 405)
            self.requests_log.append((name, None))
            return public[name](_params(query, body))
        if (verb, name) not in private:
            known = any(n == name for _, n in private)
            raise Refusal('invalidArgument' if known else 'notFound', 405 if known else 404)
        account, nonce = self._authenticate(path, query, headers, body)
        self._expire(account)
        params = _params(query, body)
        self._charge(account, kraken.cost(kraken.lookup(name), verb, params))
        self.requests_log.append((name, nonce))
        return private[(verb, name)](account, params)

    def _authenticate(self, path: str, query: str, headers: dict[str, str],
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
            if not nonce.isdigit():
                raise Refusal('invalidArgument')
            if int(nonce) == account.last_nonce:
                raise Refusal('nonceDuplicate')
            if int(nonce) < account.last_nonce:
                raise Refusal('nonceBelowThreshold')
            account.last_nonce = int(nonce)
        return account, nonce

    def _charge(self, account: FuturesAccount, cost: float) -> None:
        if self.budget is not None:
            account.budget, account.budget_time = self._take(
                account.budget, account.budget_time, cost, self.budget)

    def _take(self, level: Decimal, since: float, cost: float,
              limits: tuple[Decimal, Decimal]) -> tuple[Decimal, float]:
        """A leaky budget after a call of ``cost``; apiLimitExceeded if it does not fit."""
        maximum, refill = limits
        now = self.clock()
        level = max(D(0), level - D(str(now - since)) * refill)
        if level + D(str(cost)) > maximum:
            raise Refusal('apiLimitExceeded')
        return level + D(str(cost)), now

    def _history(self, verb: str, path: str, query: str, headers: dict[str, str],
                 body: bytes) -> dict[str, Any]:
        """``/api/history/v3/orders``: the account's order events, paged."""
        name = path.removeprefix('/api/history/v3/')
        if name != 'orders':
            raise Refusal('notFound', 404)
        if verb != 'GET':
            raise Refusal('invalidArgument', 405)
        account, nonce = self._authenticate(path, query, headers, body)
        account.pool, account.pool_time = self._take(account.pool, account.pool_time, 1,
                                                     HISTORY_POOL)
        self.requests_log.append(('history/orders', nonce))
        params = _params(query, body)
        _only(params, {'since', 'before', 'sort', 'continuation_token', 'count', 'tradeable',
                       'opened', 'closed'})
        sort = params.get('sort', 'desc')
        if sort not in ('asc', 'desc'):
            raise Refusal('invalidArgument')
        try:
            since, before = int(params.get('since', 0)), int(params.get('before', 1 << 62))
            count = int(params.get('count', 500))
            start = int(base64.b64decode(params.get('continuation_token', 'MA==')))
        except ValueError:
            raise Refusal('invalidArgument') from None
        kinds = set()
        if _boolean({'opened': params.get('opened', 'true')}, 'opened'):
            kinds.add('OrderPlaced')
        if _boolean({'closed': params.get('closed', 'true')}, 'closed'):
            kinds |= {'OrderUpdated', 'OrderCancelled', 'OrderRejected'}
        found = [e for e in account.events if since <= e['timestamp'] < before
                 and next(iter(e['event'])) in kinds
                 and params.get('tradeable') in (None, _order_of(e)['tradeable'])]
        if sort == 'desc':
            found.reverse()
        page = found[start:start + max(1, count)]
        reply: dict[str, Any] = {'accountUid': account.uid, 'len': len(page), 'elements': page}
        if start + len(page) < len(found):
            reply['continuationToken'] = base64.b64encode(
                str(start + len(page)).encode()).decode()
        return reply

    def _record(self, account: FuturesAccount, kind: str, **event: Any) -> None:
        """Keep an order event for ``/api/history/v3/orders``."""
        account.events.append({'uid': self._uid(), 'timestamp': int(self.clock() * 1000),
                               'event': {kind: event}})

    def _historical(self, account: FuturesAccount, order: FuturesOrder) -> dict[str, Any]:
        """An order as the history endpoints show it."""
        kinds = {'lmt': 'Limit', 'ioc': 'IoC', 'post': 'Post', 'mkt': 'Market'}
        return {'uid': order.order_id, 'accountUid': account.uid, 'tradeable': order.symbol,
                'direction': order.side.capitalize(), 'quantity': str(order.size),
                'filled': str(order.filled), 'timestamp': int(order.received * 1000),
                'limitPrice': str(order.limit_price or 0),
                'orderType': kinds.get(order.kind, order.kind),
                'clientId': order.cli_ord_id or '', 'reduceOnly': order.reduce_only,
                'lastUpdateTimestamp': int(order.updated * 1000), 'spotData': None}

    def _expire(self, account: FuturesAccount) -> None:
        if account.deadline is not None and self.clock() >= account.deadline:
            account.deadline = None
            for order in account.open_orders():
                self._cancel(account, order, 'DEAD_MAN_SWITCH')

    def expire_timers(self) -> None:
        """Run every dead man's switch that is due."""
        with self.lock:
            for account in self.accounts.values():
                self._expire(account)

    # -- market data -------------------------------------------------------------------

    def _known(self, symbol: str) -> Instrument:
        instrument = _BY_SYMBOL.get(symbol.upper())
        if instrument is None:
            raise Refusal('notFound', 404)
        return instrument

    def instruments(self, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'contractType'})
        return {'instruments': [i.to_kraken() for i in INSTRUMENTS]}

    def instruments_status(self, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'contractType'})
        return {'instrumentStatus': [
            {'tradeable': i.symbol, 'experiencingDislocation': False,
             'priceDislocationDirection': None, 'experiencingExtremeVolatility': False,
             'extremeVolatilityInitialMarginMultiplier': 1} for i in INSTRUMENTS]}

    def _ticker(self, instrument: Instrument) -> dict[str, Any]:
        bid, ask = self._quote(instrument)
        trades = self.trades[instrument.symbol]
        day = [t for t in trades if _parse_time(t['time']) > self.clock() - 86400] or trades
        prices = [t['price'] for t in day]
        volume = sum((t['size'] for t in day), D(0))
        mark = self.marks[instrument.symbol]
        ticker: dict[str, Any] = {
            'symbol': instrument.symbol, 'tag': instrument.tag, 'pair': f'{instrument.base}:USD',
            'markPrice': mark, 'bid': bid, 'bidSize': D(2), 'ask': ask, 'askSize': D(2),
            'vol24h': volume, 'volumeQuote': sum((t['size'] * t['price'] for t in day), D(0)),
            'openInterest': D(1000), 'open24h': prices[0], 'high24h': max(prices),
            'low24h': min(prices), 'indexPrice': mark, 'last': trades[-1]['price'],
            'lastTime': trades[-1]['time'], 'lastSize': trades[-1]['size'],
            'suspended': instrument.symbol in self.suspended, 'postOnly': False,
            'change24h': float((trades[-1]['price'] - prices[0]) / prices[0] * 100)}
        if instrument.tag == 'perpetual':
            ticker.update(fundingRate=D('0.0000001'), fundingRatePrediction=D('0.0000001'))
        return ticker

    def tickers(self, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'contractType'})
        return {'tickers': [self._ticker(i) for i in INSTRUMENTS]}

    def orderbook(self, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'symbol'})
        instrument = self._instrument(_need(params, 'symbol'))
        bid, ask = self._quote(instrument)
        rng = random.Random(f'{self.seed}:{instrument.symbol}:{self.marks[instrument.symbol]}')
        unit = D(1) / D(10) ** instrument.precision

        def size() -> Decimal:
            return D(rng.randint(1000, 50000)) * unit

        return {'orderBook': {
            'bids': [[bid - i * instrument.tick, size()] for i in range(20)],
            'asks': [[ask + i * instrument.tick, size()] for i in range(20)]}}

    def history(self, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'symbol', 'lastTime'})
        instrument = self._instrument(_need(params, 'symbol'))
        trades = self.trades[instrument.symbol]
        if 'lastTime' in params:
            before = _parse_time(params['lastTime'])
            trades = [t for t in trades if _parse_time(t['time']) < before]
        return {'history': list(reversed(trades[-100:]))}

    def fee_schedules(self, params: dict[str, str]) -> dict[str, Any]:
        _only(params, set())
        return {'feeSchedules': [{'uid': '7fc4d7c0-464f-4029-a9bb-55856d0c5247',
                                  'name': 'PGTMainFees', 'tiers': [
                                      {'makerFee': 0.02, 'takerFee': 0.05, 'usdVolume': 0.0}]}]}

    def _charts(self, rest: str, params: dict[str, str]) -> Any:
        parts = [p for p in rest.split('/') if p]
        if not parts:
            return list(TICK_TYPES)
        if parts[0] not in TICK_TYPES or len(parts) > 3:
            raise Refusal('notFound', 404)
        if len(parts) == 1:
            return [i.symbol for i in INSTRUMENTS]
        instrument = self._known(parts[1])
        if len(parts) == 2:
            return list(RESOLUTIONS)
        step = RESOLUTIONS.get(parts[2])
        if step is None:
            raise Refusal('notFound', 404)
        _only(params, {'from', 'to', 'count'})
        now = self.clock()
        end = int(float(params.get('to', now)) // step * step)
        count = int(params.get('count', 0) or 0) or 2000
        start = int(float(params.get('from', end - step * (min(count, 2000) - 1))) // step * step)
        if start > end:
            raise Refusal('invalidArgument', 400)
        times = list(range(start, end + 1, step))[:count]
        candles = []
        for t in times:
            rng = random.Random(f'{self.seed}:{instrument.symbol}:{parts[0]}:{step}:{t}')
            base = float(self.marks[instrument.symbol]) * (1 + 0.01 * math.sin(t / step / 24))
            high, low = base * (1 + rng.uniform(0, 0.002)), base * (1 - rng.uniform(0, 0.002))
            open_, close = rng.uniform(low, high), rng.uniform(low, high)
            candles.append({'time': t * 1000, 'open': f'{open_:.1f}', 'high': f'{high:.1f}',
                            'low': f'{low:.1f}', 'close': f'{close:.1f}',
                            'volume': rng.randint(0, 500)})
        return {'candles': candles, 'more_candles': len(times) < len(range(start, end + 1, step))}

    # -- account data ------------------------------------------------------------------

    def _usd(self, currency: str) -> Decimal:
        if currency == 'USD':
            return D(1)
        instrument = _BY_SYMBOL.get(f'PF_{currency}USD')
        return self.marks[instrument.symbol] if instrument else D(0)

    def _rate(self, account: FuturesAccount, symbol: str) -> Decimal:
        """Initial margin as a share of the notional: 1 / leverage."""
        return 1 / account.leverage.get(symbol, DEFAULT_LEVERAGE)

    def _margins(self, account: FuturesAccount) -> dict[str, Decimal]:
        balance = sum((q * self._usd(c) for c, q in account.balances.items()), D(0))
        collateral = sum((q * self._usd(c) * (1 if c == 'USD' else 1 - HAIRCUT)
                          for c, q in account.balances.items()), D(0))
        pnl = sum((p.size * (self.marks[s] - p.price) for s, p in account.positions.items()),
                  D(0))
        initial = sum((abs(p.size) * self.marks[s] * self._rate(account, s)
                       for s, p in account.positions.items()), D(0))
        with_orders = initial + sum(
            (o.open_size * (o.limit_price or o.stop_price or self.marks[o.symbol])
             * self._rate(account, o.symbol) for o in account.open_orders()), D(0))
        equity = collateral + pnl
        return {'balanceValue': balance, 'collateralValue': collateral, 'pnl': pnl,
                'initialMargin': initial, 'initialMarginWithOrders': with_orders,
                'maintenanceMargin': initial * MAINTENANCE, 'portfolioValue': balance + pnl,
                'marginEquity': equity, 'availableMargin': equity - with_orders}

    def accounts_(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, set())
        margins = self._margins(account)
        currencies = {}
        for currency, quantity in sorted(account.balances.items()):
            value = quantity * self._usd(currency)
            currencies[currency] = {
                'quantity': quantity, 'value': value,
                'collateral': value * (1 if currency == 'USD' else 1 - HAIRCUT),
                'available': quantity if currency != 'USD' else
                min(quantity, margins['availableMargin'])}
        flex = {'type': 'multiCollateralMarginAccount', 'currencies': currencies, **margins,
                'unrealizedFunding': D(0), 'totalUnrealized': margins['pnl'],
                'totalUnrealizedAsMargin': margins['pnl']}
        return {'accounts': {'cash': {'type': 'cashAccount', 'balances': {}}, 'flex': flex}}

    def open_positions(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, set())
        positions = []
        for symbol, position in sorted(account.positions.items(),
                                       key=lambda item: -item[1].fill_time):
            entry: dict[str, Any] = {
                'side': 'long' if position.size > 0 else 'short', 'symbol': symbol,
                'price': position.price, 'fillTime': _iso(position.fill_time),
                'size': abs(position.size), 'unrealizedFunding': D(0), 'pnlCurrency': 'USD'}
            if symbol in account.leverage:
                entry['maxFixedLeverage'] = account.leverage[symbol]
            positions.append(entry)
        return {'openPositions': positions}

    def open_orders(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, set())
        orders = sorted(account.open_orders(), key=lambda o: -o.received)
        return {'openOrders': [o.to_open_order() for o in orders]}

    def fills_(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'lastFillTime'})
        fills = account.fills
        if 'lastFillTime' in params:
            before = _parse_time(params['lastFillTime'])
            fills = [f for f in fills if _parse_time(f['fillTime']) < before]
        return {'fills': list(reversed(fills[-100:]))}

    def leverage_get(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, set())
        return {'leveragePreferences': [{'symbol': s, 'maxLeverage': v}
                                        for s, v in sorted(account.leverage.items())]}

    def leverage_set(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'symbol', 'maxLeverage'})
        instrument = self._instrument(_need(params, 'symbol'))
        leverage = _decimal(params, 'maxLeverage')
        if leverage is None:
            account.leverage.pop(instrument.symbol, None)
        elif not 1 <= leverage <= DEFAULT_LEVERAGE:
            raise Refusal('invalidArgument')
        else:
            account.leverage[instrument.symbol] = leverage
        return {}

    # -- trading -----------------------------------------------------------------------

    def send_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, _ORDER_PARAMS)
        return {'sendStatus': self._place(account, params)}

    def _place(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        """Check and place one order; its status as ``sendStatus`` shows it."""
        now = self.clock()
        kind = _need(params, 'orderType')
        instrument = self._instrument(_need(params, 'symbol'))
        side = _need(params, 'side')
        size = _decimal(params, 'size', required=True)
        limit, stop = _decimal(params, 'limitPrice'), _decimal(params, 'stopPrice')
        reduce_only = _boolean(params, 'reduceOnly')
        signal = params.get('triggerSignal', 'mark')
        cli = params.get('cliOrdId')
        if kind not in ORDER_TYPES or side not in ('buy', 'sell') or \
                signal not in ('mark', 'index', 'last'):
            raise Refusal('invalidArgument')
        received = {'receivedTime': _iso(now)}
        if 'processBefore' in params and _parse_time(params['processBefore']) < now:
            return {'status': 'wouldProcessAfterSpecifiedTime', **received, 'orderEvents': []}
        if cli is not None:
            if len(cli) > MAX_CLIENT_ID:
                return {'status': 'clientOrderIdTooBig', **received, 'orderEvents': []}
            if any(o.cli_ord_id == cli for o in account.open_orders()):
                return {'status': 'clientOrderIdAlreadyExist', **received, 'orderEvents': []}
        if instrument.symbol in self.suspended:
            return {'status': 'marketSuspended', **received, 'orderEvents': []}
        assert size is not None
        if size <= 0 or size != size.quantize(D(1).scaleb(-instrument.precision), ROUND_DOWN):
            return {'status': 'invalidSize', **received, 'orderEvents': []}
        needs_limit = kind in ('lmt', 'post', 'ioc')
        if (needs_limit and limit is None) or (kind in ('stp', 'take_profit') and stop is None) \
                or (kind == 'mkt' and (limit is not None or stop is not None)) \
                or (needs_limit and stop is not None):
            raise Refusal('requiredArgumentMissing' if limit is None and stop is None
                          else 'invalidArgument')
        for price in (limit, stop):
            if price is not None and (price <= 0 or price % instrument.tick):
                return {'status': 'invalidPrice', **received, 'orderEvents': []}
        order = FuturesOrder(self._uid(), cli,
                             instrument.symbol, side, kind, size, limit, stop, reduce_only,
                             signal, now, now)
        reply = {'order_id': order.order_id, **received}
        if cli is not None:
            reply['cliOrdId'] = cli
        reduced = None
        if reduce_only:
            position = account.positions.get(instrument.symbol)
            held = position.size if position else D(0)
            if held == 0 or (held > 0) == (side == 'buy'):
                return {**reply, 'status': 'wouldNotReducePosition', 'orderEvents': []}
            if size > abs(held):
                reduced, order.size = size - abs(held), abs(held)
        elif self._needed(account, order) > self._margins(account)['availableMargin']:
            return {**reply, 'status': 'insufficientAvailableFunds', 'orderEvents': []}
        bid, ask = self._quote(instrument)
        crosses = limit is not None and (limit >= ask if side == 'buy' else limit <= bid)
        if (kind == 'post' and crosses) or (kind == 'ioc' and not crosses):
            order.state = 'rejected'
            error = 'POST_WOULD_EXECUTE' if kind == 'post' else 'IOC_WOULD_NOT_EXECUTE'
            self._record(account, 'OrderRejected', order=self._historical(account, order),
                         orderError=error, reason=error.lower())
        if kind == 'post' and crosses:
            return {**reply, 'status': 'postWouldExecute', 'orderEvents': [
                {'type': 'REJECT', 'uid': order.order_id, 'order': order.to_kraken(),
                 'reason': 'POST_WOULD_EXECUTE'}]}
        if kind == 'ioc' and not crosses:
            return {**reply, 'status': 'iocWouldNotExecute', 'orderEvents': [
                {'type': 'REJECT', 'uid': order.order_id, 'order': order.to_kraken(),
                 'reason': 'IOC_WOULD_NOT_EXECUTE'}]}
        account.orders[order.order_id] = order
        if not order.is_trigger:
            self._record(account, 'OrderPlaced', order=self._historical(account, order),
                         reason='new_placed_order_by_user', reducedQuantity='')
        if order.is_trigger:
            return {**reply, 'status': 'placed', 'orderEvents': [
                {'type': 'PLACE', 'orderTrigger': order.trigger_json()}]}
        if kind == 'mkt' or crosses:
            prior = order.to_kraken()
            price = ask if side == 'buy' else bid
            self._fill(account, order, price, taker=True)
            return {**reply, 'status': 'placed', 'orderEvents': [
                {'type': 'EXECUTION', 'executionId': self._uid(),
                 'price': price, 'amount': order.size, 'orderPriorEdit': None,
                 'orderPriorExecution': prior, 'takerReducedQuantity': reduced}]}
        return {**reply, 'status': 'placed', 'orderEvents': [
            {'type': 'PLACE', 'order': order.to_kraken(), 'reducedQuantity': reduced}]}

    def _needed(self, account: FuturesAccount, order: FuturesOrder) -> Decimal:
        instrument = _BY_SYMBOL[order.symbol]
        bid, ask = self._quote(instrument)
        price = order.limit_price or order.stop_price or (ask if order.side == 'buy' else bid)
        return order.open_size * price * (self._rate(account, order.symbol) + TAKER_FEE)

    def _fill(self, account: FuturesAccount, order: FuturesOrder, price: Decimal, *,
              taker: bool) -> None:
        """Execute the rest of an order at ``price``: position, fees, fill record."""
        now = self.clock()
        size = order.open_size
        old = self._historical(account, order)
        order.filled += size
        order.state, order.updated, order.reason = 'filled', now, 'FULL_FILL'
        self._record(account, 'OrderUpdated', oldOrder=old,
                     newOrder=self._historical(account, order), reason='full_fill')
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
            'fill_id': self._uid(), 'symbol': order.symbol,
            'side': order.side, 'order_id': order.order_id, 'size': size, 'price': price,
            'fillTime': _iso(now), 'fillType': 'taker' if taker else 'maker'}
        if order.cli_ord_id is not None:
            fill['cliOrdId'] = order.cli_ord_id
        account.fills.append(fill)
        self._trade(_BY_SYMBOL[order.symbol], order.side, size, price)

    def _on_price(self, account: FuturesAccount, order: FuturesOrder) -> None:
        """Execute a resting order or trigger that the new mark price reaches."""
        mark = self.marks[order.symbol]
        if order.is_trigger:
            assert order.stop_price is not None
            above = (order.side == 'buy') == (order.kind == 'stp')
            if (mark >= order.stop_price) if above else (mark <= order.stop_price):
                order.kind, order.reason = 'lmt', 'STOP_ORDER_TRIGGERED'
                bid, ask = self._quote(_BY_SYMBOL[order.symbol])
                market = ask if order.side == 'buy' else bid
                limit = order.limit_price
                if limit is None or (limit >= market if order.side == 'buy' else limit <= market):
                    self._fill(account, order, market, taker=True)
            return
        assert order.limit_price is not None
        if (mark <= order.limit_price) if order.side == 'buy' else (mark >= order.limit_price):
            self._fill(account, order, order.limit_price, taker=False)

    def _find(self, account: FuturesAccount, params: dict[str, str],
              id_name: str) -> FuturesOrder | None:
        order_id, cli = params.get(id_name), params.get('cliOrdId')
        if (order_id is None) == (cli is None):
            raise Refusal('requiredArgumentMissing' if order_id is None else 'invalidArgument')
        for order in account.orders.values():
            if (order.order_id == order_id if order_id is not None else order.cli_ord_id == cli):
                return order
        return None

    def edit_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, _EDIT_PARAMS)
        return {'editStatus': self._edit(account, params, 'orderId')}

    def _edit(self, account: FuturesAccount, params: dict[str, str],
              id_name: str) -> dict[str, Any]:
        now = self.clock()
        order = self._find(account, params, id_name)
        base = {'receivedTime': _iso(now)}
        if order is None or order.state != 'open':
            return {**base, 'status': 'orderForEditNotFound', 'orderEvents': []}
        base.update(orderId=order.order_id)
        if order.cli_ord_id is not None:
            base['cliOrdId'] = order.cli_ord_id
        instrument = _BY_SYMBOL[order.symbol]
        size = _decimal(params, 'size')
        limit, stop = _decimal(params, 'limitPrice'), _decimal(params, 'stopPrice')
        mode = params.get('qtyMode', 'RELATIVE')
        if mode not in ('ABSOLUTE', 'RELATIVE'):
            raise Refusal('invalidArgument')
        if stop is not None and not order.is_trigger:
            return {**base, 'status': 'orderForEditNotAStop', 'orderEvents': []}
        if size is not None:
            total = size if mode == 'ABSOLUTE' else size + order.filled
            if size <= 0 or total <= order.filled or \
                    size != size.quantize(D(1).scaleb(-instrument.precision), ROUND_DOWN):
                return {**base, 'status': 'invalidSize', 'orderEvents': []}
        for price in (limit, stop):
            if price is not None and (price <= 0 or price % instrument.tick):
                return {**base, 'status': 'invalidPrice', 'orderEvents': []}
        old = order.to_kraken()
        before = self._historical(account, order)
        bid, ask = self._quote(instrument)
        new_limit = order.limit_price if limit is None else limit
        if order.kind == 'post' and new_limit is not None and \
                (new_limit >= ask if order.side == 'buy' else new_limit <= bid):
            return {**base, 'status': 'postWouldExecute', 'orderEvents': []}
        if size is not None:
            order.size = size if mode == 'ABSOLUTE' else size + order.filled
        order.limit_price, order.stop_price = new_limit, stop or order.stop_price
        order.updated, order.reason = now, 'EDITED_BY_USER'
        self._record(account, 'OrderUpdated', oldOrder=before,
                     newOrder=self._historical(account, order), reason='edited_by_user')
        events: list[dict[str, Any]] = [{'type': 'EDIT', 'old': old, 'new': order.to_kraken(),
                                         'reducedQuantity': None}]
        if not order.is_trigger and new_limit is not None and \
                (new_limit >= ask if order.side == 'buy' else new_limit <= bid):
            self._fill(account, order, ask if order.side == 'buy' else bid, taker=True)
        return {**base, 'status': 'edited', 'orderEvents': events}

    def _cancel(self, account: FuturesAccount, order: FuturesOrder,
                reason: str) -> dict[str, Any]:
        order.state, order.updated, order.reason = 'cancelled', self.clock(), reason
        self._record(account, 'OrderCancelled', order=self._historical(account, order),
                     reason=reason.lower())
        return {'type': 'CANCEL', 'uid': order.order_id, 'order': order.to_kraken()}

    def cancel_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'order_id', 'cliOrdId', 'processBefore'})
        order = self._find(account, params, 'order_id')
        return {'cancelStatus': self._cancel_one(account, order, params)}

    def _cancel_one(self, account: FuturesAccount, order: FuturesOrder | None,
                    params: dict[str, str]) -> dict[str, Any]:
        status: dict[str, Any] = {'receivedTime': _iso(self.clock())}
        if order is None or order.state not in ('open', 'filled'):
            return {**status, 'status': 'notFound', 'orderEvents': [],
                    **{k: params[k] for k in ('order_id', 'cliOrdId') if k in params}}
        status['order_id'] = order.order_id
        if order.cli_ord_id is not None:
            status['cliOrdId'] = order.cli_ord_id
        if order.state == 'filled':
            return {**status, 'status': 'filled', 'orderEvents': []}
        return {**status, 'status': 'cancelled',
                'orderEvents': [self._cancel(account, order, 'CANCELLED_BY_USER')]}

    def cancel_all(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'symbol'})
        symbol = params.get('symbol')
        if symbol is not None:
            symbol = self._instrument(symbol).symbol
        orders = [o for o in account.open_orders() if symbol in (None, o.symbol)]
        events = [self._cancel(account, o, 'CANCELLED_BY_USER') for o in orders]
        return {'cancelStatus': {
            'receivedTime': _iso(self.clock()), 'cancelOnly': symbol or 'all',
            'status': 'cancelled' if orders else 'noOrdersToCancel',
            'cancelledOrders': [{'order_id': o.order_id, 'cliOrdId': o.cli_ord_id}
                                for o in orders], 'orderEvents': events}}

    def cancel_all_after(self, account: FuturesAccount,
                         params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'timeout'})
        timeout = _decimal(params, 'timeout', required=True)
        assert timeout is not None
        if timeout < 0 or timeout != timeout.to_integral_value() or timeout > 86400:
            raise Refusal('invalidArgument')
        now = self.clock()
        account.deadline = now + float(timeout) if timeout else None
        return {'status': {'currentTime': _iso(now),
                           'triggerTime': _iso(account.deadline) if account.deadline else '0'}}

    def batch_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'json', 'processBefore'})
        if 'json' not in params:
            raise Refusal('requiredArgumentMissing')
        instructions = kraken.batch(params)
        if not instructions:
            raise Refusal('Json Parse Error')
        results = []
        for item in instructions:
            if not isinstance(item, dict) or item.get('order') not in ('send', 'edit', 'cancel'):
                raise Refusal('invalidArgument')
            fields = {k: _wire(v) for k, v in item.items() if k != 'order' and v is not None}
            if item['order'] == 'send':
                tag = fields.pop('order_tag', None)
                if tag is None:
                    raise Refusal('requiredArgumentMissing')
                _only(fields, _ORDER_PARAMS - {'processBefore'})
                status = self._place(account, fields)
                results.append({'status': status['status'], 'order_tag': tag,
                                'order_id': status.get('order_id'),
                                'dateTimeReceived': status['receivedTime'],
                                'orderEvents': status['orderEvents'],
                                **({'cliOrdId': fields['cliOrdId']}
                                   if 'cliOrdId' in fields else {})})
            elif item['order'] == 'edit':
                _only(fields, _EDIT_PARAMS - {'orderId', 'processBefore'} | {'order_id'})
                edit = self._edit(account, fields, 'order_id')
                results.append({'status': edit['status'], 'order_id': edit.get('orderId'),
                                'orderEvents': edit['orderEvents']})
            else:
                _only(fields, {'order_id', 'cliOrdId'})
                cancel = self._cancel_one(account, self._find(account, fields, 'order_id'), fields)
                results.append({'status': cancel['status'], 'order_id': cancel.get('order_id'),
                                'orderEvents': cancel['orderEvents']})
        return {'batchStatus': results}

    def order_status(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        _only(params, {'orderIds', 'cliOrdIds'})
        ids = set(_listed(params.get('orderIds')))
        clis = set(_listed(params.get('cliOrdIds')))
        now = self.clock()
        found = []
        for order in account.orders.values():
            if order.order_id not in ids and order.cli_ord_id not in clis:
                continue
            if order.state != 'open' and now - order.updated > self.status_window:
                continue
            status = ('TRIGGER_PLACED' if order.is_trigger and order.state == 'open' else
                      'ENTERED_BOOK' if order.state == 'open' else
                      'FULLY_EXECUTED' if order.state == 'filled' else 'CANCELLED')
            found.append({'order': {
                'type': 'TRIGGER_ORDER' if order.is_trigger else 'ORDER',
                'orderId': order.order_id, 'cliOrdId': order.cli_ord_id,
                'symbol': order.symbol, 'side': order.side, 'quantity': order.size,
                'filled': order.filled, 'limitPrice': order.limit_price,
                'reduceOnly': order.reduce_only, 'timestamp': _iso(order.received),
                'lastUpdateTimestamp': _iso(order.updated), 'priceTriggerOptions': None,
                'triggerTime': None}, 'status': status, 'updateReason': order.reason,
                'error': None})
        return {'orders': found}

    def orders(self, key: str) -> list[FuturesOrder]:
        """Every order of ``key`` accepted over the API, oldest first."""
        with self.lock:
            self.expire_timers()
            return sorted(self.accounts[key].orders.values(), key=lambda o: o.received)


def attach(sandbox: Sandbox, *, seed: int = 0) -> FuturesExchange:
    """Serve Kraken Futures from ``sandbox``'s server; the exchange that answers."""
    exchange = FuturesExchange(seed=seed)
    for prefix in FUTURES_PATHS:
        sandbox.add_route(prefix, exchange.route)
    return exchange


def _order_of(element: dict[str, Any]) -> dict[str, Any]:
    """The order an order-history element is about (the new one of an update)."""
    event = next(iter(element['event'].values()))
    return event.get('order') or event['newOrder']  # type: ignore[no-any-return]


def _params(query: str, body: bytes) -> dict[str, str]:
    """The parameters of the query string and a form body; a repeated name is refused."""
    pairs = parse_qsl(query, keep_blank_values=True) + \
        parse_qsl(body.decode('utf-8', 'replace'), keep_blank_values=True)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            params[name] += ',' + value  # orders/status takes repeated ids
        else:
            params[name] = value
    return params


def _only(params: dict[str, str], allowed: set[str]) -> None:
    """Refuse a parameter the endpoint does not know: never accept and ignore it."""
    if set(params) - allowed:
        raise Refusal('invalidArgument')


def _need(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == '':
        raise Refusal('requiredArgumentMissing')
    return value


def _listed(value: str | None) -> list[str]:
    if not value:
        return []
    text = value.strip()
    if text.startswith('['):
        try:
            items = json.loads(text)
        except ValueError:
            raise Refusal('Json Parse Error') from None
        return [str(i) for i in items] if isinstance(items, list) else []
    return [v for v in re.split(r'[,\s]+', text) if v]


def _wire(value: Any) -> str:
    """A batch instruction's JSON value as the text a form parameter would carry."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return format(D(repr(value)), 'f') if isinstance(value, float) else str(value)
