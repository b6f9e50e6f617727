"""What the sandbox sends back: Kraken's JSON envelope, error pages and formats.

A :class:`Reply` is an HTTP status, a body and headers; the server writes it to
the connection. Every route, including ones that other modules register with
:meth:`krakenex.sandbox.Sandbox.add_route`, answers with one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

__all__ = ['Reply', 'envelope', 'error', 'html', 'cloudflare', 'text', 'iso', 'iso_ns']

_CLOUDFLARE_TITLES = {520: 'Web server is returning an unknown error', 502: 'Bad gateway',
                      504: 'Gateway time-out'}


@dataclass
class Reply:
    """An HTTP reply: status, body and the headers that go with it."""

    status: int
    body: bytes
    content_type: str = 'application/json; charset=utf-8'
    headers: dict[str, str] = field(default_factory=dict)


def envelope(value: object) -> Reply:
    """``value`` as compact JSON with HTTP 200 (Kraken's ``{"error": [], "result": ...}``)."""
    return Reply(200, json.dumps(value, separators=(',', ':')).encode())


def error(message: str) -> Reply:
    """Kraken's refusal: HTTP 200 with ``{"error": [message]}``."""
    return envelope({'error': [message]})


def html(status: int, title: str, extra: dict[str, str] | None = None) -> Reply:
    """A small HTML page, as the web servers in front of Kraken send for HTTP errors."""
    page = f'<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n'
    return Reply(status, page.encode(), 'text/html; charset=UTF-8', extra or {})


def text(status: int, body: str) -> Reply:
    """A plain-text reply."""
    return Reply(status, body.encode(), 'text/plain; charset=utf-8')


def cloudflare(status: int) -> Reply:
    """The HTML error page Cloudflare serves in front of api.kraken.com (520, 502, 504)."""
    title = f'api.kraken.com | {status}: {_CLOUDFLARE_TITLES[status]}'
    return html(status, title, {'Server': 'cloudflare', 'CF-RAY': f'{os.urandom(8).hex()}-AMS'})


def iso(when: float) -> str:
    """A Unix time as Kraken's ISO 8601 text, e.g. ``2024-01-02T03:04:05Z``."""
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(when))


def iso_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 with nine decimals (``...T03:04:05.123456789Z``),
    as Kraken writes the times of orders and trades in PostTrade and level3."""
    seconds, rest = divmod(ns, 10**9)
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds)) + f'.{rest:09d}Z'
