"""The price of a request, in exact integer arithmetic: what a finished call costs, and the bound reserved
before it starts.

Prices are integer micro-dollars per MILLION tokens, so Σ tokens × price is micro-dollars × 10⁶. The sum over
every token bucket is divided once and rounded UP to a whole micro-dollar (`ceil`), so rounding costs a
request at most one micro-dollar and never lets a long run of small requests go unbilled. Built-in tool
calls are whole micro-dollars already and are added after the rounding. No floats anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from clearmaas.billing.tools import NO_TOOL_RATES, ToolRate, warn_unknown_tool
from clearmaas.canonical.usage import Usage
from clearmaas.catalogue.entry import Prices

__all__ = ["TOKENS_PER_PRICE_UNIT", "cost_micros", "reservation_bound", "token_cost_micros", "tool_cost_micros"]

TOKENS_PER_PRICE_UNIT = 1_000_000


def token_cost_micros(usage: Usage, prices: Prices) -> int:
    """The tokens' cost: each disjoint bucket at its own price, summed, then one ceiling division (`-(-a // b)`).

    `output_tokens` already includes `reasoning_tokens` (canonical/usage.py), so reasoning is billed once, at
    the output price, as every provider bills it.
    """
    # Conditional expressions, not max(): the builtin parses its arguments as keywords, ~300 instructions a
    # call, and this runs once per request.
    input_tokens, cache_read, cache_write, output = (
        usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens
    )
    total = (
        (input_tokens if input_tokens > 0 else 0) * prices.input
        + (cache_read if cache_read > 0 else 0) * prices.cached_input
        + (cache_write if cache_write > 0 else 0) * prices.cache_write
        + (output if output > 0 else 0) * prices.output
    )
    return -(-total // TOKENS_PER_PRICE_UNIT)


def tool_cost_micros(calls: Mapping[str, int], rates: Mapping[str, ToolRate], *, provider: str | None = None) -> int:
    """Built-in tool calls at their per-call rates; a tool without a rate costs 0 (and is logged once)."""
    total = 0
    for tool, count in calls.items():
        rate = rates.get(tool)
        if rate is None:
            if count > 0:
                warn_unknown_tool(provider or "?", tool)
            continue
        total += rate.cost(count)
    return total


def cost_micros(
    usage: Usage,
    prices: Prices,
    *,
    tool_rates: Mapping[str, ToolRate] = NO_TOOL_RATES,
    provider: str | None = None,
) -> int:
    """What a finished call costs, in micro-dollars: tokens (rounded up once) plus built-in tool calls."""
    return token_cost_micros(usage, prices) + tool_cost_micros(usage.server_tool_calls, tool_rates, provider=provider)


def reservation_bound(prices: Prices, input_tokens: int, max_output_tokens: int) -> int:
    """The most a call is expected to cost, reserved before it starts: the estimated input tokens at the
    dearest input price (a cache write can cost more than plain input, 1.25× on Anthropic) plus every
    allowed output token at the output price, rounded up. Built-in tool calls cannot be known in advance
    and are not part of the bound; they are charged at settlement."""
    # Without max(), as `token_cost_micros`.
    dearest_input = prices.input
    if prices.cached_input > dearest_input:
        dearest_input = prices.cached_input
    if prices.cache_write > dearest_input:
        dearest_input = prices.cache_write
    total = (input_tokens if input_tokens > 0 else 0) * dearest_input + (
        max_output_tokens if max_output_tokens > 0 else 0
    ) * prices.output
    return -(-total // TOKENS_PER_PRICE_UNIT)
