from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.routing.routers import (
    AUTO_ROUTER,
    InvalidRouter,
    RouterCache,
    RouterDef,
    RouterExists,
    RouterNotFound,
    create_router,
    delete_router,
    get_router,
    list_routers,
    parse_patterns,
    update_router,
)


def test_patterns_are_comma_or_newline_separated() -> None:
    assert parse_patterns("openai/*, anthropic/claude-haiku-*\n\n google/*\r\nopenai/*") == (
        "openai/*",
        "anthropic/claude-haiku-*",
        "google/*",
    )
    assert parse_patterns(["a/*,b/*", "c/*"]) == ("a/*", "b/*", "c/*")
    assert parse_patterns("  ") == ()


def test_globs_match_case_insensitively() -> None:
    router = RouterDef(name="r", patterns=("OpenAI/GPT-4o*", "anthropic/claude-haiku-*"))
    assert router.matches("openai/gpt-4o-mini")
    assert router.matches("Anthropic/Claude-Haiku-4.5")
    assert not router.matches("openai/gpt-4.1")
    assert RouterDef(name="all").matches("anything/at-all")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Prod", "invalid router name"),
        ("a" * 51, "invalid router name"),
        ("", "invalid router name"),
        ("has space", "invalid router name"),
        ("clearmaas", "reserved"),
    ],
)
def test_names_are_validated(engine: Engine, name: str, message: str) -> None:
    create_workspace(engine, "acme")
    with pytest.raises(InvalidRouter, match=message):
        create_router(engine, "acme", name)


def test_other_fields_are_validated(engine: Engine) -> None:
    create_workspace(engine, "acme")
    with pytest.raises(InvalidRouter, match="unknown strategy"):
        create_router(engine, "acme", "r", strategy="fastest")
    with pytest.raises(InvalidRouter, match="not another router"):
        create_router(engine, "acme", "r", default_model="clearmaas/auto")

    def refuse(model: str) -> None:
        raise InvalidRouter(f"no {model}")

    with pytest.raises(InvalidRouter, match="no ghost/model"):
        create_router(engine, "acme", "r", default_model="ghost/model", check_model=refuse)
    with pytest.raises(WorkspaceNotFound):
        create_router(engine, "ghost", "r")
    assert [r.name for r in list_routers(engine, "acme")] == ["auto"]


def test_router_lifecycle(engine: Engine) -> None:
    create_workspace(engine, "acme")
    assert list_routers(engine, "acme") == [AUTO_ROUTER]
    created = create_router(engine, "acme", "prod-chat", patterns="openai/*,\nanthropic/*", default_model="gpt-4o-mini")
    assert created == RouterDef(
        name="prod-chat", patterns=("openai/*", "anthropic/*"), strategy="balanced", default_model="gpt-4o-mini"
    )
    assert get_router(engine, "acme", "prod-chat") == created
    with pytest.raises(RouterExists):
        create_router(engine, "acme", "prod-chat")

    updated = update_router(engine, "acme", "prod-chat", strategy="quality", enabled=False, default_model="")
    assert (updated.strategy, updated.enabled, updated.default_model, updated.patterns) == (
        "quality",
        False,
        None,
        ("openai/*", "anthropic/*"),
    )
    assert get_router(engine, "acme", "prod-chat") == updated
    assert update_router(engine, "acme", "prod-chat", patterns="").patterns == ()

    delete_router(engine, "acme", "prod-chat")
    with pytest.raises(RouterNotFound):
        get_router(engine, "acme", "prod-chat")
    with pytest.raises(RouterNotFound):
        delete_router(engine, "acme", "prod-chat")
    with pytest.raises(RouterNotFound):
        update_router(engine, "acme", "prod-chat", strategy="cheapest")
    assert create_router(engine, "acme", "prod-chat", strategy="cheapest").strategy == "cheapest"  # the name is free
    assert [r.name for r in list_routers(engine, "acme")] == ["auto", "prod-chat"]


def test_auto_exists_everywhere_and_can_be_changed_or_deleted(engine: Engine) -> None:
    create_workspace(engine, "acme")
    create_workspace(engine, "other")
    assert get_router(engine, "acme", "auto") == AUTO_ROUTER
    with pytest.raises(RouterExists):
        create_router(engine, "acme", "auto")

    changed = update_router(engine, "acme", "auto", patterns="openai/*")
    assert changed == RouterDef(name="auto", patterns=("openai/*",), strategy="cheapest")
    assert list_routers(engine, "acme") == [changed]
    assert get_router(engine, "other", "auto") == AUTO_ROUTER  # per workspace

    delete_router(engine, "acme", "auto")
    assert list_routers(engine, "acme") == []
    with pytest.raises(RouterNotFound):
        get_router(engine, "acme", "auto")
    delete_router(engine, "other", "auto")  # the implicit one can be deleted too
    assert list_routers(engine, "other") == []
    recreated = create_router(engine, "other", "auto")
    assert recreated.strategy == "balanced" and not recreated.builtin


async def test_cache_refresh_sees_changes_made_elsewhere(engine: Engine) -> None:
    workspace = create_workspace(engine, "acme")
    cache = RouterCache(engine)
    await cache.load()
    assert cache.get(workspace.id, "auto") == AUTO_ROUTER
    assert cache.get(workspace.id, "team") is None

    create_router(engine, "acme", "team", patterns="openai/*")
    assert cache.get(workspace.id, "team") is None  # no read on lookup
    assert await cache.refresh() >= 1
    team = cache.get(workspace.id, "team")
    assert team is not None and team.patterns == ("openai/*",)

    update_router(engine, "acme", "team", enabled=False)
    await cache.refresh()
    assert cache.get(workspace.id, "team") == RouterDef(name="team", patterns=("openai/*",), enabled=False)

    delete_router(engine, "acme", "team")
    delete_router(engine, "acme", "auto")
    await cache.refresh()
    assert cache.get(workspace.id, "team") is None
    assert cache.get(workspace.id, "auto") is None
    assert cache.get("ws_someone_else", "auto") == AUTO_ROUTER

    fresh = RouterCache(engine)
    await fresh.refresh()  # the first pass is a full load
    assert fresh.get(workspace.id, "auto") is None


async def test_cache_background_refresh(engine: Engine) -> None:
    workspace = create_workspace(engine, "acme")
    create_router(engine, "acme", "early", strategy="quality")
    cache = RouterCache(engine, refresh_interval=0.02, full_reload_interval=0.1)
    await cache.start()
    try:
        assert cache.get(workspace.id, "early") is not None  # loaded before start returns
        create_router(engine, "acme", "late")
        for _ in range(200):
            if cache.get(workspace.id, "late") is not None:
                break
            await asyncio.sleep(0.02)
        assert cache.get(workspace.id, "late") is not None
    finally:
        await cache.stop()
