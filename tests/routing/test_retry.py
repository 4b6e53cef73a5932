from __future__ import annotations

import random

from clearmaas.routing.retry import RetryPolicy
from clearmaas.settings import RoutingSettings


def test_full_jitter_within_the_doubling_cap() -> None:
    policy = RetryPolicy(retries=5, backoff=0.5, backoff_max=3.0, rng=random.Random(1))
    for retry, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]:
        waits = [policy.delay(retry, remaining=100.0) for _ in range(300)]
        assert all(w is not None and 0.0 <= w <= cap for w in waits)
        assert max(w for w in waits if w is not None) > cap * 0.9  # the whole range is used
        assert len(set(waits)) > 250  # jittered, not fixed


def test_no_retry_past_the_count_or_the_deadline() -> None:
    policy = RetryPolicy(retries=2, backoff=1.0, rng=random.Random(2))
    assert policy.delay(0, remaining=10) is None
    assert policy.delay(3, remaining=10) is None
    assert policy.delay(1, remaining=0.0) is None
    assert RetryPolicy(retries=0).delay(1, remaining=10) is None


def test_from_settings() -> None:
    policy = RetryPolicy.from_settings(RoutingSettings(retries=4, backoff=0.1, backoff_max=1, deadline=30))
    assert (policy.retries, policy.backoff, policy.backoff_max, policy.deadline) == (4, 0.1, 1.0, 30.0)
