"""``krakenex ws``: Kraken's WebSocket v2 from the shell, one JSON message per line.

::

    krakenex ws ticker BTC/USD ETH/USD
    krakenex ws book BTC/USD depth=10 --top 5
    krakenex ws ohlc BTC/USD interval=60 --count 3
    krakenex ws executions
    krakenex ws add_order symbol=BTC/USD side=buy order_type=market order_qty=0.01
    krakenex ws cancel_order order_id=OABC12-DEF34-GHI567
    krakenex ws --unified book PF_XBTUSD --top 5
    krakenex ws --unified add_order symbol=PF_XBTUSD side=buy order_type=limit \
        order_qty=0.5 limit_price=60000 cl_ord_id=mine-1

With ``--unified`` it speaks Kraken's Unified WebSocket (derivatives) instead.
A channel subscribes and prints what arrives (heartbeats left out) until
``--count``, ``--seconds`` or Ctrl-C; a method sends one request and prints
its reply. Credentials and exit codes are those of the REST command.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..errors import KrakenUsageError
from ..ws.protocol import (
    AUTH,
    LEVEL3,
    ORDER_METHODS,
    PUBLIC,
    UNIFIED_URL_VARIABLES,
    URL_VARIABLES,
    is_private,
)
from ..ws.unified import (
    ASSET_CLASS_CHANNELS,
    ASSET_CLASS_METHODS,
    DERIVATIVES,
    NO_ASSET_CLASS,
    Unified,
)
from ..ws.unified import PRIVATE as UNIFIED_PRIVATE  # what goes to /v2/private, with a token
from .frame import (
    EXIT_CODES,
    EXIT_NETWORK,
    EXIT_OK,
    Call,
    Output,
    Parser,
    UsageError,
    add_share_option,
    check_uri_option,
    default_key_file,
    load_credentials,
    lookup_advice,
    parse_params,
    run_command,
    to_json,
)

if TYPE_CHECKING:
    from ..api import API
    from ..ws.sync import WS

__all__ = ['main', 'UsageError']


#: Kraken's v2 channels; anything else is a request method.
CHANNELS = ('ticker', 'book', 'ohlc', 'trade', 'instrument', 'status', 'executions', 'balances',
            'level3')

#: Seconds between two moves of the embedded sandbox's market (``--sandbox``), so that
#: books, tickers, trades and candles change while the command watches them.
SANDBOX_MOTION = 0.5
METHODS = ('ping', *sorted(ORDER_METHODS))

#: The Unified WebSocket's methods and channels (``--unified``), from krakenex.ws.unified's
#: tables: what takes ``asset_class`` and what does not (level3 and edit_order are not there).
UNIFIED_METHODS = ('ping', *sorted(ASSET_CLASS_METHODS | (NO_ASSET_CLASS & ORDER_METHODS)))
UNIFIED_CHANNELS = tuple(sorted((ASSET_CLASS_CHANNELS | NO_ASSET_CLASS)
                                - set(UNIFIED_METHODS) - {'heartbeat'}))

#: v1 names people type out of habit, and what v2 calls them.
V1_NAMES = {
    'openorders': 'executions (v2 carries open orders and fills in one channel)',
    'owntrades': 'executions snap_trades=true (v2 carries open orders and fills in one channel)',
    'spread': 'ticker event_trigger=bbo (best bid and offer on every change)',
    'addorder': 'add_order', 'cancelorder': 'cancel_order', 'cancelall': 'cancel_all',
    'editorder': 'amend_order or edit_order',
    'cancelallordersafter': 'cancel_all_orders_after',
}

#: The ``req_id`` of the one request the command sends, unless given as ``req_id=N``.
FIRST_REQ_ID = 1

#: The environment variable a WebSocket token is read from, for a key that lives elsewhere.
TOKEN_VARIABLE = 'KRAKEN_WS_TOKEN'

#: What a bare number after the symbols means, by channel (``book BTC/USD 10``, as in
#: krakenws.py).
BARE_NUMBERS = {'book': 'depth', 'ohlc': 'interval'}


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog='krakenex ws', help_command='krakenex ws',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Kraken's WebSocket v2 from the shell: subscribe to a channel and print "
                    'each message as one line of JSON, or send one request and print its reply. '
                    "With --unified, Kraken's Unified WebSocket (derivatives, which replaces "
                    'Derivatives REST) instead.',
        epilog='\n'.join([
            'channels: ' + ', '.join(CHANNELS), 'methods:  ' + ', '.join(METHODS), '',
            'with --unified:', '  channels: ' + ', '.join(UNIFIED_CHANNELS),
            '  methods:  ' + ', '.join(UNIFIED_METHODS), '',
            'examples:', '  krakenex ws ticker BTC/USD ETH/USD',
            '  krakenex ws book BTC/USD depth=10 --top 5',
            '  krakenex ws --sandbox add_order symbol=BTC/USD side=buy order_type=market '
            'order_qty=0.01',
            '  krakenex ws --unified book PF_XBTUSD --top 5',
            '  krakenex ws --unified --sandbox add_order symbol=PF_XBTUSD side=buy '
            'order_type=limit order_qty=0.5 limit_price=60000 cl_ord_id=mine-1', '',
            'credentials (private channels and methods), first found wins: --token-file, '
            f'--key-file, ${TOKEN_VARIABLE}, KRAKEN_API_KEY and KRAKEN_API_SECRET, '
            f'{default_key_file()}', '',
            'a bare number after the symbols is the depth of a book (book BTC/USD 10) or the '
            'interval of candles (ohlc BTC/USD 60)', '', 'exit codes:',
            *(f'  {code}  {text}' for code, text in EXIT_CODES.items())]))
    add = parser.add_argument
    add('what', metavar='CHANNEL|METHOD', help='a v2 channel or request method')
    add('args', nargs='*', metavar='SYMBOL|name=value',
        help="symbols (BTC/USD) and Kraken's parameters as name=value or name:=JSON")
    add('--count', type=_at_least_one, metavar='N',
        help="stop after N of the channel's messages (the status and the acknowledgements "
             'are printed, not counted)')
    add('--seconds', type=_seconds, metavar='S', help='stop after S seconds')
    add('--top', type=_at_least_one, metavar='N',
        help='book only: print the verified top N levels after each update (what krakenex '
             'itself says, such as book_resync, goes to stderr)')
    add('--sandbox', action='store_true',
        help='run against an embedded sandbox, its funded account and a market that moves '
             f'every {SANDBOX_MOTION} s (no network; with --unified, its futures market, '
             'whose prices stay still)')
    add('--unified', action='store_true',
        help="speak Kraken's Unified WebSocket (derivatives; symbols such as PF_XBTUSD) "
             'instead of spot WebSocket v2, with the token of a spot key')
    add('--asset-class', metavar='NAME',
        help=f'with --unified: the asset_class of every request that takes one and does not '
             f'name its own (default: {DERIVATIVES})')
    for option, name, where in (('--ws-uri', PUBLIC, 'public'),
                                ('--ws-auth-uri', AUTH, 'authenticated'),
                                ('--ws-l3-uri', LEVEL3, 'level3')):
        variable, default = URL_VARIABLES[name]
        unified = ('' if name not in UNIFIED_URL_VARIABLES else
                   '; with --unified: ${}, else {}'.format(*UNIFIED_URL_VARIABLES[name]))
        add(option, metavar='URL',
            help=f'{where} endpoint (default: ${variable}, else {default}{unified})')
    add('--uri', metavar='URL', help='REST server the token comes from (default: '
                                     '$KRAKEN_API_URL, else Kraken)')
    add('--key-file', metavar='PATH', help='key file: API key on line 1, secret on line 2')
    add('--token-file', metavar='PATH',
        help='a WebSocket token from GetWebSocketsToken, got elsewhere, in a file (as '
             f"krakenws.py's WS_Token; else ${TOKEN_VARIABLE}), instead of a key: Kraken "
             'accepts it for 15 minutes after it was made')
    add_share_option(add)
    add('--timeout', type=_seconds, default=10.0, metavar='S',
        help='seconds to wait for a connection or a reply (default 10)')
    return parser


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not 1 or more')
    return value


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f'{text!r} is not a finite number of seconds above 0')
    return value


class _SocketCall(Call):
    """A WebSocket order request, looked up by its ``cl_ord_id``, ``order_userref`` or order id."""

    def __init__(self) -> None:
        super().__init__('krakenex ws')
        #: The ``req_id`` the order request is sent with.
        self.req_id: int | None = None
        #: Whether the command has shown that the order request never left (interrupted
        #: while the connection was re-opening, before it was handed to a socket).
        self.never_sent = False
        #: Whether the order went over the Unified WebSocket (a derivatives order).
        self.unified = False

    @property
    def in_doubt(self) -> bool:
        return super().in_doubt and not self.never_sent

    #: The parameters that identify an order, in the order advice names them.
    ID_NAMES = ('cl_ord_id', 'order_userref', 'order_id')
    ELSEWHERE = ('look in krakenex ws executions, or krakenex OpenOrders and krakenex '
                 'ClosedOrders (next time give it a cl_ord_id)')

    def ids(self) -> list[tuple[str, Any]]:
        """The ids of the order, or of each order of a ``batch_add``."""
        orders = self.data.get('orders')
        sources = [o for o in orders if isinstance(o, dict)] if isinstance(orders, list) else []
        return [(name, source[name]) for source in [self.data, *sources]
                for name in self.ID_NAMES if source.get(name) is not None]

    #: Where to look for a derivatives order sent over the Unified WebSocket without ids.
    UNIFIED_ELSEWHERE = ('look in krakenex ws --unified executions, or krakenex --futures '
                         'openorders (next time give it a cl_ord_id)')

    def commands(self, ids: list[tuple[str, Any]]) -> str:
        if not self.unified:
            return super().commands(ids)
        # derivatives orders: the futures REST lookup, by cl_ord_id or order id
        return ' and '.join(f'krakenex --futures orders/status '
                            f'{"cliOrdIds" if name == "cl_ord_id" else "orderIds"}='
                            f'{",".join(map(str, value)) if isinstance(value, list) else value}'
                            for name, value in ids[:1])

    def advice(self) -> str:
        sent = '' if self.req_id is None else f'It carried req_id {self.req_id}. '
        if self.unified:
            ids = self.ids()
            return sent + lookup_advice(self.method, ids, self.commands(ids),
                                        self.UNIFIED_ELSEWHERE)
        return sent + super().advice()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``krakenex ws``.

    Failures are reported as ``krakenex`` reports them (:func:`krakenex.cli.frame.report`):
    any failure after an order request may have reached Kraken exits 4.

    :param argv: the arguments after ``ws``; ``sys.argv[2:]`` by default
    :returns: the exit code (see ``krakenex ws --help``)
    """
    argv = list(sys.argv[2:] if argv is None else argv)
    return run_command(_SocketCall(), _parser(), argv, _run)


def _run(args: argparse.Namespace, call: Call) -> int:
    if args.asset_class is not None and not args.unified:
        raise UsageError('--asset-class is for the Unified WebSocket: give --unified too')
    if args.unified and args.ws_l3_uri is not None:
        raise UsageError('the Unified WebSocket has no level3 endpoint: leave out --ws-l3-uri')
    what, symbols, params = _request(args.what, args.args, unified=args.unified)
    if args.top is not None and what != 'book':
        raise UsageError('--top is for the book channel only')
    unified = _unified_rules(args, what, symbols, params) if args.unified else None
    if isinstance(call, _SocketCall):
        call.unified = unified is not None
    if args.sandbox:  # as krakenex --sandbox: a server of its own, never one also named
        given = [name for name, value in (
            ('--ws-uri', args.ws_uri), ('--ws-auth-uri', args.ws_auth_uri),
            ('--ws-l3-uri', args.ws_l3_uri), ('--uri', args.uri),
            ('--key-file', args.key_file), ('--token-file', args.token_file))
            if value is not None]
        if given:
            raise UsageError('--sandbox runs its own server with its own account: leave out '
                             + given[0])
    if args.key_file and args.token_file:
        raise UsageError('give --key-file or --token-file, not both')
    check_uri_option(args.uri)
    private = is_private(what) if unified is None else what in UNIFIED_PRIVATE
    out = Output(None)  # stdout, refused now if it is closed
    from ..ws.sync import WS

    sandbox = None
    if args.sandbox:
        from ..sandbox import Sandbox

        sandbox = Sandbox(motion=SANDBOX_MOTION).start()
    try:
        token = None if sandbox is not None or not private else _token(args)
        api = _api(args, sandbox) if private and token is None else None
        urls = ((args.ws_uri, args.ws_auth_uri, args.ws_l3_uri) if sandbox is None
                else (sandbox.unified_url, sandbox.unified_auth_url, None) if unified
                else (sandbox.ws_url, sandbox.ws_auth_url, sandbox.ws_l3_url))
        with WS(api, url=urls[0], auth_url=urls[1], l3_url=urls[2], token=token,
                timeout=args.timeout, unified=unified is not None,
                asset_class=None if unified is None else unified.asset_class) as ws:
            if what in (CHANNELS if unified is None else UNIFIED_CHANNELS):
                if symbols:
                    params['symbol'] = symbols
                ws.subscribe(what, **params)
                code = _stream(ws, args, out)
                call.delivering()  # all it was asked for is printed: closing changes nothing
                return code
            req_id = params.pop('req_id', FIRST_REQ_ID)
            if what in ORDER_METHODS:
                # Nothing is sent while connecting: a failure or Ctrl-C up to here leaves
                # nothing to look up; from the next line on it does.
                ws.connect(private=True)
                call.sending(what, params)
                if isinstance(call, _SocketCall):
                    call.req_id = req_id
            try:
                reply = ws.request(what, req_id=req_id, **params)
            except KeyboardInterrupt:
                if what in ORDER_METHODS and isinstance(call, _SocketCall):
                    # the interrupted request ends before the client closes: it was handed
                    # to a socket by then, or it never will be
                    ws.close()
                    call.never_sent = not ws.may_have_sent_orders()
                raise
            call.accepted(reply)
            call.delivering()
            _print(out, reply)
            return EXIT_OK
    finally:
        if sandbox is not None:
            sandbox.stop()


def _stream(ws: WS, args: argparse.Namespace, out: Output) -> int:
    """Print what arrives (or, with ``--top``, the verified books) until told to stop."""
    from ..ws.errors import BookUnavailableError

    printed, stop_at = 0, None if args.seconds is None else time.monotonic() + args.seconds
    while args.count is None or printed < args.count:
        left = None if stop_at is None else stop_at - time.monotonic()
        if left is not None and left <= 0:
            break
        try:
            message = ws.recv(timeout=left)
        except TimeoutError:
            break
        channel = message.get('channel')
        if channel == 'heartbeat':
            continue
        if args.top is None:
            _print(out, message)
            # --count counts what was asked for: the channel's data, not acknowledgements,
            # the status, or krakenex's own notices
            if channel == args.what and message.get('type') in ('snapshot', 'update'):
                printed += 1
        elif channel == 'krakenex':  # stdout has books only: krakenex's own word to stderr
            _warn(' '.join(f'{name}={value}' for name, value in message.items()
                           if name != 'channel'))
        elif channel == 'book':
            for data in message.get('data') or ():
                if args.count is not None and printed >= args.count:
                    break
                try:
                    book = ws.book(data['symbol'])
                except BookUnavailableError:
                    continue
                _print(out, {'symbol': book.symbol, 'checksum': book.checksum,
                        'bids': [list(level) for level in book.bids[:args.top]],
                        'asks': [list(level) for level in book.asks[:args.top]]})
                printed += 1
        if channel == 'krakenex' and message.get('type') == 'gave_up':
            return EXIT_NETWORK
    return EXIT_OK


def _request(what: str, tokens: Sequence[str], *, unified: bool = False
             ) -> tuple[str, list[str], dict[str, Any]]:
    """The channel or method, its symbols and its parameters, as Kraken's v2 wants them
    (or, with ``unified``, the Unified WebSocket: its own lists, futures symbols as given)."""
    channels, methods = (UNIFIED_CHANNELS, UNIFIED_METHODS) if unified else (CHANNELS, METHODS)
    if what.lower().replace('_', '') in V1_NAMES and what not in channels + methods:
        raise UsageError(f'{what} is a WebSocket v1 name; v2 calls it '
                         f'{V1_NAMES[what.lower().replace("_", "")]}')
    if what not in channels and what not in methods:
        where = 'Unified WebSocket' if unified else 'v2'
        raise UsageError(f'{what!r} is not a {where} channel ({", ".join(channels)}) or method '
                         f'({", ".join(methods)})')
    symbol = str if unified else _v2_symbol  # PF_XBTUSD is the futures name: kept as given
    bare = [t for t in tokens if '=' not in t and t.isascii() and t.isdigit()]
    symbols = [symbol(t) for t in tokens if '=' not in t and t not in bare]
    try:
        raw = parse_params([t for t in tokens if '=' in t])
    except Exception as exc:  # the REST command's own usage error
        raise UsageError(str(exc)) from None
    if bare:  # krakenws.py's habit: book XBT/USD 10, ohlc XBT/USD 60
        name = BARE_NUMBERS.get(what)
        if name is None or len(bare) > 1 or name in raw:
            means = ', '.join(f'{name} for {channel}' for channel, name in BARE_NUMBERS.items())
            raise UsageError(f'{" ".join(bare)} is not a symbol; one bare number is the '
                             f'{means} (or give it as name=value)')
        raw[name] = bare[0]
    if 'reqid' in raw:  # v1's name for it
        if 'req_id' in raw:
            raise UsageError('give req_id (v2\'s name) or reqid (v1\'s), not both')
        raw['req_id'] = raw.pop('reqid')
        _warn(f'WebSocket v2 calls reqid req_id: using req_id={raw["req_id"]}')
    params = {name: _value(name, value) for name, value in raw.items()}
    if 'symbol' in params and isinstance(params['symbol'], str):
        params['symbol'] = symbol(params['symbol'])
    if isinstance(params.get('symbol'), list):
        params['symbol'] = [symbol(s) for s in params['symbol']]
    if what in channels and 'symbol' in params:
        symbols, params = symbols + list(params.pop('symbol')), params
    if what == 'cancel_order':  # lists here (order_id=A,B); one id everywhere else
        for name in ('order_id', 'cl_ord_id', 'order_userref'):
            value = params.get(name)
            if isinstance(value, str):
                params[name] = value.split(',')
            elif name in params and not isinstance(value, list):
                params[name] = [value]
    return what, symbols, params


def _unified_rules(args: argparse.Namespace, what: str, symbols: list[str],
                   params: dict[str, Any]) -> Unified:
    """The Unified WebSocket's rules for ``--asset-class``, with the request checked against
    them before anything connects: a field Kraken refuses for derivatives is a usage error
    with krakenex's own message, and nothing is sent."""
    try:
        rules = Unified(DERIVATIVES if args.asset_class is None else args.asset_class)
        if what in UNIFIED_CHANNELS:
            rules.check_subscription(what, {**params, **({'symbol': symbols} if symbols else {})})
        else:
            rules.check_request(what, params)
    except KrakenUsageError as exc:
        raise UsageError(str(exc)) from None
    return rules


def _v2_symbol(symbol: str) -> str:
    """v2 says BTC where v1 said XBT (it refuses "XBT/USD"): translate, and say so."""
    if '/' not in symbol:  # REST's XBTUSD
        _warn(f'WebSocket v2 names pairs BASE/QUOTE, such as BTC/USD; Kraken may refuse '
              f'{symbol}')
    if 'XBT' in symbol.upper():
        fixed = symbol.upper().replace('XBT', 'BTC')
        _warn(f'WebSocket v2 calls {symbol} {fixed} (it refuses XBT): using {fixed}')
        return fixed
    return symbol


def _value(name: str, value: Any) -> Any:
    """A ``name=value`` text as the JSON type Kraken expects: bool, integer, number, text."""
    if not isinstance(value, str):
        return value  # name:=JSON gave it a type already
    if name in ('symbol', 'cl_ord_id', 'order_id', 'token'):
        return value
    if value in ('true', 'false'):
        return value == 'true'
    if value.lstrip('-').isdigit():
        return int(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    return number if number.is_finite() else value


def _token(args: argparse.Namespace) -> str | None:
    """A token the user got elsewhere: ``--token-file``, else the environment, else None.

    A key file named outright, or a key in the environment, wins over a token in the
    environment: a key gets a fresh token for every connection.
    """
    if args.token_file:
        try:
            with open(args.token_file, encoding='utf-8-sig') as f:
                token = f.read(4096).strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, 'strerror', None) or exc
            raise UsageError(f'cannot read token file {args.token_file}: {reason}') from None
        if not token or not token.isprintable() or '\n' in token:
            raise UsageError(f'token file {args.token_file} should hold one line: the token '
                             f'GetWebSocketsToken returned')
        return token
    from ..core import KeyedCore

    if args.key_file or all(os.environ.get(name) for name in KeyedCore.KEY_VARIABLES):
        return None
    return os.environ.get(TOKEN_VARIABLE, '').strip() or None


def _api(args: argparse.Namespace, sandbox: Any) -> API:
    """The REST client the token comes from, with the key from the usual places."""
    from ..api import API

    options: dict[str, Any] = {} if args.share is None else {'share': args.share}
    if sandbox is not None:
        return API(sandbox.key, sandbox.secret, uri=sandbox.url, **options)
    api = API(uri=args.uri, **options)
    try:
        load_credentials(api, args.key_file, args.what, 'krakenex ws', missing=(
            f'{args.what} needs an API key (for a WebSocket token) or a token; none found in '
            f'--token-file, --key-file, ${TOKEN_VARIABLE}, KRAKEN_API_KEY and '
            f'KRAKEN_API_SECRET, or {default_key_file()} (or try it offline with --sandbox)'))
    except BaseException:
        api.close()
        raise
    return api


def _print(out: Output, message: Any) -> None:
    out.write((to_json(message) + '\n').encode())


def _warn(message: str) -> None:
    print(f'krakenex ws: {" ".join(message.split())}', file=sys.stderr)
