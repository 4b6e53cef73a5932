"""The gateway's process-wide state, built once at startup, and the per-request decisions that need no
I/O: who is calling (from the in-process key cache) and which configured model answers."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from clearmaas.accounts.key_cache import KeyCache, is_usable
from clearmaas.accounts.keys import KeyRecord
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import AuthenticationFailed, ModelNotFound, ModelPriceError
from clearmaas.providers.registry import ProviderRuntime, build_providers
from clearmaas.relay.record import CallRecord
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from clearmaas.transport.client import UpstreamClient

__all__ = ["Gateway", "Target"]

log = logging.getLogger("clearmaas.relay")

Recorder = Callable[[CallRecord], Awaitable[None]]


@dataclass(slots=True)
class Target:
    """A model resolved to the provider that serves it."""

    entry: ModelEntry
    provider: ProviderRuntime


class Gateway:
    """Holds the catalogue, providers, key cache and upstream client of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalogue: Catalogue,
        providers: dict[str, ProviderRuntime],
        keys: KeyCache,
        client: UpstreamClient,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.providers = providers
        self.keys = keys
        self.client = client
        self.recorders: list[Recorder] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        engine = create_engine_for(settings.resolved_database_url)
        return cls(
            settings,
            catalogue=Catalogue.load(settings),
            providers=build_providers(settings),
            keys=KeyCache(engine),
            client=UpstreamClient(),
        )

    async def start(self) -> None:
        await self.client.start()
        await self.keys.start()

    async def stop(self) -> None:
        await self.keys.stop()
        await self.client.close()

    async def authenticate(self, headers: Mapping[str, str], *, allow_x_api_key: bool) -> KeyRecord:
        """The caller's key, from `Authorization: Bearer` or, on Anthropic paths, `x-api-key`."""
        raw = None
        authorization = headers.get("authorization")
        if authorization and authorization[:7].lower() == "bearer ":
            raw = authorization[7:].strip()
        if not raw and allow_x_api_key:
            raw = headers.get("x-api-key")
        if not raw:
            raise AuthenticationFailed("Missing API key. Send it as 'Authorization: Bearer sk-clearmaas-...'.")
        record = await self.keys.lookup(raw)
        if record is None:
            raise AuthenticationFailed("Invalid API key.")
        if not is_usable(record, datetime.now(timezone.utc)):
            raise AuthenticationFailed("This API key has been revoked or has expired.")
        return record

    def resolve(self, model: str) -> Target:
        """The catalogue entry and configured provider for a model id."""
        entry = self.catalogue.get(model)
        provider = self.providers.get(entry.provider) if entry is not None else None
        if entry is None or provider is None:
            raise ModelNotFound(f"The model '{model}' is not available for your account.", param="model")
        if entry.prices is None:
            raise ModelPriceError(f"Pricing for the model '{model}' is not set up.", param="model")
        return Target(entry=entry, provider=provider)

    def available_models(self) -> list[ModelEntry]:
        return self.catalogue.available(self.providers)

    async def finish(self, record: CallRecord) -> None:
        """Hand a finished call to the recorders (usage log, billing); never raises into the request."""
        record.finished = time.monotonic()
        for recorder in self.recorders:
            try:
                await recorder(record)
            except Exception:
                log.exception("recording request %s failed", record.request_id)
