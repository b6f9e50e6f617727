"""Reading Kraken Futures' parameters and writing its replies, for the futures sandbox.

:class:`Refusal` is one of Kraken Futures' error codes; the functions read a
request's parameters as Kraken reads them (a parameter an endpoint does not
know is refused, never ignored) and write times and numbers as Kraken does.
Standard library only.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

__all__ = ['Refusal', 'iso', 'parse_time', 'plain', 'decimal', 'boolean', 'parse', 'only',
           'need', 'listed', 'wire']

D = Decimal


class Refusal(Exception):
    """One of Kraken Futures' error codes, sent as ``{"result": "error", "error": code}``."""

    def __init__(self, code: str, status: int = 200) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


def iso(when: float) -> str:
    stamp = datetime.fromtimestamp(when, timezone.utc)
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.') + f'{stamp.microsecond // 1000:03d}Z'


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()
    except ValueError:
        raise Refusal('invalidArgument') from None


def plain(value: Any) -> Any:
    """JSON numbers for Decimals, as Kraken Futures sends them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f'{type(value).__name__} is not JSON')


def decimal(params: dict[str, str], name: str, *, required: bool = False) -> Decimal | None:
    text = params.get(name)
    if text is None:
        if required:
            raise Refusal('requiredArgumentMissing')
        return None
    try:
        value = D(text)
    except InvalidOperation:
        raise Refusal('invalidArgument') from None
    if not value.is_finite():
        raise Refusal('invalidArgument')
    return value


def boolean(params: dict[str, str], name: str) -> bool:
    text = params.get(name, 'false').lower()
    if text not in ('true', 'false'):
        raise Refusal('invalidArgument')
    return text == 'true'


def parse(query: str, body: bytes) -> dict[str, str]:
    """The parameters of the query string and a form body; a repeated name is refused."""
    pairs = parse_qsl(query, keep_blank_values=True) + \
        parse_qsl(body.decode('utf-8', 'replace'), keep_blank_values=True)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            params[name] += ',' + value  # orders/status takes repeated ids
        else:
            params[name] = value
    return params


def only(params: dict[str, str], allowed: set[str]) -> None:
    """Refuse a parameter the endpoint does not know: never accept and ignore it."""
    if set(params) - allowed:
        raise Refusal('invalidArgument')


def need(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == '':
        raise Refusal('requiredArgumentMissing')
    return value


def listed(value: str | None) -> list[str]:
    if not value:
        return []
    text = value.strip()
    if text.startswith('['):
        try:
            items = json.loads(text)
        except ValueError:
            raise Refusal('Json Parse Error') from None
        return [str(i) for i in items] if isinstance(items, list) else []
    return [v for v in re.split(r'[,\s]+', text) if v]


def wire(value: Any) -> str:
    """A batch instruction's JSON value as the text a form parameter would carry."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return format(D(repr(value)), 'f') if isinstance(value, float) else str(value)
