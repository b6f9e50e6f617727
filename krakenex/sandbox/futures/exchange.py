"""The futures sandbox's exchange: Kraken Futures' checks, budgets, accounts and matching.

:class:`FuturesExchange` answers one request at a time behind one lock. The
market (contracts, marks, trades, candles) is a
:class:`~krakenex.sandbox.futures.market.FuturesMarket` it holds; parameters
and replies are read and written by :mod:`krakenex.sandbox.futures.params`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from ...futures import endpoints as kraken
from ..replies import Reply
from .accounts import FuturesAccount, FuturesOrder, Position
from .market import BY_SYMBOL, FuturesMarket
from .params import (
    Refusal,
    boolean,
    decimal,
    integer,
    iso,
    listed,
    load_json,
    need,
    only,
    parse,
    parse_time,
    plain,
    whole,
    wire,
)

if TYPE_CHECKING:
    from .. import Sandbox
    from ..server import Request

__all__ = ['FuturesExchange', 'attach', 'BUDGET', 'HISTORY_POOL', 'FUTURES_PATHS']

log = logging.getLogger('krakenex.sandbox')
D = Decimal

#: The path prefixes Kraken Futures answers on; the sandbox routes them to this package.
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
        #: Contracts, mark prices, trades and candles.
        self.market = FuturesMarket(seed=seed, clock=clock)
        #: Seconds ``orders/status`` keeps reporting a finished order (Kraken: 5).
        self.status_window = STATUS_WINDOW
        #: ``(endpoint, nonce)`` of every request handled, in order; None for public ones.
        self.requests_log: list[tuple[str, str | None]] = []
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

    def unavailable(self) -> Reply:
        """What Kraken Futures answers while it is down (the ``unavailable`` fault)."""
        body = {'result': 'error', 'serverTime': iso(self.clock()), 'error': 'Unavailable'}
        return Reply(200, json.dumps(body).encode(), 'application/json')

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
            instrument = self.market.instrument(symbol)
            self.market.marks[symbol] = D(str(price))
            self.market.trade(instrument, 'buy', D(1), self.market.marks[symbol])
            for account in self.accounts.values():
                for order in account.open_orders():
                    if order.symbol == symbol:
                        self._on_price(account, order)

    def suspend(self, symbol: str, suspended: bool = True) -> None:
        """Suspend a market (orders get ``marketSuspended``) or resume it."""
        with self.lock:
            self.market.instrument(symbol)
            (self.market.suspended.add if suspended else self.market.suspended.discard)(symbol)

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
                    payload['serverTime'] = iso(self.clock())
                    return 200, 'application/json', json.dumps(payload, default=plain).encode()
                envelope = {'result': 'success', **payload, 'serverTime': iso(self.clock())}
                return 200, 'application/json', json.dumps(envelope, default=plain).encode()
            except Refusal as refusal:
                return self._error(refusal.code, refusal.status)
            except (ValueError, ArithmeticError, OverflowError):  # a number no check foresaw
                return self._error('invalidArgument', 200)
            except Exception:
                log.exception('the futures sandbox failed on %s %s', verb, path)
                return self._error('Server Error', 500)

    def _error(self, code: str, status: int) -> tuple[int, str, bytes]:
        """Kraken Futures' error envelope: ``{"result": "error", "serverTime", "error"}``."""
        envelope = {'result': 'error', 'serverTime': iso(self.clock()), 'error': code}
        return status, 'application/json', json.dumps(envelope).encode()

    def _route(self, verb: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> Any:
        if path.startswith('/api/charts/v1/'):
            if verb != 'GET':
                raise Refusal('invalidArgument', 405)
            self.requests_log.append(('charts', None))
            return self.market.charts(path.removeprefix('/api/charts/v1/'), parse(query, b''))
        if path.startswith('/api/history/v3/'):
            return self._history(verb, path, query, headers, body)
        name = path.removeprefix('/derivatives/api/v3/')
        if name == path:
            raise Refusal('notFound', 404)
        if name.startswith('tickers/') and verb == 'GET':
            self.requests_log.append(('tickers', None))
            return {'ticker': self.market.ticker(self.market.known(name.split('/', 1)[1]))}
        public = {'instruments': self.market.instruments, 'tickers': self.market.tickers,
                  'orderbook': self.market.orderbook, 'history': self.market.history,
                  'feeschedules': self.market.fee_schedules,
                  'instruments/status': self.market.instruments_status}
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
            return public[name](parse(query, body))
        if (verb, name) not in private:
            known = any(n == name for _, n in private)
            raise Refusal('invalidArgument' if known else 'notFound', 405 if known else 404)
        account, nonce = self._authenticate(path, query, headers, body)
        self._expire(account)
        params = parse(query, body)
        if name == 'batchorder' and 'json' in params:
            batch_instructions(params)  # refused before anything is charged or placed
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
            if nonce.startswith('-') or whole(nonce) < 0:
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
        params = parse(query, body)
        only(params, {'since', 'before', 'sort', 'continuation_token', 'count', 'tradeable',
                       'opened', 'closed'})
        sort = params.get('sort', 'desc')
        if sort not in ('asc', 'desc'):
            raise Refusal('invalidArgument')
        since, before = integer(params, 'since', 0), integer(params, 'before', 1 << 62)
        count = integer(params, 'count', 500)
        try:  # the token is the sandbox's own: base64 of the position of the next element
            token = base64.b64decode(params.get('continuation_token', 'MA=='), validate=True)
        except (binascii.Error, ValueError):
            raise Refusal('invalidArgument') from None
        start = whole(token.decode('ascii', 'replace'))
        if start < 0:
            raise Refusal('invalidArgument')
        kinds = set()
        if boolean({'opened': params.get('opened', 'true')}, 'opened'):
            kinds.add('OrderPlaced')
        if boolean({'closed': params.get('closed', 'true')}, 'closed'):
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

    # -- account data ------------------------------------------------------------------

    def _usd(self, currency: str) -> Decimal:
        if currency == 'USD':
            return D(1)
        instrument = BY_SYMBOL.get(f'PF_{currency}USD')
        return self.market.marks[instrument.symbol] if instrument else D(0)

    def _rate(self, account: FuturesAccount, symbol: str) -> Decimal:
        """Initial margin as a share of the notional: 1 / leverage."""
        return 1 / account.leverage.get(symbol, DEFAULT_LEVERAGE)

    def _margins(self, account: FuturesAccount) -> dict[str, Decimal]:
        balance = sum((q * self._usd(c) for c, q in account.balances.items()), D(0))
        collateral = sum((q * self._usd(c) * (1 if c == 'USD' else 1 - HAIRCUT)
                          for c, q in account.balances.items()), D(0))
        pnl = sum((p.size * (self.market.marks[s] - p.price) for s, p in account.positions.items()),
                  D(0))
        initial = sum((abs(p.size) * self.market.marks[s] * self._rate(account, s)
                       for s, p in account.positions.items()), D(0))
        with_orders = initial + sum(
            (o.open_size * (o.limit_price or o.stop_price or self.market.marks[o.symbol])
             * self._rate(account, o.symbol) for o in account.open_orders()), D(0))
        equity = collateral + pnl
        return {'balanceValue': balance, 'collateralValue': collateral, 'pnl': pnl,
                'initialMargin': initial, 'initialMarginWithOrders': with_orders,
                'maintenanceMargin': initial * MAINTENANCE, 'portfolioValue': balance + pnl,
                'marginEquity': equity, 'availableMargin': equity - with_orders}

    def accounts_(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
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
        only(params, set())
        positions = []
        for symbol, position in sorted(account.positions.items(),
                                       key=lambda item: -item[1].fill_time):
            entry: dict[str, Any] = {
                'side': 'long' if position.size > 0 else 'short', 'symbol': symbol,
                'price': position.price, 'fillTime': iso(position.fill_time),
                'size': abs(position.size), 'unrealizedFunding': D(0), 'pnlCurrency': 'USD'}
            if symbol in account.leverage:
                entry['maxFixedLeverage'] = account.leverage[symbol]
            positions.append(entry)
        return {'openPositions': positions}

    def open_orders(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        orders = sorted(account.open_orders(), key=lambda o: -o.received)
        return {'openOrders': [o.to_open_order() for o in orders]}

    def fills_(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'lastFillTime'})
        fills = account.fills
        if 'lastFillTime' in params:
            before = parse_time(params['lastFillTime'])
            fills = [f for f in fills if parse_time(f['fillTime']) < before]
        return {'fills': list(reversed(fills[-100:]))}

    def leverage_get(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, set())
        return {'leveragePreferences': [{'symbol': s, 'maxLeverage': v}
                                        for s, v in sorted(account.leverage.items())]}

    def leverage_set(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'symbol', 'maxLeverage'})
        instrument = self.market.instrument(need(params, 'symbol'))
        leverage = decimal(params, 'maxLeverage')
        if leverage is None:
            account.leverage.pop(instrument.symbol, None)
        elif not 1 <= leverage <= DEFAULT_LEVERAGE:
            raise Refusal('invalidArgument')
        else:
            account.leverage[instrument.symbol] = leverage
        return {}

    # -- trading -----------------------------------------------------------------------

    def send_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, _ORDER_PARAMS)
        return {'sendStatus': self._place(account, params)}

    def _place(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        """Check and place one order; its status as ``sendStatus`` shows it."""
        now = self.clock()
        kind = need(params, 'orderType')
        instrument = self.market.instrument(need(params, 'symbol'))
        side = need(params, 'side')
        size = decimal(params, 'size', required=True)
        limit, stop = decimal(params, 'limitPrice'), decimal(params, 'stopPrice')
        reduce_only = boolean(params, 'reduceOnly')
        signal = params.get('triggerSignal', 'mark')
        cli = params.get('cliOrdId')
        if kind not in ORDER_TYPES or side not in ('buy', 'sell') or \
                signal not in ('mark', 'index', 'last'):
            raise Refusal('invalidArgument')
        received = {'receivedTime': iso(now)}
        if 'processBefore' in params and parse_time(params['processBefore']) < now:
            return {'status': 'wouldProcessAfterSpecifiedTime', **received, 'orderEvents': []}
        if cli is not None:
            if len(cli) > MAX_CLIENT_ID:
                return {'status': 'clientOrderIdTooBig', **received, 'orderEvents': []}
            if any(o.cli_ord_id == cli for o in account.open_orders()):
                return {'status': 'clientOrderIdAlreadyExist', **received, 'orderEvents': []}
        if instrument.symbol in self.market.suspended:
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
        bid, ask = self.market.quote(instrument)
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
        instrument = BY_SYMBOL[order.symbol]
        bid, ask = self.market.quote(instrument)
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
            'fillTime': iso(now), 'fillType': 'taker' if taker else 'maker'}
        if order.cli_ord_id is not None:
            fill['cliOrdId'] = order.cli_ord_id
        account.fills.append(fill)
        self.market.trade(BY_SYMBOL[order.symbol], order.side, size, price)

    def _on_price(self, account: FuturesAccount, order: FuturesOrder) -> None:
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
        only(params, _EDIT_PARAMS)
        return {'editStatus': self._edit(account, params, 'orderId')}

    def _edit(self, account: FuturesAccount, params: dict[str, str],
              id_name: str) -> dict[str, Any]:
        now = self.clock()
        size = decimal(params, 'size')  # a malformed request is refused whatever it names
        limit, stop = decimal(params, 'limitPrice'), decimal(params, 'stopPrice')
        mode = params.get('qtyMode', 'RELATIVE')
        if mode not in ('ABSOLUTE', 'RELATIVE'):
            raise Refusal('invalidArgument')
        order = self._find(account, params, id_name)
        base = {'receivedTime': iso(now)}
        if order is None or order.state != 'open':
            return {**base, 'status': 'orderForEditNotFound', 'orderEvents': []}
        base.update(orderId=order.order_id)
        if order.cli_ord_id is not None:
            base['cliOrdId'] = order.cli_ord_id
        instrument = BY_SYMBOL[order.symbol]
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
        bid, ask = self.market.quote(instrument)
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
        only(params, {'order_id', 'cliOrdId', 'processBefore'})
        order = self._find(account, params, 'order_id')
        return {'cancelStatus': self._cancel_one(account, order, params)}

    def _cancel_one(self, account: FuturesAccount, order: FuturesOrder | None,
                    params: dict[str, str]) -> dict[str, Any]:
        status: dict[str, Any] = {'receivedTime': iso(self.clock())}
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
        only(params, {'symbol'})
        symbol = params.get('symbol')
        if symbol is not None:
            symbol = self.market.instrument(symbol).symbol
        orders = [o for o in account.open_orders() if symbol in (None, o.symbol)]
        events = [self._cancel(account, o, 'CANCELLED_BY_USER') for o in orders]
        return {'cancelStatus': {
            'receivedTime': iso(self.clock()), 'cancelOnly': symbol or 'all',
            'status': 'cancelled' if orders else 'noOrdersToCancel',
            'cancelledOrders': [{'order_id': o.order_id, 'cliOrdId': o.cli_ord_id}
                                for o in orders], 'orderEvents': events}}

    def cancel_all_after(self, account: FuturesAccount,
                         params: dict[str, str]) -> dict[str, Any]:
        only(params, {'timeout'})
        timeout = decimal(params, 'timeout', required=True)
        assert timeout is not None
        if timeout < 0 or timeout != timeout.to_integral_value() or timeout > 86400:
            raise Refusal('invalidArgument')
        now = self.clock()
        account.deadline = now + float(timeout) if timeout else None
        return {'status': {'currentTime': iso(now),
                           'triggerTime': iso(account.deadline) if account.deadline else '0'}}

    def batch_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'json', 'processBefore'})
        if 'json' not in params:
            raise Refusal('requiredArgumentMissing')
        instructions = batch_instructions(params)
        results = []
        for item in instructions:
            if item.get('order') not in ('send', 'edit', 'cancel'):
                raise Refusal('invalidArgument')
            fields = {k: wire(v) for k, v in item.items() if k != 'order' and v is not None}
            if item['order'] == 'send':
                tag = fields.pop('order_tag', None)
                if tag is None:
                    raise Refusal('requiredArgumentMissing')
                only(fields, _ORDER_PARAMS - {'processBefore'})
                status = self._place(account, fields)
                results.append({'status': status['status'], 'order_tag': tag,
                                'order_id': status.get('order_id'),
                                'dateTimeReceived': status['receivedTime'],
                                'orderEvents': status['orderEvents'],
                                **({'cliOrdId': fields['cliOrdId']}
                                   if 'cliOrdId' in fields else {})})
            elif item['order'] == 'edit':
                only(fields, _EDIT_PARAMS - {'orderId', 'processBefore'} | {'order_id'})
                edit = self._edit(account, fields, 'order_id')
                results.append({'status': edit['status'], 'order_id': edit.get('orderId'),
                                'orderEvents': edit['orderEvents']})
            else:
                only(fields, {'order_id', 'cliOrdId'})
                cancel = self._cancel_one(account, self._find(account, fields, 'order_id'), fields)
                results.append({'status': cancel['status'], 'order_id': cancel.get('order_id'),
                                'orderEvents': cancel['orderEvents']})
        return {'batchStatus': results}

    def order_status(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'orderIds', 'cliOrdIds'})
        ids = set(listed(params.get('orderIds')))
        clis = set(listed(params.get('cliOrdIds')))
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
                'reduceOnly': order.reduce_only, 'timestamp': iso(order.received),
                'lastUpdateTimestamp': iso(order.updated), 'priceTriggerOptions': None,
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
        sandbox.add_route(prefix, exchange.route, unavailable=exchange.unavailable)
    return exchange


def batch_instructions(params: dict[str, str]) -> list[dict[str, Any]]:
    """The instructions of a ``batchorder`` call's ``json`` parameter.

    :raises Refusal: ``Json Parse Error`` if it is not JSON (or nests past the parser's
        depth) or holds no ``batchOrder`` list; ``invalidArgument`` if an instruction is not
        an object of plain values
    """
    value = load_json(params['json'])
    orders = value.get('batchOrder') if isinstance(value, dict) else None
    if not isinstance(orders, list) or not orders:
        raise Refusal('Json Parse Error')
    for item in orders:
        if not isinstance(item, dict) or any(isinstance(v, (dict, list)) for v in item.values()):
            raise Refusal('invalidArgument')
    return orders


def _order_of(element: dict[str, Any]) -> dict[str, Any]:
    """The order an order-history element is about (the new one of an update)."""
    event = next(iter(element['event'].values()))
    return event.get('order') or event['newOrder']  # type: ignore[no-any-return]
