"""The candidate loop of `fallback.run_plan`, without a server: which failures move on to the next model, and
which error the client gets when the plan ends without an answer."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.responses import Response

from clearmaas.errors import AllUpstreamsFailed, GatewayError, UpstreamHTTPError, UpstreamTimeout
from clearmaas.relay import fallback
from clearmaas.relay.gateway import Gateway
from clearmaas.relay.record import CallRecord
from clearmaas.routing.plan import Candidate, RoutePlan
from clearmaas.routing.retry import RetryPolicy
from clearmaas.surfaces.base import Surface
from tests.routing.builders import entry, key, provider


class _Billing:
    def __init__(self) -> None:
        self.held = 0

    def reserve_now(self, *_: Any, **__: Any) -> None:
        return None  # always the awaited path, which counts

    async def reserve(self, *_: Any, **__: Any) -> object:
        self.held += 1
        return object()

    async def release(self, reservation: object) -> None:
        self.held -= 1


class _Routing:
    def deployments(self, runtime: Any) -> list[Any]:
        return list(runtime.deployments)

    def report(self, *_: Any, **__: Any) -> None:
        pass


def _plan(*models: str) -> RoutePlan:
    candidates = []
    for level, model in enumerate(models):
        runtime = provider(model.partition("/")[0])
        runtime.adapter = cast(Any, SimpleNamespace(native_protocol="openai_chat"))  # every attempt on the fast path
        candidates.append(Candidate(entry=entry(model), provider=runtime, level=level))
    return RoutePlan(candidates=candidates, chain=True)


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[GatewayError | None]]:
    """What each attempt does, in order: raise the error, or (None) answer 200."""
    planned: list[GatewayError | None] = []
    tried: list[str] = []

    async def attempt(*args: Any) -> Response:
        candidate: Candidate = args[4]
        tried.append(candidate.entry.id)
        outcome = planned.pop(0)
        if outcome is not None:
            raise outcome
        return Response(b"{}", headers={**args[7], "x-served-by": candidate.entry.id})

    monkeypatch.setattr(fallback, "serve_passthrough", attempt)
    yield planned


async def _run(plan: RoutePlan) -> tuple[Response, _Billing]:
    billing = _Billing()
    gateway = cast(Gateway, SimpleNamespace(billing=billing, routing=_Routing(), retry=RetryPolicy(retries=0)))
    surface = cast(Surface, SimpleNamespace(protocol="openai_chat"))
    record = CallRecord(request_id="r", endpoint="openai_chat")
    response = await fallback.run_plan(gateway, surface, {}, {"model": "m"}, plan, key(), record)
    return response, billing


def _http(status: int) -> UpstreamHTTPError:
    return UpstreamHTTPError(f"upstream said {status}", upstream_status=status)


async def test_a_retryable_failure_moves_on_to_the_next_model(outcomes: list[GatewayError | None]) -> None:
    outcomes[:] = [_http(503), UpstreamTimeout("slow"), None]
    response, billing = await _run(_plan("a/one", "b/two", "c/three"))
    assert response.headers["x-served-by"] == "c/three"
    assert response.headers["x-clear-fallback-level"] == "2"
    assert billing.held == 1  # the two failed attempts gave their reservations back


async def test_every_model_failing_is_all_upstreams_failed(outcomes: list[GatewayError | None]) -> None:
    outcomes[:] = [_http(500), _http(429)]
    with pytest.raises(AllUpstreamsFailed) as caught:
        await _run(_plan("a/one", "b/two"))
    assert [e.status for e in caught.value.errors] == [502, 429]
    assert caught.value.status == 502 and caught.value.retry_after is not None


async def test_a_400_from_the_first_model_ends_the_plan(outcomes: list[GatewayError | None]) -> None:
    outcomes[:] = [_http(400), None]
    with pytest.raises(UpstreamHTTPError) as caught:
        await _run(_plan("a/one", "b/two"))
    assert caught.value.status == 400
    assert outcomes == [None]  # the second model was never tried


async def test_a_400_after_a_fallback_is_the_clients_answer_not_a_502(outcomes: list[GatewayError | None]) -> None:
    """The second model refusing the request is not "all upstreams failed": the client must see the 400 (an SDK
    would retry a 502, and hit the same refusal again), not a gateway error."""
    outcomes[:] = [_http(500), _http(400)]
    with pytest.raises(UpstreamHTTPError) as caught:
        await _run(_plan("a/one", "b/two", "c/three"))
    assert not isinstance(caught.value, AllUpstreamsFailed)
    assert caught.value.status == 400
