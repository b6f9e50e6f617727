"""Kraken Futures' order management, as the sandbox answers it: send, edit, cancel, batch, status.

Orders are checked as Kraken checks them (parameters, sizes, ticks, margin,
post-only and IOC rules), then placed, changed or cancelled through the
:class:`~krakenex.sandbox.futures.exchange.FuturesExchange` it is given.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from .accounts import FuturesAccount, FuturesOrder
from .exchange import TAKER_FEE, FuturesExchange
from .market import BY_SYMBOL
from .params import (
    Refusal,
    boolean,
    decimal,
    iso,
    listed,
    load_json,
    need,
    only,
    parse_time,
    wire,
)

__all__ = ['FuturesTrading', 'ORDER_TYPES', 'batch_instructions']

D = Decimal

MAX_CLIENT_ID = 100
ORDER_TYPES = ('lmt', 'post', 'ioc', 'mkt', 'stp', 'take_profit')
#: What each endpoint accepts; a parameter outside its set is refused with invalidArgument.
ORDER_PARAMS = {'orderType', 'symbol', 'side', 'size', 'limitPrice', 'stopPrice', 'cliOrdId',
                'triggerSignal', 'reduceOnly', 'processBefore'}
EDIT_PARAMS = {'orderId', 'cliOrdId', 'size', 'limitPrice', 'stopPrice', 'qtyMode',
               'processBefore'}


class FuturesTrading:
    """Kraken Futures' order endpoints over an exchange."""

    def __init__(self, exchange: FuturesExchange) -> None:
        self.exchange = exchange

    def check_arguments(self, name: str, params: dict[str, str]) -> None:
        """Refuse a request's arguments before its credentials are looked at, as Kraken
        does: a sendorder that names no known contract, side or order type, or any request
        with a parameter its endpoint does not take, is ``invalidArgument`` whoever sent it."""
        if name == 'sendorder':
            only(params, ORDER_PARAMS)
            self.exchange.market.instrument(need(params, 'symbol'))
            decimal(params, 'size', required=True)
            if need(params, 'orderType') not in ORDER_TYPES or \
                    need(params, 'side') not in ('buy', 'sell'):
                raise Refusal('invalidArgument')
        elif name == 'editorder':
            only(params, EDIT_PARAMS)

    def send_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, ORDER_PARAMS)
        return {'sendStatus': self._place(account, params)}

    def _place(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        """Check and place one order; its status as ``sendStatus`` shows it."""
        now = self.exchange.clock()
        kind = need(params, 'orderType')
        instrument = self.exchange.market.instrument(need(params, 'symbol'))
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
        if instrument.symbol in self.exchange.market.suspended:
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
        order = FuturesOrder(self.exchange.uid(), cli,
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
        elif self._needed(account, order) > self.exchange.margins(account)['availableMargin']:
            return {**reply, 'status': 'insufficientAvailableFunds', 'orderEvents': []}
        bid, ask = self.exchange.market.quote(instrument)
        crosses = limit is not None and (limit >= ask if side == 'buy' else limit <= bid)
        if (kind == 'post' and crosses) or (kind == 'ioc' and not crosses):
            order.state = 'rejected'
            error = 'POST_WOULD_EXECUTE' if kind == 'post' else 'IOC_WOULD_NOT_EXECUTE'
            self.exchange.record(account, 'OrderRejected',
                                 order=self.exchange.historical(account, order),
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
            self.exchange.record(account, 'OrderPlaced',
                                 order=self.exchange.historical(account, order),
                                 reason='new_placed_order_by_user', reducedQuantity='')
        if order.is_trigger:
            return {**reply, 'status': 'placed', 'orderEvents': [
                {'type': 'PLACE', 'orderTrigger': order.trigger_json()}]}
        if kind == 'mkt' or crosses:
            prior = order.to_kraken()
            price = ask if side == 'buy' else bid
            self.exchange.fill(account, order, price, taker=True)
            return {**reply, 'status': 'placed', 'orderEvents': [
                {'type': 'EXECUTION', 'executionId': self.exchange.uid(),
                 'price': price, 'amount': order.size, 'orderPriorEdit': None,
                 'orderPriorExecution': prior, 'takerReducedQuantity': reduced}]}
        return {**reply, 'status': 'placed', 'orderEvents': [
            {'type': 'PLACE', 'order': order.to_kraken(), 'reducedQuantity': reduced}]}

    def _needed(self, account: FuturesAccount, order: FuturesOrder) -> Decimal:
        instrument = BY_SYMBOL[order.symbol]
        bid, ask = self.exchange.market.quote(instrument)
        price = order.limit_price or order.stop_price or (ask if order.side == 'buy' else bid)
        return order.open_size * price * (self.exchange.rate(account, order.symbol) + TAKER_FEE)

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
        only(params, EDIT_PARAMS)
        return {'editStatus': self._edit(account, params, 'orderId')}

    def _edit(self, account: FuturesAccount, params: dict[str, str],
              id_name: str) -> dict[str, Any]:
        now = self.exchange.clock()
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
        before = self.exchange.historical(account, order)
        bid, ask = self.exchange.market.quote(instrument)
        new_limit = order.limit_price if limit is None else limit
        if order.kind == 'post' and new_limit is not None and \
                (new_limit >= ask if order.side == 'buy' else new_limit <= bid):
            return {**base, 'status': 'postWouldExecute', 'orderEvents': []}
        if size is not None:
            order.size = size if mode == 'ABSOLUTE' else size + order.filled
        order.limit_price, order.stop_price = new_limit, stop or order.stop_price
        order.updated, order.reason = now, 'EDITED_BY_USER'
        self.exchange.record(account, 'OrderUpdated', oldOrder=before,
                             newOrder=self.exchange.historical(account, order),
                             reason='edited_by_user')
        events: list[dict[str, Any]] = [{'type': 'EDIT', 'old': old, 'new': order.to_kraken(),
                                         'reducedQuantity': None}]
        if not order.is_trigger and new_limit is not None and \
                (new_limit >= ask if order.side == 'buy' else new_limit <= bid):
            self.exchange.fill(account, order, ask if order.side == 'buy' else bid, taker=True)
        return {**base, 'status': 'edited', 'orderEvents': events}

    def cancel_order(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'order_id', 'cliOrdId', 'processBefore'})
        order = self._find(account, params, 'order_id')
        return {'cancelStatus': self._cancel_one(account, order, params)}

    def _cancel_one(self, account: FuturesAccount, order: FuturesOrder | None,
                    params: dict[str, str]) -> dict[str, Any]:
        status: dict[str, Any] = {'receivedTime': iso(self.exchange.clock())}
        if order is None or order.state not in ('open', 'filled'):
            return {**status, 'status': 'notFound', 'orderEvents': [],
                    **{k: params[k] for k in ('order_id', 'cliOrdId') if k in params}}
        status['order_id'] = order.order_id
        if order.cli_ord_id is not None:
            status['cliOrdId'] = order.cli_ord_id
        if order.state == 'filled':
            return {**status, 'status': 'filled', 'orderEvents': []}
        return {**status, 'status': 'cancelled',
                'orderEvents': [self.exchange.cancel(account, order, 'CANCELLED_BY_USER')]}

    def cancel_all(self, account: FuturesAccount, params: dict[str, str]) -> dict[str, Any]:
        only(params, {'symbol'})
        symbol = params.get('symbol')
        if symbol is not None:
            symbol = self.exchange.market.instrument(symbol).symbol
        orders = [o for o in account.open_orders() if symbol in (None, o.symbol)]
        events = [self.exchange.cancel(account, o, 'CANCELLED_BY_USER') for o in orders]
        return {'cancelStatus': {
            'receivedTime': iso(self.exchange.clock()), 'cancelOnly': symbol or 'all',
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
        now = self.exchange.clock()
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
                only(fields, ORDER_PARAMS - {'processBefore'})
                status = self._place(account, fields)
                results.append({'status': status['status'], 'order_tag': tag,
                                'order_id': status.get('order_id'),
                                'dateTimeReceived': status['receivedTime'],
                                'orderEvents': status['orderEvents'],
                                **({'cliOrdId': fields['cliOrdId']}
                                   if 'cliOrdId' in fields else {})})
            elif item['order'] == 'edit':
                only(fields, EDIT_PARAMS - {'orderId', 'processBefore'} | {'order_id'})
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
        now = self.exchange.clock()
        found = []
        for order in account.orders.values():
            if order.order_id not in ids and order.cli_ord_id not in clis:
                continue
            if order.state != 'open' and now - order.updated > self.exchange.status_window:
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
