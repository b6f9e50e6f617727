"""Kraken's error strings and the exception each raises, shown over real HTTP.

Each row of :data:`krakenex.errors.ERROR_PREFIXES` is tested by a route on the
sandbox that answers that string; the sandbox's own refusals (invalid arguments
of any method, an unknown order) are tested as Kraken sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from krakenex import (
    API,
    AuthenticationError,
    InsufficientFundsError,
    InvalidArgumentsError,
    InvalidNonceError,
    InvalidOrderArgumentsError,
    InvalidOrderError,
    KrakenAPIError,
    OrderNotFoundError,
    OrdersLimitError,
    RateLimitError,
    ServiceUnavailableError,
    UnknownAssetError,
)
from krakenex.errors import ERROR_PREFIXES, error_class
from krakenex.sandbox import Reply, Request, Sandbox

#: Every error string on Kraken's spot errors page
#: (https://docs.kraken.com/api/docs/guides/spot-errors), the rate-limit pages, the
#: Earn methods' descriptions, and the older strings of Kraken's support article.
DOCUMENTED = (
    'EGeneral:Invalid arguments', 'EGeneral:Invalid arguments:Index unavailable',
    'EGeneral:Temporary lockout', 'EGeneral:Permission denied', 'EGeneral:Internal error',
    'EService:Unavailable', 'EService:Market in cancel_only mode',
    'EService:Market in post_only mode', 'EService:Deadline elapsed',
    'EAPI:Invalid key', 'EAPI:Invalid signature', 'EAPI:Invalid nonce',
    'EOrder:Cannot open opposing position', 'EOrder:Cannot open position',
    'EOrder:Margin allowance exceeded', 'EOrder:Margin level too low',
    'EOrder:Margin position size exceeded', 'EOrder:Insufficient margin',
    'EOrder:Insufficient funds', 'EOrder:Order minimum not met', 'EOrder:Cost minimum not met',
    'EOrder:Tick size check failed', 'EOrder:Orders limit exceeded',
    'EOrder:Rate limit exceeded', 'EOrder:Domain rate limit exceeded',
    'EOrder:Positions limit exceeded', 'EOrder:Scheduled orders limit exceeded',
    'EOrder:Invalid price', 'EOrder:Reduce only:Non-PC', 'EOrder:Reduce only:No position exists',
    'EOrder:Reduce only:Position is closed', 'EOrder:Unknown position',
    'EAccount:Invalid permissions', 'EAuth:Account temporary disabled',
    'EAuth:Account unconfirmed', 'EAuth:Rate limit exceeded', 'EAuth:Too many requests',
    'ETrade:Invalid request', 'EBM:limit exceeded:CAL', 'EFunding:Max fee exceeded',
    'EAPI:Rate limit exceeded', 'EService: Throttled: 1700000000',
    'EEarnings:Below min:(De)allocation operation amount less than minimum',
    'EEarnings:Busy:Another (de)allocation for the same strategy is in progress',
    'EEarnings:Busy', "EEarnings:Permission denied:The user's tier is not high enough",
    'EEarnings:Insufficient funds:Insufficient funds to complete the (de)allocation request',
    'EEarnings:Above max:The allocation exceeds user limit for the strategy',
    'EGeneral:Invalid arguments:Invalid strategy ID',
    'EQuery:Unknown asset pair', 'EQuery:Invalid asset pair', 'EQuery:Unknown asset',
    'EGeneral:Unknown method', 'EGeneral:Too many requests', 'EService:Busy',
    'EService:Timeout', 'EAPI:Feature disabled', 'EAPI:Bad request', 'EOrder:Unknown order',
    'EOrder:Invalid order', 'EOrder:Trading agreement required',
    'EFunding:Unknown withdraw key', 'EFunding:Invalid amount', 'EFunding:Unknown asset',
    'EFunding:No funding method', 'EFunding:Invalid reference id',
    'EFunding:Unknown reference id', 'EFunding:Too many addresses',
    'EFunding:Insufficient funds', 'ETrade:Locked', 'ETrade:User Locked',
    'ESession:Invalid session', 'EDatabase:Internal error', 'EAuth:Failed',
)


#: What each row of the table must raise, written out so that a changed row fails here.
ROWS: tuple[tuple[str, type[KrakenAPIError]], ...] = (
    ('EAPI:Invalid nonce', InvalidNonceError),
    ('EAPI:Invalid key', AuthenticationError),
    ('EAPI:Invalid signature', AuthenticationError),
    ('EGeneral:Permission denied', AuthenticationError),
    ('EAccount:Invalid permissions', AuthenticationError),
    ('EAuth:Account temporary disabled', AuthenticationError),
    ('EAuth:Account unconfirmed', AuthenticationError),
    ('EAuth:Failed', AuthenticationError),
    ('ESession:Invalid session', AuthenticationError),
    ('EEarnings:Permission denied', AuthenticationError),
    ('EAPI:Rate limit exceeded', RateLimitError),
    ('EOrder:Rate limit exceeded', RateLimitError),
    ('EOrder:Domain rate limit exceeded', RateLimitError),
    ('EGeneral:Too many requests', RateLimitError),
    ('EGeneral:Temporary lockout', RateLimitError),
    ('EService:Throttled', RateLimitError),
    ('EService: Throttled', RateLimitError),
    ('EAuth:Rate limit exceeded', RateLimitError),
    ('EAuth:Too many requests', RateLimitError),
    ('EOrder:Orders limit exceeded', OrdersLimitError),
    ('EOrder:Positions limit exceeded', OrdersLimitError),
    ('EOrder:Scheduled orders limit exceeded', OrdersLimitError),
    ('EOrder:Insufficient funds', InsufficientFundsError),
    ('EOrder:Margin level too low', InsufficientFundsError),
    ('EFunding:Insufficient funds', InsufficientFundsError),
    ('EEarnings:Insufficient funds', InsufficientFundsError),
    ('EOrder:Insufficient margin', ServiceUnavailableError),
    ('EService:Unavailable', ServiceUnavailableError),
    ('EService:Busy', ServiceUnavailableError),
    ('EService:Timeout', ServiceUnavailableError),
    ('EService:Market in', ServiceUnavailableError),
    ('EService:Deadline elapsed', ServiceUnavailableError),
    ('EGeneral:Internal error', ServiceUnavailableError),
    ('EDatabase:Internal error', ServiceUnavailableError),
    ('EEarnings:Busy', ServiceUnavailableError),
    ('EQuery:Unknown asset', UnknownAssetError),
    ('EQuery:Invalid asset pair', UnknownAssetError),
    ('EFunding:Unknown asset', UnknownAssetError),
    ('EGeneral:Invalid arguments', InvalidArgumentsError),
    ('ETrade:Invalid request', InvalidArgumentsError),
    ('EAPI:Bad request', InvalidArgumentsError),
    ('EEarnings:Below min', InvalidArgumentsError),
    ('EEarnings:Above max', InvalidArgumentsError),
    ('EFunding:Invalid amount', InvalidArgumentsError),
    ('EFunding:Unknown withdraw key', InvalidArgumentsError),
    ('EFunding:Invalid reference id', InvalidArgumentsError),
    ('EFunding:Unknown reference id', InvalidArgumentsError),
    ('EFunding:No funding method', InvalidArgumentsError),
    ('EFunding:Max fee exceeded', InvalidArgumentsError),
    ('EOrder:Unknown order', OrderNotFoundError),
    ('EOrder:', InvalidOrderError),
    ('EGeneral:Unknown method', KrakenAPIError),
    ('EAPI:Feature disabled', KrakenAPIError),
    ('ETrade:Locked', KrakenAPIError),
    ('ETrade:User Locked', KrakenAPIError),
    ('EFunding:Too many addresses', KrakenAPIError),
    ('EBM:limit exceeded', KrakenAPIError),
)


class Answers:
    """A route that answers each call with the next of the error lists it is given."""

    def __init__(self) -> None:
        self.replies: list[list[str]] = []
        self.calls = 0

    def __call__(self, request: Request) -> Reply:
        self.calls += 1
        errors = self.replies.pop(0) if self.replies else []
        body = {'error': errors} if errors else {'error': [], 'result': {'status': 'Success'}}
        return Reply(200, json.dumps(body).encode())


@pytest.fixture
def answers(sandbox: Sandbox) -> Iterator[Answers]:
    route = Answers()
    sandbox.add_route('/0/public/ErrorProbe', route)
    sandbox.add_route('/0/private/Earn/AllocateStatus', route)
    sandbox.add_route('/0/private/Earn/Allocate', route)
    yield route


def test_the_table_has_exactly_the_rows_tested_here() -> None:
    assert [p for p, _ in ERROR_PREFIXES] == [p for p, _ in ROWS]


@pytest.mark.parametrize(('prefix', 'cls'), ROWS, ids=[p for p, _ in ROWS])
def test_each_error_string_in_the_table_raises_its_class(sandbox: Sandbox, answers: Answers,
                                                          prefix: str, cls: type) -> None:
    answers.replies = [[prefix + ':detail']]
    api = API(uri=sandbox.url, raise_errors=True, retries=0)
    with pytest.raises(KrakenAPIError) as caught:
        api.query_public('ErrorProbe')
    assert type(caught.value) is cls
    assert caught.value.errors == [prefix + ':detail']


def test_every_documented_error_string_has_a_row_of_its_own() -> None:
    unlisted = [e for e in DOCUMENTED if not any(e.startswith(p) for p, _ in ERROR_PREFIXES)]
    assert unlisted == []


def test_invalid_arguments_is_its_own_error_for_reads(sandbox: Sandbox) -> None:
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True)
    with pytest.raises(InvalidArgumentsError, match='Invalid arguments:txid') as caught:
        api.query_private('QueryOrders')
    assert not isinstance(caught.value, InvalidOrderError)


def test_invalid_arguments_of_an_order_is_also_an_invalid_order(sandbox: Sandbox) -> None:
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True)
    order = {'pair': 'XBTUSD', 'type': 'buy', 'ordertype': 'limit', 'price': '100',
             'volume': 'lots'}
    with pytest.raises(InvalidOrderArgumentsError) as caught:
        api.query_private('AddOrder', order)
    assert isinstance(caught.value, InvalidArgumentsError)
    assert isinstance(caught.value, InvalidOrderError)


def test_cancelling_an_unknown_order_raises_order_not_found(sandbox: Sandbox) -> None:
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True)
    with pytest.raises(OrderNotFoundError, match='EOrder:Unknown order'):
        api.query_private('CancelOrder', {'txid': 'OAAAAA-AAAAA-AAAAAA'})


def test_limits_and_shortages_are_classed_by_meaning() -> None:
    assert issubclass(error_class('EOrder:Orders limit exceeded'), RateLimitError)
    assert error_class('EOrder:Orders limit exceeded') is OrdersLimitError
    assert error_class('EOrder:Insufficient margin') is ServiceUnavailableError
    assert error_class('EOrder:Insufficient funds') is InsufficientFundsError
    assert error_class('EOrder:Unknown order') is OrderNotFoundError


def test_earn_busy_is_retried_for_a_status_read(sandbox: Sandbox, answers: Answers) -> None:
    answers.replies = [['EEarnings:Busy:Another (de)allocation for the same strategy is in '
                        'progress']]
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True, backoff=0.01)
    reply = api.query_private('Earn/AllocateStatus', {'strategy_id': 'S'})
    assert reply['result'] == {'status': 'Success'}
    assert answers.calls == 2


def test_earn_busy_is_not_retried_for_an_allocation(sandbox: Sandbox, answers: Answers) -> None:
    answers.replies = [['EEarnings:Busy']]
    api = API(sandbox.key, sandbox.secret, uri=sandbox.url, raise_errors=True, backoff=0.01)
    with pytest.raises(ServiceUnavailableError):
        api.query_private('Earn/Allocate', {'strategy_id': 'S', 'amount': '1'})
    assert answers.calls == 1
