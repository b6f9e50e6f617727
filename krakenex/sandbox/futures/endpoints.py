"""Kraken Futures' REST paths, as the sandbox serves them: one request in, one reply out.

:class:`FuturesEndpoints` answers ``/derivatives/api/v3/...``,
``/api/history/v3/orders`` and ``/api/charts/v1/...``: it checks the verb,
authenticates a private call, takes its cost from the key's budget
(:mod:`~krakenex.sandbox.futures.limits`), hands the call to its handler and
writes Kraken's envelope. The handlers live by responsibility, each over the
:class:`~krakenex.sandbox.futures.exchange.FuturesExchange` it is given
(composition): market data in :mod:`~krakenex.sandbox.futures.market`, account
reads in :mod:`~krakenex.sandbox.futures.account_data`, orders in
:mod:`~krakenex.sandbox.futures.trading`. Standard library only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..replies import Reply
from .account_data import FuturesAccountData
from .accounts import FuturesAccount
from .exchange import FuturesExchange
from .limits import HISTORY_COSTS, cost
from .params import Refusal, iso, parse, plain
from .trading import FuturesTrading, batch_instructions

if TYPE_CHECKING:
    from ..server import Request, Route

__all__ = ['FuturesEndpoints', 'FUTURES_PATHS', 'attach']

log = logging.getLogger('krakenex.sandbox')

DERIVATIVES = '/derivatives/api/v3/'
HISTORY = '/api/history/'
#: The versions of the history endpoints served: v3, and v2 as ccxt's krakenfutures asks
#: (the same elements: Kraken's docs describe v2's orders as v3's).
HISTORY_VERSIONS = ('v2', 'v3')
CHARTS = '/api/charts/v1/'
#: The path prefixes Kraken Futures answers on; the sandbox routes them here. The last two
#: catch what the sandbox does not model, which gets Kraken's JSON ``notFound``, never a
#: plain-text page (the longest prefix wins, so the others keep their requests and faults).
FUTURES_PATHS = (DERIVATIVES, CHARTS, HISTORY + 'v3/', HISTORY + 'v2/', '/derivatives/', HISTORY)

PublicHandler = Callable[[dict[str, str]], Any]
PrivateHandler = Callable[[FuturesAccount, dict[str, str]], Any]


class FuturesEndpoints:
    """Kraken Futures' REST endpoints over a :class:`FuturesExchange`."""

    def __init__(self, exchange: FuturesExchange) -> None:
        self.exchange = exchange
        #: The handlers, by responsibility; each uses the exchange through its public methods.
        self.account_data = FuturesAccountData(exchange)
        self.trading = FuturesTrading(exchange)
        market, data, trading = exchange.market, self.account_data, self.trading
        #: Public ``/derivatives`` handlers by endpoint (all GET).
        self.public: dict[str, PublicHandler] = {
            'instruments': market.instruments, 'instruments/status': market.instruments_status,
            'tickers': market.tickers, 'orderbook': market.orderbook, 'history': market.history,
            'feeschedules': market.fee_schedules}
        #: Private ``/derivatives`` handlers by (verb, endpoint).
        self.private: dict[tuple[str, str], PrivateHandler] = {
            ('GET', 'accounts'): data.accounts, ('GET', 'openpositions'): data.open_positions,
            ('GET', 'openorders'): data.open_orders, ('GET', 'fills'): data.fills,
            ('GET', 'leveragepreferences'): data.leverage_get,
            ('PUT', 'leveragepreferences'): data.leverage_set,
            ('POST', 'sendorder'): trading.send_order, ('POST', 'editorder'): trading.edit_order,
            ('POST', 'cancelorder'): trading.cancel_order,
            ('POST', 'cancelallorders'): trading.cancel_all,
            ('POST', 'cancelallordersafter'): trading.cancel_all_after,
            ('POST', 'batchorder'): trading.batch_order,
            ('POST', 'orders/status'): trading.order_status,
        }
        #: ``/history`` handlers by endpoint (all GET).
        self.history: dict[str, PrivateHandler] = {'orders': data.order_history}
        self._private_names = {name for _, name in self.private}

    def route(self, request: Request) -> Reply:
        """The server's route for Kraken Futures' paths."""
        status, content_type, body = self.serve(request.verb, request.path, request.query,
                                                request.headers, request.body)
        return Reply(status, body, content_type)

    def unavailable(self) -> Reply:
        """What Kraken Futures answers while it is down (the ``unavailable`` fault)."""
        status, content_type, body = self._error('Unavailable', 200)
        return Reply(status, body, content_type)

    def serve(self, verb: str, path: str, query: str, headers: dict[str, str],
              body: bytes) -> tuple[int, str, bytes]:
        """Answer one request: ``(HTTP status, content type, body)``.

        :param headers: the request's headers, names in lower case
        """
        with self.exchange.lock:
            try:
                if path.startswith(CHARTS):  # charts replies have no envelope
                    return 200, 'application/json', json.dumps(self._charts(verb, path, query)
                                                               ).encode()
                if path.startswith(HISTORY):
                    payload = self._history(verb, path, query, headers, body)
                    payload['serverTime'] = iso(self.exchange.clock())
                    return 200, 'application/json', json.dumps(payload, default=plain).encode()
                payload = self._derivatives(verb, path, query, headers, body)
                envelope = {'result': 'success', **payload,
                            'serverTime': iso(self.exchange.clock())}
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
        envelope = {'result': 'error', 'serverTime': iso(self.exchange.clock()), 'error': code}
        return status, 'application/json', json.dumps(envelope).encode()

    def _charts(self, verb: str, path: str, query: str) -> Any:
        if verb != 'GET':
            raise Refusal('invalidArgument', 405)
        self.exchange.requests_log.append(('charts', None))
        return self.exchange.market.charts(path.removeprefix(CHARTS), parse(query, b''))

    def _history(self, verb: str, path: str, query: str, headers: dict[str, str],
                 body: bytes) -> dict[str, Any]:
        version, _, name = path.removeprefix(HISTORY).partition('/')
        handler = self.history.get(name) if version in HISTORY_VERSIONS else None
        if handler is None:
            raise Refusal('notFound', 404)
        if verb != 'GET':
            raise Refusal('invalidArgument', 405)
        exchange = self.exchange
        account, nonce = exchange.authenticate(path, query, headers, body)
        exchange.charge_history(account, HISTORY_COSTS[name])
        exchange.requests_log.append((f'history/{name}', nonce))
        return handler(account, parse(query, body))  # type: ignore[no-any-return]

    def _derivatives(self, verb: str, path: str, query: str, headers: dict[str, str],
                     body: bytes) -> dict[str, Any]:
        exchange = self.exchange
        name = path.removeprefix(DERIVATIVES)
        if name == path:
            raise Refusal('notFound', 404)
        if name.startswith('tickers/') and verb == 'GET':
            exchange.requests_log.append(('tickers', None))
            return {'ticker': exchange.market.ticker(exchange.market.known(name.split('/', 1)[1]))}
        public = self.public.get(name)
        if public is not None:
            if verb != 'GET':
                raise Refusal('invalidArgument', 405)
            exchange.requests_log.append((name, None))
            return public(parse(query, body))  # type: ignore[no-any-return]
        handler = self.private.get((verb, name))
        if handler is None:
            known = name in self._private_names
            raise Refusal('invalidArgument' if known else 'notFound', 405 if known else 404)
        params = parse(query, body)
        self.trading.check_arguments(name, params)  # before the credentials, as Kraken
        account, nonce = exchange.authenticate(path, query, headers, body)
        exchange.expire(account)
        instructions = 0
        if name == 'batchorder' and 'json' in params:
            # refused before anything is charged or placed
            instructions = len(batch_instructions(params))
        exchange.charge(account, cost(verb, name, params, instructions))
        exchange.requests_log.append((name, nonce))
        return handler(account, params)  # type: ignore[no-any-return]


class Host(Protocol):
    """What :func:`attach` needs of a sandbox: a way to serve a path prefix."""

    def add_route(self, prefix: str, route: Route, *,
                  unavailable: Callable[[], Reply] | None = None) -> None: ...


def attach(sandbox: Host, *, seed: int = 0) -> FuturesExchange:
    """Serve Kraken Futures from ``sandbox``'s server; the exchange that answers."""
    exchange = FuturesExchange(seed=seed)
    endpoints = FuturesEndpoints(exchange)
    for prefix in FUTURES_PATHS:
        sandbox.add_route(prefix, endpoints.route, unavailable=endpoints.unavailable)
    return exchange
