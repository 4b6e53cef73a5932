"""Trying a route plan: each candidate model in order, each with its deployments and retries, a credit
reservation held for the attempt that may be billed, and the routing headers of the one that answered.

A candidate is abandoned only for a retryable failure (5xx, 429, timeout, network) before the first byte
reached the client; once a stream has started, failures go in-band and nothing is retried.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from clearmaas.accounts.keys import KeyRecord
from clearmaas.canonical import ChatRequest, ReasoningConfig
from clearmaas.errors import AllUpstreamsFailed, GatewayError, UpstreamError
from clearmaas.relay.gateway import Gateway
from clearmaas.relay.passthrough import serve_passthrough
from clearmaas.relay.record import CallRecord
from clearmaas.relay.translated import serve_translated
from clearmaas.routing.plan import Candidate, RoutePlan
from clearmaas.surfaces.base import Surface

__all__ = ["run_plan"]


async def run_plan(
    gateway: Gateway,
    surface: Surface,
    client_headers: Mapping[str, str],
    body: dict[str, Any],
    plan: RoutePlan,
    key: KeyRecord,
    record: CallRecord,
) -> Response:
    decoded: ChatRequest | None = None
    errors: list[GatewayError] = []
    requested_max = _requested_max_tokens(body)
    for position, candidate in enumerate(plan.candidates):
        entry = candidate.entry
        record.served_model, record.provider = entry.id, candidate.provider.id
        record.router = candidate.router
        record.fallback_level = candidate.level if plan.chain else None
        output_bound = entry.max_output_tokens
        if requested_max and requested_max < output_bound:  # not min(): it parses keywords, per attempt
            output_bound = requested_max
        # Decided in this process when the book can (no coroutine); a refusal or a lease top-up is awaited.
        reservation = gateway.billing.reserve_now(key, entry, record.input_estimate, output_bound)
        if reservation is None:
            reservation = await gateway.billing.reserve(
                key, entry, input_tokens=record.input_estimate, max_output_tokens=output_bound
            )
        record.reservation = reservation
        fast = candidate.provider.adapter.native_protocol == surface.protocol and candidate.effort is None
        if not fast and decoded is None:
            decoded = surface.decode_request(body, client_headers)
        request = _with_effort(decoded, candidate) if decoded is not None else None
        record.passthrough = fast
        headers = _routing_headers(plan, candidate, record.request_id)
        try:
            return await _attempt(gateway, surface, client_headers, body, request, candidate, record, headers)
        except GatewayError as exc:
            reservation, record.reservation = record.reservation, None
            await gateway.billing.release(reservation)
            errors.append(exc)
            if exc.retryable and position + 1 < len(plan.candidates):
                continue
            if isinstance(exc, UpstreamError):
                # Nothing served: the usage record must not name a model as if it had.
                record.served_model = record.provider = None
            # Only a plan tried to its end has "all failed"; a failure that stopped it early (a 400: the
            # request's own fault) is the answer as it stands, whatever the models before it did.
            if exc.retryable and len(errors) > 1 and all(isinstance(e, UpstreamError) for e in errors):
                raise AllUpstreamsFailed(errors) from exc
            raise
    raise AssertionError("a route plan always has a candidate")


async def _attempt(
    gateway: Gateway,
    surface: Surface,
    client_headers: Mapping[str, str],
    body: dict[str, Any],
    request: ChatRequest | None,
    candidate: Candidate,
    record: CallRecord,
    headers: Mapping[str, str],
) -> Response:
    """One candidate, over its deployments, retrying retryable failures with backoff inside the deadline."""
    provider = candidate.provider
    deployments = gateway.routing.deployments(provider)
    deadline = record.started + gateway.retry.deadline
    retry = 0
    while True:
        deployment = deployments[retry % len(deployments)]
        record.new_attempt()
        try:
            if request is None:
                response = await serve_passthrough(
                    gateway, surface, client_headers, body, candidate, deployment, record, headers
                )
            else:
                response = await serve_translated(gateway, surface, request, candidate, deployment, record, headers)
        except UpstreamError as exc:
            gateway.routing.report(provider, deployment, error=exc)
            if not exc.retryable:
                raise
            retry += 1
            delay = gateway.retry.delay(retry, remaining=deadline - time.monotonic())
            if delay is None:
                raise
            await asyncio.sleep(delay)
            continue
        gateway.routing.report(provider, deployment, error=None)
        return response


def _with_effort(request: ChatRequest, candidate: Candidate) -> ChatRequest:
    """The request with a `-high`-style suffix's effort applied (it overrides the body's)."""
    if candidate.effort is None:
        return request
    return dataclasses.replace(request, reasoning=ReasoningConfig(effort=candidate.effort))


def _routing_headers(plan: RoutePlan, candidate: Candidate, request_id: str) -> dict[str, str]:
    """routing__response-headers.md: what served the request, in the client's own model vocabulary."""
    headers = {"x-request-id": request_id}
    if plan.chain:
        headers["x-clear-fallback-level"] = str(candidate.level)
        if candidate.level > 0:
            headers["x-clear-fallback-model"] = candidate.entry.id
    if candidate.router is not None:
        headers["x-clear-router"] = candidate.router
        headers["x-clear-resolved-model"] = candidate.entry.id
    return headers


def _requested_max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
