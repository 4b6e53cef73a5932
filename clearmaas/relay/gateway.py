"""The gateway's process-wide state, built once at startup, and the per-request decisions that need no
database: who is calling (the in-process key cache), what they may spend (billing's book), how fast
(the limiter), and which models answer (routing)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import Engine

from clearmaas.accounts.key_cache import KeyCache, is_usable
from clearmaas.accounts.keys import KeyRecord, allows_model
from clearmaas.billing import Billing
from clearmaas.billing.disabled import DisabledBilling
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.catalogue.overrides import PriceOverrides
from clearmaas.errors import AuthenticationFailed
from clearmaas.limits import Limiter
from clearmaas.limits.disabled import Unlimited
from clearmaas.providers.registry import ProviderRuntime, build_providers
from clearmaas.relay.record import CallRecord
from clearmaas.routing import Routing
from clearmaas.routing.retry import RetryPolicy
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from clearmaas.store.presence import ProcessPresence
from clearmaas.transport.client import UpstreamClient

__all__ = ["Gateway"]

log = logging.getLogger("clearmaas.relay")


class Gateway:
    """Holds the catalogue, providers, caches, books and upstream client of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalogue: Catalogue,
        providers: dict[str, ProviderRuntime],
        keys: KeyCache,
        client: UpstreamClient,
        routing: Routing,
        billing: Billing | DisabledBilling,
        limits: Limiter | Unlimited,
        engine: Engine | None = None,
        price_overrides: PriceOverrides | None = None,
        presence: ProcessPresence | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.providers = providers
        self.keys = keys
        self.client = client
        self.routing = routing
        self.billing = billing
        self.limits = limits
        self.retry = RetryPolicy.from_settings(settings.routing)
        # The admin API's database, and the refresher that applies operator price overrides to the catalogue.
        self.engine = engine
        self.price_overrides = price_overrides
        # Without Redis the book and the limiter live in this process alone: no second one may serve the same
        # database (store/presence.py).
        self.presence = presence

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        engine = create_engine_for(settings.resolved_database_url)
        catalogue = Catalogue.load(settings)
        providers = build_providers(settings)
        billing: Billing | DisabledBilling = DisabledBilling()
        limits: Limiter | Unlimited = Unlimited()
        if settings.billing:
            billing = Billing.from_settings(settings, engine, catalogue)
            limits = Limiter.from_settings(settings, engine)
            # With Redis, the credit book's 50 ms tick also carries the rate limiter's (one round-trip a tick
            # for both, store/redis_tick.py). Looked up by name: the Redis classes load only when configured.
            carry, ride = getattr(billing.book, "carry", None), getattr(limits.counter, "ride", None)
            if carry is not None and ride is not None:
                carry(ride())
        return cls(
            settings,
            catalogue=catalogue,
            providers=providers,
            keys=KeyCache(engine),
            client=UpstreamClient(),
            routing=Routing.from_settings(settings, engine, catalogue, providers),
            billing=billing,
            limits=limits,
            engine=engine,
            price_overrides=PriceOverrides(engine, catalogue),
            presence=ProcessPresence(engine) if settings.billing and not settings.redis_url else None,
        )

    async def start(self) -> None:
        if self.presence is not None:
            await self.presence.start()
        await self.client.start()
        if self.price_overrides is not None:
            await self.price_overrides.start()
        await self.keys.start()
        await self.routing.start()
        await self.billing.start()
        await self.limits.start()

    async def stop(self) -> None:
        # Billing last: it flushes the usage log, and nothing may be lost on a clean shutdown.
        await self.limits.stop()
        await self.routing.stop()
        await self.keys.stop()
        if self.price_overrides is not None:
            await self.price_overrides.stop()
        await self.client.close()
        await self.billing.stop()
        if self.presence is not None:
            await self.presence.stop()

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
        if not is_usable(record, datetime.now(UTC)):
            raise AuthenticationFailed("This API key has been revoked or has expired.")
        return record

    def available_models(self, key: KeyRecord | None = None) -> list[ModelEntry]:
        """Models with a configured provider and a price, that `key` may use."""
        entries = self.catalogue.available(self.providers)
        if key is None:
            return entries
        return [e for e in entries if allows_model(key, e.id)]

    async def finish(self, record: CallRecord) -> None:
        """Settle a finished call: the charge, the usage record, the rate limiter's token count. Never
        raises into the request, and with the in-process book and counters never suspends (unless the usage
        log's queue is full)."""
        record.finished = time.monotonic()
        if record.stream and (record.client_disconnected or record.error_code is not None):
            record.estimate_cut_stream()
        reservation, record.reservation = record.reservation, None
        try:
            waiting = self.billing.settle_now(reservation, record)
            if waiting is not None:
                await waiting
        except Exception:
            log.exception("settling request %s failed", record.request_id)
        admission = record.admission
        # An admission that counted nothing (window None: an unlimited workspace) has nothing to correct.
        if admission is None or admission.window is None or record.workspace_id is None:
            return
        try:
            limits, workspace_id = self.limits, record.workspace_id
            estimated, actual = record.limit_tokens, record.usage.total_tokens
            if not limits.adjust_now(workspace_id, estimated, actual, admission):
                await limits.adjust(workspace_id, estimated=estimated, actual=actual, admission=admission)
        except Exception:
            log.exception("adjusting the rate limit for request %s failed", record.request_id)
