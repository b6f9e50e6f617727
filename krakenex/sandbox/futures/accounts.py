"""The futures sandbox's records: orders, positions and the flex account of one key."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..counter import Counter
from .params import iso

__all__ = ['FuturesOrder', 'Position', 'FuturesAccount']

D = Decimal


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
                'timestamp': iso(self.received), 'lastUpdateTimestamp': iso(self.updated)}

    def to_open_order(self) -> dict[str, Any]:
        """The order as ``openorders`` lists it."""
        entry: dict[str, Any] = {
            'order_id': self.order_id, 'symbol': self.symbol, 'side': self.side,
            'orderType': {'stp': 'stop', 'post': 'lmt'}.get(self.kind, self.kind),
            'unfilledSize': self.open_size, 'filledSize': self.filled,
            'receivedTime': iso(self.received), 'lastUpdateTime': iso(self.updated),
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
                'reduceOnly': self.reduce_only, 'timestamp': iso(self.received),
                'lastUpdateTimestamp': iso(self.updated), 'startTime': None}


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
    #: What the key has spent of its ``/derivatives`` budget.
    budget: Counter = field(default_factory=Counter)
    #: What the key has spent of its ``/history`` token pool.
    pool: Counter = field(default_factory=Counter)
    uid: str = ''
    #: Order events as ``/api/history/v3/orders`` lists them, oldest first.
    events: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:  # never the secret
        return f'<FuturesAccount key={self.key[:4]}...>'

    def open_orders(self) -> list[FuturesOrder]:
        return [o for o in self.orders.values() if o.state == 'open']
