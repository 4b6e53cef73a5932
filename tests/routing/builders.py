"""Small catalogues, providers and keys for routing tests, built in code so every price and rank is visible."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from clearmaas.accounts.keys import KeyRecord
from clearmaas.catalogue.catalogue import parse_price
from clearmaas.catalogue.entry import ModelEntry, Prices, ReasoningMode
from clearmaas.providers.base import Deployment, ProviderAdapter
from clearmaas.providers.registry import ProviderRuntime
from clearmaas.settings import TimeoutSettings

__all__ = ["entry", "key", "provider"]


def entry(
    model_id: str,
    *,
    price: tuple[str, str] | None = ("1", "1"),
    quality: int = 50,
    reasoning: ReasoningMode | None = None,
    capabilities: Sequence[str] = (),
    upstream: str | None = None,
    created: int = 0,
) -> ModelEntry:
    """A model priced (input, output) in dollars per million tokens."""
    prices = None
    if price is not None:
        inp, out = parse_price(price[0]), parse_price(price[1])
        prices = Prices(input=inp, cached_input=inp, cache_write=inp, output=out)
    return ModelEntry(
        id=model_id,
        provider=model_id.partition("/")[0],
        upstream=upstream or model_id.partition("/")[2],
        context_length=100_000,
        max_output_tokens=16_000,
        reasoning=reasoning,
        prices=prices,
        quality=quality,
        created=created,
        capabilities=frozenset(capabilities),
    )


def provider(provider_id: str, *weights: int) -> ProviderRuntime:
    """A configured provider with one deployment per weight (one of weight 1 by default); no real adapter."""
    deployments = [
        Deployment(base_url=f"https://{provider_id}.invalid/{i}", api_key=f"k{i}", name=f"d{i}", weight=w)
        for i, w in enumerate(weights or (1,))
    ]
    return ProviderRuntime(
        id=provider_id,
        kind="openai_compatible",
        adapter=cast(ProviderAdapter, object()),
        deployments=deployments,
        timeouts=TimeoutSettings(),
    )


def key(*allowlist: str, workspace_id: str = "ws_test") -> KeyRecord:
    return KeyRecord(
        id="key_test",
        workspace_id=workspace_id,
        workspace_name="test",
        name=None,
        prefix="sk-clearmaas-test",
        expires_at=None,
        revoked_at=None,
        credit_limit_micros=None,
        model_allowlist=tuple(allowlist),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
