"""Operator price overrides: the `price_overrides` table (written by the admin API) and the in-process refresher
that lays them over the catalogue, so every running gateway bills a changed price within a couple of seconds
without a restart.

The table is tiny (one row per overridden model), so each pass reads all of it: a deleted row is seen as
simply absent, and the model goes back to the price the catalogue was loaded with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select

from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import Prices
from clearmaas.store.refresh import RefreshLoop
from clearmaas.store.schema import price_overrides, utc_now

__all__ = ["PriceOverride", "PriceOverrides", "delete_override", "load_overrides", "put_override"]

log = logging.getLogger("clearmaas.catalogue")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One stored override; `model_id` is spelled as the catalogue spells it."""

    model_id: str
    prices: Prices
    updated_at: datetime


def load_overrides(engine: Engine) -> dict[str, PriceOverride]:
    """Every override, by case-folded model id."""
    with engine.connect() as connection:
        rows = connection.execute(select(price_overrides)).all()
    found: dict[str, PriceOverride] = {}
    for row in rows:
        m = row._mapping
        prices = Prices(
            input=int(m["input_micros"]),
            cached_input=int(m["cached_input_micros"]),
            cache_write=int(m["cache_write_micros"]),
            output=int(m["output_micros"]),
        )
        found[str(m["model_id"]).casefold()] = PriceOverride(m["model_id"], prices, m["updated_at"])
    return found


def put_override(engine: Engine, model_id: str, prices: Prices) -> PriceOverride:
    """Create or replace the override of `model_id` (already checked against the catalogue by the caller)."""
    if min(prices.input, prices.cached_input, prices.cache_write, prices.output) < 0:
        raise ValueError("prices must not be negative")
    now = utc_now()
    values = {
        "input_micros": prices.input,
        "cached_input_micros": prices.cached_input,
        "cache_write_micros": prices.cache_write,
        "output_micros": prices.output,
        "updated_at": now,
    }
    with engine.begin() as connection:
        # Delete then insert: portable across SQLite and PostgreSQL without dialect-specific upserts, and
        # atomic inside the transaction.
        connection.execute(delete(price_overrides).where(price_overrides.c.model_id == model_id))
        connection.execute(price_overrides.insert().values(model_id=model_id, **values))
    return PriceOverride(model_id, prices, now)


def delete_override(engine: Engine, model_id: str) -> bool:
    """Remove the override; False when there was none."""
    with engine.begin() as connection:
        removed = connection.execute(delete(price_overrides).where(price_overrides.c.model_id == model_id))
    return removed.rowcount > 0


class PriceOverrides:
    """Keeps the catalogue's prices equal to "the loaded catalogue, then the stored overrides" in one process."""

    def __init__(self, engine: Engine, catalogue: Catalogue, *, refresh_interval: float = 2.0) -> None:
        self._engine = engine
        self._catalogue = catalogue
        self._refresh_interval = refresh_interval
        # The prices the catalogue was loaded with: what a model returns to when its override is removed.
        self._base: dict[str, Prices | None] = {entry.id.casefold(): entry.prices for entry in catalogue}
        self._current: dict[str, PriceOverride] = {}
        self._unknown_warned: set[str] = set()
        # One refresh at a time: a pass that read the table before a write must not apply after the pass that
        # read it after (the admin API refreshes right after writing, alongside the background loop).
        self._lock = asyncio.Lock()
        self._loop = RefreshLoop(
            self.refresh, interval=self._refresh_interval, name="price-overrides", what="price override"
        )

    def base_prices(self, model_id: str) -> Prices | None:
        """The catalogue's own price of the model (None: unpriced or unknown)."""
        return self._base.get(model_id.casefold())

    def override(self, model_id: str) -> PriceOverride | None:
        """The override in force in this process, as of the last refresh or `apply`."""
        return self._current.get(model_id.casefold())

    def apply(self, overrides: Mapping[str, PriceOverride]) -> int:
        """Make the catalogue's prices the base ones overlaid with `overrides` (by case-folded id); returns how
        many models changed price."""
        changed = 0
        for key, override in overrides.items():
            if key not in self._base and key not in self._unknown_warned:
                self._unknown_warned.add(key)
                log.warning("price override for %r ignored: the model is not in the catalogue", override.model_id)
        for key, base in self._base.items():
            override = overrides.get(key)
            wanted = override.prices if override is not None else base
            entry = self._catalogue.get(key)
            if entry is not None and entry.prices != wanted:
                self._catalogue.set_prices(key, wanted)
                changed += 1
        self._current = dict(overrides)
        return changed

    async def refresh(self) -> int:
        """Read every stored override and apply them; returns how many models changed price."""
        async with self._lock:
            overrides = await asyncio.to_thread(load_overrides, self._engine)
            changed = self.apply(overrides)
        if changed:
            log.info("price overrides: %d models changed price", changed)
        return changed

    async def start(self) -> None:
        """Apply the stored overrides before the first request, then keep refreshing until `stop`."""
        if not self._loop.running:
            await self.refresh()
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
