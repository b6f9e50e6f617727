"""The Unified WebSocket's ``asset_class`` rules, its refusals' texts, and what its channels
and methods need of the server (:class:`Venue`, :class:`Connection`).

Kraken documents one text (the ``ledgers`` refusal); the others are the
sandbox's assumptions, listed in ``doc/sandbox.rst``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .futures.accounts import FuturesAccount
    from .futures.exchange import FuturesExchange

__all__ = ['Venue', 'Connection', 'ASSET_CLASS_MISSING', 'SPOT_NOT_YET', 'LEDGERS_ASSET_CLASS',
           'asset_class_error', 'derivatives_refused', 'not_valid']

#: A request that needs ``asset_class`` and lacks it, or names an unknown one.
ASSET_CLASS_MISSING = 'EGeneral:Invalid arguments:asset_class'
#: ``asset_class: "spot"`` (Kraken: spot over the Unified WebSocket is planned for Q1 2027).
SPOT_NOT_YET = 'EGeneral:Invalid arguments:asset_class spot is not available yet'
#: Kraken's documented refusal of ``asset_class`` on the ``ledgers`` channel.
LEDGERS_ASSET_CLASS = "'params.asset_class' is not valid for the ledgers channel"


def asset_class_error(params: dict[str, Any]) -> str | None:
    """Why a request that needs ``asset_class: "derivatives"`` is refused, or None."""
    value = params.get('asset_class')
    if value == 'derivatives':
        return None
    return SPOT_NOT_YET if value == 'spot' else ASSET_CLASS_MISSING


def not_valid(field: str, channel: str) -> str:
    """Kraken's refusal of a parameter a private channel does not take."""
    return f"'params.{field}' is not valid for the {channel} channel"


def derivatives_refused(field: str) -> str:
    """The refusal of an order field derivatives do not take."""
    return f'EGeneral:Invalid arguments:{field} is not supported for derivatives'


class Venue(Protocol):
    """What the trading methods and private channels need of the Unified WebSocket's server."""

    @property
    def exchange(self) -> FuturesExchange:
        """The futures sandbox that holds the market and the accounts."""

    def account(self, key: str) -> FuturesAccount:
        """The futures account a spot key trades in."""


class Connection(Protocol):
    """What the private channels need of one Unified WebSocket connection."""

    @property
    def unified(self) -> Venue:
        """The server the connection belongs to."""

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the subscriber."""

    def ack(self, head: dict[str, Any], result: dict[str, Any]) -> None:
        """Acknowledge the request of ``head`` with ``result``."""

    def refuse(self, head: dict[str, Any], error: str, **extra: Any) -> None:
        """Refuse the request of ``head`` with ``error``."""

    def check_token(self, params: dict[str, Any]) -> tuple[str | None, str]:
        """The key behind the request's token, or the error that refuses it."""
