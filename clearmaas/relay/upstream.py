"""The upstream call both relay paths make, fast path and translation alike: send the request, turn an error
status into the provider's mapped error, and read a non-streamed body whole."""

from __future__ import annotations

from clearmaas.providers.base import UpstreamRequest
from clearmaas.providers.registry import ProviderRuntime
from clearmaas.relay.gateway import Gateway
from clearmaas.transport.client import UpstreamResponse

__all__ = ["read_whole", "send"]


async def send(gateway: Gateway, provider: ProviderRuntime, request: UpstreamRequest) -> UpstreamResponse:
    """The upstream's response, or the `GatewayError` its adapter maps an error status to."""
    response = await gateway.client.send(request, provider.timeouts)
    if response.status >= 400:
        raw = await read_whole(response)
        raise provider.adapter.map_error(response.status, response.headers, raw)
    return response


async def read_whole(response: UpstreamResponse) -> bytes:
    """The whole body; the connection goes back to the pool whatever happens."""
    try:
        return await response.read()
    finally:
        response.release()
