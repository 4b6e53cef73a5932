"""When to retry one model after a retryable failure: how many times, and how long to wait (full jitter),
all inside one deadline for the whole request. The relay runs the loop; this only answers its questions."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from clearmaas.settings import RoutingSettings

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries` extra attempts of one model; the n-th waits a random time up to `backoff * 2 ** (n - 1)`,
    capped at `backoff_max`; no attempt starts after `deadline` seconds of the request."""

    retries: int = 2
    backoff: float = 0.25
    backoff_max: float = 4.0
    deadline: float = 900.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: RoutingSettings) -> RetryPolicy:
        return cls(
            retries=settings.retries,
            backoff=settings.backoff,
            backoff_max=settings.backoff_max,
            deadline=settings.deadline,
        )

    def delay(self, retry: int, *, remaining: float) -> float | None:
        """Seconds to wait before retry number `retry` (1 = the first retry), or None when the retries are
        used up or the wait would not leave any of the `remaining` seconds for the attempt itself."""
        if retry < 1 or retry > self.retries:
            return None
        # Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): spreads the retries of many
        # clients hit by the same upstream failure instead of synchronising them.
        wait = self.rng.uniform(0.0, min(self.backoff * 2 ** (retry - 1), self.backoff_max))
        return wait if wait < remaining else None
