"""The order book and its checksum, against Kraken's published vectors (no network needed)."""

from __future__ import annotations

import os
import zlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from krakenex.ws.book import Book, checksum, level_text
from krakenex.ws.protocol import decode

D = Decimal


def levels(pairs: str) -> list[dict[str, Decimal]]:
    """'p/q p/q ...' as Kraken's [{"price", "qty"}] list, decoded as Decimal."""
    return [{'price': D(p), 'qty': D(q)} for p, q in (item.split('/') for item in pairs.split())]


# Kraken's v2 checksum guide, BTC/USD (kraken-protocol.md §0.5): checksum 3310070434.
BTC_ASKS = levels('45285.2/0.00100000 45286.4/1.54571953 45286.6/1.54571109 45289.6/1.54560911 '
                  '45290.2/0.15890660 45291.8/1.54553491 45294.7/0.04454749 45296.1/0.35380000 '
                  '45297.5/0.09945542 45299.5/0.18772827')
BTC_BIDS = levels('45283.5/0.10000000 45283.4/1.54582015 45282.1/0.10000000 45281.0/0.10000000 '
                  '45280.3/1.54592586 45279.0/0.07990000 45277.6/0.03310103 45277.5/0.30000000 '
                  '45277.3/1.54602737 45276.6/0.15445238')

# Kraken's v2 guide, MATIC/USD, price_precision 4 and qty_precision 8 (§10.1): 2439117997,
# then 2114181697 after bid 0.5657 becomes 1098.3947558. Printed without trailing zeros.
MATIC_BIDS = levels('0.5666/4831.75496356 0.5665/6658.22734739 0.5664/18724.91513344 '
                    '0.5663/11563.92544914 0.5662/14006.65365711 0.5661/17454.85679807 '
                    '0.566/18097.1547 0.5659/33644.89175666 0.5658/148.3464 '
                    '0.5657/606.70854372')
MATIC_ASKS = levels('0.5668/4410.79769741 0.5669/4655.40412487 0.567/49844.89424998 '
                    '0.5671/24306.41678 0.5672/29783.25223475 0.5673/57234.71239278 '
                    '0.5674/45065.04744 0.5675/5912.76380354 0.5676/42514.92434778 '
                    '0.5677/36304.0847022')


def test_kraken_v2_btc_usd_vector_reproduces_3310070434():
    book = Book('BTC/USD', depth=10)
    assert book.apply({'symbol': 'BTC/USD', 'bids': BTC_BIDS, 'asks': BTC_ASKS,
                       'checksum': 3310070434}, snapshot=True) == 'verified'
    view = book.view()
    assert view is not None and view.checksum == 3310070434
    assert view.bids[0] == (D('45283.5'), D('0.10000000'))
    assert view.asks[0] == (D('45285.2'), D('0.00100000'))


def test_kraken_v2_btc_usd_vector_text_is_kraken_s():
    asks = ''.join(level_text(x['price'], x['qty']) for x in BTC_ASKS)
    assert asks.startswith('452852100000' + '4528641545719534528661545711')
    assert checksum([(x['price'], x['qty']) for x in BTC_ASKS],
                    [(x['price'], x['qty']) for x in BTC_BIDS]) == 3310070434


def test_kraken_v2_matic_vectors_reproduce_only_at_the_pairs_precision():
    book = Book('MATIC/USD', depth=10, price_precision=4, qty_precision=8)
    snapshot = {'symbol': 'MATIC/USD', 'bids': MATIC_BIDS, 'asks': MATIC_ASKS,
                'checksum': 2439117997}
    assert book.apply(snapshot, snapshot=True) == 'verified'
    update = {'symbol': 'MATIC/USD', 'bids': levels('0.5657/1098.3947558'), 'asks': [],
              'checksum': 2114181697}
    assert book.apply(update, snapshot=False) == 'verified'
    assert book.view().bids[-1] == (D('0.5657'), D('1098.3947558'))
    # The same literals without the precision give 3830085102, which Kraken never sent.
    bare = Book('MATIC/USD', depth=10)
    assert bare.apply(snapshot, snapshot=True) == 'mismatch'
    assert bare.computed == 3830085102
    assert bare.view() is None


def test_kraken_v1_vector_reproduces_974947235_with_the_same_rule():
    asks = [(D('0.05005') + D('0.00005') * i, D('0.00000500')) for i in range(10)]
    # the published bids skip 0.04985
    bids = [(D(p), D('0.00000500')) for p in ['0.05000', '0.04995', '0.04990', '0.04980',
                                              '0.04975', '0.04970', '0.04965', '0.04960',
                                              '0.04955', '0.04950']]
    assert checksum(asks, bids, price_precision=5, qty_precision=8) == 974947235


def test_precision_that_arrives_later_is_used_for_the_next_checksum():
    book = Book('MATIC/USD', depth=10)
    book.set_precision(4, 8)
    assert book.apply({'bids': MATIC_BIDS, 'asks': MATIC_ASKS, 'checksum': 2439117997},
                      snapshot=True) == 'verified'


def _kraken_checksum(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's rule written out on the wire text, independently of the Book."""
    text = ''.join((p.replace('.', '').lstrip('0') + q.replace('.', '').lstrip('0'))
                   for p, q in asks[:10] + bids[:10])
    return zlib.crc32(text.encode())


def test_low_price_pair_verifies_from_the_wire_text():
    asks = [(f'0.0000{1240 + i}', f'{1000 + i}.00000000') for i in range(12)]
    bids = [(f'0.0000{1234 - i}', '25000000.00000000') for i in range(12)]
    wire = ('{"channel":"book","type":"snapshot","data":[{"symbol":"SHIB/USD","bids":['
            + ','.join(f'{{"price":{p},"qty":{q}}}' for p, q in bids) + '],"asks":['
            + ','.join(f'{{"price":{p},"qty":{q}}}' for p, q in asks) + '],"checksum":'
            + str(_kraken_checksum(asks, bids)) + '}]}')
    data = decode(wire)['data'][0]
    book = Book('SHIB/USD', depth=10, price_precision=8, qty_precision=8)
    assert book.apply(data, snapshot=True) == 'verified'
    assert book.view().bids[0] == (D('0.00001234'), D('25000000'))
    # Floats write these prices as 1.234e-05: the wire text must never pass through float.
    assert str(float('0.00001234')) == '1.234e-05'


def test_updates_apply_in_order_remove_qty_zero_and_cut_to_depth():
    book = Book('BTC/USD', depth=10)
    assert book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434},
                      snapshot=True) == 'verified'
    # one message touches 45283.5 twice (last wins), deletes 45276.6 and inserts a better bid
    bids = levels('45283.5/1.00000000 45283.5/2.00000000 45276.6/0 45284.0/0.50000000')
    expect_bids = [(D('45284.0'), D('0.50000000')), (D('45283.5'), D('2.00000000'))] + [
        (x['price'], x['qty']) for x in BTC_BIDS[1:9]]
    asks = [(x['price'], x['qty']) for x in BTC_ASKS]
    crc = checksum(asks, expect_bids)
    assert book.apply({'bids': bids, 'asks': [], 'checksum': crc}, snapshot=False) == 'verified'
    assert book.view().bids == expect_bids
    # an insert pushes the tenth bid out; Kraken sends no qty 0 for it
    more = levels('45283.9/0.10000000')
    cut = sorted(expect_bids + [(D('45283.9'), D('0.10000000'))], reverse=True)[:10]
    crc = checksum(asks, cut)
    assert book.apply({'bids': more, 'asks': [], 'checksum': crc}, snapshot=False) == 'verified'
    assert book.view().bids == cut and len(book.view().bids) == 10


def test_a_mismatch_hides_the_book_and_ignores_updates_until_a_snapshot():
    book = Book('BTC/USD', depth=10)
    book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434}, snapshot=True)
    assert book.apply({'bids': levels('45283.5/9'), 'asks': [], 'checksum': 1},
                      snapshot=False) == 'mismatch'
    assert book.view() is None and not book.verified
    assert book.apply({'bids': [], 'asks': [], 'checksum': 0}, snapshot=False) == 'ignored'
    assert book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434},
                      snapshot=True) == 'verified'


def test_deep_book_keeps_only_the_top_ten_in_the_checksum():
    asks = [(D(45300) + i, D('1.00000000')) for i in range(1000)]
    bids = [(D(45299) - i, D('2.00000000')) for i in range(1000)]
    book = Book('BTC/USD', depth=1000)
    data = {'asks': [{'price': p, 'qty': q} for p, q in asks],
            'bids': [{'price': p, 'qty': q} for p, q in bids], 'checksum': checksum(asks, bids)}
    assert book.apply(data, snapshot=True) == 'verified'
    assert len(book.view().asks) == 1000


@pytest.mark.parametrize('value, text', [(D('1E-8'), '1'), (D('0.10000000'), '10000000'),
                                         (D('45285.2'), '452852'), (5, '5')])
def test_level_text_strips_the_point_and_leading_zeros(value, text):
    assert level_text(D(value), D(1)) == text + '1'


# ------------------------------------------------------- against a model of Kraken's rules

#: Examples per property: a fixed budget in the suite; KRAKENEX_FUZZ_EXAMPLES=5000 for more.
FUZZ_EXAMPLES = int(os.environ.get('KRAKENEX_FUZZ_EXAMPLES', '0'))

#: One level as the wire sends it: a price tick near the middle and a quantity, 0 deletes.
wire_level = st.tuples(st.integers(1, 40), st.integers(0, 3 * 10**8))


@settings(max_examples=FUZZ_EXAMPLES or 200, derandomize=not FUZZ_EXAMPLES, deadline=None,
          database=None)
@given(depth=st.sampled_from([10, 25]), pp=st.sampled_from([1, 5, 8]),
       trimmed=st.booleans(), precise=st.booleans(),
       messages=st.lists(st.tuples(st.lists(wire_level, max_size=6),
                                   st.lists(wire_level, max_size=6)),
                         min_size=1, max_size=40))
def test_the_book_always_equals_kraken_s_rules_applied_to_the_wire(depth, pp, trimmed, precise,
                                                                     messages):
    """Each message applied in order, qty 0 removed, cut to depth, checksum on the wire text.

    The model keeps the wire's text for every level and sorts with Decimal; the
    book must show the same levels and verify the checksum computed from them,
    whether the wire keeps trailing zeros or not (the book then needs the
    instrument channel's precision) and whatever order the levels come in.
    """
    qp = 8
    mid = D(50) if pp == 1 else D('0.001')
    tick = D(1).scaleb(-pp)

    def text(value: Decimal, places: int) -> str:
        written = format(value, f'.{places}f')
        return (written.rstrip('0').rstrip('.') or '0') if trimmed else written

    model: dict[str, dict[Decimal, Decimal]] = {'bids': {}, 'asks': {}}
    book = Book('X/Y', depth, price_precision=pp if precise or trimmed else None,
                qty_precision=qp if precise or trimmed else None)
    for n, (bids, asks) in enumerate(messages):
        wire: dict[str, list[dict[str, Decimal]]] = {}
        for name, given_levels in (('bids', bids), ('asks', asks)):
            sign = -1 if name == 'bids' else 1
            wire[name] = []
            for ticks, lots in given_levels:
                price, qty = mid + sign * tick * ticks, D(lots).scaleb(-qp)
                wire[name].append({'price': D(text(price, pp)), 'qty': D(text(qty, qp))})
                if qty:
                    model[name][price] = qty
                else:
                    model[name].pop(price, None)
            best = sorted(model[name], reverse=name == 'bids')[:depth]
            model[name] = {p: model[name][p] for p in best}
        expected = {name: sorted(model[name].items(), reverse=name == 'bids')
                    for name in ('bids', 'asks')}
        crc = _kraken_checksum(
            *[[(format(p, f'.{pp}f'), format(q, f'.{qp}f')) for p, q in expected[name]]
              for name in ('asks', 'bids')])
        data = {'symbol': 'X/Y', 'checksum': crc, **wire}
        assert book.apply(data, snapshot=n == 0) == 'verified', (n, book.computed, crc)
        view = book.view()
        assert view is not None and view.checksum == crc
        assert view.bids == expected['bids'] and view.asks == expected['asks']


def test_a_book_never_shows_levels_from_a_message_whose_checksum_failed():
    book = Book('BTC/USD', depth=10)
    book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434}, snapshot=True)
    wrong = {'bids': levels('45284.0/1.00000000'), 'asks': [], 'checksum': 3310070434}
    assert book.apply(wrong, snapshot=False) == 'mismatch'
    assert book.view() is None
    assert book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434},
                      snapshot=True) == 'verified'
    assert D('45284.0') not in [p for p, _ in book.view().bids]


# ------------------------------------------------------- levels and checksums that cannot exist

def _wire_crc(bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]],
              pp: int, qp: int) -> int:
    """The checksum of these levels by Kraken's rule at the precisions, whatever they hold."""
    return _kraken_checksum(*[[(format(p, f'.{pp}f'), format(q, f'.{qp}f')) for p, q in side]
                              for side in (asks, bids)])


@pytest.mark.parametrize('precise', [True, False])
@pytest.mark.parametrize('price, qty', [
    ('45283.5', '-0.10000000'),  # a negative quantity
    ('-45283.5', '0.10000000'),  # a negative price
    ('0.0', '0.10000000'),  # a price of zero
    ('45283.5', 'NaN'), ('NaN', '0.10000000'),
    ('45283.5', 'Infinity'), ('Infinity', '0.10000000'), ('-Infinity', '0.10000000'),
    ('1E+400', '0.10000000'),  # Decimal reads it; no market has it
    ('45283.5', '1000000000000000000.00000000'),  # 10^18: LEVEL_LIMIT
])
def test_a_level_that_cannot_exist_is_refused_even_when_the_checksum_matches_it(price, qty,
                                                                              precise):
    odd = (D(price), D(qty))
    bids = [odd] + [(x['price'], x['qty']) for x in BTC_BIDS[1:]]
    asks = [(x['price'], x['qty']) for x in BTC_ASKS]
    ordered = sorted(bids, key=lambda level: level[0] if not level[0].is_nan() else D(0),
                     reverse=True)
    book = Book('BTC/USD', depth=10, price_precision=1 if precise else None,
                qty_precision=8 if precise else None)
    data = {'bids': [{'price': p, 'qty': q} for p, q in bids],
            'asks': [{'price': p, 'qty': q} for p, q in asks],
            'checksum': _wire_crc(ordered, asks, 1, 8)}
    with pytest.raises(ValueError, match='cannot exist'):
        book.apply(data, snapshot=True)
    assert book.view() is None and not book.verified
    # the same book without that level verifies: the book recovers on its next snapshot
    assert book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434},
                      snapshot=True) == 'verified'


def test_an_impossible_level_in_an_update_empties_a_verified_book():
    book = Book('BTC/USD', depth=10, price_precision=1, qty_precision=8)
    assert book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434},
                      snapshot=True) == 'verified'
    with pytest.raises(ValueError, match='quantity -1.00000000 cannot exist'):
        book.apply({'bids': levels('45283.5/-1.00000000'), 'asks': [], 'checksum': 1},
                   snapshot=False)
    assert book.view() is None


@pytest.mark.parametrize('value', [True, '45283.5', None, [1], {'a': 1}])
def test_a_level_whose_price_or_qty_is_not_a_number_is_refused(value):
    book = Book('BTC/USD', depth=10)
    for level in ({'price': value, 'qty': D('1.0')}, {'price': D('45283.5'), 'qty': value}):
        with pytest.raises(ValueError, match='where a number belongs'):
            book.apply({'bids': [level], 'asks': [], 'checksum': 0}, snapshot=True)
        assert book.view() is None


@pytest.mark.parametrize('checksum', [1 << 32, -1, D('1E+1000000'), D('3310070434.5'), True,
                                      None, '3310070434', 3310070434.0, [3310070434]])
def test_a_checksum_that_is_not_a_crc32_is_refused_without_converting_it(checksum):
    book = Book('BTC/USD', depth=10)
    with pytest.raises(ValueError, match='is not a CRC32'):
        book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': checksum}, snapshot=True)
    assert book.view() is None
    assert book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': D('3310070434')},
                      snapshot=True) == 'verified'


def test_a_timestamp_that_is_not_text_is_refused():
    book = Book('BTC/USD', depth=10)
    with pytest.raises(ValueError, match='timestamp'):
        book.apply({'bids': BTC_BIDS, 'asks': BTC_ASKS, 'checksum': 3310070434,
                    'timestamp': ['2026']}, snapshot=True)
    assert book.view() is None
