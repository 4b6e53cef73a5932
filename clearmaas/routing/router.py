"""The routing façade the relay calls: `plan` turns a request's model (or fallback chain, or router) into the
ordered candidates to try, and `deployments`/`report` drive each provider's circuit breaker.

Building a plan does no I/O: names, routers and provider health are in-process state, refreshed in the
background. The relay owns the attempt loop, retries, and response headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sqlalchemy import Engine

from clearmaas.accounts.keys import KeyRecord, allows_model
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ModelPriceError,
    NotImplementedForModel,
    PermissionDenied,
)
from clearmaas.providers.base import Deployment
from clearmaas.providers.registry import ProviderRuntime
from clearmaas.routing.health import Health
from clearmaas.routing.names import ROUTER_PREFIX, NameResolver, Resolved, RouterRef
from clearmaas.routing.plan import Candidate, RoutePlan
from clearmaas.routing.retry import RetryPolicy
from clearmaas.routing.routers import RouterCache, RouterDef
from clearmaas.routing.strategies import rank
from clearmaas.settings import Settings

__all__ = ["FALLBACK_ROUTE", "MAX_CHAIN", "ROUTER_FALLBACKS", "Routing", "chain_entries", "fits_endpoint"]

MAX_CHAIN: Final = 5  # routing__model-fallbacks.md: "Maximum 5 models in the chain. Extras are silently truncated."
FALLBACK_ROUTE: Final = "fallback"
# A router hands the relay its best few models, so a failing first choice falls over to the next best.
ROUTER_FALLBACKS: Final = 3

# Endpoint -> capabilities that keep a model off it. OpenAI serves o1-pro and gpt-5-pro only on /v1/responses.
_UNFIT: Final[Mapping[str, frozenset[str]]] = {"chat": frozenset({"responses_only"})}
# What makes a chain entry unusable (skipped) rather than the request invalid.
_SKIPPABLE = (ModelNotFound, PermissionDenied, ModelPriceError, NotImplementedForModel)


def fits_endpoint(entry: ModelEntry, endpoint: str) -> bool:
    """Whether the model can serve a call on `endpoint` ("chat": /v1/chat/completions and /v1/messages)."""
    return not (entry.capabilities & _UNFIT.get(endpoint, frozenset()))


def chain_entries(chain: object | None, route: object | None) -> list[str] | None:
    """The fallback chain from the raw `models` and `route` body fields: at most MAX_CHAIN ids, or None when no
    chain applies (`route` is not exactly "fallback", or `models` is missing or empty). Raises InvalidRequest
    naming the field when a field has the wrong type."""
    if route is not None and not isinstance(route, str):
        raise InvalidRequest("'route' must be a string; set it to \"fallback\" to use 'models'.", param="route")
    if chain is not None and not isinstance(chain, list):
        raise InvalidRequest("'models' must be an array of model ids.", param="models")
    if route != FALLBACK_ROUTE or not chain:
        return None
    kept = chain[:MAX_CHAIN]
    if not all(isinstance(name, str) and name.strip() for name in kept):
        raise InvalidRequest("'models' must be an array of non-empty model id strings.", param="models")
    return [name.strip() for name in kept]


class Routing:
    """Names, routers and provider health of one process."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        providers: Mapping[str, ProviderRuntime],
        resolver: NameResolver,
        routers: RouterCache,
        health: Health,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.providers = providers
        self.resolver = resolver
        self.routers = routers
        self.health = health
        self.retry = retry or RetryPolicy()
        self._available = catalogue.available(providers)

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine, catalogue: Catalogue, providers: Mapping[str, ProviderRuntime]
    ) -> Routing:
        """Raises ConfigError for an alias whose target is not a model."""
        tuning = settings.routing
        return cls(
            catalogue=catalogue,
            providers=providers,
            resolver=NameResolver(catalogue, aliases=settings.aliases),
            routers=RouterCache(engine, refresh_interval=tuning.refresh),
            health=Health(
                providers,
                cooldown=tuning.cooldown,
                cooldown_max=tuning.cooldown_max,
                probe_timeout=tuning.probe_timeout,
                redis_url=settings.redis_url,
                refresh_interval=tuning.refresh,
            ),
            retry=RetryPolicy.from_settings(tuning),
        )

    async def start(self) -> None:
        """Load the routers (before the first request) and start the background refreshes."""
        await self.routers.start()
        await self.health.start()

    async def stop(self) -> None:
        await self.health.stop()
        await self.routers.stop()

    def plan(
        self, *, model: str, chain: object | None, route: object | None, key: KeyRecord, endpoint: str
    ) -> RoutePlan:
        """The candidates for one request, live providers first. A chain skips the entries that cannot be used
        (listed in `skipped`); errors are raised only when no candidate remains (the first entry's error)."""
        names = chain_entries(chain, route)
        if names is None:
            return RoutePlan(candidates=self._live_first(self._expand(model, key, endpoint, level=0)))
        candidates: list[Candidate] = []
        skipped: list[str] = []
        errors: list[GatewayError] = []
        for level, name in enumerate(names):
            try:
                found = self._expand(name, key, endpoint, level=level)
            except _SKIPPABLE as exc:
                skipped.append(name)
                errors.append(exc)
                continue
            # A router's picks already tried earlier in the chain would only fail again; explicit entries stay.
            seen = {(c.entry.id, c.effort) for c in candidates}
            candidates.extend(c for c in found if c.router is None or (c.entry.id, c.effort) not in seen)
        if not candidates:
            raise errors[0]
        return RoutePlan(candidates=self._live_first(candidates), chain=True, skipped=skipped)

    def deployments(self, provider: ProviderRuntime) -> list[Deployment]:
        """The order to try this provider's deployments in (claims a half-open probe if one is due)."""
        return self.health.order(provider)

    def report(self, provider: ProviderRuntime, deployment: Deployment, *, error: GatewayError | None) -> None:
        """One attempt's outcome: None once the first event arrived, else the error that ended it."""
        self.health.record(provider, deployment, error=error)

    def _live_first(self, candidates: list[Candidate]) -> list[Candidate]:
        if len(candidates) < 2:
            return candidates
        return sorted(candidates, key=lambda c: not self.health.live(c.provider))  # stable: order kept otherwise

    def _expand(self, name: str, key: KeyRecord, endpoint: str, *, level: int) -> list[Candidate]:
        found = self.resolver.resolve(name)
        if isinstance(found, RouterRef):
            return self._route(found.name, key, endpoint, level=level)
        return [self._candidate(found, key, endpoint, level=level, shown=name)]

    def _candidate(
        self, found: Resolved, key: KeyRecord, endpoint: str, *, level: int, shown: str, router: str | None = None
    ) -> Candidate:
        entry = found.entry
        provider = self.providers.get(entry.provider)
        if provider is None:
            raise ModelNotFound(f"The model '{shown}' is not available for your account.", param="model")
        if not allows_model(key, entry.id):
            raise PermissionDenied(f"This API key may not use the model '{entry.id}'.", param="model")
        if entry.prices is None:
            raise ModelPriceError(f"Pricing for the model '{entry.id}' is not set up.", param="model")
        if not fits_endpoint(entry, endpoint):
            raise NotImplementedForModel(f"The model '{entry.id}' cannot be called on this endpoint.", param="model")
        return Candidate(entry=entry, provider=provider, effort=found.effort, router=router, level=level)

    def _route(self, name: str, key: KeyRecord, endpoint: str, *, level: int) -> list[Candidate]:
        shown = ROUTER_PREFIX + name
        router = self.routers.get(key.workspace_id, name)
        if router is None:
            raise ModelNotFound(f"There is no router '{shown}' in this workspace.", param="model")
        if not router.enabled:
            raise ModelNotFound(f"The router '{shown}' is disabled.", param="model")
        usable = [
            e
            for e in self._available
            if router.matches(e.id) and allows_model(key, e.id) and fits_endpoint(e, endpoint)
        ]
        live = {pid for pid in {e.provider for e in usable} if self.health.live(self.providers[pid])}
        picked = rank([e for e in usable if e.provider in live], router.strategy)
        if not picked and router.default_model:
            return [self._safety_net(router, key, endpoint, level=level)]
        # Every matching provider cooling down: still better tried than refused.
        picked = picked or rank(usable, router.strategy)
        if not picked:
            hint = _patterns_hint(router)
            raise ModelNotFound(f"The router '{shown}' matched no available model{hint}.", param="model")
        return [
            Candidate(entry=e, provider=self.providers[e.provider], router=name, level=level)
            for e in picked[:ROUTER_FALLBACKS]
        ]

    def _safety_net(self, router: RouterDef, key: KeyRecord, endpoint: str, *, level: int) -> Candidate:
        default = router.default_model
        assert default is not None
        try:
            found = self.resolver.resolve(default)
            if isinstance(found, RouterRef):
                raise ModelNotFound(f"'{default}' is a router, not a model", param="model")
            return self._candidate(found, key, endpoint, level=level, shown=default, router=router.name)
        except _SKIPPABLE as exc:
            raise ModelNotFound(
                f"The router '{ROUTER_PREFIX}{router.name}' matched no available model{_patterns_hint(router)}, "
                f"and its default model '{default}' cannot be used: {exc.message}",
                param="model",
            ) from None


def _patterns_hint(router: RouterDef) -> str:
    return f" (patterns: {', '.join(router.patterns)})" if router.patterns else ""
