"""Reading Kraken Futures' parameters and writing its replies, for the futures sandbox.

:class:`Refusal` is one of Kraken Futures' error codes; the functions read a
request's parameters as Kraken reads them (a parameter an endpoint does not
know is refused, never ignored) and write times and numbers as Kraken does.

Numbers are read as Kraken's parsers read them, not as Python's: ASCII digits
with an optional sign, fraction and exponent, and nothing else. Python's
``Decimal``, ``int`` and ``float`` also take surrounding spaces (``' 1'``),
underscores (``'1_0'``) and the digits of other scripts (``'١'``); Kraken
refuses all three, and so does the sandbox. JSON in a parameter is read with
bounds: nesting it cannot parse is ``Json Parse Error``, a nested value where
a plain one belongs is ``invalidArgument``. Standard library only.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

__all__ = ['Refusal', 'iso', 'parse_time', 'plain', 'number', 'decimal', 'integer', 'whole',
           'boolean', 'parse', 'only', 'need', 'listed', 'load_json', 'wire', 'LARGEST',
           'MAX_FIELDS']

D = Decimal

#: A number as Kraken reads one (``[0-9]``, not ``\d``: that matches every script's digits).
NUMBER = re.compile(r'[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?')
INTEGER = re.compile(r'-?[0-9]+')
MAX_NUMBER_TEXT = 64  # characters; a longer number is refused before it is read
#: The magnitude the sandbox reads a number up to; a larger one is refused (invalidArgument),
#: so no size, price or time it keeps grows past what a reply can carry.
LARGEST = D('1e18')
#: Parameters one request may carry (query string and body together).
MAX_FIELDS = 1000


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
        if value.is_finite() and abs(value) < LARGEST and value == value.to_integral_value():
            return int(value)
        return float(value)
    raise TypeError(f'{type(value).__name__} is not JSON')


def number(text: str, *, status: int = 200) -> Decimal:
    """``text`` as a number, read as Kraken reads one.

    :raises Refusal: ``invalidArgument`` (with ``status``) for anything else: spaces,
        underscores, other scripts' digits, ``NaN``, ``Infinity``, or a magnitude of
        :data:`LARGEST` or more
    """
    if len(text) > MAX_NUMBER_TEXT or not NUMBER.fullmatch(text):
        raise Refusal('invalidArgument', status)
    try:
        value = D(text)
    except InvalidOperation:
        raise Refusal('invalidArgument', status) from None
    if abs(value) >= LARGEST:
        raise Refusal('invalidArgument', status)
    return value


def decimal(params: dict[str, str], name: str, *, required: bool = False) -> Decimal | None:
    """The number ``name`` (see :func:`number`), or None if not given.

    :raises Refusal: ``requiredArgumentMissing`` if ``required`` and not given
    """
    text = params.get(name)
    if text is None:
        if required:
            raise Refusal('requiredArgumentMissing')
        return None
    return number(text)


def integer(params: dict[str, str], name: str, default: int, *, status: int = 200) -> int:
    """The whole number ``name`` (ASCII digits, an optional minus), or ``default``.

    :raises Refusal: ``invalidArgument`` (with ``status``) for anything else
    """
    text = params.get(name)
    return default if text is None else whole(text, status=status)


def whole(text: str, *, status: int = 200) -> int:
    """``text`` as a whole number: ASCII digits and an optional minus, 19 digits at most.

    :raises Refusal: ``invalidArgument`` (with ``status``) for anything else
    """
    if len(text) > 20 or not INTEGER.fullmatch(text) or len(text.lstrip('-')) > 19:
        raise Refusal('invalidArgument', status)
    return int(text)


def boolean(params: dict[str, str], name: str) -> bool:
    text = params.get(name, 'false').lower()
    if text not in ('true', 'false'):
        raise Refusal('invalidArgument')
    return text == 'true'


def parse(query: str, body: bytes) -> dict[str, str]:
    """The parameters of the query string and a form body; the values of a repeated name
    are joined with commas (``orders/status`` takes repeated ids).

    :raises Refusal: ``invalidArgument`` beyond :data:`MAX_FIELDS` parameters
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS) + \
            parse_qsl(body.decode('utf-8', 'replace'), keep_blank_values=True,
                      max_num_fields=MAX_FIELDS)
    except ValueError:  # more fields than allowed
        raise Refusal('invalidArgument') from None
    if len(pairs) > MAX_FIELDS:
        raise Refusal('invalidArgument')
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return {name: ','.join(each) for name, each in values.items()}


def only(params: dict[str, str], allowed: set[str]) -> None:
    """Refuse a parameter the endpoint does not know: never accept and ignore it."""
    if set(params) - allowed:
        raise Refusal('invalidArgument')


def need(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == '':
        raise Refusal('requiredArgumentMissing')
    return value


def load_json(text: str) -> Any:
    """JSON from a parameter.

    :raises Refusal: ``Json Parse Error`` if it is not JSON, or nests deeper than the
        parser goes
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Refusal('Json Parse Error') from None


def listed(value: str | None) -> list[str]:
    """Ids given as a JSON list (``["a","b"]``) or separated by commas or spaces.

    :raises Refusal: ``Json Parse Error`` for a list that is not JSON; ``invalidArgument``
        for a list whose items are not plain ids (nested lists, objects, ``null``)
    """
    if not value:
        return []
    text = value.strip()
    if text.startswith('['):
        items = load_json(text)
        if not isinstance(items, list) or not all(
                isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool))
                for i in items):
            raise Refusal('invalidArgument')
        return [str(i) for i in items]
    return [v for v in re.split(r'[,\s]+', text) if v]


def wire(value: Any) -> str:
    """A batch instruction's JSON value as the text a form parameter would carry."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return format(D(repr(value)), 'f') if isinstance(value, float) else str(value)
