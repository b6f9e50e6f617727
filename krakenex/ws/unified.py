"""Kraken's Unified WebSocket rules, without I/O: endpoints, ``asset_class``, derivatives rules.

The Unified WebSocket (UWS) speaks WebSocket v2's messages plus ``asset_class``, on
``wss://uws.kraken.com/v2/public`` and ``/v2/private``, with tokens from spot REST
``GetWebSocketsToken``. It replaces the Derivatives REST API and WebSocket, which Kraken
ends on 1 March 2027; only ``derivatives`` is served until spot arrives there.
:class:`Unified` checks and completes each request; :class:`Positions` and :class:`Margin`
fold the ``positions`` and ``margin`` channels into the views users read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import KrakenUsageError
from .protocol import AUTH, ORDER_METHODS, PUBLIC

__all__ = ['Unified', 'Positions', 'Margin', 'DERIVATIVES', 'ASSET_CLASS_CHANNELS',
           'ASSET_CLASS_METHODS', 'NO_ASSET_CLASS', 'PRIVATE', 'SEQUENCED', 'ONE_PER_CONNECTION',
           'REFUSED_FOR_DERIVATIVES']

#: The asset class the Unified WebSocket serves now (spot is planned for 2027).
DERIVATIVES = 'derivatives'

#: Channels whose subscribe and unsubscribe take ``asset_class``.
ASSET_CLASS_CHANNELS = frozenset({'ticker', 'book', 'trade', 'ohlc', 'instrument',
                                  'executions', 'margin', 'positions'})

#: Methods that take ``asset_class``.
ASSET_CLASS_METHODS = frozenset({'add_order', 'batch_add', 'amend_order', 'cancel_order',
                                 'cancel_all', 'batch_cancel', 'set_preference'})

#: Channels and methods Kraken refuses ``asset_class`` for (ledgers with
#: ``'params.asset_class' is not valid for the ledgers channel``), or that do not take it.
NO_ASSET_CLASS = frozenset({'ledgers', 'balances', 'preferences', 'status', 'heartbeat',
                            'ping', 'cancel_all_orders_after'})

#: Channels and methods on the private endpoint, sent with a token.
PRIVATE = frozenset({'executions', 'balances', 'positions', 'margin', 'ledgers',
                     'preferences', 'set_preference', *ORDER_METHODS})

#: Private channels that number their messages per connection (``sequence``).
SEQUENCED = frozenset({'executions', 'balances', 'ledgers'})

#: Channels Kraken lets a connection subscribe to once (``Already subscribed to ...``).
ONE_PER_CONNECTION = frozenset({'positions', 'margin'})

#: Order fields Kraken refuses for derivatives, and what to do instead.
REFUSED_FOR_DERIVATIVES = {
    'display_qty': 'leave it out',
    'expire_time': 'leave it out',
    'fee_preference': 'leave it out',
    'margin': 'leave it out',
    'order_userref': 'use cl_ord_id to name your orders',
}

#: The methods whose parameters (or each of whose ``orders``) are orders checked against
#: :data:`REFUSED_FOR_DERIVATIVES`.
_ORDER_FIELDS_METHODS = frozenset({'add_order', 'batch_add', 'amend_order', 'cancel_order'})


class Unified:
    """One client's Unified WebSocket rules: where each request goes, what it must carry.

    :param asset_class: added to every request that takes it and does not name its own
    """

    def __init__(self, asset_class: str = DERIVATIVES) -> None:
        if not isinstance(asset_class, str) or not asset_class:
            raise KrakenUsageError(f"asset_class must be Kraken's name for one, such as "
                                   f"{DERIVATIVES!r}, not {asset_class!r}")
        self.asset_class = asset_class

    def __repr__(self) -> str:
        return f'Unified(asset_class={self.asset_class!r})'

    @staticmethod
    def endpoint(channel_or_method: str) -> str:
        """The endpoint a channel or method goes to: :data:`~krakenex.ws.protocol.AUTH`
        (``/v2/private``, with a token) or :data:`~krakenex.ws.protocol.PUBLIC`.

        :raises KrakenUsageError: for ``level3``, which krakenex does not speak on the UWS
        """
        if channel_or_method == 'level3':
            raise KrakenUsageError('krakenex does not subscribe to level3 on the Unified '
                                   'WebSocket; use a spot client, AsyncWS() or WS()')
        return AUTH if channel_or_method in PRIVATE else PUBLIC

    def check_subscription(self, channel: str, params: Mapping[str, Any]) -> None:
        """Refuse a subscription Kraken would refuse, before anything is sent.

        :raises KrakenUsageError: for ``asset_class`` on ledgers, ``snapshot`` on margin, or
            ``snapshot`` together with ``with_margin`` on positions
        """
        if channel in NO_ASSET_CLASS and 'asset_class' in params:
            raise KrakenUsageError(f"{channel} takes no asset_class on the Unified WebSocket "
                                   f"(Kraken: 'params.asset_class' is not valid for the "
                                   f"{channel} channel); leave it out")
        if channel == 'margin' and 'snapshot' in params:
            raise KrakenUsageError("margin takes no snapshot parameter (Kraken: "
                                   "'params.snapshot' is not valid for the margin channel): "
                                   "it sends the current margin on subscribing anyway")
        if channel == 'positions' and params.get('with_margin') and 'snapshot' in params:
            raise KrakenUsageError('positions takes snapshot or with_margin, never both '
                                   '(Kraken refuses the pair); leave snapshot out')

    def check_request(self, method: str, params: Mapping[str, Any]) -> None:
        """Refuse a request with a field Kraken refuses for derivatives, before it is sent.

        :raises KrakenUsageError: naming the field, and what to use instead
        """
        if method in NO_ASSET_CLASS and 'asset_class' in params:
            raise KrakenUsageError(f'{method} takes no asset_class on the Unified WebSocket; '
                                   f'leave it out')
        if method not in _ORDER_FIELDS_METHODS \
                or params.get('asset_class', self.asset_class) != DERIVATIVES:
            return
        orders = params.get('orders')
        for order in [params, *(orders if isinstance(orders, list) else ())]:
            if not isinstance(order, Mapping):
                continue
            for field, why in REFUSED_FOR_DERIVATIVES.items():
                if field in order:
                    raise KrakenUsageError(f'{method} was not sent: Kraken refuses {field} '
                                           f'for derivatives ({why})')

    def outgoing(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A request's parameters as they go out: ``asset_class`` added where it is taken and
        not given (the caller's own wins)."""
        channel = params.get('channel') if method in ('subscribe', 'unsubscribe') else method
        if channel in ASSET_CLASS_CHANNELS or channel in ASSET_CLASS_METHODS:
            return {**params, 'asset_class': params.get('asset_class', self.asset_class)}
        return dict(params)


class Positions:
    """Open positions by symbol, from the ``positions`` channel: its snapshot, then the
    updates that carry the positions that changed; a size of 0 closes one.

    :attr:`current` is ``None`` until the snapshot of the connection has come.
    """

    def __init__(self) -> None:
        self.current: dict[str, dict[str, Any]] | None = None

    def reset(self) -> None:
        """The connection is gone: wait for the next one's snapshot."""
        self.current = None

    def apply(self, message: Mapping[str, Any]) -> None:
        """Fold one ``positions`` message in; an update before the snapshot is not kept.

        :raises ValueError: for data that is not Kraken's shape (the view then waits for
            a new snapshot)
        """
        snapshot = message.get('type') == 'snapshot'
        if not snapshot and self.current is None:
            return
        try:
            entries = _entries(message.get('data'))
        except ValueError:
            self.current = None
            raise
        current = {} if snapshot else dict(self.current or {})
        for entry in entries:
            if entry['size'] == 0:
                current.pop(entry['symbol'], None)
            else:
                current[entry['symbol']] = entry
        self.current = current


def _entries(data: Any) -> list[dict[str, Any]]:
    """The positions of a message's ``data`` (``futures`` and ``options`` lists), checked."""
    if not isinstance(data, dict):
        raise ValueError('a positions message whose data is not an object')
    found: list[dict[str, Any]] = []
    for kind in ('futures', 'options'):
        entries = data.get(kind, [])
        if not isinstance(entries, list):
            raise ValueError(f'a positions message whose {kind} is not a list')
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get('symbol'), str) \
                    or isinstance(entry.get('size'), (bool, str, type(None))):
                raise ValueError(f'a position without a symbol and a size: {entry!r:.100}')
            found.append(entry)
    return found


class Margin:
    """The account's margin, from the ``margin`` channel: :attr:`current` is the latest state
    (each message's fields over the ones before), ``None`` until the first of a connection."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None

    def reset(self) -> None:
        """The connection is gone: wait for the next one's state."""
        self.current = None

    def apply(self, message: Mapping[str, Any]) -> None:
        """Fold one ``margin`` message in.

        :raises ValueError: for data that is not a list of one object
        """
        data = message.get('data')
        if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
            raise ValueError('a margin message whose data is not a list of objects')
        state = {} if message.get('type') == 'snapshot' or self.current is None \
            else dict(self.current)
        for entry in data:
            state.update(entry)
        self.current = state
