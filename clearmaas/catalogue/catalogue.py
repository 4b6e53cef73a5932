"""The model catalogue: the bundled `models.yaml` plus the config's overrides and additions, validated once at
startup into frozen `ModelEntry` objects with O(1) lookup.

It holds data only: no I/O after `load`, and no provider behaviour (adapters read an entry's `capabilities`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, get_args

import yaml

from clearmaas.catalogue.entry import ModelEntry, Prices, ReasoningMode
from clearmaas.settings import BUILTIN_PROVIDERS, ConfigError, Settings

__all__ = ["BUNDLED_PATH", "CAPABILITIES", "ENDPOINT_TYPES", "Catalogue", "parse_price"]

BUNDLED_PATH = Path(__file__).with_name("models.yaml")

# What each value means is written at the top of models.yaml.
ENDPOINT_TYPES = frozenset({"openai", "anthropic", "gemini"})
CAPABILITIES = frozenset(
    {
        "vision",
        "json_object",
        "json_schema",
        "tools",
        "no_temperature",
        "single_sampler",
        "no_penalties",
        "responses_only",
        "web_search",
        "image_output",
        "thinking_off",
        "no_stop",
        "no_sampling",
        "effort_none",
        "effort_xhigh",
    }
)

_REASONING_MODES = frozenset(get_args(ReasoningMode))
_PRICE_FIELDS = ("input", "cached_input", "cache_write", "output")
_FIELDS = frozenset(
    {
        "id",
        "provider",
        "upstream",
        "context_length",
        "max_output_tokens",
        "endpoints",
        "reasoning",
        "prices",
        "price_note",
        "quality",
        "created",
        "capabilities",
    }
)
_MICRO = Decimal(1_000_000)

Raw = dict[str, Any]
_Fail = Callable[[str, str], ConfigError]  # (field, problem) -> the error naming the entry


def parse_price(value: object) -> int:
    """A USD-per-million-tokens price ("3", "0.075", "$1.25") as exact integer micro-dollars per million tokens.

    Raises ValueError with a sentence fit for a ConfigError. Floats are refused: YAML's 0.1 is already inexact.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        if isinstance(value, float):
            raise ValueError(f'write prices as quoted decimal strings, e.g. "{value}" (got the number {value})')
        raise ValueError(f"must be a decimal string such as \"0.075\", got {type(value).__name__}")
    text = str(value).strip().removeprefix("$").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{value!r} must be a non-negative number")
    micro = amount * _MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{value!r} is finer than a micro-dollar per million tokens")
    return int(micro)


class Catalogue:
    """Every model the gateway knows, in catalogue order, with lookups by case-insensitive id and by provider."""

    __slots__ = ("_by_id", "_by_provider", "_entries")

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries = tuple(entries)
        self._by_id: dict[str, ModelEntry] = {}
        by_provider: dict[str, list[ModelEntry]] = {}
        for entry in self._entries:
            key = entry.id.casefold()
            if key in self._by_id:
                raise ConfigError(f"model id '{entry.id}' appears twice in the catalogue")
            self._by_id[key] = entry
            by_provider.setdefault(entry.provider, []).append(entry)
        self._by_provider = {pid: tuple(group) for pid, group in by_provider.items()}

    @classmethod
    def load(cls, settings: Settings, *, bundled: Path = BUNDLED_PATH) -> Catalogue:
        """The bundled catalogue, then each provider's `providers.<id>.models`, then the top-level `models`.

        An entry whose id is already known is a partial override (its `prices` merge field by field); any other
        entry is an addition and must be complete. Raises ConfigError naming the entry and field at fault.
        """
        known_providers = frozenset(BUILTIN_PROVIDERS) | frozenset(settings.providers)
        raw: dict[str, tuple[Raw, str]] = {}
        for where, item in _read_bundled(bundled):
            key = _require_id(item, where).casefold()
            if key in raw:
                raise ConfigError(f"{where}: model id '{item['id']}' appears twice in the bundled catalogue")
            raw[key] = (dict(item), where)
        for provider_id, provider in settings.providers.items():
            for i, item in enumerate(provider.models):
                where = f"providers.{provider_id}.models[{i}]"
                _merge(raw, _claim_for_provider(item, provider_id, where), where)
        for i, item in enumerate(settings.models):
            _merge(raw, item, f"models[{i}]")
        return cls(_build_entry(item, where, known_providers) for item, where in raw.values())

    def get(self, model_id: str) -> ModelEntry | None:
        return self._by_id.get(model_id.casefold())

    def set_prices(self, model_id: str, prices: Prices | None) -> ModelEntry:
        """Give the model new prices (operator overrides, `overrides.py`); raises KeyError for an unknown id.

        The entry object is updated in place, not replaced: the name resolver's indexes and the routers'
        candidate lists hold references to it, and every one of them must price the next request the new way.
        Swapping one reference is atomic for readers on the event loop; a reservation keeps the prices it took.
        """
        entry = self._by_id[model_id.casefold()]
        object.__setattr__(entry, "prices", prices)  # ModelEntry is frozen against accidents, not against this
        return entry

    def all(self) -> list[ModelEntry]:
        return list(self._entries)

    def for_provider(self, provider_id: str) -> list[ModelEntry]:
        return list(self._by_provider.get(provider_id, ()))

    def available(self, provider_ids: Iterable[str]) -> list[ModelEntry]:
        """The models a client may call: their provider is configured and they have a price (the docs list only
        models "that have a pricing ratio configured")."""
        configured = set(provider_ids)
        return [e for e in self._entries if e.provider in configured and e.prices is not None]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and model_id.casefold() in self._by_id


def _read_bundled(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the bundled catalogue {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"the bundled catalogue {path} is not valid YAML: {exc}") from exc
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list):
        raise ConfigError(f"the bundled catalogue {path} must have a top-level 'models' list")
    for i, item in enumerate(models):
        where = f"{path.name} models[{i}]"
        yield where, _require_mapping(item, where)


def _require_mapping(item: object, where: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a model entry must be a mapping, got {type(item).__name__}")
    return item


def _require_id(item: Mapping[str, Any], where: str) -> str:
    model_id = item.get("id")
    if not isinstance(model_id, str) or not model_id.strip():
        raise ConfigError(f"{where}: every model entry needs an 'id' string")
    return model_id.strip()


def _claim_for_provider(item: object, provider_id: str, where: str) -> Raw:
    """A `providers.<id>.models` entry belongs to that provider; a bare name gets the `<id>/` prefix."""
    entry = dict(_require_mapping(item, where))
    name = _require_id(entry, where)
    prefix = f"{provider_id}/"
    bare = name[len(prefix) :] if name.casefold().startswith(prefix.casefold()) else name
    if not bare:
        raise ConfigError(f"{where}: 'id' needs a model name after '{prefix}'")
    stated = entry.get("provider", provider_id)
    if stated != provider_id:
        raise ConfigError(
            f"{where}: model '{name}': field 'provider' is '{stated}' but it is listed under '{provider_id}'"
        )
    entry["id"] = prefix + bare
    entry["provider"] = provider_id
    entry.setdefault("upstream", bare)
    return entry


def _merge(raw: dict[str, tuple[Raw, str]], item: object, where: str) -> None:
    entry = _require_mapping(item, where)
    key = _require_id(entry, where).casefold()
    if key not in raw:
        raw[key] = (dict(entry), where)
        return
    base, base_where = raw[key]
    merged = {**base, **entry, "id": base["id"]}  # an override keeps the catalogue's spelling of the id
    if isinstance(base.get("prices"), Mapping) and isinstance(entry.get("prices"), Mapping):
        merged["prices"] = {**base["prices"], **entry["prices"]}
    raw[key] = (merged, f"{where} (overriding {base_where})")


def _build_entry(item: Raw, where: str, known_providers: frozenset[str]) -> ModelEntry:
    model_id = _require_id(item, where)

    def fail(field: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: model '{model_id}': field '{field}' {problem}")

    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise fail(unknown[0], f"is not a catalogue field (known: {', '.join(sorted(_FIELDS))})")
    prefix, slash, name = model_id.partition("/")
    if not slash or not prefix or not name:
        raise fail("id", "must look like '<provider>/<model>', e.g. 'openai/gpt-4o'")
    provider = item.get("provider", prefix)
    if not isinstance(provider, str) or provider not in known_providers:
        raise fail("provider", f"is {provider!r}, which is neither a built-in provider nor in 'providers'")
    upstream = item.get("upstream", name)
    if not isinstance(upstream, str) or not upstream.strip():
        raise fail("upstream", "must be the provider's own model id, a non-empty string")

    def positive_int(field: str) -> int:
        if field not in item:
            raise fail(field, "is required (a positive number of tokens)")
        value = item[field]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise fail(field, f"must be a positive integer, got {value!r}")
        return value

    context_length = positive_int("context_length")
    max_output_tokens = positive_int("max_output_tokens")
    endpoints = _string_set(item.get("endpoints", ["openai"]), ENDPOINT_TYPES, "endpoints", fail)
    if not endpoints:
        raise fail("endpoints", "must name at least one endpoint type")
    capabilities = _string_set(item.get("capabilities", []), CAPABILITIES, "capabilities", fail)
    reasoning = item.get("reasoning")
    if reasoning is not None and reasoning not in _REASONING_MODES:
        raise fail("reasoning", f"must be one of {', '.join(sorted(_REASONING_MODES))}, got {reasoning!r}")
    quality = item.get("quality", 50)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise fail("quality", f"must be an integer from 0 to 100, got {quality!r}")
    price_note = item.get("price_note")
    if price_note is not None and not isinstance(price_note, str):
        raise fail("price_note", "must be a string")
    return ModelEntry(
        id=model_id,
        provider=provider,
        upstream=upstream.strip(),
        context_length=context_length,
        max_output_tokens=max_output_tokens,
        endpoints=tuple(sorted(endpoints)),
        reasoning=reasoning,
        prices=_prices(item.get("prices"), fail),
        quality=quality,
        created=_created(item.get("created", 0), fail),
        capabilities=frozenset(capabilities),
    )


def _string_set(value: object, allowed: frozenset[str], field: str, fail: _Fail) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(field, f"must be a list of strings, got {value!r}")
    bad = sorted(set(value) - allowed)
    if bad:
        raise fail(field, f"has unknown value {bad[0]!r} (known: {', '.join(sorted(allowed))})")
    return set(value)


def _prices(value: object, fail: _Fail) -> Prices | None:
    """`input` and `output` are required; a model without a cache bills cached reads and writes at `input`."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise fail("prices", f"must be a mapping of {', '.join(_PRICE_FIELDS)}")
    unknown = sorted(set(value) - set(_PRICE_FIELDS))
    if unknown:
        raise fail(f"prices.{unknown[0]}", f"is not a price field (known: {', '.join(_PRICE_FIELDS)})")
    parsed: dict[str, int] = {}
    for field in _PRICE_FIELDS:
        if field not in value:
            if field in ("input", "output"):
                raise fail(f"prices.{field}", "is required")
            continue
        try:
            parsed[field] = parse_price(value[field])
        except ValueError as exc:
            raise fail(f"prices.{field}", str(exc)) from None
    parsed.setdefault("cached_input", parsed["input"])
    parsed.setdefault("cache_write", parsed["input"])
    return Prices(**parsed)


def _created(value: object, fail: _Fail) -> int:
    """A unix time, or a release date (YAML `2025-08-07`, or the same as a string) read as UTC midnight."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise fail("created", f"must be a unix time or a YYYY-MM-DD date, got {value!r}") from None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(stamp.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail("created", f"must be a unix time or a YYYY-MM-DD date, got {value!r}")
    return value
