"""Kraken's names for the sandbox's deposit and withdrawal methods and networks, by asset.

DepositMethods, DepositAddresses, WithdrawMethods, WithdrawAddresses,
WithdrawInfo, DepositStatus and WithdrawStatus all name a method (and the
withdrawals a network) as Kraken names them, so a client that looks a method up
by its name (ccxt's ``fetch_deposit_address`` takes ``Bitcoin`` for BTC) finds it.
The crypto names are Kraken's; a US dollar bank method's is the sandbox's choice.
"""

from __future__ import annotations

__all__ = ['METHODS', 'method', 'network']

#: Kraken's method name and network name of each asset's one funding route.
METHODS: dict[str, tuple[str, str]] = {
    'XXBT': ('Bitcoin', 'Bitcoin'),
    'XETH': ('Ether (Hex)', 'Ethereum'),
    'SOL': ('Solana', 'Solana'),
    'ZUSD': ('Bank Frick (SWIFT)', 'SWIFT'),
}


def method(asset: str) -> str:
    """The funding method of ``asset`` (Kraken's asset name, ``XXBT``), as Kraken names it."""
    return METHODS[asset][0]


def network(asset: str) -> str:
    """The network a withdrawal of ``asset`` goes over, as Kraken names it."""
    return METHODS[asset][1]
