"""How a named router orders the models it may pick: `cheapest`, `quality` or `balanced` (routing__named-routers.md).

Every strategy is a total order, so the same candidates always give the same choice:

- cheapest: lowest blended price first. The blended price is input + output, in micro-dollars per million
  tokens, i.e. the cost of a request with as many prompt tokens as completion tokens. Ties: higher quality,
  then the id.
- quality: highest catalogue `quality` first. Ties: cheaper, then the id.
- balanced: highest score first, where score = 0.5 x quality + 0.5 x cheapness, both normalized to 0..1 over
  the candidates being ranked (the best of them 1, the worst 0). Cheapness is measured on a logarithmic scale,
  because prices span three orders of magnitude: on a linear scale every model but the dearest would look
  equally cheap. Ties: cheaper, then higher quality, then the id.

Only priced models are ranked (a model without a price cannot be billed). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, assert_never, get_args

from clearmaas.catalogue.entry import ModelEntry

__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "Strategy", "balanced_scores", "blended_price", "rank"]

Strategy = Literal["cheapest", "quality", "balanced"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
DEFAULT_STRATEGY: Strategy = "balanced"

# balanced: the weight of quality; cheapness gets the rest.
QUALITY_WEIGHT = 0.5


def blended_price(entry: ModelEntry) -> int:
    """Input + output price in micro-dollars per million tokens; raises ValueError for an unpriced model."""
    if entry.prices is None:
        raise ValueError(f"the model {entry.id} has no price")
    return entry.prices.input + entry.prices.output


def balanced_scores(entries: Sequence[ModelEntry]) -> dict[str, float]:
    """The balanced score of each priced entry, by id (see the module docstring)."""
    priced = [e for e in entries if e.prices is not None]
    if not priced:
        return {}
    qualities = [e.quality for e in priced]
    costs = [math.log1p(blended_price(e)) for e in priced]
    q_low, q_high = min(qualities), max(qualities)
    c_low, c_high = min(costs), max(costs)
    scores: dict[str, float] = {}
    for entry, cost in zip(priced, costs, strict=True):
        quality = (entry.quality - q_low) / (q_high - q_low) if q_high > q_low else 1.0
        cheapness = (c_high - cost) / (c_high - c_low) if c_high > c_low else 1.0
        # Rounded so that float noise never decides between two models the formula rates equal.
        scores[entry.id] = round(QUALITY_WEIGHT * quality + (1 - QUALITY_WEIGHT) * cheapness, 9)
    return scores


def rank(entries: Sequence[ModelEntry], strategy: Strategy) -> list[ModelEntry]:
    """The priced entries, best first for `strategy`."""
    priced = [e for e in entries if e.prices is not None]
    key: Callable[[ModelEntry], tuple[float | int | str, ...]]
    if strategy == "cheapest":
        key = lambda e: (blended_price(e), -e.quality, e.id)  # noqa: E731
    elif strategy == "quality":
        key = lambda e: (-e.quality, blended_price(e), e.id)  # noqa: E731
    elif strategy == "balanced":
        scores = balanced_scores(priced)
        key = lambda e: (-scores[e.id], blended_price(e), -e.quality, e.id)  # noqa: E731
    else:
        assert_never(strategy)
    return sorted(priced, key=key)
