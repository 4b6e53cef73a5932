from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from clearmaas.accounts.keys import KeyRecord
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.errors import (
    InvalidRequest,
    ModelNotFound,
    ModelPriceError,
    NotImplementedForModel,
    PermissionDenied,
    UpstreamHTTPError,
)
from clearmaas.routing.health import Health
from clearmaas.routing.names import NameResolver
from clearmaas.routing.plan import RoutePlan
from clearmaas.routing.router import Routing, chain_entries
from clearmaas.routing.routers import RouterCache, create_router, delete_router, update_router
from clearmaas.settings import ConfigError, Settings
from tests.routing.builders import entry, key, provider

CATALOGUE = Catalogue(
    [
        entry("alpha/cheap", price=("0.10", "0.40"), quality=40),
        entry("alpha/mid", price=("1.00", "4.00"), quality=70, reasoning="effort"),
        entry("beta/premium", price=("5.00", "25.00"), quality=95),
        entry("beta/pro-only", price=("0.01", "0.01"), quality=99, capabilities=["responses_only"]),
        entry("beta/unpriced", price=None),
        entry("delta/orphan", price=("0.01", "0.01")),  # its provider is not configured
    ]
)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    routing: Routing
    engine: Engine
    workspace_id: str
    clock: Clock

    def key(self, *allowlist: str) -> KeyRecord:
        return key(*allowlist, workspace_id=self.workspace_id)

    def plan(self, model: str, *, chain: object = None, route: object = None, allow: tuple[str, ...] = ()) -> RoutePlan:
        return self.routing.plan(model=model, chain=chain, route=route, key=self.key(*allow), endpoint="chat")

    async def refresh(self) -> None:
        await self.routing.routers.refresh()

    def cool(self, provider_id: str) -> None:
        runtime = self.routing.providers[provider_id]
        for deployment in runtime.deployments:
            self.routing.report(runtime, deployment, error=UpstreamHTTPError("down", upstream_status=503))


@pytest.fixture
async def world(sqlite_engine: Engine) -> World:
    workspace = create_workspace(sqlite_engine, "acme")
    providers = {"alpha": provider("alpha", 1, 1), "beta": provider("beta")}
    clock = Clock()
    routing = Routing(
        catalogue=CATALOGUE,
        providers=providers,
        resolver=NameResolver(CATALOGUE, aliases={"smart": "beta/premium"}),
        routers=RouterCache(sqlite_engine),
        health=Health(providers, clock=clock),
    )
    await routing.routers.load()
    return World(routing, sqlite_engine, workspace.id, clock)


def ids(plan: RoutePlan) -> list[str]:
    return [c.entry.id for c in plan.candidates]


# A plain model -------------------------------------------------------------------------------------------


def test_a_model_is_one_candidate(world: World) -> None:
    plan = world.plan("mid-high")
    assert ids(plan) == ["alpha/mid"] and not plan.chain and plan.skipped == []
    (candidate,) = plan.candidates
    assert candidate.effort == "high" and candidate.router is None and candidate.level == 0
    assert candidate.provider is world.routing.providers["alpha"]
    assert ids(world.plan("smart")) == ["beta/premium"]


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("no/such-model", ModelNotFound),
        ("delta/orphan", ModelNotFound),
        ("beta/unpriced", ModelPriceError),
        ("beta/pro-only", NotImplementedForModel),
    ],
)
def test_unusable_models(world: World, model: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        world.plan(model)


def test_key_allowlist(world: World) -> None:
    assert ids(world.plan("cheap", allow=("alpha/*",))) == ["alpha/cheap"]
    with pytest.raises(PermissionDenied) as raised:
        world.plan("premium", allow=("alpha/*",))
    assert raised.value.status == 403 and "beta/premium" in raised.value.message
    with pytest.raises(PermissionDenied):
        world.plan("smart", allow=("alpha/*",))  # an alias does not get around the allowlist


# Routers -------------------------------------------------------------------------------------------------


def test_auto_is_cheapest_live_model_in_every_workspace(world: World) -> None:
    plan = world.plan("clearmaas/auto")
    # pro-only is cheaper but cannot serve chat; orphan's provider is missing; unpriced cannot be billed.
    assert ids(plan) == ["alpha/cheap", "alpha/mid", "beta/premium"]
    assert all(c.router == "auto" and c.level == 0 and c.effort is None for c in plan.candidates)
    assert not plan.chain


def test_router_candidates_respect_the_key_allowlist(world: World) -> None:
    assert ids(world.plan("clearmaas/auto", allow=("beta/*",))) == ["beta/premium"]


async def test_named_router_strategy_and_case_insensitive_globs(world: World) -> None:
    create_router(world.engine, "acme", "best", patterns="ALPHA/*,\nBeta/Prem*", strategy="quality")
    create_router(world.engine, "acme", "thrifty", patterns="alpha/*\nbeta/*", strategy="cheapest")
    create_router(world.engine, "acme", "mix", patterns="alpha/*")
    await world.refresh()
    assert ids(world.plan("clearmaas/best")) == ["beta/premium", "alpha/mid", "alpha/cheap"]
    assert ids(world.plan("clearmaas/thrifty")) == ["alpha/cheap", "alpha/mid", "beta/premium"]
    # balanced over {cheap q40 $0.50, mid q70 $5.00}: each is best at one thing, 0.5 each; the cheaper wins.
    assert ids(world.plan("clearmaas/mix")) == ["alpha/cheap", "alpha/mid"]
    assert world.plan("ClearMaas/Best").candidates[0].router == "best"


async def test_a_stored_auto_overrides_the_implicit_one(world: World) -> None:
    update_router(world.engine, "acme", "auto", strategy="quality")
    await world.refresh()
    assert ids(world.plan("clearmaas/auto"))[0] == "beta/premium"


async def test_disabled_deleted_and_unknown_routers(world: World) -> None:
    create_router(world.engine, "acme", "off", enabled=False)
    delete_router(world.engine, "acme", "auto")
    await world.refresh()
    with pytest.raises(ModelNotFound, match="disabled"):
        world.plan("clearmaas/off")
    with pytest.raises(ModelNotFound, match="no router 'clearmaas/auto'"):
        world.plan("clearmaas/auto")
    with pytest.raises(ModelNotFound, match="no router 'clearmaas/ghost'"):
        world.plan("clearmaas/ghost")


async def test_routers_belong_to_their_workspace(world: World) -> None:
    create_router(world.engine, "acme", "team")
    other = create_workspace(world.engine, "other")
    await world.refresh()
    assert world.plan("clearmaas/team").candidates
    with pytest.raises(ModelNotFound):
        world.routing.plan(
            model="clearmaas/team", chain=None, route=None, key=key(workspace_id=other.id), endpoint="chat"
        )


async def test_router_matching_nothing_is_a_clear_error(world: World) -> None:
    create_router(world.engine, "acme", "nothing", patterns="zeta/*")
    await world.refresh()
    with pytest.raises(ModelNotFound) as raised:
        world.plan("clearmaas/nothing")
    assert raised.value.status == 503
    assert "'clearmaas/nothing' matched no available model (patterns: zeta/*)" in raised.value.message


async def test_default_model_is_the_safety_net(world: World) -> None:
    create_router(world.engine, "acme", "net", patterns="zeta/*", default_model="mid-low")
    create_router(world.engine, "acme", "torn", patterns="zeta/*", default_model="beta/premium")
    await world.refresh()
    plan = world.plan("clearmaas/net")
    assert ids(plan) == ["alpha/mid"]
    assert plan.candidates[0].router == "net" and plan.candidates[0].effort == "low"
    with pytest.raises(ModelNotFound, match="default model 'beta/premium' cannot be used"):
        world.plan("clearmaas/torn", allow=("alpha/*",))


async def test_cooling_providers_drop_out_of_routers(world: World) -> None:
    create_router(world.engine, "acme", "net", patterns="alpha/*", default_model="beta/premium")
    await world.refresh()
    world.cool("alpha")
    assert ids(world.plan("clearmaas/auto")) == ["beta/premium"]
    assert ids(world.plan("clearmaas/net")) == ["beta/premium"]  # nothing live matched: the default model
    world.cool("beta")
    # Everything cools: still better tried than refused.
    assert ids(world.plan("clearmaas/auto")) == ["alpha/cheap", "alpha/mid", "beta/premium"]
    world.clock.now += 6
    assert ids(world.plan("clearmaas/auto"))[0] == "alpha/cheap"


# Fallback chains -----------------------------------------------------------------------------------------


def test_chain_replaces_the_model_and_keeps_positions(world: World) -> None:
    plan = world.plan("beta/premium", chain=["ghost/model", "cheap", "premium-high", "mid-max"], route="fallback")
    assert plan.chain
    assert ids(plan) == ["alpha/cheap", "alpha/mid"]  # premium has no reasoning: "premium-high" is no model
    assert [c.level for c in plan.candidates] == [1, 3]
    assert plan.candidates[1].effort == "max"
    assert plan.skipped == ["ghost/model", "premium-high"]


def test_chain_is_cut_to_five_entries(world: World) -> None:
    chain = ["ghost/1", "ghost/2", "ghost/3", "ghost/4", "ghost/5", "alpha/cheap"]
    with pytest.raises(ModelNotFound, match="ghost/1"):  # the sixth, the only usable one, is never read
        world.plan("alpha/cheap", chain=chain, route="fallback")
    assert chain_entries(["a", "b", "c", "d", "e", "f", "g"], "fallback") == ["a", "b", "c", "d", "e"]


def test_chain_skips_what_the_key_may_not_use(world: World) -> None:
    plan = world.plan("x", chain=["beta/premium", "alpha/mid", "beta/pro-only"], route="fallback", allow=("alpha/*",))
    assert ids(plan) == ["alpha/mid"] and plan.candidates[0].level == 1
    assert plan.skipped == ["beta/premium", "beta/pro-only"]
    with pytest.raises(PermissionDenied):
        world.plan("x", chain=["beta/premium"], route="fallback", allow=("alpha/*",))


@pytest.mark.parametrize("route", [None, "Fallback", "fallback ", "sequential", ""])
def test_chain_needs_route_exactly_fallback(world: World, route: str | None) -> None:
    plan = world.plan("beta/premium", chain=["alpha/cheap"], route=route)
    assert ids(plan) == ["beta/premium"] and not plan.chain


def test_empty_chain_falls_back_to_the_model(world: World) -> None:
    assert ids(world.plan("beta/premium", chain=[], route="fallback")) == ["beta/premium"]


@pytest.mark.parametrize(
    ("chain", "route", "param"),
    [
        ("alpha/cheap", "fallback", "models"),
        ({"a": 1}, "fallback", "models"),
        ([1, "alpha/cheap"], "fallback", "models"),
        (["", "alpha/cheap"], "fallback", "models"),
        (["alpha/cheap"], 1, "route"),
        (["alpha/cheap"], ["fallback"], "route"),
    ],
)
def test_chain_field_types(world: World, chain: object, route: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        world.plan("beta/premium", chain=chain, route=route)
    assert raised.value.param == param and raised.value.status == 400


def test_router_inside_a_chain(world: World) -> None:
    plan = world.plan("x", chain=["alpha/mid", "clearmaas/auto", "alpha/mid"], route="fallback")
    # auto's picks keep its position; its mid is dropped (already tried), the explicit repeat stays.
    assert [(c.entry.id, c.level, c.router) for c in plan.candidates] == [
        ("alpha/mid", 0, None),
        ("alpha/cheap", 1, "auto"),
        ("beta/premium", 1, "auto"),
        ("alpha/mid", 2, None),
    ]


def test_live_entries_come_first_but_keep_their_level(world: World) -> None:
    world.cool("beta")
    plan = world.plan("x", chain=["beta/premium", "alpha/cheap"], route="fallback")
    assert [(c.entry.id, c.level) for c in plan.candidates] == [("alpha/cheap", 1), ("beta/premium", 0)]


# Deployments and reports ---------------------------------------------------------------------------------


def test_deployments_and_report_drive_the_breaker(world: World) -> None:
    alpha = world.routing.providers["alpha"]
    d0, d1 = alpha.deployments
    assert set(world.routing.deployments(alpha)) == {d0, d1}
    world.routing.report(alpha, d0, error=UpstreamHTTPError("slow down", upstream_status=429))
    assert world.routing.deployments(alpha) == [d1]
    world.routing.report(alpha, d1, error=None)
    assert world.routing.deployments(alpha) == [d1]


# Construction --------------------------------------------------------------------------------------------


async def test_from_settings_start_stop(sqlite_engine: Engine) -> None:
    settings = Settings(aliases={"fast": "gpt-4o-mini"})
    bundled = Catalogue.load(settings)
    providers = {"openai": provider("openai")}
    routing = Routing.from_settings(settings, sqlite_engine, bundled, providers)
    await routing.start()
    try:
        workspace = create_workspace(sqlite_engine, "acme")
        plan = routing.plan(model="fast", chain=None, route=None, key=key(workspace_id=workspace.id), endpoint="chat")
        assert ids(plan) == ["openai/gpt-4o-mini"]
        auto = routing.plan(model="clearmaas/auto", chain=None, route=None, key=key(), endpoint="chat")
        assert all(c.entry.provider == "openai" for c in auto.candidates)
        assert routing.retry.retries == settings.routing.retries
    finally:
        await routing.stop()
    with pytest.raises(ConfigError, match="aliases.bad"):
        Routing.from_settings(Settings(aliases={"bad": "nope"}), sqlite_engine, bundled, providers)
