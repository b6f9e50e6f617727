"""What every Kraken client holds apart from its transport: key, nonces, options.

:class:`SpotCore` is :class:`~krakenex.API` and :class:`~krakenex.AsyncAPI`
without a way to send; :class:`KeyedCore` is what the futures clients share
with them. Kraken's wire rules come from :mod:`krakenex.protocol`.
"""

from __future__ import annotations

import os
import stat
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import engine as engine_rules
from . import methods, order_ids
from .errors import KeyFileError, KrakenUsageError, OutcomeUnknownError
from .pacing import Joint, RateCounter, parse_tier
from .protocol import (
    DEFAULT_TIMEOUT,
    DEFAULT_URI,
    Call,
    Otp,
    Reply,
    Request,
    Retry,
    Timeout,
    after_answer,
    after_sending,
    check_nonce_unit,
    check_timeout,
    check_uri,
    checked,
    clock_nonce,
    decode_secret,
    encode,
    envelope_problem,
    nonce_in,
    private_request,
    public_request,
    read_envelope,
    sign,
)
from .share import SharedCounter, Store, resolve

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ['KeyedCore', 'SpotCore', 'server', 'read_key_file', 'order_filter',
           'matching_orders', 'reconcile_filter', 'ORDER_LISTS', 'KEY_FILE_LIMIT']


# --------------------------------------------------------------- servers

def server(given: str | None, variable: str, default: str,
           check: Callable[[str, str], str] = check_uri) -> str:
    """The address a client talks to: ``given``; else ``$variable`` if it is set; else ``default``.

    The one rule by which every client (spot, futures, WebSocket) and every
    command picks its server, so that a script written for Kraken reaches a
    sandbox with only the environment changed.

    :param variable: the environment variable, such as ``KRAKEN_API_URL``
    :param check: checks an address from the environment, given its variable's name
    :raises KrakenUsageError: if the variable holds something that is not a server address
    """
    if given is not None:
        return given
    value = os.environ.get(variable, '').strip()
    return check(value, variable) if value else default


# ------------------------------------------------------------- key files

#: A key file holds two short lines; anything longer is not a key file.
KEY_FILE_LIMIT = 4096


def read_key_file(path: str | os.PathLike[str]) -> tuple[str, str]:
    """Read the key (first line) and secret (second line) of a key file.

    Surrounding whitespace, Windows line ends and a UTF-8 byte-order mark are
    ignored. A file that others may read gets a warning.

    :raises KrakenUsageError: if the file cannot be read, is not text, is far
        too large to be a key file, lacks a line, or its secret is not base64
    """
    name = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            raw = f.read(KEY_FILE_LIMIT + 1)
    except OSError as exc:
        raise KeyFileError(f'cannot read key file {name}: {exc.strerror or exc}') from None
    if len(raw) > KEY_FILE_LIMIT:
        raise KeyFileError(f'{name!r} is over {KEY_FILE_LIMIT} bytes, too large to be a '
                               f'key file (the API key on line 1, the secret on line 2)')
    try:
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError:
        raise KeyFileError(f'key file {name!r} is not text: it should hold the API key on '
                               f'line 1 and the secret on line 2') from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise KeyFileError(
            f'key file {name!r} needs the API key on its first line and the secret on its '
            f'second; it has {len(lines)} non-empty line(s)')
    key, secret = lines[0], lines[1]
    if not (key.isascii() and key.isprintable()):
        raise KeyFileError(f'the API key in key file {name!r} holds characters that are '
                               f'not plain ASCII text; copy it exactly as Kraken showed it')
    try:
        decode_secret(secret, f'the secret in key file {name!r}')
    except KrakenUsageError as exc:
        raise KeyFileError(str(exc)) from None
    if os.name == 'posix' and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f'key file {name!r} can be read by other users; make it private with: '
                      f'chmod 600 {name}', stacklevel=3)
    return key, secret


# ------------------------------------------------------- the client's core

class KeyedCore:
    """The key, nonces and call options every Kraken client holds, whatever it talks to.

    :class:`SpotCore` and :class:`krakenex.futures.core.FuturesCore` build on it.
    """

    #: The environment variables a key and secret are read from when neither is given.
    KEY_VARIABLES = ('KRAKEN_API_KEY', 'KRAKEN_API_SECRET')
    #: The environment variable the server's address is read from when none is given.
    URL_VARIABLE = 'KRAKEN_API_URL'
    #: What the client calls what it calls, for messages: ``'method'`` or ``'endpoint'``.
    CALLS = 'method'
    #: Seconds a pooled connection may have been idle and still carry a state-changing
    #: call; one idle longer is not used. Kraken documents no idle timeout for REST; its
    #: WebSocket drops a silent connection after about a minute, and users of other
    #: clients report REST connections idle for minutes cut off. Set it per object.
    stale_after = 60.0

    #: The server's address; each driver keeps its own.
    uri: str

    def __init__(self, key: str, secret: str, *, timeout: Timeout, nonce_unit: str,
                 raise_errors: bool, retries: int, backoff: float, retry_time: float,
                 costs: Mapping[str, float] | None, share: Any = ...,
                 client_order_ids: bool = True) -> None:
        check_nonce_unit(nonce_unit)
        try:
            #: Whether an order sent without an identifier gets a ``cl_ord_id``
            #: (``cliOrdId``) from krakenex (:mod:`krakenex.order_ids`).
            self.client_order_ids = order_ids.check_option(client_order_ids)
        except TypeError as exc:
            raise KrakenUsageError(str(exc)) from None
        # What share= asked for; the store itself is opened for the key and server in use.
        self._share = resolve(share)
        self._opened: tuple[str, str, Store] | None = None
        if not key and not secret:
            key, secret = self._environment_key()
        #: The API key, sent with every private call.
        self.key = key
        #: The API secret; never sent, logged or shown.
        self.secret = secret
        #: The default timeout: seconds, or a ``(connect, read)`` pair.
        self.timeout = check_timeout(timeout)
        #: Whether Kraken's errors raise :class:`~krakenex.KrakenAPIError`.
        self.raise_errors = raise_errors
        #: How many times a read-only call is retried after a transient fault.
        self.retries = retries
        #: The first retry's wait in seconds, doubled for each retry after it.
        self.backoff = backoff
        #: Seconds from a call's start after which it is no longer retried.
        self.retry_time = retry_time
        #: Rate-counter costs by name, where they differ from Kraken's table.
        self.costs = dict(costs or {})
        #: The unit of nonces, fixed when the object is made: ``'ms'``, ``'us'`` or ``'ns'``.
        self.nonce_unit = nonce_unit
        self._json_options: dict[str, Any] = {}
        self._secret_cache: tuple[str, bytes] = ('', b'')

    def _environment_key(self) -> tuple[str, str]:
        """The key and secret in :attr:`KEY_VARIABLES`, for a client given neither."""
        key, secret = (os.environ.get(name, '') for name in self.KEY_VARIABLES)
        return key, secret

    def _open(self) -> None:
        """Set up what the driver needs to send (its session, its lock), once :attr:`uri` is set."""

    def __repr__(self) -> str:
        shown = self.key[:4] + '...' if self.key else ''
        uri = getattr(self, 'uri', '')
        package = type(self).__module__.rsplit('.', 1)[0]
        return f'<{package}.{type(self).__name__} key={shown!r} uri={uri!r}>'

    def json_options(self, **kwargs: Any) -> Self:
        """Set keyword arguments for decoding replies, such as ``parse_float=Decimal``.

        :param kwargs: passed to :func:`json.loads`
        :returns: this object, for chaining
        """
        self._json_options = kwargs
        return self

    def load_key(self, path: str | os.PathLike[str]) -> None:
        """Load the key (first line) and secret (second line) from a file.

        Surrounding whitespace, Windows line ends and a byte-order mark are
        ignored. A file that others may read gets a warning.

        :param path: the key file
        :raises KeyFileError: if the file cannot be read, is not a key file,
            or its secret is not base64
        """
        self.key, self.secret = read_key_file(path)

    def _nonce(self) -> int:
        """Return a nonce above every nonce issued before for this key and server.

        With sharing (the default) that is every nonce any process on this
        machine, or any sharer of the Redis store, issued; with ``share=None``
        every nonce this object issued. Thread-safe.

        :raises ShareUnavailableError: if the key's store cannot be used
        """
        return self._store().nonce(clock_nonce(self.nonce_unit))

    def _store(self) -> Store:
        """The store of the key and server in use now, opened when either changes.

        :raises ShareUnavailableError: if a store that ``share=`` asked for cannot be opened
        """
        opened = self._opened
        if opened is None or opened[0] != self.key or opened[1] != self.uri:
            store = self._share.open(self.key, self.uri)
            if opened is not None and opened[2] is not store:
                opened[2].close()
            self._opened = opened = (self.key, self.uri, store)
        return opened[2]

    def _close_store(self) -> None:
        """Let go of the key's store; the next private call opens it again."""
        opened, self._opened = self._opened, None
        if opened is not None:
            opened[2].close()

    def shared_counter(self, name: str, tier: str | tuple[float, float]) -> RateCounter:
        """A rate counter of ``tier`` kept as ``name`` in the key's store, shared by its users.

        :param name: Kraken's counter: ``'rest'`` (spot REST), ``'derivatives'``, ``'history'``
        :raises ValueError: for a tier :func:`krakenex.pacing.parse_tier` refuses
        """
        return SharedCounter(self._store, name, *parse_tier(tier))

    def _secret_bytes(self) -> bytes:
        """The decoded secret, decoded again only when :attr:`secret` changes."""
        text, raw = self._secret_cache
        if text != self.secret or not raw:
            raw = decode_secret(self.secret)
            self._secret_cache = (self.secret, raw)
        return raw

    def _check_private(self, name: str) -> None:
        """Refuse a private call that cannot be signed, before anything is sent."""
        if not self.key or not self.secret:
            key, secret = self.KEY_VARIABLES
            raise KrakenUsageError(
                f'{name} is a private {self.CALLS} and needs an API key and secret: pass them '
                f'to {type(self).__name__}(key, secret), call load_key(path), or set {key} and '
                f'{secret}')
        if not self.key.isascii() or not self.key.isprintable():
            raise KrakenUsageError('the API key holds characters an HTTP header cannot carry; '
                                   'copy it exactly as Kraken showed it')
        self._secret_bytes()


class SpotCore(KeyedCore):
    """What a spot client holds apart from its transport: the key, nonces, options.

    :class:`~krakenex.API` and :class:`~krakenex.AsyncAPI` are this plus a way
    to send; the parameters are documented on :class:`~krakenex.API`.
    """

    def __init__(self, key: str = '', secret: str = '', *, uri: str | None = None,
                 timeout: Timeout = DEFAULT_TIMEOUT,
                 nonce_unit: str = 'ms', otp: Otp | None = None, raise_errors: bool = False,
                 retries: int = 3, backoff: float = 0.5, retry_time: float = 30.0,
                 tier: str | tuple[float, float] | None = None,
                 costs: Mapping[str, float] | None = None,
                 public_rate: float | None = None, share: Any = ...,
                 nonce_window: int = 0, client_order_ids: bool = True,
                 engine: str | tuple[float, float] | None = None) -> None:
        super().__init__(key, secret, timeout=timeout, nonce_unit=nonce_unit,
                         raise_errors=raise_errors, retries=retries, backoff=backoff,
                         retry_time=retry_time, costs=costs, share=share,
                         client_order_ids=client_order_ids)
        try:
            #: Kraken's REST call counter of ``tier``, kept in the key's store; None: not paced.
            self.counter = self.shared_counter('rest', tier) if tier is not None else None
            self.public_counter = RateCounter(1.0, public_rate) if public_rate is not None else None
            #: Kraken's trading-engine tier: (threshold, decay per second); None: not paced.
            self.engine = engine_rules.parse_engine(engine) if engine is not None else None
        except (TypeError, ValueError) as exc:
            raise KrakenUsageError(str(exc)) from None
        if isinstance(nonce_window, bool) or not isinstance(nonce_window, int) \
                or nonce_window < 0:
            raise KrakenUsageError(f'nonce_window must be a whole number of nonce units, 0 or '
                                   f'more, as set on the key at Kraken; not {nonce_window!r}')
        #: The key's nonce window as set at Kraken, in nonce units; 0 (Kraken's default)
        #: sends private calls one at a time, so nonces arrive in order.
        self.nonce_window = nonce_window
        #: The server's address, without a trailing slash.
        self.uri = server(uri, self.URL_VARIABLE, DEFAULT_URI)
        #: Kraken's API version, part of every path.
        self.apiversion = '0'
        #: The one-time password, or a function that returns a fresh one.
        self.otp = otp
        self._open()

    def _sign(self, data: Mapping[str, Any] | str | bytes, urlpath: str) -> str:
        """Sign a request as Kraken checks it, for a hand-made :meth:`_query`.

        :param data: the parameters, with ``nonce``, encoded here exactly as
            :meth:`query_private` sends them; or the exact body
        :param urlpath: the path, such as ``/0/private/AddOrder``
        :returns: the value of the ``API-Sign`` header
        :raises KrakenUsageError: if there is no nonce, or the secret is not base64
        """
        if isinstance(data, (str, bytes)):
            body = data.encode() if isinstance(data, str) else data
            return sign(self._secret_bytes(), urlpath, nonce_in(body), body)
        if 'nonce' not in data:
            raise KrakenUsageError('the data to sign has no nonce')
        return sign(self._secret_bytes(), urlpath, data['nonce'], encode(data)[0])

    def _spot_call(self, method: str, data: Mapping[str, Any], *, private: bool) -> Call:
        """How a driver runs one spot call: built, paced, retried and judged by Kraken's rules."""
        at_most_once = private and methods.changes_state(method, data)
        if at_most_once and self.client_order_ids:  # once: every attempt sends the same id
            data = order_ids.named(method, data, order_ids.SPOT_REST)
        retry = Retry(self.retries, self.backoff, self.retry_time, at_most_once=at_most_once)

        def check(reply: Any, last: Any) -> Any:
            return checked(method, reply, raise_errors=self.raise_errors, response=last)

        # A file is an answer to a read (RetrieveExport); a state change answers with JSON.
        problem = _change_problem if at_most_once else _read_problem

        def read(reply: Reply) -> Any:
            return read_envelope(method, reply, self._json_options, problem)

        if not private:
            return Call(method, lambda: public_request(self.apiversion, method, data), retry,
                        check, read, self.public_counter)
        # With a nonce window, sharers send at once: unique nonces are enough within it.
        store = None if self.nonce_window else self._store()
        counter, cost = self.counter, self._cost(method)
        if self.engine is not None and method in engine_rules.METHODS:
            counter, cost, noted = self._engine_pacing(method, data, counter, cost)

            def check(reply: Any, last: Any) -> Any:
                result = checked(method, reply, raise_errors=self.raise_errors, response=last)
                noted(result)
                return result
        return Call(method, lambda: self._private_request(method, data), retry, check, read,
                    counter, cost, store=store,
                    unknown=lambda error, request: after_sending(
                        error, request, at_most_once=at_most_once),
                    **({'answered': after_answer} if at_most_once else {}))

    def _cost(self, method: str) -> float:
        """What ``method`` adds to the rate counter.

        :raises KrakenUsageError: if that could never fit under the tier's maximum
        """
        cost = self.costs.get(method, methods.cost(method))
        if self.counter is not None and not cost <= self.counter.maximum:
            raise KrakenUsageError(f'{method} costs {cost!r}, which can never fit under the '
                                   f'rate tier\'s maximum of {self.counter.maximum:g}: lower '
                                   f'its cost or choose a larger tier', method=method)
        return cost

    def _engine_pacing(self, method: str, data: Mapping[str, Any], counter: RateCounter | None,
                       cost: float) -> tuple[RateCounter, float, Callable[[Any], None]]:
        """The counters an order call waits on (the engine's of its pair, and the REST
        counter), and what notes its orders' ages in the key's store once it succeeded.

        An order krakenex did not note (added elsewhere, or more than
        :data:`~krakenex.engine.NOTE_AGE` ago) is charged as the youngest: the worst
        case. A cost above the threshold is refused here, before anything is sent.

        :raises KrakenUsageError: for a cost that could never fit under the threshold
        """
        assert self.engine is not None
        maximum, decay = self.engine
        store = self._store()
        ids = engine_rules.order_ids(method, data)
        kept = store.order(ids[0]) if ids else None
        pair = str(data.get('pair') or (kept[0] if kept else ''))
        age = max(0.0, time.time() - kept[1]) if kept else engine_rules.WORST_AGE
        own = engine_rules.cost(method, data, age)
        if not own <= maximum:
            raise KrakenUsageError(f'{method} costs {own:g} on the trading engine\'s counter, '
                                   f'which can never fit under the threshold of {maximum:g}: '
                                   f'send fewer orders at once or choose a larger engine '
                                   f'tier', method=method)
        engine = SharedCounter(self._store, engine_rules.counter_name(pair or '?'), maximum,
                               decay)
        parts = [(engine, own)] + ([(counter, cost)] if counter is not None and cost else [])

        def noted(result: Any) -> None:
            if not isinstance(result, Mapping) or result.get('error') or not pair:
                return
            found = engine_rules.added_ids(method, data, result.get('result', result))
            if found and method != 'CancelOrder':
                store.note_orders(found, pair, engine_rules.NOTE_AGE)
        return Joint(parts), 1.0, noted

    def _lookup_filter(self, error: OutcomeUnknownError) -> tuple[str, str]:
        """What to look the order of an unknown outcome up by, with the floor past its window.

        With a nonce window, Kraken still accepts the lost call until a nonce
        more than the window above it has been accepted: raising the key's
        floor there makes the lookup such a nonce.

        :raises KrakenUsageError: if the call carried neither identifier
        """
        found = reconcile_filter(error)
        if self.nonce_window and error.nonce is not None:
            self._store().nonce(int(error.nonce) + self.nonce_window)
        return found

    def _private_request(self, method: str, data: Mapping[str, Any]) -> Request:
        """Sign ``data`` as ``method`` with a fresh nonce; call it in send order."""
        return private_request(self.apiversion, method, data, key=self.key,
                               secret=self._secret_bytes(), nonce=self._nonce(), otp=self.otp)


def _read_problem(decoded: Any) -> str | None:
    return envelope_problem(decoded, files=True)


def _change_problem(decoded: Any) -> str | None:
    return envelope_problem(decoded, files=False)


def order_filter(userref: int | str | None, cl_ord_id: str | None) -> tuple[str, str]:
    """The field and value :meth:`~krakenex.API.find_order` looks orders up by.

    :raises KrakenUsageError: unless exactly one of the two is given
    """
    if (userref is None) == (cl_ord_id is None):
        raise KrakenUsageError('find_order needs exactly one of userref or cl_ord_id')
    return ('userref', str(userref)) if userref is not None else ('cl_ord_id', str(cl_ord_id))


def matching_orders(orders: Mapping[str, Any], field: str, value: str) -> dict[str, Any]:
    """The orders whose ``field`` is ``value``: Kraken's own filter is not trusted alone."""
    return {txid: order for txid, order in orders.items()
            if isinstance(order, Mapping) and str(order.get(field)) == value}


def reconcile_filter(error: OutcomeUnknownError) -> tuple[str, str]:
    """What to look the order of an unknown outcome up by.

    :raises KrakenUsageError: if the call carried neither identifier
    """
    if error.cl_ord_id is not None and error.method == 'AddOrderBatch':
        raise KrakenUsageError(f'AddOrderBatch placed several orders: look each up with '
                               f'find_order(cl_ord_id=...), by cl_ord_id {error.cl_ord_id}')
    if error.cl_ord_id is not None:
        return 'cl_ord_id', error.cl_ord_id
    if error.userref is not None:
        return 'userref', error.userref
    raise KrakenUsageError(f'{error.method} carried no userref or cl_ord_id to look up; '
                           f'check OpenOrders and ClosedOrders by hand')


#: Where :meth:`~krakenex.API.find_order` looks, and the member of each reply holding orders.
ORDER_LISTS = (('OpenOrders', 'open'), ('ClosedOrders', 'closed'))
