"""Reading a request's parameters as Kraken reads them.

Every reader raises :class:`ApiError` with Kraken's
``EGeneral:Invalid arguments:<name>`` for a value it cannot use, whatever the
value: hostile numbers (``1e400``, ``nan``, ``sNaN``, ``²``), wrong JSON types or
deep nesting never reach the exchange. Numbers are read from their text only
(JSON numbers arrive as their literal text), with ASCII digits only.
"""

from __future__ import annotations

import json
import re
from contextlib import AbstractContextManager
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import parse_qs

from .market import PAIRS, PairSpec, find_pair

__all__ = ['ApiError', 'Params', 'MAX_NUMBER', 'invalid', 'text', 'required', 'number',
           'amount', 'optional_amount', 'integer', 'flag', 'id_list', 'indexed',
           'requested_pairs', 'requested_pair', 'parse_body', 'parse_query', 'arithmetic']

Params = dict[str, Any]

#: The largest volume, price or amount the sandbox takes; larger ones are invalid
#: arguments (no spot market or account comes near it).
MAX_NUMBER = Decimal(10) ** 12

_DECIMAL = re.compile(r'[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?')
_INTEGER = re.compile(r'[+-]?[0-9]{1,30}')


class ApiError(Exception):
    """A Kraken error string, sent back as ``{"error": [message]}`` with HTTP 200."""


def invalid(name: str = '') -> ApiError:
    """Kraken's ``EGeneral:Invalid arguments`` error, naming the parameter if given."""
    return ApiError('EGeneral:Invalid arguments' + (f':{name}' if name else ''))


def text(params: Params, name: str, default: str | None = None) -> str | None:
    """A parameter as text (JSON numbers arrive as their literal text, booleans as words)."""
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return value
    raise invalid(name)


def required(params: Params, name: str) -> str:
    """A parameter that must be present and not empty."""
    value = text(params, name)
    if not value:
        raise invalid(name)
    return value


def number(value: str, name: str) -> Decimal:
    """A finite decimal written with ASCII digits, at most :data:`MAX_NUMBER` in size."""
    if not _DECIMAL.fullmatch(value.strip()):
        raise invalid(name)
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation:
        raise invalid(name) from None
    if abs(parsed) > MAX_NUMBER:
        raise invalid(name)
    return parsed


def amount(params: Params, name: str) -> Decimal:
    """A required positive decimal parameter."""
    value = number(required(params, name), name)
    if value <= 0:
        raise invalid(name)
    return value


def optional_amount(params: Params, name: str) -> Decimal | None:
    """A positive decimal parameter, or None if it is absent."""
    return None if params.get(name) in (None, '') else amount(params, name)


def integer(params: Params, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter within ``[low, high]``; ``default`` if absent or empty."""
    value = text(params, name)
    if value is None or value == '':
        return default
    if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise invalid(name)
    return int(value)


def flag(params: Params, name: str) -> bool:
    """A boolean parameter: ``true``/``1``/``yes`` (any case) or JSON ``true``."""
    value = params.get(name)
    return value is True or str(value).lower() in ('true', '1', 'yes')


def id_list(value: object, name: str) -> list[str]:
    """A comma-separated or JSON list of ids."""
    if value is None or value == '':
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(',') if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise invalid(name)


def indexed(params: Params, name: str) -> object:
    """``name`` as a list: a JSON list, or form keys ``name[0][field]`` / ``name[0]``."""
    if name in params:
        return params[name]
    pattern = re.compile(re.escape(name) + r'\[([0-9]{1,4})\](?:\[(\w+)\])?')
    rows: dict[int, Any] = {}
    for key, value in params.items():
        match = pattern.fullmatch(key)
        if match:
            index, sub = int(match.group(1)), match.group(2)
            if sub is None:
                rows[index] = value
            else:
                row = rows.setdefault(index, {})
                if not isinstance(row, dict):
                    raise invalid(name)
                row[sub] = value
    return [rows[i] for i in sorted(rows)] if rows else None


def requested_pairs(params: Params, *, required: bool) -> list[PairSpec]:
    """The pairs named by ``pair`` (one or a comma-separated list); every pair if none
    is named and none is ``required``."""
    names = id_list(params.get('pair'), 'pair')
    if not names:
        if required:
            raise invalid('pair')
        return list(PAIRS.values())
    found = [find_pair(name) for name in names]
    if any(spec is None for spec in found):
        raise ApiError('EQuery:Unknown asset pair')
    return [spec for spec in found if spec is not None]


def requested_pair(params: Params) -> PairSpec:
    """The one pair named by ``pair``, which is required."""
    pairs = requested_pairs(params, required=True)
    if len(pairs) != 1:
        raise invalid('pair')
    return pairs[0]


def parse_body(content_type: str, body: bytes) -> Params:
    """A form or JSON body as a dict; JSON numbers keep their literal text."""
    try:
        decoded = body.decode('utf-8')
        if content_type.split(';')[0].strip().lower() == 'application/json':
            params = (json.loads(decoded, parse_int=str, parse_float=str,
                                 parse_constant=_no_constant) if decoded.strip() else {})
        else:
            params = parse_query(decoded)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid() from None
    if not isinstance(params, dict):
        raise invalid()
    return params


def parse_query(query: str) -> Params:
    """A query string or form body as a dict (the first value of a repeated key wins)."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _no_constant(name: str) -> object:
    raise ValueError(f'{name} is not JSON')  # NaN, Infinity and -Infinity


def arithmetic() -> AbstractContextManager[Context]:
    """A decimal context with room for any product of accepted numbers, exactly."""
    return localcontext(Context(prec=60))
