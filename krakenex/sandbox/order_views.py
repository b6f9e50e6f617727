"""How the sandbox writes an order back: AddOrder's ``descr``, and the prices EditOrder keeps."""

from __future__ import annotations

from .exchange import Order

__all__ = ['descr', 'prices_of']


def descr(order: Order) -> dict[str, str]:
    """AddOrder's ``descr``: the order, and its conditional close when it has one (Kraken's
    example: ``"close": "close position @ stop loss 38000.0 -> limit 36000.0"``)."""
    text = {'order': order.description()}
    if order.close_order is not None:
        text['close'] = order.close_description()
    return text


def prices_of(order: Order) -> dict[str, str]:
    """An open order's ``price`` and ``price2`` as AddOrder took them, for EditOrder to keep
    what the edit does not change."""
    if order.trailing is not None:
        prices = {'price': f'+{order.trailing:f}' + ('%' if order.trailing_percent else '')}
    else:
        prices = {'price': '' if order.price is None else f'{order.price:f}'}
    if order.limit_offset is not None:
        prices['price2'] = f'{order.limit_offset:+f}' + ('%' if order.limit_percent else '')
    elif order.price2 is not None:
        prices['price2'] = f'{order.price2:f}'
    return prices
