"""Price overrides over the catalogue: stored overrides applied in place (so every holder of an entry sees
them), removed ones restored to the loaded price, the periodic refresh, and the repository functions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import Prices
from clearmaas.catalogue.overrides import PriceOverrides, delete_override, load_overrides, put_override
from clearmaas.routing.names import NameResolver, Resolved
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import upgrade
from tests.store.postgres import scratch_postgres, sqlite_url

MODEL = "openai/gpt-4o-mini"
CHEAP = Prices(input=1, cached_input=2, cache_write=3, output=4)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        created = create_engine_for(url)
        yield created
        created.dispose()
        return
    with scratch_postgres() as url:
        upgrade(url)
        created = create_engine_for(url)
        yield created
        created.dispose()


def test_repository_round_trip(engine: Engine) -> None:
    assert load_overrides(engine) == {}
    first = put_override(engine, MODEL, CHEAP)
    replaced = put_override(engine, MODEL, Prices(10, 10, 10, 10))
    assert replaced.updated_at >= first.updated_at
    stored = load_overrides(engine)
    assert list(stored) == [MODEL.casefold()] and stored[MODEL.casefold()].prices == Prices(10, 10, 10, 10)
    assert delete_override(engine, MODEL) is True
    assert delete_override(engine, MODEL) is False
    assert load_overrides(engine) == {}
    with pytest.raises(ValueError):
        put_override(engine, MODEL, Prices(-1, 0, 0, 0))


def test_set_prices_changes_the_shared_entry() -> None:
    catalogue = Catalogue.load(Settings())
    entry = catalogue.get(MODEL)
    assert entry is not None and entry.prices != CHEAP
    resolver = NameResolver(catalogue)  # holds references to the entries, like the router does
    catalogue.set_prices("OpenAI/GPT-4o-mini", CHEAP)
    assert catalogue.get(MODEL) is entry and entry.prices == CHEAP
    found = resolver.resolve("gpt-4o-mini")  # a bare name, through the resolver's own index
    assert isinstance(found, Resolved) and found.entry.prices == CHEAP
    with pytest.raises(KeyError):
        catalogue.set_prices("openai/no-such-model", CHEAP)


async def test_refresh_applies_and_restores(engine: Engine) -> None:
    catalogue = Catalogue.load(Settings())
    entry = catalogue.get(MODEL)
    assert entry is not None
    loaded = entry.prices
    overrides = PriceOverrides(engine, catalogue)
    assert await overrides.refresh() == 0
    put_override(engine, MODEL, CHEAP)
    put_override(engine, "openai/retired-model", CHEAP)  # not in the catalogue: ignored
    assert await overrides.refresh() == 1
    assert entry.prices == CHEAP and overrides.override(MODEL) is not None
    assert overrides.base_prices(MODEL) == loaded
    assert await overrides.refresh() == 0  # nothing changed since
    delete_override(engine, MODEL)
    assert await overrides.refresh() == 1
    assert entry.prices == loaded and overrides.override(MODEL) is None


async def test_the_background_loop_picks_up_changes(engine: Engine) -> None:
    catalogue = Catalogue.load(Settings())
    put_override(engine, MODEL, CHEAP)
    overrides = PriceOverrides(engine, catalogue, refresh_interval=0.05)
    await overrides.start()
    try:
        entry = catalogue.get(MODEL)
        assert entry is not None and entry.prices == CHEAP  # applied before start returns
        changed = Prices(5, 5, 5, 5)
        put_override(engine, MODEL, changed)
        for _ in range(100):
            if entry.prices == changed:
                break
            await asyncio.sleep(0.02)
        assert entry.prices == changed
    finally:
        await overrides.stop()
    await overrides.stop()  # idempotent
