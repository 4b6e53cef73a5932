"""What routing hands the relay: the ordered models to try for one request, and how they were chosen.

The relay tries `candidates` in order, moving on only on a retryable failure before the first byte reached
the client. Building a plan does no I/O: routers, aliases and provider health are in-process state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clearmaas.canonical.request import Effort
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.registry import ProviderRuntime

__all__ = ["Candidate", "RoutePlan"]


@dataclass(slots=True)
class Candidate:
    """One model to try: the catalogue entry, its provider, and an effort set by a `-high`-style suffix."""

    entry: ModelEntry
    provider: ProviderRuntime
    effort: Effort | None = None
    router: str | None = None  # the `clearmaas/{name}` router that chose it, if any
    level: int = 0  # its entry's position in the client's fallback chain (X-Clear-Fallback-Level)


@dataclass(slots=True)
class RoutePlan:
    candidates: list[Candidate]
    chain: bool = False  # a `route: "fallback"` chain was given: X-Clear-Fallback-* headers apply
    skipped: list[str] = field(default_factory=list)  # chain entries dropped (unresolvable or not allowed)
