"""Kraken's spot REST API, as the sandbox serves it: one request in, one reply out.

:class:`Endpoints` answers a request to ``/0/public/<method>`` or
``/0/private/<method>``: it checks the verb, authenticates a private call, keeps
the call counter, refuses parameters the method does not take, and hands the
call to its handler. The handlers live by responsibility, each over the
:class:`~krakenex.sandbox.exchange.Exchange` it is given (composition): market
data in :mod:`~krakenex.sandbox.market_data`, account reads in
:mod:`~krakenex.sandbox.account_data`, trading in :mod:`~krakenex.sandbox.trading`,
and funding, earn, exports and subaccounts in :mod:`~krakenex.sandbox.funding`.
Standard library only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..methods import valid_name
from .account_data import AccountData
from .exchange import Exchange, PrivateHandler, PublicHandler
from .funding import Funding
from .market_data import MarketData
from .params import ApiError, arithmetic, parse_query
from .replies import Reply, envelope, error, html
from .replies import text as text_reply
from .scope import check
from .trading import Trading

if TYPE_CHECKING:
    from .server import Request

__all__ = ['Endpoints', 'PUBLIC_PREFIX', 'PRIVATE_PREFIX']

log = logging.getLogger('krakenex.sandbox')

PUBLIC_PREFIX = '/0/public/'
PRIVATE_PREFIX = '/0/private/'


class Endpoints:
    """Kraken's REST methods over an :class:`Exchange`; :meth:`serve` answers a request."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: The handlers, by responsibility; each uses the exchange through its public methods.
        self.market_data = MarketData(exchange)
        self.account_data = AccountData(exchange)
        self.trading = Trading(exchange)
        self.funding = Funding(exchange)
        groups = (self.market_data, self.account_data, self.trading, self.funding)
        #: Public handlers by Kraken method name; another module may add its own.
        self.public: dict[str, PublicHandler] = {
            name: handler for group in groups for name, handler in group.public.items()}
        #: Private handlers by Kraken method name; another module may add its own.
        self.private: dict[str, PrivateHandler] = {
            name: handler for group in groups for name, handler in group.private.items()}

    # -- requests ----------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        """The server's route for ``/0/public/`` and ``/0/private/``."""
        if not valid_name(request.method):
            return text_reply(404, 'Not Found\n')
        return self.serve(request.verb, request.prefix == PRIVATE_PREFIX, request.method,
                          request.path, request.query, request.headers, request.body,
                          request.client)

    def serve(self, verb: str, private: bool, method: str, path: str, query: str,
              headers: dict[str, str], body: bytes, client: str) -> Reply:
        """Answer one request to ``/0/public/<method>`` or ``/0/private/<method>``."""
        try:
            with arithmetic():
                if not private:
                    if verb != 'GET':
                        return html(405, '405 Not Allowed', {'Allow': 'GET'})
                    return self._public(method, query, client)
                if verb != 'POST':
                    return html(405, '405 Not Allowed', {'Allow': 'POST'})
                return self._private(method, path, headers, body)
        except ApiError as exc:
            return error(str(exc))
        except Exception:
            log.exception('sandbox failed on %s', method)
            return error('EGeneral:Internal error')

    def _public(self, method: str, query: str, client: str) -> Reply:
        handler = self.public.get(method)
        if handler is None:
            raise ApiError('EGeneral:Unknown method')
        params = parse_query(query)
        check(method, params)
        exchange = self.exchange
        with exchange.lock:
            exchange.requests_log.append((method, None))
            exchange.throttle(client)
            exchange.expire_timers()
            return envelope({'error': [], 'result': handler(params)})

    def _private(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        handler = self.private.get(method)
        if handler is None:
            raise ApiError('EGeneral:Unknown method')
        exchange = self.exchange
        with exchange.lock:
            try:
                account, params, nonce = exchange.authenticate(path, headers, body)
            except ApiError:
                known = exchange.accounts.get(headers.get('api-key', ''))
                if known is not None:  # refused calls of a known key still count
                    exchange.charge(known, method, refused=True)
                raise
            exchange.requests_log.append((method, nonce))
            exchange.charge(account, method)
            check(method, params)
            exchange.expire_timers()
            result = handler(account, params)
        return result if isinstance(result, Reply) else envelope({'error': [], 'result': result})
