from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearmaas.billing.pricing import cost_micros, reservation_bound, token_cost_micros, tool_cost_micros
from clearmaas.billing.tools import ToolRate, tool_rates_for
from clearmaas.canonical.usage import Usage
from clearmaas.catalogue.entry import Prices

SONNET = Prices(input=3_000_000, cached_input=300_000, cache_write=3_750_000, output=15_000_000)
MINI = Prices(input=150_000, cached_input=75_000, cache_write=150_000, output=600_000)  # gpt-4o-mini

tokens = st.integers(min_value=0, max_value=10_000_000)
price = st.integers(min_value=0, max_value=200_000_000)  # up to $200 per million tokens
prices = st.builds(Prices, input=price, cached_input=price, cache_write=price, output=price)


def test_each_bucket_is_priced_once_at_its_own_rate() -> None:
    usage = Usage(
        input_tokens=1_000, cache_read_tokens=10_000, cache_write_tokens=2_000, output_tokens=500, reasoning_tokens=300
    )
    # 1000×3 + 10000×0.3 + 2000×3.75 + 500×15 micro-dollars (reasoning is inside output, billed once).
    assert cost_micros(usage, SONNET) == 3_000 + 3_000 + 7_500 + 7_500


def test_reasoning_tokens_do_not_add_to_the_output_bill() -> None:
    plain = Usage(output_tokens=1_000)
    reasoning = Usage(output_tokens=1_000, reasoning_tokens=900)
    assert cost_micros(plain, SONNET) == cost_micros(reasoning, SONNET) == 15_000


def test_the_sum_is_rounded_up_once_not_per_bucket() -> None:
    # Each bucket alone is 0.15 micro-dollars; per-bucket rounding would give 4, one ceiling over the sum gives 1.
    usage = Usage(input_tokens=1, cache_read_tokens=2, cache_write_tokens=1, output_tokens=0)
    assert cost_micros(usage, MINI) == 1
    assert cost_micros(Usage(input_tokens=7), MINI) == 2  # 1.05 -> 2
    assert cost_micros(Usage(input_tokens=20), MINI) == 3  # exactly 3.0 stays 3


def test_an_empty_call_costs_nothing() -> None:
    assert cost_micros(Usage(), SONNET) == 0


def test_built_in_tool_calls_are_added_at_their_per_call_rate() -> None:
    rates = tool_rates_for("openai", "openai/gpt-4o")
    usage = Usage(input_tokens=1_000, output_tokens=100, server_tool_calls={"web_search": 3, "web_search_preview": 2})
    # tokens 1000×0.15 + 100×0.6 = 210; 3 × $0.01 + 2 × $0.025.
    assert cost_micros(usage, MINI, tool_rates=rates, provider="openai") == 210 + 30_000 + 50_000


def test_per_request_tool_rates_charge_one_call_per_request() -> None:
    rates = tool_rates_for("google", "google/gemini-2.5-flash")
    assert tool_cost_micros({"web_search": 4}, rates) == 35_000
    rates3 = tool_rates_for("google", "google/gemini-3-pro-preview")
    assert tool_cost_micros({"web_search": 4}, rates3) == 4 * 14_000


def test_unknown_tools_cost_nothing_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    usage = Usage(server_tool_calls={"teleport_unit_test": 5})
    assert cost_micros(usage, SONNET, provider="anthropic") == 0
    assert cost_micros(usage, SONNET, provider="anthropic") == 0
    assert [r.getMessage() for r in caplog.records].count(
        "no per-call rate for built-in tool 'teleport_unit_test' of provider 'anthropic': billed at 0"
    ) == 1


@given(
    prices,
    st.builds(Usage, input_tokens=tokens, cache_read_tokens=tokens, cache_write_tokens=tokens, output_tokens=tokens),
)
def test_cost_is_the_exact_decimal_price_rounded_up(p: Prices, usage: Usage) -> None:
    exact = (
        Decimal(usage.input_tokens) * Decimal(p.input)
        + Decimal(usage.cache_read_tokens) * Decimal(p.cached_input)
        + Decimal(usage.cache_write_tokens) * Decimal(p.cache_write)
        + Decimal(usage.output_tokens) * Decimal(p.output)
    ) / Decimal(1_000_000)
    cost = token_cost_micros(usage, p)
    assert cost == int(exact.to_integral_value(rounding=ROUND_CEILING))
    assert 0 <= cost - exact < 1


@given(prices, tokens, tokens, st.dictionaries(st.sampled_from(["web_search", "x_search"]), st.integers(0, 100)))
def test_tool_calls_add_exact_whole_micro_dollars(p: Prices, inp: int, out: int, calls: dict[str, int]) -> None:
    rates = {"web_search": ToolRate(5_000), "x_search": ToolRate(5_000)}
    base = cost_micros(Usage(input_tokens=inp, output_tokens=out), p)
    with_tools = cost_micros(Usage(input_tokens=inp, output_tokens=out, server_tool_calls=calls), p, tool_rates=rates)
    assert with_tools - base == 5_000 * sum(calls.values())


@given(prices, tokens, tokens, st.data())
def test_the_reservation_bounds_any_usage_within_its_estimate(
    p: Prices, estimate: int, max_out: int, data: st.DataObject
) -> None:
    # However the provider splits the estimated input into cached / written / plain tokens, and however much of
    # max_tokens it generates, the cost stays within the bound.
    read = data.draw(st.integers(0, estimate))
    write = data.draw(st.integers(0, estimate - read))
    usage = Usage(
        input_tokens=estimate - read - write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=data.draw(st.integers(0, max_out)),
    )
    assert cost_micros(usage, p) <= reservation_bound(p, input_tokens=estimate, max_output_tokens=max_out)


def test_reservation_bound_uses_the_dearest_input_price_and_rounds_up() -> None:
    assert reservation_bound(SONNET, input_tokens=100, max_output_tokens=100) == 375 + 1_500
    assert reservation_bound(MINI, input_tokens=1, max_output_tokens=0) == 1
    assert reservation_bound(MINI, input_tokens=0, max_output_tokens=0) == 0
    assert reservation_bound(MINI, input_tokens=-5, max_output_tokens=-1) == 0
