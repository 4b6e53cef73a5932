"""Admin endpoints for prices: every catalogue model's effective price (the catalogue's, or the operator's
override), and setting or removing an override. Prices are US dollars per million tokens as decimal strings.

A change is stored in `price_overrides` and applied to this process's catalogue at once; every other running
gateway applies it on its next refresh (`catalogue/overrides.py`, every 2 seconds). Calls already reserved
keep the price they were reserved at.
"""

from __future__ import annotations

from typing import TypedDict

from clearmaas.admin.endpoint import AdminCall, Endpoint, Param
from clearmaas.admin.errors import ResourceNotFound
from clearmaas.admin.fields import Body, iso
from clearmaas.billing.money import format_usd
from clearmaas.catalogue.catalogue import parse_price
from clearmaas.catalogue.entry import ModelEntry, Prices
from clearmaas.catalogue.overrides import PriceOverride, PriceOverrides, delete_override, load_overrides, put_override
from clearmaas.errors import InvalidRequest

__all__ = ["ENDPOINTS", "ModelPrice", "PriceSet"]

_PRICE_FIELDS = ("input", "cached_input", "cache_write", "output")


class PriceSet(TypedDict):
    input: str
    cached_input: str
    cache_write: str
    output: str


class Override(PriceSet):
    updated_at: str | None


class ModelPrice(TypedDict):
    model: str
    provider: str
    prices: PriceSet | None
    catalogue_prices: PriceSet | None
    override: Override | None


def _set(prices: Prices | None) -> PriceSet | None:
    if prices is None:
        return None
    # Micro-dollars per million tokens, written as dollars per million tokens: the same six-place decimal text.
    return PriceSet(
        input=format_usd(prices.input),
        cached_input=format_usd(prices.cached_input),
        cache_write=format_usd(prices.cache_write),
        output=format_usd(prices.output),
    )


def _view(entry: ModelEntry, overrides: PriceOverrides, stored: PriceOverride | None) -> ModelPrice:
    base = overrides.base_prices(entry.id)
    override = None
    if stored is not None:
        shown = _set(stored.prices)
        assert shown is not None
        override = Override(**shown, updated_at=iso(stored.updated_at))
    return ModelPrice(
        model=entry.id,
        provider=entry.provider,
        prices=_set(stored.prices if stored is not None else base),
        catalogue_prices=_set(base),
        override=override,
    )


def _overrides(call: AdminCall) -> PriceOverrides:
    gateway = call.gateway
    if gateway.price_overrides is None:
        # A gateway assembled without one: admin changes still apply here, with no background refresh.
        gateway.price_overrides = PriceOverrides(call.engine, gateway.catalogue)
    return gateway.price_overrides


def _entry(call: AdminCall) -> ModelEntry:
    model_id = call.path("model_id")
    entry = call.gateway.catalogue.get(model_id)
    if entry is None:
        raise ResourceNotFound(f"no model {model_id!r} in the catalogue", code="model_not_found")
    return entry


def _price(body: Body, name: str, default: int | None) -> int:
    value = body.raw(name, required=default is None)
    if value is None:
        assert default is not None
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest(f"'{name}' must be a decimal string of US dollars per million tokens.", param=name)
    try:
        return parse_price(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}", param=name) from None


async def list_prices(call: AdminCall) -> dict[str, list[ModelPrice]]:
    provider = call.query.text("provider")
    overrides = _overrides(call)
    stored = await call.run(load_overrides, call.engine)
    entries = [e for e in call.gateway.catalogue if provider is None or e.provider == provider]
    return {"data": [_view(e, overrides, stored.get(e.id.casefold())) for e in entries]}


async def get_price(call: AdminCall) -> ModelPrice:
    entry = _entry(call)
    stored = await call.run(load_overrides, call.engine)
    return _view(entry, _overrides(call), stored.get(entry.id.casefold()))


async def set_price(call: AdminCall) -> ModelPrice:
    entry = _entry(call)
    body = await call.body(allowed=_PRICE_FIELDS)
    overrides = _overrides(call)
    base = overrides.base_prices(entry.id)
    input_price = _price(body, "input", None)
    prices = Prices(
        input=input_price,
        # Fields left out keep the catalogue's price, or follow `input` for a model the catalogue never priced.
        cached_input=_price(body, "cached_input", base.cached_input if base else input_price),
        cache_write=_price(body, "cache_write", base.cache_write if base else input_price),
        output=_price(body, "output", None),
    )
    stored = await call.run(put_override, call.engine, entry.id, prices)
    await overrides.refresh()
    return _view(entry, overrides, stored)


async def remove_price(call: AdminCall) -> None:
    entry = _entry(call)
    overrides = _overrides(call)
    if not await call.run(delete_override, call.engine, entry.id):
        raise ResourceNotFound(f"the model {entry.id!r} has no price override", code="override_not_found")
    await overrides.refresh()


_TAG = "Prices"
_ONE = "/admin/v1/prices/{model_id:path}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/admin/v1/prices",
        list_prices,
        "List every catalogue model's effective price",
        _TAG,
        response="PriceList",
        query=(Param("provider", "Only this provider's models, e.g. openai."),),
    ),
    Endpoint("GET", _ONE, get_price, "Show a model's price", _TAG, response="ModelPrice", errors=(404,)),
    Endpoint(
        "PUT",
        _ONE,
        set_price,
        "Override a model's price",
        _TAG,
        request="PriceOverride",
        response="ModelPrice",
        errors=(400, 404),
        description="`input` and `output` are required; `cached_input` and `cache_write` default to the "
        "catalogue's. Every running gateway bills the new price within about 2 seconds.",
    ),
    Endpoint(
        "DELETE",
        _ONE,
        remove_price,
        "Remove a model's price override (back to the catalogue's price)",
        _TAG,
        status=204,
        errors=(404,),
    ),
)
