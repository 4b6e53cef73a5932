"""Model names a client may send, resolved to a catalogue entry (and a reasoning effort) or to a named router.

Accepted, in this order: `clearmaas/{router}`; an alias from the config; a catalogue id (`openai/gpt-4o-mini`);
a bare name when exactly one model answers to it (`gpt-4o-mini`, or a provider's own id such as Claude Code's
`claude-sonnet-4-5-20250929`); an unlisted Claude name, sent as is and priced as the newest model of its family;
and any of these followed by an effort suffix (`-minimal`, `-low`, `-medium`, `-high`, `-max`,
advanced__reasoning.md). A name that is itself in the catalogue always wins over reading a suffix off it, so
`qwen3-max` stays a model. No router lookups and no provider health here: `router.py` does those.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clearmaas.canonical.request import Effort
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import ModelNotFound
from clearmaas.settings import ConfigError

__all__ = ["ROUTER_PREFIX", "SUFFIX_EFFORTS", "NameResolver", "Resolved", "RouterRef"]

log = logging.getLogger("clearmaas.routing")

ROUTER_PREFIX = "clearmaas/"

# The `-{effort}` model-name suffixes of advanced__reasoning.md; adapters map the effort per provider (Claude
# budget models: high -> thinking budget 4096).
SUFFIX_EFFORTS: dict[str, Effort] = {
    "-minimal": "minimal",
    "-low": "low",
    "-medium": "medium",
    "-high": "high",
    "-max": "max",
}

# Model families whose future names are predictable, as data: a name matching one of these, but not in the
# catalogue, goes to the provider of the family's newest listed model at that model's price. Claude Code asks
# for Anthropic's own ids, and a new Claude release should keep working before the catalogue lists it. Both
# naming schemes: `claude-opus-4-6`, `claude-sonnet-4-5-20250929`, `claude-sonnet-4-7-latest` and the older
# `claude-3-5-haiku-20241022`.
FAMILY_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"claude-(?P<family>opus|sonnet|haiku)-\d{1,2}(?:[-.]\d{1,2})?(?:-\d{8}|-latest)?"),
    re.compile(r"claude-\d{1,2}(?:[-.]\d{1,2})?-(?P<family>opus|sonnet|haiku)(?:-\d{8}|-latest)?"),
)
_DATE = re.compile(r"-\d{8}$")
# Names made up from the family rule are remembered (one warning each); past this many, a flood of invented
# names is still served but neither remembered nor logged.
_MAX_INFERRED = 1024


@dataclass(frozen=True, slots=True)
class Resolved:
    """A concrete model; `inferred` marks an unlisted name priced as its family."""

    entry: ModelEntry
    effort: Effort | None = None
    inferred: bool = False


@dataclass(frozen=True, slots=True)
class RouterRef:
    """A `clearmaas/{name}` router, still to be looked up in the caller's workspace."""

    name: str


def _norm(name: str) -> str:
    """The lookup key of a bare name: case-insensitive, and `claude-haiku-4.5` equals `claude-haiku-4-5`."""
    return name.casefold().replace(".", "-")


def _bare(entry: ModelEntry) -> str:
    return entry.id.partition("/")[2]


class _Index:
    """Bare names by lookup key, in layers: the catalogue's own names first, then the provider's ids, then the
    provider's ids without a snapshot date (Anthropic's `claude-haiku-4-5` for `claude-haiku-4-5-20251001`)."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self.layers: tuple[dict[str, list[ModelEntry]], ...] = ({}, {}, {})
        for entry in entries:
            self._add(0, _bare(entry), entry)
            self._add(1, entry.upstream, entry)
            undated = _DATE.sub("", entry.upstream)
            if undated != entry.upstream:
                self._add(2, undated, entry)

    def _add(self, layer: int, name: str, entry: ModelEntry) -> None:
        found = self.layers[layer].setdefault(_norm(name), [])
        if entry not in found:
            found.append(entry)

    def find(self, name: str) -> list[ModelEntry]:
        """The entries of the first layer that knows `name` (more than one: ambiguous); empty when none does."""
        key = _norm(name)
        for layer in self.layers:
            if key in layer:
                return layer[key]
        return []


class NameResolver:
    """Resolves client model names against one catalogue and the config's alias table; built once at startup."""

    def __init__(self, catalogue: Catalogue, *, aliases: Mapping[str, str] | None = None) -> None:
        self._catalogue = catalogue
        self._everywhere = _Index(catalogue)
        self._providers = {entry.provider for entry in catalogue}
        self._by_provider = {pid: _Index(catalogue.for_provider(pid)) for pid in self._providers}
        self._aliases = {name.strip().casefold(): target.strip() for name, target in (aliases or {}).items()}
        self._inferred: dict[str, ModelEntry] = {}
        for name, target in self._aliases.items():
            self._check_alias(name, target)

    def _check_alias(self, name: str, target: str) -> None:
        where = f"aliases.{name}"
        if not name or name.startswith(ROUTER_PREFIX):
            raise ConfigError(f"{where}: an alias name must be non-empty and must not start with '{ROUTER_PREFIX}'")
        if target.casefold().startswith(ROUTER_PREFIX):
            if not target[len(ROUTER_PREFIX) :]:
                raise ConfigError(f"{where}: '{target}' names no router")
            return
        try:
            self._model(target, quiet=True)
        except ModelNotFound as exc:
            raise ConfigError(f"{where}: the target '{target}' is not in the catalogue: {exc.message}") from None

    def resolve(self, name: str) -> Resolved | RouterRef:
        """The model or router `name` denotes; raises ModelNotFound (ambiguous names say which models they could
        mean). A router is not looked up here."""
        name = name.strip()
        if name.casefold().startswith(ROUTER_PREFIX):
            return RouterRef(name[len(ROUTER_PREFIX) :].casefold())
        target = self._aliases.get(name.casefold())
        if target is not None:
            if target.casefold().startswith(ROUTER_PREFIX):
                return RouterRef(target[len(ROUTER_PREFIX) :].casefold())
            return self._model(target, quiet=False)
        return self._model(name, quiet=False)

    def _model(self, name: str, *, quiet: bool) -> Resolved:
        found = self._lookup(name, quiet=quiet)
        if found is not None:
            return found
        for suffix, effort in SUFFIX_EFFORTS.items():
            base = name[: -len(suffix)]
            if not name.casefold().endswith(suffix) or not base:
                continue
            target = self._aliases.get(base.casefold(), base)
            if target.casefold().startswith(ROUTER_PREFIX):
                break
            found = self._lookup(target, quiet=quiet)
            if found is None:
                break
            if found.entry.reasoning is None:
                raise ModelNotFound(
                    f"The model '{name}' is not available: '{found.entry.id}' has no reasoning effort to set "
                    f"with '{suffix}'.",
                    param="model",
                )
            return dataclasses.replace(found, effort=effort)
        raise ModelNotFound(f"The model '{name}' is not available for your account.", param="model")

    def _lookup(self, name: str, *, quiet: bool) -> Resolved | None:
        """A catalogue model, a bare name or an unlisted family member; None when `name` is none of them."""
        entry = self._catalogue.get(name)
        if entry is not None:
            return Resolved(entry)
        prefix, slash, bare = name.partition("/")
        provider = prefix.casefold() if slash and prefix.casefold() in self._providers else None
        index = self._everywhere if provider is None else self._by_provider[provider]
        wanted = name if provider is None else bare
        matches = index.find(wanted)
        if len(matches) > 1:
            choices = ", ".join(sorted(e.id for e in matches))
            raise ModelNotFound(
                f"The model name '{name}' is ambiguous: it could be {choices}. Use the provider-prefixed id.",
                param="model",
            )
        if matches:
            return Resolved(matches[0])
        family = self._family_member(wanted, provider=provider, quiet=quiet)
        return Resolved(family, inferred=True) if family is not None else None

    def _family_member(self, name: str, *, provider: str | None, quiet: bool) -> ModelEntry | None:
        key = name.casefold()
        known = self._inferred.get(key)
        if known is not None:
            return known if provider is None or known.provider == provider else None
        for pattern in FAMILY_PATTERNS:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            family = match.group("family")
            template = self._newest_of(family, provider)
            if template is None:
                return None
            entry = dataclasses.replace(template, id=f"{template.provider}/{key}", upstream=key)
            if not quiet and len(self._inferred) < _MAX_INFERRED:
                self._inferred[key] = entry
                log.warning(
                    "model %r is not in the catalogue: sending it to %s priced as %s, the newest %s model listed; "
                    "add it to the config's 'models' to price it exactly",
                    name,
                    template.provider,
                    template.id,
                    family,
                )
            return entry
        return None

    def _newest_of(self, family: str, provider: str | None) -> ModelEntry | None:
        """The family's newest priced model (then the best, then by id, so the choice is stable)."""
        members = [
            entry
            for entry in self._catalogue
            if entry.prices is not None
            and (provider is None or entry.provider == provider)
            and _family(entry.upstream) == family
        ]
        return max(members, key=lambda e: (e.created, e.quality, e.id), default=None)


def _family(name: str) -> str | None:
    for pattern in FAMILY_PATTERNS:
        match = pattern.fullmatch(name.casefold())
        if match is not None:
            return match.group("family")
    return None
