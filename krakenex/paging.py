"""Every row of Kraken's paged methods, each exactly once.

Kraken pages its history two ways (https://docs.kraken.com/api/docs/rest-api/get-ledgers,
https://docs.kraken.com/api/docs/rest-api/get-recent-trades):

* ``Ledgers``, ``TradesHistory`` and ``ClosedOrders`` answer 50 rows a page,
  newest first, keyed by id, with the total in ``count``; the offset ``ofs``
  picks the page.
* ``Trades``, ``OHLC`` and ``Spread`` answer the rows after ``since``, oldest
  first, and a cursor ``last`` to pass as the next ``since``.

:func:`rows` follows either to the end::

    from krakenex import API, paging

    api = API(tier='starter')
    api.load_key('kraken.key')
    for ledger_id, entry in paging.rows(api, 'Ledgers', {'asset': 'XXBT'}):
        print(ledger_id, entry['amount'])

A new entry booked while the pages are fetched shifts Kraken's pages by one;
the row that shifts onto the next page is recognised by its id and not given
twice. Calls are paced under Kraken's rate counter (see :func:`rows`), and a
progress bar is shown where someone can see it. Standard library only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from . import methods
from .pacing import RateCounter

if TYPE_CHECKING:
    from .aio import AsyncAPI
    from .api import API

    #: What the functions here and in :mod:`krakenex.frames` call Kraken with.
    Client = API | AsyncAPI

__all__ = ['PAGED', 'OFS_PAGED', 'SINCE_PAGED', 'Progress', 'rows', 'fetch_all', 'is_async',
           'checked_result']

log = logging.getLogger('krakenex')

#: The ofs-paged methods and the member of their result that holds the rows by id.
OFS_PAGED = {'ClosedOrders': 'closed', 'TradesHistory': 'trades', 'Ledgers': 'ledger'}

#: The since/last-paged methods: their result is ``{PAIR: rows, 'last': cursor}``.
#: Each row is a list; these are its columns, from Kraken's docs, and where its time is.
SINCE_PAGED: dict[str, tuple[tuple[str, ...], int]] = {
    'OHLC': (('time', 'open', 'high', 'low', 'close', 'vwap', 'volume', 'count'), 0),
    'Trades': (('price', 'volume', 'time', 'side', 'type', 'misc', 'trade_id'), 2),
    'Spread': (('time', 'bid', 'ask'), 0),
}

#: Every method :func:`rows` can page.
PAGED = (*OFS_PAGED, *SINCE_PAGED)

#: Kraken's advice for public calls: about one a second per IP address.
PUBLIC_RATE = 1.0

#: The tier paced under when the API object paces nothing itself: the lowest, so always safe.
DEFAULT_TIER = 'starter'

#: ``Trades`` rows a page unless ``count`` says otherwise; a shorter page is the present.
TRADES_PAGE = 1000

Row = tuple[str, Any]


class ProgressDisplay(Protocol):
    """What :func:`rows` tells about its progress: :class:`Progress` or your own."""

    def update(self, pages: int, rows: int, total: int | None) -> None: ...

    def close(self) -> None: ...


class Progress:
    """A one-line progress bar on a terminal: pages fetched, rows so far, of how many.

    :param label: what is fetched, shown first (the method name)
    :param stream: where to draw the bar, or ``None`` for no bar at all
    """

    width = 30

    def __init__(self, label: str, stream: TextIO | None) -> None:
        self.label = label
        self.stream = stream
        self.drawn = False

    def update(self, pages: int, rows: int, total: int | None) -> None:
        """Redraw the bar after a page."""
        if self.stream is None:
            return
        if total:
            filled = min(self.width, rows * self.width // total)
            bar = f'[{"#" * filled}{"." * (self.width - filled)}] {rows}/{total} rows'
        else:
            bar = f'{rows} rows'
        text = f'{self.label}: {bar}, {pages} page{"s" if pages != 1 else ""}'
        self.stream.write(f'\r{text}\x1b[K')
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the bar's line, so that what follows starts on a line of its own."""
        if self.stream is not None and self.drawn:
            self.stream.write('\n')
            self.stream.flush()


class _NotebookProgress:
    """tqdm's bar (its notebook widget when ipywidgets is there), from the second page on."""

    def __init__(self, label: str, bar: Callable[..., Any]) -> None:
        self.label = label
        self.make = bar
        self.bar: Any = None

    def update(self, pages: int, rows: int, total: int | None) -> None:
        if self.bar is None:
            if pages < 2:
                return  # one page is over before a bar would help
            self.bar = self.make(desc=self.label, unit=' rows', total=total, leave=True)
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(rows - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _in_jupyter() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook, JupyterLab, VS Code)."""
    ipython = sys.modules.get('IPython')
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and 'IPKernelApp' in getattr(shell, 'config', {})


def _tqdm() -> Callable[..., Any] | None:
    """tqdm's notebook bar, its text bar without ipywidgets, or None without tqdm."""
    try:
        import tqdm.notebook
        import tqdm.std
    except ImportError:
        return None
    if getattr(tqdm.notebook, 'IProgress', None) is not None:
        return tqdm.notebook.tqdm  # type: ignore[no-any-return]
    return lambda **kw: tqdm.std.tqdm(file=sys.stderr, **kw)


def _progress(label: str, progress: bool | ProgressDisplay | None) -> ProgressDisplay:
    """The display :func:`rows` was asked for; ``None`` picks one for where it runs."""
    if progress is None:
        if _in_jupyter():
            bar = _tqdm()
            return _NotebookProgress(label, bar) if bar else Progress(label, sys.stderr)
        return Progress(label, sys.stderr if sys.stderr.isatty() else None)
    if progress is True:
        return Progress(label, sys.stderr)
    if progress is False:
        return Progress(label, None)
    return progress


# ------------------------------------------------------------------ the pager (no I/O)

def _offset(data: Mapping[str, Any]) -> int:
    """The ``ofs`` to start at, refused before anything is sent unless a whole number >= 0."""
    from .errors import KrakenUsageError

    value = data.get('ofs')
    if value is None or value == '':
        return 0
    try:
        ofs = int(str(value), 10)
    except ValueError:
        ofs = -1
    if ofs < 0:
        raise KrakenUsageError(f'ofs must be a whole number of rows to skip (0 or more), '
                               f'not {value!r}')
    return ofs


def _check_since(data: Mapping[str, Any]) -> None:
    """Refuse a ``since`` that is not a number (Unix time or a previous ``last``)."""
    from .errors import KrakenUsageError

    value = data.get('since')
    if value is None or value == '':
        return
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal(-1)
    if not number.is_finite() or number < 0 or isinstance(value, bool):
        raise KrakenUsageError(f'since must be a Unix time in seconds or the "last" of a '
                               f'previous reply, not {value!r}')


class _Pager:
    """Which call comes next, and which rows of a page are new: paging without I/O.

    :meth:`params` gives the next call's parameters (``None`` once done) and
    :meth:`take` reads its result, returning the rows not seen before.
    """

    def __init__(self, method: str, data: Mapping[str, Any] | None) -> None:
        from .errors import KrakenUsageError

        if method not in PAGED:
            raise KrakenUsageError(f'{method} has no pages; paging works with {", ".join(PAGED)}')
        self.method = method
        self.data = dict(data or {})
        self.by_offset = method in OFS_PAGED
        if self.by_offset:
            self.start = self.ofs = _offset(self.data)
        else:
            _check_since(self.data)
        self.seen: set[Hashable] = set()
        self.pages = 0
        self.rows = 0
        self.total: int | None = None
        self.extra: dict[str, Any] = {}  # the last page's members other than the rows
        self.done = False
        self.started = time.time()

    def params(self) -> dict[str, Any] | None:
        if self.done:
            return None
        if self.by_offset:
            return {**self.data, 'ofs': self.ofs}
        return dict(self.data)

    def take(self, result: Any) -> list[Row]:
        from .errors import KrakenResponseError

        if not isinstance(result, dict):
            raise KrakenResponseError(f'{self.method} answered {str(result)[:200]!r}, '
                                      f'not a page of rows', method=self.method)
        self.pages += 1
        new = self._take_by_id(result) if self.by_offset else self._take_since(result)
        self.rows += len(new)
        return new

    def _take_by_id(self, result: dict[str, Any]) -> list[Row]:
        member = OFS_PAGED[self.method]
        page: dict[str, Any] = result.get(member) or {}
        new = [(row_id, row) for row_id, row in page.items() if row_id not in self.seen]
        self.seen.update(page)
        self.extra = {k: v for k, v in result.items() if k != member}
        count = _count(self.method, result.get('count'))
        self.total = None if count is None else count - self.start
        self.ofs += len(page)
        # An entry booked meanwhile shifts the pages: its overlap was dropped above.
        self.done = (not new or len(page) < methods.PAGE_SIZE
                     or (count is not None and self.ofs >= count))
        return new

    def _take_since(self, result: dict[str, Any]) -> list[Row]:
        time_column = SINCE_PAGED[self.method][1]
        new: list[Row] = []
        newest = 0.0
        size = 0
        for pair, page in result.items():
            if pair == 'last' or not isinstance(page, list):
                continue
            size = max(size, len(page))
            keys = [(pair, _row_key(self.method, row)) for row in page]
            # Only rows of earlier pages are dropped: a page may repeat a row (two equal spreads).
            new += [(pair, row) for key, row in zip(keys, page, strict=True)
                    if key not in self.seen]
            self.seen.update(keys)
            newest = max([newest, *(float(row[time_column]) for row in page)])
        last = result.get('last')
        self.extra = {'last': last}
        asked = int(self.data.get('count') or TRADES_PAGE)
        self.done = (
            not new or last is None or str(last) == str(self.data.get('since'))
            or newest >= self.started  # reached the present
            or self.method == 'OHLC'  # Kraken serves every candle it has (720 at most) at once
            or (self.method == 'Trades' and size < asked))
        self.data['since'] = last
        return new


#: The most entries a ``count`` can name: far more than any account has (Kraken keeps the
#: ledger of a key's account), and a number that converts at once.
MAX_COUNT = 10 ** 12


def _count(method: str, count: Any) -> int | None:
    """A page's ``count`` (the entries in all), as a whole number.

    :raises KrakenResponseError: for one that is not a whole number from 0 to :data:`MAX_COUNT`
    """
    from .errors import KrakenResponseError

    if count is None:
        return None
    try:
        value = int(count) if not isinstance(count, bool) and 0 <= count <= MAX_COUNT else None
    except (TypeError, ValueError, ArithmeticError):
        value = None
    if value is None or value != count:
        raise KrakenResponseError(f'{method} answered a count of {str(count)[:40]!r}, which is '
                                  f'not a number of entries; the pages were not read',
                                  method=method)
    return value


def _row_key(method: str, row: list[Any]) -> Hashable:
    """What makes a row unique: a candle's time, a trade's id, else the whole row."""
    if method == 'OHLC':
        return str(row[0])
    if method == 'Trades' and len(row) > 6:
        return str(row[6])
    return tuple(str(cell) for cell in row)


# ------------------------------------------------------------------ the drivers

def is_async(api: Any) -> bool:
    """Whether ``api`` is an asyncio client (:class:`~krakenex.AsyncAPI`): its calls are awaited."""
    return inspect.iscoroutinefunction(getattr(api, 'query_public', None))


def _counter(api: Any, method: str, pace: bool) -> RateCounter | None:
    """A counter, only when pacing is asked for and the API object paces nothing itself.

    A private method's is the key's own REST counter in its store, so other
    users of the key count on it too.
    """
    private = methods.METHODS[method].private
    if not pace or getattr(api, 'counter' if private else 'public_counter', None) is not None:
        return None
    if private:
        shared = getattr(api, 'shared_counter', None)
        return shared('rest', DEFAULT_TIER) if shared else RateCounter.for_tier(DEFAULT_TIER)
    return RateCounter(1.0, PUBLIC_RATE)


def _cost(method: str) -> float:
    """What a call adds to our counter: Kraken's cost for private calls, one for public ones."""
    return methods.cost(method) if methods.METHODS[method].private else 1.0


def checked_result(method: str, envelope: Any) -> Any:
    """The ``result`` of a reply: Kraken's errors raise, its warnings are logged.

    :raises KrakenAPIError: when the reply holds one of Kraken's errors
    """
    from .errors import unwrap

    result = unwrap(envelope, method)
    for warning in envelope.get('error') or ():
        log.warning('Kraken warns: %s', warning)
    return result


def rows(api: Client, method: str, data: Mapping[str, Any] | None = None, *, pace: bool = True,
         progress: bool | ProgressDisplay | None = None) -> Any:
    """Yield every row of a paged method, each exactly once, fetching page after page.

    ``Ledgers``, ``TradesHistory`` and ``ClosedOrders`` yield ``(id, row)``
    pairs, newest first, where ``row`` is the dict Kraken sent. ``Trades``,
    ``OHLC`` and ``Spread`` yield ``(pair, row)`` pairs, oldest first, where
    ``row`` is Kraken's list (columns in :data:`SINCE_PAGED`). ``data`` holds
    Kraken's parameters: ``ofs`` or ``since`` say where to start, ``start``
    and ``end`` bound the ofs-paged methods.

    Calls are paced under the API object's own tier when it was made with one
    (``API(tier='pro')``, ``API(public_rate=1)``). When it paces nothing
    itself, :func:`rows` paces private calls under Kraken's starter tier, the
    lowest, and public calls at one a second; ``pace=False`` sends them as
    fast as the API object allows.

    With an :class:`~krakenex.AsyncAPI` (any object whose ``query_public`` is
    a coroutine function), it returns an async iterator: ``async for``.

    :param api: an :class:`~krakenex.API` (with a key for the private methods)
    :param method: one of :data:`PAGED`
    :param data: Kraken's parameters for the method; not modified
    :param pace: pace calls when the API object does not
    :param progress: ``None`` shows a bar where someone can see it (tqdm's in
        Jupyter, a text bar on a terminal, nothing otherwise), ``True`` on
        stderr, ``False`` none; or your own :class:`Progress`-like object
    :returns: an iterator of ``(id or pair, row)`` pairs
    :raises KrakenUsageError: for a method without pages, or an ``ofs`` or
        ``since`` that is not a number, before anything is sent
    :raises KrakenAPIError: when Kraken refuses a page (rows before it were yielded)
    """
    pager = _Pager(method, data)
    counter = _counter(api, method, pace)
    display = _progress(method, progress)
    if is_async(api):
        return _async_rows(api, pager, counter, display)
    return _sync_rows(api, pager, counter, display)


def _sync_rows(api: Any, pager: _Pager, counter: RateCounter | None,
               display: ProgressDisplay) -> Iterator[Row]:
    query = api.query_private if methods.METHODS[pager.method].private else api.query_public
    cost = _cost(pager.method)
    try:
        while (params := pager.params()) is not None:
            paced: AbstractContextManager[None] = (
                counter.counting(cost) if counter else nullcontext())
            with paced:
                envelope = query(pager.method, params)
            new = pager.take(checked_result(pager.method, envelope))
            display.update(pager.pages, pager.rows, pager.total)
            yield from new
    finally:
        display.close()


async def _async_rows(api: Any, pager: _Pager, counter: RateCounter | None,
                      display: ProgressDisplay) -> AsyncIterator[Row]:
    query = api.query_private if methods.METHODS[pager.method].private else api.query_public
    cost = _cost(pager.method)
    try:
        while (params := pager.params()) is not None:
            if counter is not None:
                while (wait := counter.try_acquire(cost)) > 0:
                    await asyncio.sleep(wait)  # never block the event loop
                counted_at = time.monotonic()
            try:
                envelope = await query(pager.method, params)
            finally:
                if counter is not None:
                    counter.settle(cost, counted_at)
            new = pager.take(checked_result(pager.method, envelope))
            display.update(pager.pages, pager.rows, pager.total)
            for row in new:
                yield row
    finally:
        display.close()


def _merged(pager: _Pager, found: list[Row]) -> dict[str, Any]:
    """One result shaped like a page's, holding every row."""
    if pager.by_offset:
        return {**pager.extra, OFS_PAGED[pager.method]: dict(found)}
    by_pair: dict[str, list[Any]] = {}
    for pair, row in found:
        by_pair.setdefault(pair, []).append(row)
    return {**by_pair, **pager.extra}


def fetch_all(api: Client, method: str, data: Mapping[str, Any] | None = None, *,
              pace: bool = True, progress: bool | ProgressDisplay | None = None) -> Any:
    """Fetch every page of ``method`` and return one result holding all the rows.

    The result has the shape of one page's: ``{'ledger': {id: row, ...},
    'count': n}`` for Ledgers, ``{'XXBTZUSD': [row, ...], 'last': cursor}``
    for Trades, and so on. Parameters as for :func:`rows`; with an
    :class:`~krakenex.AsyncAPI` it returns an awaitable.
    """
    pager = _Pager(method, data)
    counter = _counter(api, method, pace)
    display = _progress(method, progress)
    if is_async(api):
        async def collect() -> dict[str, Any]:
            found = [row async for row in _async_rows(api, pager, counter, display)]
            return _merged(pager, found)
        return collect()
    return _merged(pager, list(_sync_rows(api, pager, counter, display)))

