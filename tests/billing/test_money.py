from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearmaas.billing.money import format_usd, parse_usd


@pytest.mark.parametrize(
    ("text", "micros"),
    [("10", 10_000_000), ("2.50", 2_500_000), ("$0.000001", 1), (" 1e3 ", 1_000_000_000), ("1_000.5", 1_000_500_000)],
)
def test_parse_is_exact(text: str, micros: int) -> None:
    assert parse_usd(text) == micros


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.0000001", "finer than a micro-dollar"),
        ("ten", "not a dollar amount"),
        ("NaN", "not a dollar amount"),
        ("inf", "not a dollar amount"),
        ("-5", "must not be negative"),
        ("0", "must be more than zero"),
    ],
)
def test_parse_refuses_what_is_not_an_exact_positive_amount(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_usd(text)


def test_zero_and_negative_when_allowed() -> None:
    assert parse_usd("0", allow_zero=True) == 0
    assert parse_usd("-0.25", allow_negative=True) == -250_000


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_round_trips_exactly(micros: int) -> None:
    text = format_usd(micros)
    assert Decimal(text) * 1_000_000 == micros
    assert len(text.split(".")[1]) == 6
    assert parse_usd(text, allow_zero=True, allow_negative=True) == micros


def test_format_examples() -> None:
    assert format_usd(1_234_567) == "1.234567"
    assert format_usd(-1) == "-0.000001"
    assert format_usd(5, sign=True) == "+0.000005"
    assert format_usd(0) == "0.000000"
