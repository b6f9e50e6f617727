"""The Unified WebSocket's private channels over a futures sandbox account.

``executions``, ``positions``, ``margin``, ``ledgers``, ``balances`` and
``preferences`` of one connection (:class:`PrivateChannels`), each read from
the futures account behind the connection's token.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .feed import NOT_SUBSCRIBED, unsupported
from .futures.accounts import FuturesAccount, FuturesOrder
from .futures.params import iso
from .unified_rules import LEDGERS_ASSET_CLASS, asset_class_error, not_valid

if TYPE_CHECKING:
    from .unified_rules import Connection

__all__ = ['PrivateChannels', 'execution', 'CHANNELS']

#: The private channels and the parameters each takes (``token`` on all).
CHANNELS = {
    'executions': {'channel', 'token', 'asset_class', 'snap_orders', 'snap_trades'},
    'positions': {'channel', 'token', 'asset_class', 'snapshot', 'with_margin'},
    'margin': {'channel', 'token', 'asset_class'},
    'ledgers': {'channel', 'token'},
    'balances': {'channel', 'token', 'snapshot'},
    'preferences': {'channel', 'token'},
}
#: The channels whose requests need ``asset_class``.
WITH_ASSET_CLASS = ('executions', 'positions', 'margin')
#: Channels a connection may subscribe to once (Kraken's documented refusal after that).
ONCE = ('positions', 'margin')
#: Trades an ``executions`` snapshot with ``snap_trades`` carries (Kraken: the last 50).
SNAP_TRADES = 50

ORDER_TYPES = {'lmt': 'limit', 'post': 'limit', 'ioc': 'limit', 'mkt': 'market',
               'stp': 'stop-loss', 'take_profit': 'take-profit'}


def execution(order: FuturesOrder, exec_type: str) -> dict[str, Any]:
    """A futures order as an ``executions`` report."""
    status = {'filled': 'filled', 'cancelled': 'canceled', 'rejected': 'canceled'}.get(
        order.state, 'partially_filled' if order.filled else 'new')
    if exec_type == 'new':  # as it was when it entered the book, whatever came after
        status = 'new'

    kind = ORDER_TYPES[order.kind]
    if order.is_trigger and order.limit_price is not None:
        kind += '-limit'
    report: dict[str, Any] = {
        'order_id': order.order_id, 'exec_type': exec_type, 'order_status': status,
        'symbol': order.symbol, 'side': order.side, 'order_type': kind,
        'order_qty': order.size, 'cum_qty': Decimal(0) if exec_type == 'new' else order.filled,
        'time_in_force': 'ioc' if order.kind in ('ioc', 'mkt') else 'gtc',
        'post_only': order.kind == 'post', 'reduce_only': order.reduce_only,
        'timestamp': iso(order.updated)}
    if order.limit_price is not None:
        report['limit_price'] = order.limit_price
    if order.stop_price is not None:
        report['triggers'] = {'reference': 'index' if order.trigger_signal == 'index' else 'last',
                              'price': order.stop_price, 'price_type': 'static'}
    if order.cli_ord_id is not None:
        report['cl_ord_id'] = order.cli_ord_id
    return report


def _trade(order: FuturesOrder, fill: dict[str, Any]) -> dict[str, Any]:
    return {**execution(order, 'trade'), 'exec_id': fill['fill_id'], 'last_qty': fill['size'],
            'last_price': fill['price'], 'liquidity_ind': 't' if fill['fillType'] == 'taker'
            else 'm', 'cost': fill['size'] * fill['price'], 'timestamp': fill['fillTime']}


class PrivateChannels:
    """What one connection hears of its account: the channels it listens to and what
    each has been sent."""

    def __init__(self, session: Connection) -> None:
        self.session = session
        self.account: FuturesAccount | None = None
        self.subscribed: dict[str, dict[str, Any]] = {}  # channel -> its parameters
        self.sequences: dict[str, int] = {}
        self.orders: dict[str, tuple[Any, ...]] = {}  # order id -> what was last reported
        self.fills_seen = 0
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}
        self.margin: dict[str, Any] = {}
        self.balances: dict[str, Decimal] = {}  # what ledgers last saw
        self.ledger_fills = 0
        self.wallets: dict[str, Decimal] = {}  # what balances last sent

    @staticmethod
    def handles(channel: Any) -> bool:
        return isinstance(channel, str) and channel in CHANNELS

    def listening(self) -> bool:
        return bool(self.subscribed)

    def next(self, channel: str) -> int:
        """The channel's next ``sequence`` on this connection."""
        self.sequences[channel] = self.sequences.get(channel, 0) + 1
        return self.sequences[channel]

    def subscription(self, method: str, channel: str, params: dict[str, Any],
                     head: dict[str, Any]) -> None:
        session = self.session
        if channel == 'ledgers' and 'asset_class' in params:
            session.refuse(head, LEDGERS_ASSET_CLASS)
            return
        if channel == 'margin' and 'snapshot' in params:
            session.refuse(head, not_valid('snapshot', channel))
            return
        unknown = sorted(set(params) - CHANNELS[channel])
        if unknown:
            session.refuse(head, unsupported(unknown[0], method))
            return
        if channel in WITH_ASSET_CLASS:
            error = asset_class_error(params)
            if error:
                session.refuse(head, error)
                return
        for flag in ('snapshot', 'with_margin', 'snap_orders', 'snap_trades'):
            if flag in params and not isinstance(params[flag], bool):
                session.refuse(head, f'{flag.capitalize()} field must be a boolean')
                return
        if channel == 'positions' and params.get('with_margin') and params.get('snapshot'):
            session.refuse(head, 'EGeneral:Invalid arguments:snapshot and with_margin '
                                 'cannot be combined')
            return
        key, refused = session.check_token(params)
        if key is None:
            session.refuse(head, refused)
            return
        self.account = session.unified.account(key)
        if method == 'unsubscribe':
            if self.subscribed.pop(channel, None) is None:
                session.refuse({**head, 'method': 'subscribe'}, NOT_SUBSCRIBED)
                return
            session.ack(head, {'channel': channel})
            return
        if channel in ONCE and channel in self.subscribed:
            session.refuse(head, f'Already subscribed to {channel} channel')
            return
        self.subscribed[channel] = dict(params)
        session.ack(head, {'channel': channel})
        with session.unified.exchange.lock:
            getattr(self, f'start_{channel}')(params)

    # -- subscribing (under the futures exchange's lock) ----------------------------------

    def start_executions(self, params: dict[str, Any]) -> None:
        assert self.account is not None
        account = self.account
        self.orders = {o.order_id: self._state(o) for o in account.orders.values()}
        self.fills_seen = len(account.fills)
        data = []
        if params.get('snap_orders', True):
            data += [execution(o, 'new') for o in sorted(account.open_orders(),
                                                         key=lambda o: o.received)]
        if params.get('snap_trades', False):
            data += [_trade(account.orders[f['order_id']], f)
                     for f in account.fills[-SNAP_TRADES:] if f['order_id'] in account.orders]
        self.session.send({'channel': 'executions', 'type': 'snapshot', 'data': data,
                           'sequence': self.next('executions')})

    def start_positions(self, params: dict[str, Any]) -> None:
        self.positions = self._positions()
        if params.get('snapshot', not params.get('with_margin', False)):
            entries = [self._position(s) for s in sorted(self.positions)]
            self.session.send({'channel': 'positions', 'type': 'snapshot',
                               'data': {'futures': entries, 'options': []}})

    def start_margin(self, params: dict[str, Any]) -> None:
        self.margin = self._margin()
        self.session.send({'channel': 'margin', 'type': 'snapshot', 'data': [self.margin]})

    def start_ledgers(self, params: dict[str, Any]) -> None:
        assert self.account is not None
        self.balances = dict(self.account.balances)
        self.ledger_fills = len(self.account.fills)

    def start_balances(self, params: dict[str, Any]) -> None:
        assert self.account is not None
        self.wallets = dict(self.account.balances)
        if params.get('snapshot', True):
            self.session.send({'channel': 'balances', 'type': 'snapshot', 'data': [
                self._balance(a, q) for a, q in sorted(self.wallets.items())],
                'sequence': self.next('balances')})

    def start_preferences(self, params: dict[str, Any]) -> None:
        self.session.send({'channel': 'preferences', 'type': 'snapshot',
                           'data': [{'derivatives_permission': 'enabled'}]})

    # -- what the account holds ------------------------------------------------------------

    @staticmethod
    def _state(order: FuturesOrder) -> tuple[Any, ...]:
        return order.state, order.filled, order.size, order.limit_price, order.stop_price

    def _positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        assert self.account is not None
        return {s: (p.size, p.price) for s, p in self.account.positions.items()}

    def _position(self, symbol: str) -> dict[str, Any]:
        assert self.account is not None
        exchange = self.session.unified.exchange
        size, price = self.positions.get(symbol, (Decimal(0), Decimal(0)))
        mark = exchange.market.marks[symbol]
        entry: dict[str, Any] = {'symbol': symbol, 'size': size, 'entry_price': price,
                                 'mark_price': mark, 'unrealized_pnl': size * (mark - price)}
        if self.subscribed.get('positions', {}).get('with_margin'):
            initial = abs(size) * mark * exchange.rate(self.account, symbol)
            entry.update(initial_margin=initial, maintenance_margin=initial / 2)
        return entry

    def _margin(self) -> dict[str, Any]:
        assert self.account is not None
        m = self.session.unified.exchange.margins(self.account)
        return {'portfolio_value': m['portfolioValue'], 'collateral_value': m['collateralValue'],
                'initial_margin': m['initialMarginWithOrders'],
                'maintenance_margin': m['maintenanceMargin'],
                'available_margin': m['availableMargin'], 'pnl': m['pnl'],
                'unrealized_funding': Decimal(0)}

    @staticmethod
    def _balance(asset: str, quantity: Decimal) -> dict[str, Any]:
        return {'asset': asset, 'balance': quantity,
                'wallets': [{'type': 'derivatives', 'id': 'flex', 'balance': quantity}]}

    # -- changes -------------------------------------------------------------------------

    def look(self) -> None:
        """Send each subscribed channel's changes since the last look."""
        if not self.subscribed or self.account is None:
            return
        with self.session.unified.exchange.lock:
            self.session.unified.exchange.expire(self.account)
            for channel in list(self.subscribed):
                getattr(self, f'look_{channel}')()

    def look_executions(self) -> None:
        assert self.account is not None
        account, updates = self.account, []
        fills = account.fills[self.fills_seen:]
        self.fills_seen = len(account.fills)
        for order in sorted(account.orders.values(), key=lambda o: o.received):
            state, before = self._state(order), self.orders.get(order.order_id)
            if state == before:
                continue
            self.orders[order.order_id] = state
            if order.state == 'rejected':
                continue
            if before is None:
                updates.append(execution(order, 'new'))
            updates += [_trade(order, f) for f in fills if f['order_id'] == order.order_id]
            if order.state == 'filled':
                updates.append(execution(order, 'filled'))
            elif order.state == 'cancelled':
                updates.append(execution(order, 'canceled'))
            elif before is not None and before[2:] != state[2:]:
                updates.append(execution(order, 'amended'))
        for update in updates:
            self.session.send({'channel': 'executions', 'type': 'update', 'data': [update],
                               'sequence': self.next('executions')})

    def look_positions(self) -> None:
        now = self._positions()
        changed = sorted(s for s in set(now) | set(self.positions)
                         if now.get(s) != self.positions.get(s))
        self.positions = now
        if changed:
            self.session.send({'channel': 'positions', 'type': 'update', 'data': {
                'futures': [self._position(s) for s in changed], 'options': []}})

    def look_margin(self) -> None:
        margin = self._margin()
        if margin != self.margin:
            self.margin = margin
            self.session.send({'channel': 'margin', 'type': 'update', 'data': [margin]})

    def look_ledgers(self) -> None:
        assert self.account is not None
        account = self.account
        traded = len(account.fills) > self.ledger_fills
        symbol = account.fills[-1]['symbol'] if traded else None
        self.ledger_fills = len(account.fills)
        entries = []
        for asset in sorted(set(account.balances) | set(self.balances)):
            before, after = self.balances.get(asset, Decimal(0)), account.balances.get(
                asset, Decimal(0))
            if before != after:
                entries.append({'asset_class': 'derivatives', 'asset': asset,
                                'amount': after - before, 'balance': after,
                                'type': 'trade' if traded else 'adjustment', 'symbol': symbol,
                                'timestamp': iso(self.session.unified.exchange.clock())})
        self.balances = dict(account.balances)
        if entries:
            self.session.send({'channel': 'ledgers', 'type': 'update',
                               'sequence': self.next('ledgers'), 'data': entries})

    def look_balances(self) -> None:
        assert self.account is not None
        now = dict(self.account.balances)
        changed = [self._balance(a, q) for a, q in sorted(now.items())
                   if self.wallets.get(a) != q]
        self.wallets = now
        if changed:
            self.session.send({'channel': 'balances', 'type': 'update', 'data': changed,
                               'sequence': self.next('balances')})

    def look_preferences(self) -> None:
        """Nothing changes the trading permission in the sandbox."""
