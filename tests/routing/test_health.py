from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from clearmaas.errors import (
    InvalidRequest,
    UpstreamConnectError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from clearmaas.providers.registry import ProviderRuntime
from clearmaas.routing.health import Health, trips_breaker
from tests.routing.builders import provider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def http(status: int, message: str = "failed", **kwargs: object) -> UpstreamHTTPError:
    return UpstreamHTTPError(message, upstream_status=status, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "trips"),
    [
        (http(500), True),
        (http(503), True),
        (http(529), True),  # Anthropic "overloaded"
        (http(429), True),
        (http(408), True),
        (http(401), True),  # this deployment's key is refused
        (http(402, "Insufficient Balance"), True),
        (http(400, "Your credit balance is too low to access the Anthropic API."), True),
        (http(400, "quota", upstream_code="insufficient_quota"), True),
        (UpstreamTimeout("slow"), True),
        (UpstreamConnectError("refused"), True),
        (http(400, "messages: field required"), False),
        (http(404, "model not found"), False),
        (UpstreamProtocolError("garbled"), False),
        (InvalidRequest("bad"), False),
    ],
)
def test_which_errors_trip_the_breaker(error: Exception, trips: bool) -> None:
    assert trips_breaker(error) is trips  # type: ignore[arg-type]


def setup(*weights: int) -> tuple[Health, ProviderRuntime, Clock]:
    clock = Clock()
    runtime = provider("p", *weights)
    health = Health({"p": runtime}, cooldown=5, cooldown_max=60, probe_timeout=30, clock=clock, rng=random.Random(7))
    return health, runtime, clock


def test_cooldown_then_half_open_probe_then_recovery() -> None:
    health, runtime, clock = setup(1, 1)
    d0, d1 = runtime.deployments
    health.record(runtime, d0, error=http(503))
    assert health.cooling(runtime, d0) and not health.cooling(runtime, d1)
    assert health.order(runtime) == [d1]
    clock.now += 4.9
    assert health.order(runtime) == [d1]
    clock.now += 0.2  # cooldown over: d0 is half-open and probed first, by one request only
    assert health.order(runtime) == [d0, d1]
    assert health.order(runtime) == [d1]
    health.record(runtime, d0, error=None)
    assert not health.cooling(runtime, d0)
    assert set(health.order(runtime)) == {d0, d1}


def test_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    health, runtime, clock = setup(1, 1)
    d0 = runtime.deployments[0]
    expected = [5, 10, 20, 40, 60, 60]
    for seconds in expected:
        health.record(runtime, d0, error=UpstreamTimeout("slow"))
        clock.now += seconds - 0.01
        assert health.cooling(runtime, d0)
        clock.now += 0.02
        assert not health.cooling(runtime, d0)
        assert health.order(runtime)[0] == d0  # the probe
    health.record(runtime, d0, error=None)
    health.record(runtime, d0, error=http(500))
    clock.now += 5.01
    assert not health.cooling(runtime, d0)  # a success reset the doubling


def test_a_burst_of_failures_during_one_outage_counts_once() -> None:
    health, runtime, clock = setup(1, 1)
    d0 = runtime.deployments[0]
    for _ in range(20):  # twenty in-flight requests fail together
        health.record(runtime, d0, error=http(502))
    clock.now += 5.01
    assert not health.cooling(runtime, d0)


def test_retry_after_lengthens_a_429_cooldown() -> None:
    health, runtime, clock = setup(1, 1)
    d0 = runtime.deployments[0]
    health.record(runtime, d0, error=http(429, retry_after=30))
    clock.now += 29
    assert health.cooling(runtime, d0)
    clock.now += 1.01
    assert not health.cooling(runtime, d0)


def test_a_client_error_does_not_cool_and_closes_a_half_open_deployment() -> None:
    health, runtime, clock = setup(1, 1)
    d0 = runtime.deployments[0]
    health.record(runtime, d0, error=http(400, "bad field"))
    assert not health.cooling(runtime, d0)
    health.record(runtime, d0, error=http(500))
    clock.now += 5.01
    assert health.order(runtime)[0] == d0
    health.record(runtime, d0, error=http(400, "bad field"))  # it answered: it is up
    health.record(runtime, d0, error=http(500))
    clock.now += 5.01
    assert not health.cooling(runtime, d0)  # 5 s again, not 10: the 400 closed it


def test_a_probe_that_never_reports_frees_its_slot() -> None:
    health, runtime, clock = setup(1, 1)
    d0, d1 = runtime.deployments
    health.record(runtime, d0, error=http(500))
    clock.now += 5.01
    assert health.order(runtime) == [d0, d1]  # probe handed out, never reported
    clock.now += 29
    assert health.order(runtime) == [d1]
    clock.now += 1.01
    assert health.order(runtime) == [d0, d1]


def test_when_everything_cools_every_deployment_is_still_offered_soonest_first() -> None:
    health, runtime, clock = setup(1, 1, 1)
    d0, d1, d2 = runtime.deployments
    health.record(runtime, d1, error=http(500))
    clock.now += 1
    health.record(runtime, d2, error=http(500))
    clock.now += 1
    health.record(runtime, d0, error=http(500))
    assert not health.live(runtime)
    assert health.order(runtime) == [d1, d2, d0]


def test_a_single_deployment_is_always_offered() -> None:
    health, runtime, clock = setup(1)
    (only,) = runtime.deployments
    health.record(runtime, only, error=http(500))
    assert health.cooling(runtime, only) and not health.live(runtime)
    assert health.order(runtime) == [only]
    clock.now += 5.01
    assert health.live(runtime)


def test_weighted_choice_follows_the_weights() -> None:
    health, runtime, _ = setup(3, 1)
    heavy, light = runtime.deployments
    firsts: Counter[str] = Counter()
    draws = 8000
    for _ in range(draws):
        order = health.order(runtime)
        assert sorted(d.name for d in order) == ["d0", "d1"]  # both offered, in some order
        firsts[order[0].name] += 1
    assert firsts[heavy.name] / draws == pytest.approx(0.75, abs=0.02)
    assert firsts[light.name] / draws == pytest.approx(0.25, abs=0.02)


def test_weighted_choice_skips_cooling_deployments() -> None:
    health, runtime, _ = setup(1, 5, 1)
    d0, d1, d2 = runtime.deployments
    health.record(runtime, d1, error=http(429))
    firsts = Counter(health.order(runtime)[0].name for _ in range(2000))
    assert set(firsts) == {"d0", "d2"}
    assert all(d1 not in health.order(runtime) for _ in range(50))


def test_unknown_deployment_is_ignored() -> None:
    health, runtime, _ = setup(1, 1)
    stranger = provider("p", 1, 1, 1).deployments[2]
    health.record(runtime, stranger, error=http(500))
    assert health.live(runtime) and len(health.order(runtime)) == 2


# Sharing through Redis -------------------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"clearmaas-test-{secrets.token_hex(6)}:"
    yield prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.mark.redis
async def test_cooldowns_are_shared_through_redis(redis_prefix: str) -> None:
    runtime = provider("p", 1, 1)
    d0 = runtime.deployments[0]
    one = Health({"p": runtime}, redis_url=REDIS_URL, redis_prefix=redis_prefix, refresh_interval=3600, cooldown=30)
    two = Health({"p": runtime}, redis_url=REDIS_URL, redis_prefix=redis_prefix, refresh_interval=3600, cooldown=30)
    await one.start()
    await two.start()
    try:
        one.record(runtime, d0, error=http(503))
        assert not two.cooling(runtime, d0)  # nothing is read per request
        await one.sync()
        await two.sync()
        assert two.cooling(runtime, d0)
        assert two.order(runtime) == [runtime.deployments[1]]

        one.record(runtime, d0, error=None)  # one recovered it: the shared key goes
        await one.sync()
        fresh = Health({"p": runtime}, redis_url=REDIS_URL, redis_prefix=redis_prefix, refresh_interval=3600)
        await fresh.start()
        try:
            await fresh.sync()
            assert not fresh.cooling(runtime, d0)
        finally:
            await fresh.stop()
    finally:
        await one.stop()
        await two.stop()


@pytest.mark.redis
async def test_background_loop_and_last_flush_at_stop(redis_prefix: str) -> None:
    runtime = provider("p", 1, 1)
    d1 = runtime.deployments[1]
    one = Health({"p": runtime}, redis_url=REDIS_URL, redis_prefix=redis_prefix, refresh_interval=3600, cooldown=30)
    two = Health({"p": runtime}, redis_url=REDIS_URL, redis_prefix=redis_prefix, refresh_interval=0.02, cooldown=30)
    await one.start()
    await two.start()
    try:
        one.record(runtime, d1, error=UpstreamConnectError("refused"))
        await one.stop()  # publishes what the loop had not yet sent
        for _ in range(100):
            if two.cooling(runtime, d1):
                break
            await asyncio.sleep(0.02)
        assert two.cooling(runtime, d1)
    finally:
        await two.stop()


async def test_without_redis_start_and_stop_do_nothing() -> None:
    health, runtime, _ = setup(1)
    await health.start()
    await health.sync()
    await health.stop()
    assert health.live(runtime)
