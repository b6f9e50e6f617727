"""Kraken's end date for its Derivatives (Futures) REST API, and what krakenex says about it.

Kraken decommissions the REST API that :mod:`krakenex.futures` speaks, and
the Derivatives WebSocket v1 with it, on :data:`DECOMMISSIONED`; the
replacement is Kraken's Unified WebSocket (:data:`REPLACEMENT`). Until then
the first call of a process warns once (:class:`KrakenSunsetWarning`); from
that date on, a call to Kraken's own futures host (:data:`HOST`) that fails
the way a server that is gone fails says why. A sandbox keeps serving the
futures REST API whatever the date. Standard library only.
"""

from __future__ import annotations

import datetime
import threading
import urllib.parse
import warnings

from ..errors import (
    KrakenConnectionError,
    KrakenError,
    KrakenTimeout,
    KrakenUsageError,
    ShareUnavailableError,
)

__all__ = ['DECOMMISSIONED', 'SOURCE', 'HOST', 'REPLACEMENT', 'GUIDE', 'NOTICE',
           'KrakenSunsetWarning', 'today', 'announce', 'decommissioned', 'explain']

#: The day Kraken decommissions its Derivatives REST API and Derivatives WebSocket v1.
DECOMMISSIONED = datetime.date(2027, 3, 1)
#: Where Kraken says so (the banner of its Derivatives REST reference).
SOURCE = 'https://docs.kraken.com/exchange/api-reference/futures-rest'
#: Kraken's futures host; calls to any other host (a sandbox) are never explained by the date.
HOST = 'futures.kraken.com'

_DAY = f'{DECOMMISSIONED.day} {DECOMMISSIONED:%B %Y}'

#: What Kraken offers instead, and how krakenex speaks it.
REPLACEMENT = ("Kraken's Unified WebSocket (wss://uws.kraken.com/v2), which krakenex speaks as "
               "krakenex.ws.WS(api, unified=True, asset_class='derivatives')")
#: Where each endpoint's counterpart is listed.
GUIDE = "'Leaving Kraken Futures REST' in krakenex's documentation (doc/futures-migration.rst)"

#: The sentence krakenex shows once per process, also meant for ``krakenex --futures``'s stderr.
NOTICE = (f"Kraken decommissions its Derivatives (Futures) REST API, which krakenex.futures "
          f"speaks, on {_DAY}; from then on its calls to {HOST} fail. Move to {REPLACEMENT}; "
          f"see {GUIDE}.")


class KrakenSunsetWarning(FutureWarning):
    """krakenex.futures speaks an API Kraken turns off on :data:`DECOMMISSIONED`.

    Shown once per process, at the first futures call. Silence it alone with
    ``warnings.filterwarnings('ignore', category=KrakenSunsetWarning)``.
    """


def today() -> datetime.date:
    """The date in UTC: the clock the end date is read against (tests replace this function)."""
    return datetime.datetime.now(datetime.timezone.utc).date()


_announced = threading.Event()
_announcing = threading.Lock()


def announce(stacklevel: int = 4) -> None:
    """Warn with :data:`NOTICE`, the first time this is called in the process only.

    :param stacklevel: as for :func:`warnings.warn`; the default names the line
        that called a client's ``query_*`` method
    """
    if _announced.is_set():
        return
    with _announcing:
        if _announced.is_set():
            return
        _announced.set()
    warnings.warn(NOTICE, KrakenSunsetWarning, stacklevel=stacklevel)


#: HTTP statuses with which a host says a path is gone, or sends it elsewhere.
_GONE = frozenset({404, 410, 301, 302, 303, 307, 308})


def decommissioned(uri: str, error: BaseException, day: datetime.date) -> bool:
    """Whether ``error``, from a call to ``uri`` on ``day``, is what Kraken's end date explains.

    That is so on or after :data:`DECOMMISSIONED`, for a call to :data:`HOST`,
    that failed below HTTP (no connection, a timeout, a dropped connection)
    or got a reply a server that no longer offers the API gives: 404, 410, a
    redirect, or an HTML page. Kraken's own answers (``"result": "error"``)
    and mistakes caught before sending are never explained so.
    """
    if day < DECOMMISSIONED or not isinstance(error, KrakenError) or \
            isinstance(error, (KrakenUsageError, ShareUnavailableError)):
        return False
    if (urllib.parse.urlsplit(uri).hostname or '').lower() != HOST:
        return False
    if isinstance(error, (KrakenConnectionError, KrakenTimeout)):
        return True
    headers = getattr(error.response, 'headers', None) or {}
    html = (error.body or '').lstrip()[:1] == '<' or \
        'html' in str(headers.get('Content-Type') or '').lower()
    return error.status in _GONE or (error.status is not None and html)


def explain(error: KrakenError, uri: str) -> KrakenError:
    """``error``, its message led by Kraken's end date if that explains it (:func:`decommissioned`).

    The error stays the same object, of the same class and with the same
    evidence: a call that was not sent stays :class:`~krakenex.NotSentError`,
    an order whose outcome is unknown stays :class:`~krakenex.OutcomeUnknownError`.
    """
    if decommissioned(uri, error, today()):
        error.args = (f'Kraken decommissioned its Derivatives (Futures) REST API on {_DAY}, '
                      f'the likely reason this call to {HOST} failed; move to {REPLACEMENT} '
                      f'(see {GUIDE}). {error}', *error.args[1:])
    return error
