from __future__ import annotations

import itertools

import pytest

from clearmaas.routing.strategies import balanced_scores, blended_price, rank
from tests.routing.builders import entry

# Dollars per million tokens (input, output) -> blended: budget 0.50, mid 5.00, premium 30.00.
BUDGET = entry("a/budget", price=("0.10", "0.40"), quality=40)
MID = entry("b/mid", price=("1.00", "4.00"), quality=70)
PREMIUM = entry("c/premium", price=("5.00", "25.00"), quality=95)
UNPRICED = entry("d/unpriced", price=None, quality=99)
TABLE = [MID, PREMIUM, UNPRICED, BUDGET]


def ids(entries: list) -> list[str]:  # type: ignore[type-arg]
    return [e.id for e in entries]


def test_blended_price_is_input_plus_output_per_million() -> None:
    assert blended_price(BUDGET) == 500_000  # micro-dollars: $0.10 + $0.40
    assert blended_price(PREMIUM) == 30_000_000
    with pytest.raises(ValueError):
        blended_price(UNPRICED)


def test_cheapest() -> None:
    assert ids(rank(TABLE, "cheapest")) == ["a/budget", "b/mid", "c/premium"]


def test_quality() -> None:
    assert ids(rank(TABLE, "quality")) == ["c/premium", "b/mid", "a/budget"]


def test_balanced_scores_by_hand() -> None:
    scores = balanced_scores(TABLE)
    # budget: quality 0, cheapness 1 -> 0.5; premium: quality 1, cheapness 0 -> 0.5;
    # mid: quality 30/55, cheapness (ln 30e6 - ln 5e6) / (ln 30e6 - ln 0.5e6) ~ 0.4376 -> ~0.491.
    assert scores["a/budget"] == scores["c/premium"] == 0.5
    assert scores["b/mid"] == pytest.approx(0.5 * 30 / 55 + 0.5 * 0.43761, abs=1e-4)
    assert "d/unpriced" not in scores
    # The two tied at 0.5: the cheaper first.
    assert ids(rank(TABLE, "balanced")) == ["a/budget", "c/premium", "b/mid"]


def test_balanced_prefers_a_good_model_at_a_middling_price() -> None:
    strong_mid = entry("b/strong-mid", price=("1.00", "4.00"), quality=90)
    assert ids(rank([BUDGET, strong_mid, PREMIUM], "balanced"))[0] == "b/strong-mid"


def test_balanced_with_one_candidate_or_equal_candidates() -> None:
    assert balanced_scores([MID]) == {"b/mid": 1.0}
    twin = entry("z/twin", price=("1.00", "4.00"), quality=70)
    assert ids(rank([twin, MID], "balanced")) == ["b/mid", "z/twin"]


@pytest.mark.parametrize("strategy", ["cheapest", "quality", "balanced"])
def test_ties_break_the_same_way_whatever_the_input_order(strategy: str) -> None:
    same = [entry(f"p/m{i}", price=("1", "1"), quality=60) for i in range(3)]
    pool = [*same, BUDGET, PREMIUM]
    orders = {tuple(ids(rank(list(p), strategy))) for p in itertools.permutations(pool)}  # type: ignore[arg-type]
    assert len(orders) == 1
    order = next(iter(orders))
    assert [m for m in order if m.startswith("p/")] == ["p/m0", "p/m1", "p/m2"]


def test_cheapest_tie_goes_to_higher_quality() -> None:
    worse = entry("a/worse", price=("0.10", "0.40"), quality=10)
    assert ids(rank([worse, BUDGET], "cheapest")) == ["a/budget", "a/worse"]


def test_unpriced_models_are_never_ranked() -> None:
    assert rank([UNPRICED], "quality") == []
