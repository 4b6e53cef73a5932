"""Builds the configured providers once at startup: adapter, deployments and timeouts for each provider id.

Every built-in adapter is named here, in one table; custom OpenAI-compatible upstreams come from the
config (`kind: openai_compatible`), never from code patches. Nothing here runs per request except
`ProviderRuntime.pick`, which is a few arithmetic operations.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from clearmaas.providers.base import Deployment, ProviderAdapter
from clearmaas.settings import ConfigError, ProviderSettings, Settings, TimeoutSettings

__all__ = ["ADAPTERS", "ProviderRuntime", "build_providers"]


def _openai_chat(kind: str) -> Callable[[], ProviderAdapter]:
    def build() -> ProviderAdapter:
        from clearmaas.providers.openai_chat import OpenAIChatAdapter
        from clearmaas.providers.profiles import PROFILES

        return OpenAIChatAdapter(PROFILES[kind])

    return build


def _by_path(path: str) -> Callable[[], ProviderAdapter]:
    module, _, name = path.partition(":")
    return lambda: getattr(importlib.import_module(module), name)()


# Provider kind -> adapter factory.
ADAPTERS: dict[str, Callable[[], ProviderAdapter]] = {
    "openai": _openai_chat("openai"),
    "anthropic": _by_path("clearmaas.providers.anthropic:AnthropicAdapter"),
    "google": _by_path("clearmaas.providers.google:GoogleAdapter"),
    "deepseek": _openai_chat("deepseek"),
    "grok": _openai_chat("grok"),
    "qwen": _openai_chat("qwen"),
    "kimi": _openai_chat("kimi"),
    "minimax": _openai_chat("minimax"),
    "openai_compatible": _openai_chat("openai_compatible"),
}


@dataclass(slots=True)
class ProviderRuntime:
    """A configured provider: how to speak to it and where."""

    id: str
    kind: str
    adapter: ProviderAdapter
    deployments: list[Deployment]
    timeouts: TimeoutSettings

    def pick(self) -> Deployment:
        """A deployment chosen by weight."""
        if len(self.deployments) == 1:
            return self.deployments[0]
        return random.choices(self.deployments, weights=[d.weight for d in self.deployments])[0]


def _deployments(provider_id: str, settings: ProviderSettings) -> list[Deployment]:
    if settings.deployments:
        found = []
        for i, d in enumerate(settings.deployments):
            base_url = d.base_url or settings.base_url
            api_key = d.api_key or settings.api_key
            if not base_url or api_key is None:
                raise ConfigError(f"providers.{provider_id}.deployments[{i}] needs a base_url and an api_key")
            found.append(Deployment(base_url=base_url, api_key=api_key, name=d.name or f"d{i}", weight=d.weight))
        return found
    if not settings.base_url:
        raise ConfigError(f"providers.{provider_id} needs a base_url")
    return [Deployment(base_url=settings.base_url, api_key=settings.api_key or "")]


def build_providers(settings: Settings) -> dict[str, ProviderRuntime]:
    """Every provider that is configured with a key, by id."""
    providers: dict[str, ProviderRuntime] = {}
    for provider_id in settings.provider_ids():
        configured = settings.provider(provider_id)
        assert configured is not None
        kind = configured.kind or ""
        factory = ADAPTERS.get(kind)
        if factory is None:
            known = ", ".join(sorted(ADAPTERS))
            raise ConfigError(f"providers.{provider_id}.kind must be one of: {known}")
        providers[provider_id] = ProviderRuntime(
            id=provider_id,
            kind=kind,
            adapter=factory(),
            deployments=_deployments(provider_id, configured),
            timeouts=configured.timeouts,
        )
    return providers
