"""One store per API key and server, shared by every process that uses the key.

Kraken keeps one nonce floor and one rate counter per API key, whichever
process sends. A store keeps krakenex's side of both where every sharer of the
key finds it:

- the **nonce floor**: every nonce issued is above every nonce issued before;
- the **send lock**: a private call holds it from taking its nonce until its
  reply, so nonces reach Kraken in the order they were issued;
- the **rate counters** (Kraken's REST counter, the futures budgets): a level
  and the moment it was last decayed, so a re-run starts where the last left.

:class:`LocalStore` keeps them in this object alone (``share=None``, as
krakenex 2.x); :class:`FileStore` in a directory on this machine (the default);
:class:`RedisStore` in a Redis server, for processes on several machines
(extra ``redis``). :func:`resolve` reads what ``share=`` was given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import pacing
from .errors import KrakenUsageError, ShareUnavailableError
from .protocol import deadline_seconds

__all__ = ['Store', 'LocalStore', 'FileStore', 'RedisStore', 'Share', 'SharedCounter',
           'resolve', 'cache_directory', 'store_name', 'lease', 'SHARE_VARIABLE', 'LEASE_MARGIN']

log = logging.getLogger('krakenex')

#: The environment variable that sets the default of ``share=``.
SHARE_VARIABLE = 'KRAKENEX_SHARE'
#: Seconds a Redis lease outlives its call's timeout, for the time around the request.
LEASE_MARGIN = 2.0
#: The format of a store file and of the Redis keys; another format is never read as this one.
FORMAT = 1
#: Seconds a Redis command may take before the store counts as unreachable.
REDIS_TIMEOUT = 5.0


def lease(timeout: float | tuple[float, float]) -> float:
    """How long a call with ``timeout`` may hold the key's send lock in Redis: its deadline."""
    return deadline_seconds(timeout) + LEASE_MARGIN


def store_name(key: str, server: str) -> str:
    """The store's name for ``key`` on ``server``: a hash of both, which shows neither."""
    return hashlib.sha256(f'{server}\n{key}'.encode()).hexdigest()[:32]


def cache_directory() -> str:
    """Where the default stores live: the user's cache directory, then ``krakenex``.

    ``$XDG_CACHE_HOME`` if it is set to an absolute path, else ``~/.cache``
    (``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows).
    """
    base = os.environ.get('XDG_CACHE_HOME', '')
    if not os.path.isabs(base):
        if sys.platform == 'darwin':
            base = os.path.expanduser('~/Library/Caches')
        elif sys.platform == 'win32':
            base = os.environ.get('LOCALAPPDATA') or os.path.expanduser('~\\AppData\\Local')
        else:
            base = os.path.expanduser('~/.cache')
    return os.path.join(base, 'krakenex')


# ------------------------------------------------------------------ stores

class Store:
    """What every store offers; see the module's text for what it keeps.

    Methods that run before a request is sent raise
    :class:`~krakenex.errors.ShareUnavailableError` when the store cannot be
    used; :meth:`unlock` and :meth:`add`, which run after it, only log.
    """

    #: Where the store is, for messages: a path, a Redis address, or this object.
    where = ''

    def lock(self, lease: float) -> Any:
        """Wait for the key's send lock and take it; hold it at most ``lease`` seconds.

        :returns: a handle for :meth:`unlock`
        """
        raise NotImplementedError

    def try_lock(self, lease: float) -> Any:
        """Take the send lock if it is free now; ``None`` if another holds it."""
        raise NotImplementedError

    def unlock(self, handle: Any) -> None:
        """Give the send lock back."""
        raise NotImplementedError

    def nonce(self, candidate: int) -> int:
        """Issue a nonce: ``candidate`` (the clock's), or one above the floor if that is higher."""
        raise NotImplementedError

    def take(self, name: str, maximum: float, decay: float, cost: float) -> float:
        """Add ``cost`` to counter ``name`` if it fits under ``maximum`` now.

        :returns: 0 once counted, else the seconds until it will fit
        """
        raise NotImplementedError

    def add(self, name: str, decay: float, amount: float) -> None:
        """Raise counter ``name`` by ``amount`` now (a call's cost, moved to its reply)."""
        raise NotImplementedError

    def note_orders(self, ids: list[str], pair: str, ttl: float) -> None:
        """Keep for ``ttl`` seconds that orders ``ids`` on ``pair`` were added or changed now."""
        raise NotImplementedError

    def order(self, ident: str) -> tuple[str, float] | None:
        """The pair of order ``ident`` and when it was noted (:func:`time.time`), if kept."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """What the store holds: ``where``, ``nonce`` (the floor), ``locked``, ``counters``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the floor and the counters; the next nonce is the clock's again."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what the store holds open."""


class LocalStore(Store):
    """This object alone, in memory: krakenex 2.x's nonces, and the counters of one object."""

    where = 'this object alone (share=None)'

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()
        self._counters: dict[str, pacing.RateCounter] = {}
        self._orders: dict[str, tuple[str, float, float]] = {}

    def lock(self, lease: float) -> Any:
        return True  # the driver's own lock orders this object's calls

    try_lock = lock

    def unlock(self, handle: Any) -> None:
        pass

    def nonce(self, candidate: int) -> int:
        with self._lock:
            self._last = max(candidate, self._last + 1)
            return self._last

    def _counter(self, name: str, decay: float) -> pacing.RateCounter:
        counter = self._counters.get(name)
        if counter is None or counter.decay != decay:
            counter = self._counters[name] = pacing.RateCounter(1.0, decay)
        return counter

    def take(self, name: str, maximum: float, decay: float, cost: float) -> float:
        counter = self._counter(name, decay)
        counter.maximum = maximum
        return counter.try_acquire(cost)

    def add(self, name: str, decay: float, amount: float) -> None:
        self._counter(name, decay).add(amount)

    def note_orders(self, ids: list[str], pair: str, ttl: float) -> None:
        now = time.time()
        with self._lock:
            self._orders = {i: kept for i, kept in self._orders.items()
                            if kept[2] > now and i not in ids}
            self._orders.update((i, (pair, now, now + ttl)) for i in ids)
            for ident in list(self._orders)[:max(0, len(self._orders) - MAX_ORDERS)]:
                del self._orders[ident]  # the oldest first

    def order(self, ident: str) -> tuple[str, float] | None:
        kept = self._orders.get(ident)
        return None if kept is None or kept[2] <= time.time() else kept[:2]

    def status(self) -> dict[str, Any]:
        return {'where': self.where, 'nonce': self._last, 'locked': False,
                'counters': {name: c.level() for name, c in self._counters.items()}}

    def reset(self) -> None:
        with self._lock:
            self._last = 0
            self._counters.clear()
            self._orders.clear()


# ------------------------------------------------------------ the file store

if sys.platform == 'win32':  # pragma: no cover - krakenex's tests run on Linux
    import msvcrt

    def _lock_fd(fd: int, wait: bool = True) -> bool:
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock_fd(fd: int, wait: bool = True) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileStore(Store):
    """A key's store in a directory on this machine: a state file, a lock file, orders' ages.

    Every process on the machine that opens the same directory for the same
    key and server shares it. Both files are locked with the operating
    system's file locks, which the system releases when a process dies, so a
    killed process never holds the key. The state file is locked only for the
    moment of each update; the lock file for a whole call.

    The state file's first line is fixed in length, ``krakenex-share 1``
    and the nonce floor in 20 digits, so issuing a nonce reads and writes 38
    bytes; the second line is JSON: the server, and the rate counters. The
    ages of orders noted for the trading engine are in an :class:`OrderFile`
    beside it.

    :param directory: where the files go (created, private to the user)
    :param key: the API key, hashed into the file names
    :param server: the server's address, hashed with the key
    :raises ShareUnavailableError: if the directory or its files cannot be
        written, or the file was written by a newer krakenex
    """

    def __init__(self, directory: str, key: str, server: str) -> None:
        self.directory = directory
        name = store_name(key, server)
        #: The state file: the format and nonce floor, then the server and counters as JSON.
        self.path = os.path.join(directory, name + '.json')
        self.where = self.path
        self._server = server
        self._lock_path = os.path.join(directory, name + '.lock')
        #: The ages of the orders this key added, apart from the state: see :class:`OrderFile`.
        self._orders = OrderFile(os.path.join(directory, name + '.orders'))
        self._fds: tuple[int, int] | None = None
        self._forks = -1
        self._length = 0
        # File locks exclude other open files, not this object's threads: they take turns here.
        self._turn = threading.RLock()
        # Nonces take the short way (the first line alone) once the whole file was judged.
        self._judged = False
        self._fd()

    def _fd(self) -> tuple[int, int]:
        """The state file's and the lock file's descriptors, opened anew in a forked child."""
        if self._fds is not None and self._forks == _forks:
            return self._fds
        with self._turn:
            if self._fds is not None and self._forks != _forks:
                # A forked child's copies: closing them leaves the parent's locks as they are.
                for fd in self._fds:
                    os.close(fd)
                self._fds = None
            if self._fds is None:
                try:
                    os.makedirs(self.directory, mode=0o700, exist_ok=True)
                    state = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    try:
                        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                    except OSError:
                        os.close(state)
                        raise
                except OSError as exc:
                    raise ShareUnavailableError(self.where, exc.strerror or str(exc)) from None
                self._fds, self._forks = (state, lock), _forks
            return self._fds

    def close(self) -> None:
        if self._fds is not None and self._forks == _forks:
            for fd in self._fds:
                os.close(fd)
        self._fds = None

    def __del__(self) -> None:
        # At interpreter exit module globals (os, contextlib's suppress) may already be None.
        try:  # noqa: SIM105
            self.close()
        except Exception:
            pass

    # -- the send lock

    def lock(self, lease: float) -> Any:
        fd = self._fd()[1]
        _lock_fd(fd)
        return fd

    def try_lock(self, lease: float) -> Any:
        fd = self._fd()[1]
        return fd if _lock_fd(fd, wait=False) else None

    def unlock(self, handle: Any) -> None:
        try:
            _unlock_fd(handle)
        except OSError as exc:  # the system releases it when the process ends
            log.warning('krakenex: could not release the lock of %s: %s', self.where, exc)

    # -- the state

    def _update(self, change: Callable[[dict[str, Any]], tuple[Any, bool]], *,
                fresh: bool = False) -> Any:
        """Run ``change`` on the state with the state file locked; write it if it says it changed.

        :param change: takes the state, changes it in place, and returns
            ``(result, changed)``
        :param fresh: start from an empty state without reading the file at all
        :returns: the result
        """
        with self._state_file() as fd:
            if fresh:
                self._length, state = os.fstat(fd).st_size, self._empty()
            else:
                state = self._read(fd)
            result, changed = change(state)
            if changed or not self._judged:
                self._write(fd, state)
                self._judged = True
            return result

    @contextmanager
    def _state_file(self) -> Iterator[int]:
        """The state file's descriptor, locked against other processes and this object's threads."""
        with self._turn:
            fd = self._fd()[0]
            try:
                _lock_fd(fd)
            except OSError as exc:
                raise ShareUnavailableError(self.where, exc.strerror or str(exc)) from None
            try:
                yield fd
            finally:
                _unlock_fd(fd)

    def _read(self, fd: int) -> dict[str, Any]:
        try:
            # The whole file, however long: a file cut short would not be trusted.
            raw = _pread(fd, max(os.fstat(fd).st_size, 1 << 12), 0)
        except OSError as exc:
            raise ShareUnavailableError(self.where, exc.strerror or str(exc)) from None
        self._length = len(raw)
        return self._trusted(raw)

    def _trusted(self, raw: bytes) -> dict[str, Any]:
        """The state a file holds, or an empty one (with a warning) if it cannot be trusted.

        :raises ShareUnavailableError: for a file of a newer format, which is left alone
        """
        if not raw.strip():
            return self._empty()
        head, _, rest = raw.partition(b'\n')
        words = head.split(b' ')
        if len(words) == 3 and words[0] == b'krakenex-share' and words[1].isdigit() \
                and int(words[1]) > FORMAT:
            raise ShareUnavailableError(self.where, f'it was written by a newer krakenex '
                                        f'(format {int(words[1])}); upgrade krakenex, or '
                                        f'replace it with: krakenex share reset')
        problem = 'it is not a krakenex store file'
        if raw.startswith(_PREFIX) and _floor(raw) is not None:
            try:
                state = json.loads(rest)
            except (ValueError, RecursionError):
                state = None
            if isinstance(state, dict):
                state['nonce'] = _floor(raw)
                problem = _state_problem(state, self._server)
        if problem:
            warnings.warn(f'the key\'s store {self.where} was not trusted ({problem}); it '
                          f'starts again empty, and nonces start from the clock',
                          RuntimeWarning, stacklevel=2)
            return self._empty()
        return state  # type: ignore[no-any-return]

    def _write(self, fd: int, state: dict[str, Any]) -> None:
        """Write the whole state, over the length last read: the file never needs truncating."""
        data = _header(state['nonce']) + json.dumps(
            {'server': state['server'], 'counters': state['counters']}).encode()
        data += b' ' * (self._length - len(data))  # JSON ignores the spaces
        self._length = len(data)
        self._pwrite(fd, data)

    def _pwrite(self, fd: int, data: bytes) -> None:
        try:
            _pwrite(fd, data, 0)
        except OSError as exc:
            raise ShareUnavailableError(self.where, exc.strerror or str(exc)) from None

    def _empty(self) -> dict[str, Any]:
        return {'nonce': 0, 'server': self._server, 'counters': {}, 'orders': {}}

    def nonce(self, candidate: int) -> int:
        with self._state_file() as fd:
            try:
                floor = _floor(_pread(fd, len(_PREFIX) + 21, 0)) if self._judged else None
            except OSError as exc:
                raise ShareUnavailableError(self.where, exc.strerror or str(exc)) from None
            if floor is None:  # the first time, or not the line it should be: all is judged
                state = self._read(fd)
                state['nonce'] = nonce = _checked_nonce(max(candidate, state['nonce'] + 1))
                self._write(fd, state)
                self._judged = True
            else:  # the first line alone, the same length as before
                nonce = _checked_nonce(max(candidate, floor + 1))
                self._pwrite(fd, _header(nonce))
            return nonce

    def take(self, name: str, maximum: float, decay: float, cost: float) -> float:
        def count(state: dict[str, Any]) -> tuple[float, bool]:
            now = time.time()
            level = _level(state, name, now)
            wait = pacing.wait_for(level, cost, maximum, decay)
            kept = state['counters'].get(name)
            if not wait:
                state['counters'][name] = [level + cost, now, decay]
            elif kept and kept[1] > now:  # the clock stepped back: the level decays from now on
                kept[:2] = [level, now]
                return wait, True
            return wait, not wait
        return self._update(count)  # type: ignore[no-any-return]

    def add(self, name: str, decay: float, amount: float) -> None:
        def raise_level(state: dict[str, Any]) -> tuple[None, bool]:
            now = time.time()
            state['counters'][name] = [_level(state, name, now) + amount, now, decay]
            return None, True
        try:
            self._update(raise_level)
        except ShareUnavailableError as exc:  # after the call: its result still counts
            log.warning('krakenex: %s', exc)

    def note_orders(self, ids: list[str], pair: str, ttl: float) -> None:
        try:
            self._orders.note(ids, pair, ttl)
        except OSError as exc:  # after the call: its result still counts
            log.warning('krakenex: could not note orders in %s: %s', self._orders.path,
                        exc.strerror or exc)

    def order(self, ident: str) -> tuple[str, float] | None:
        try:
            return self._orders.find(ident)
        except OSError as exc:  # an age unknown is charged as the youngest
            log.warning('krakenex: could not read %s: %s', self._orders.path, exc.strerror or exc)
            return None

    def status(self) -> dict[str, Any]:
        now = time.time()
        state = self._update(lambda state: (state, False))
        return {'where': self.where, 'server': state['server'], 'nonce': state['nonce'],
                'locked': self._locked(),
                'counters': {name: _level(state, name, now) for name in state['counters']}}

    def _locked(self) -> bool:
        """Whether a call holds the key now, asked through a file of its own.

        This object's own lock file would answer yes to its own holder, and
        unlocking it would let go of that holder's lock.
        """
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            return not _lock_fd(fd, wait=False)
        finally:
            os.close(fd)  # closing the probe releases only the probe's own lock

    def reset(self) -> None:
        # Not read first: a file of a newer format or a corrupt one is replaced too.
        self._update(lambda state: (None, True), fresh=True)
        try:
            self._orders.clear()
        except OSError as exc:
            log.warning('krakenex: could not clear %s: %s', self._orders.path, exc.strerror or exc)


#: The most orders whose ages a store keeps; past it the oldest notes are dropped first.
MAX_ORDERS = 10_000
#: The longest order id noted, in characters: longer ones are charged as unknown.
_MAX_ID = 64
#: How long the orders file may grow by appending before it is rewritten with what is live.
_ORDERS_BYTES = 2 << 20


class OrderFile:
    """The ages of the orders a key added, kept beside its state file and never in it.

    One line per order noted, appended: ``id pair noted until``, tab-separated.
    The file is rewritten with the newest :data:`MAX_ORDERS` live notes once it
    passes 2 MiB, so it stays small whatever the number of orders; the nonce
    floor and the counters never depend on it. A line that cannot be read is
    skipped: an order whose age is unknown is charged as the youngest.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_fd(fd)
            try:
                yield fd
            finally:
                _unlock_fd(fd)
        finally:
            os.close(fd)

    def note(self, ids: list[str], pair: str, ttl: float, now: float | None = None) -> None:
        """Append that orders ``ids`` on ``pair`` were noted ``now``, kept ``ttl`` seconds."""
        now = time.time() if now is None else now
        lines = b''.join(f'{i}\t{pair}\t{now!r}\t{now + ttl!r}\n'.encode() for i in ids
                         if _plain(i, _MAX_ID)) if _plain(pair, _MAX_ID) else b''
        if not lines:
            return
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            _pwrite(fd, lines, size)
            if size + len(lines) > _ORDERS_BYTES:
                self._compact(fd, now)

    def _compact(self, fd: int, now: float) -> None:
        live: dict[bytes, bytes] = {}
        for line in _pread(fd, os.fstat(fd).st_size, 0).splitlines(keepends=True):
            fields = line.split(b'\t')
            if len(fields) == 4 and line.endswith(b'\n') and _number(fields[3]) > now:
                live.pop(fields[0], None)
                live[fields[0]] = line  # the newest note of an id last
        data = b''.join(list(live.values())[-MAX_ORDERS:])
        _pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def find(self, ident: str, now: float | None = None) -> tuple[str, float] | None:
        """The pair of order ``ident`` and when it was noted, if its note is live."""
        if not _plain(ident, _MAX_ID) or not os.path.exists(self.path):
            return None
        with self._locked() as fd:
            raw = b'\n' + _pread(fd, os.fstat(fd).st_size, 0)
        at = raw.rfind(b'\n' + ident.encode() + b'\t')
        fields = raw[at + 1:raw.find(b'\n', at + 1)].split(b'\t') if at >= 0 else []
        now = time.time() if now is None else now
        if len(fields) != 4 or not _number(fields[3]) > now or not math.isfinite(
                stamp := _number(fields[2])):
            return None
        return fields[1].decode(), stamp

    def clear(self) -> None:
        """Forget every note."""
        with self._locked() as fd:
            os.ftruncate(fd, 0)


def _plain(text: str, longest: int) -> bool:
    """Whether ``text`` can be a field of the orders file: printable, no tab, not too long."""
    return 0 < len(text) <= longest and text.isprintable() and '\t' not in text


def _number(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan


#: How a state file starts: its format, then the nonce floor in 20 digits and a line end.
_PREFIX = f'krakenex-share {FORMAT} '.encode()


def _header(nonce: int) -> bytes:
    return _PREFIX + b'%020d\n' % nonce


def _checked_nonce(nonce: int) -> int:
    """``nonce``, if it fits in the store's 20 digits, as it fits in Kraken's 64 bits."""
    if nonce >= 2 ** 64:
        raise KrakenUsageError(f'a nonce of {nonce} is above what Kraken accepts (2**64)')
    return nonce


def _floor(raw: bytes) -> int | None:
    """The nonce floor of a state file's first line, or None if the line is not as written."""
    digits = raw[len(_PREFIX):len(_PREFIX) + 20]
    if not raw.startswith(_PREFIX) or raw[len(_PREFIX) + 20:len(_PREFIX) + 21] != b'\n' \
            or len(digits) != 20 or not digits.isdigit() or not digits.isascii():
        return None
    return int(digits)


if sys.platform != 'win32':
    _pread, _pwrite = os.pread, os.pwrite
else:  # pragma: no cover - Windows
    def _pread(fd: int, size: int, at: int) -> bytes:
        os.lseek(fd, at, os.SEEK_SET)
        return os.read(fd, size)

    def _pwrite(fd: int, data: bytes, at: int) -> int:
        os.lseek(fd, at, os.SEEK_SET)
        return os.write(fd, data)

#: Forks so far: a store opened before a fork opens its files again in the child.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forked)


def _state_problem(state: Any, server: str) -> str:
    """What is wrong with a store file's contents, or '' if nothing is."""
    if state.get('server') != server:
        return 'it belongs to another server'
    counters = state.get('counters')
    if not isinstance(counters, dict) or not all(
            isinstance(v, list) and len(v) == 3 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                for x in v) for v in counters.values()):
        return 'its counters are not numbers'
    # Earlier files kept orders' ages here; they live in a file of their own now.
    state.pop('orders', None)
    return ''


def _level(state: dict[str, Any], name: str, now: float) -> float:
    """Counter ``name``'s level at ``now``, decayed at the rate it was last kept at."""
    level, stamp, decay = state['counters'].get(name, (0.0, now, 1.0))
    return pacing.decayed(level, stamp, now, decay)


# ----------------------------------------------------------- the Redis store

# Each script is one atomic step in Redis; the counters decay on Redis's clock (TIME).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('PEXPIRE', KEYS[2], 1000)
end
return 0
"""

# Nonces are compared as decimal text and raised with INCR: Lua's numbers lose digits past 2^53.
_NONCE = """
local floor = redis.call('GET', KEYS[1])
local candidate = ARGV[1]
if floor and not string.match(floor, '^%d+$') then
  return redis.error_reply('the nonce floor is not a number')
end
if (not floor) or #candidate > #floor or (#candidate == #floor and candidate > floor) then
  redis.call('SET', KEYS[1], candidate)
  return candidate
end
redis.call('INCR', KEYS[1])
return redis.call('GET', KEYS[1])
"""

_COUNTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local kept = redis.call('HMGET', KEYS[1], 'level', 'stamp', 'decay')
local level = tonumber(kept[1] or '0')
local stamp = tonumber(kept[2] or now)
local was = tonumber(kept[3] or ARGV[2])
if level == nil or stamp == nil or was == nil then
  return redis.error_reply('a rate counter is not a number')
end
level = math.max(0, level - math.max(0, now - stamp) * was)
local decay = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
if ARGV[4] == 'peek' then return tostring(level) end
if ARGV[4] == 'take' and level + amount > tonumber(ARGV[1]) then
  if stamp > now then  -- the clock stepped back: the level decays from now on
    redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', string.format('%.6f', now))
  end
  return tostring((level + amount - tonumber(ARGV[1])) / decay)
end
level = level + amount
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', string.format('%.6f', now),
           'decay', ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(level / decay * 1000) + 60000)
return '0'
"""


# Orders are noted on Redis's clock, and their age is read on it: ``stamp pair``.
_NOTE = """
local t = redis.call('TIME')
local now = string.format('%d.%06d', t[1], t[2])
for _, key in ipairs(KEYS) do
  redis.call('SET', key, now .. ' ' .. ARGV[1], 'PX', ARGV[2])
end
return 0
"""

_AGE = """
local kept = redis.call('GET', KEYS[1])
if not kept then return false end
local t = redis.call('TIME')
local stamp = tonumber(string.match(kept, '^(%S+) '))
if stamp == nil then return false end
local age = tonumber(t[1]) + tonumber(t[2]) / 1000000 - stamp
return string.format('%.6f', math.max(0, age)) .. string.sub(kept, #string.match(kept, '^%S+') + 1)
"""


class RedisStore(Store):
    """A key's store in Redis, shared by processes on every machine that reaches the server.

    The send lock is a lease: a process killed while it holds the lock holds
    the key no longer than the lease (its call's timeout plus
    :data:`LEASE_MARGIN`). Every update is one script, run atomically by Redis;
    the counters decay on Redis's clock.

    :param client: a :class:`redis.Redis` client, or a ``redis://`` / ``rediss://`` URL
    :param key: the API key, hashed into the keys' names
    :param server: the server's address, hashed with the key
    :raises KrakenUsageError: when redis-py is not installed
    """

    def __init__(self, client: Any, key: str, server: str) -> None:
        try:
            import redis
        except ImportError:
            from ._extras import needs

            raise KrakenUsageError(needs("share='redis://...'", 'redis')) from None
        self._errors = (redis.RedisError, OSError)
        if isinstance(client, str):
            self.where = _safe_url(client)
            client = redis.Redis.from_url(client, socket_timeout=REDIS_TIMEOUT,
                                          socket_connect_timeout=REDIS_TIMEOUT)
        else:
            kwargs = client.connection_pool.connection_kwargs
            self.where = (f"redis://{kwargs.get('host', 'localhost')}:"
                          f"{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}")
        self.client = client
        prefix = f'krakenex:{FORMAT}:{store_name(key, server)}:'
        self._keys = {part: prefix + part for part in ('nonce', 'lock', 'wake', 'counters')}
        self._release = client.register_script(_RELEASE)
        self._nonce = client.register_script(_NONCE)
        self._counter = client.register_script(_COUNTER)
        self._note = client.register_script(_NOTE)
        self._age = client.register_script(_AGE)

    def _run(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except self._errors as exc:
            raise ShareUnavailableError(self.where, str(exc) or type(exc).__name__) from None

    def _counter_key(self, name: str) -> str:
        return f"{self._keys['counters']}:{name}"

    def lock(self, lease: float) -> Any:
        while (token := self.try_lock(lease)) is None:
            # Woken by the holder's release; a lease that lapsed is seen within 50 ms.
            self._run(lambda: self.client.blpop([self._keys['wake']], timeout=0.05))
        return token

    def try_lock(self, lease: float) -> Any:
        token = secrets.token_hex(8)
        taken = self._run(lambda: self.client.set(self._keys['lock'], token, nx=True,
                                                  px=max(1, math.ceil(lease * 1000))))
        return token if taken else None

    def unlock(self, handle: Any) -> None:
        try:
            self._release(keys=[self._keys['lock'], self._keys['wake']], args=[handle])
        except self._errors as exc:  # the lease lapses on its own
            log.warning('krakenex: could not release the lock in %s (%s); it lapses with '
                        'its lease', self.where, exc)

    def nonce(self, candidate: int) -> int:
        return int(self._run(lambda: self._nonce(keys=[self._keys['nonce']], args=[candidate])))

    def take(self, name: str, maximum: float, decay: float, cost: float) -> float:
        return float(self._run(lambda: self._counter(
            keys=[self._counter_key(name)], args=[repr(maximum), repr(decay), repr(cost),
                                                  'take'])))

    def add(self, name: str, decay: float, amount: float) -> None:
        try:
            self._counter(keys=[self._counter_key(name)],
                          args=['0', repr(decay), repr(amount), 'add'])
        except self._errors as exc:
            log.warning('krakenex: could not count a call in %s: %s', self.where, exc)

    def _order_key(self, ident: str) -> str:
        return f"{self._keys['counters']}.order:{ident}"

    def note_orders(self, ids: list[str], pair: str, ttl: float) -> None:
        if not ids:
            return
        try:  # one key an order, each lapsing with its note: nothing grows without bound
            self._note(keys=[self._order_key(i) for i in ids],
                       args=[pair, max(1, math.ceil(ttl * 1000))])
        except self._errors as exc:  # after the call: its result still counts
            log.warning('krakenex: could not note orders in %s: %s', self.where, exc)

    def order(self, ident: str) -> tuple[str, float] | None:
        kept = self._run(lambda: self._age(keys=[self._order_key(ident)]))
        if kept is None:
            return None
        stamp, _, pair = (kept.decode() if isinstance(kept, bytes) else kept).partition(' ')
        try:  # noted and read on Redis's clock: the age is the same on every machine
            return pair, time.time() - float(stamp)
        except ValueError:
            return None

    def _names(self) -> list[str]:
        prefix = self._keys['counters'] + ':'
        found = self._run(lambda: list(self.client.scan_iter(match=prefix + '*', count=100)))
        return sorted(k.decode() if isinstance(k, bytes) else k for k in found)

    def status(self) -> dict[str, Any]:
        floor = self._run(lambda: self.client.get(self._keys['nonce']))
        locked = self._run(lambda: self.client.exists(self._keys['lock']))
        prefix = len(self._keys['counters']) + 1
        counters = {name[prefix:]: self._peek(name) for name in self._names()}
        return {'where': self.where, 'nonce': int(floor or 0), 'locked': bool(locked),
                'counters': counters}

    def _peek(self, name: str) -> float:
        return float(self._run(lambda: self._counter(keys=[name], args=['0', '1', '0', 'peek'])))

    def reset(self) -> None:
        names = self._names()
        self._run(lambda: self.client.delete(self._keys['nonce'], *names))

    def close(self) -> None:
        pass  # the client may be the user's; its pool closes with it


def _safe_url(url: str) -> str:
    """A Redis URL without its password (``user:pass@`` or ``?password=``), for messages."""
    scheme, sep, rest = url.partition('://')
    if '@' in rest.split('?', 1)[0]:
        rest = '***@' + rest.split('@', 1)[1]
    return scheme + sep + re.sub(r'(?i)([?&]password=)[^&#]*', r'\1***', rest)


# ------------------------------------------------------------ share= itself

class Share:
    """What ``share=`` asked for, and the store it opens for a key and server.

    :param kind: ``'local'``, ``'dir'`` or ``'redis'``
    :param target: the directory, or the Redis URL or client
    :param asked: whether the user asked for it; a default store that cannot
        be opened falls back to this object alone, with one warning
    """

    def __init__(self, kind: str, target: Any = None, *, asked: bool = True) -> None:
        self.kind = kind
        self.target = target
        self.asked = asked
        self._local: LocalStore | None = None

    def __repr__(self) -> str:
        return f'Share({self.kind!r}, {self.target!r}, asked={self.asked})'

    def local(self) -> LocalStore:
        """The store of this object alone, the same one every time."""
        if self._local is None:
            self._local = LocalStore()
        return self._local

    def open(self, key: str, server: str) -> Store:
        """The store for ``key`` on ``server``.

        :raises ShareUnavailableError: if a store the user asked for cannot be opened
        """
        if self.kind == 'local' or not key:
            return self.local()
        if self.kind == 'redis':
            return RedisStore(self.target, key, server)
        try:
            return FileStore(self.target, key, server)
        except ShareUnavailableError as exc:
            if self.asked:
                raise
            if self._local is None:
                warnings.warn(f'the key\'s store cannot be kept in {self.target} ({exc.reason}), '
                              f'so its nonces and rate counter are kept by this object alone '
                              f'and other processes using the key are not kept in step: set '
                              f'{SHARE_VARIABLE} or share= to a directory that can be written',
                              RuntimeWarning, stacklevel=4)
            return self.local()


def resolve(share: Any = ...) -> Share:
    """Read a ``share=`` value.

    :param share: not given (``...``): ``$KRAKENEX_SHARE`` if set, else the
        user's cache directory; ``None`` (or ``'none'``): this object alone; a
        directory; a ``redis://`` or ``rediss://`` URL; a :class:`redis.Redis` client
    :raises KrakenUsageError: for anything else
    """
    asked = share is not ...
    if not asked:
        share = os.environ.get(SHARE_VARIABLE) or None
        if share is None:
            return Share('dir', cache_directory(), asked=False)
    if share is None or (isinstance(share, str) and share.strip().lower() == 'none'):
        return Share('local')
    if isinstance(share, os.PathLike):
        share = os.fspath(share)
    if isinstance(share, str):
        if share.startswith(('redis://', 'rediss://', 'unix://')):
            return Share('redis', share)
        if '://' in share or not share.strip():
            raise KrakenUsageError(f'share={_safe_url(share)!r} is neither a directory nor a '
                                   f'redis:// or rediss:// URL')
        return Share('dir', os.path.abspath(os.path.expanduser(share)))
    if callable(getattr(share, 'register_script', None)) and hasattr(share, 'connection_pool'):
        return Share('redis', share)
    raise KrakenUsageError(f'share must be a directory, a redis:// URL, a redis.Redis client '
                           f'or None, not {type(share).__name__}')


class SharedCounter(pacing.RateCounter):
    """A rate counter kept in the key's store, so every sharer of the key counts on it.

    :param store: returns the store of the object's key and server now
    :param name: the counter's name in the store: ``'rest'``, ``'derivatives'``, ``'history'``
    """

    def __init__(self, store: Callable[[], Store], name: str, maximum: float,
                 decay: float) -> None:
        super().__init__(maximum, decay)
        self._store = store
        self.name = name

    def level(self) -> float:
        """The counter's value now, as the store holds it."""
        return float(self._store().status()['counters'].get(self.name, 0.0))

    def try_acquire(self, cost: float) -> float:
        pacing.check_cost(cost, self.maximum)
        if cost <= 0:
            return 0.0
        return self._store().take(self.name, self.maximum, self.decay, cost)

    def add(self, amount: float) -> None:
        self._store().add(self.name, self.decay, amount)
