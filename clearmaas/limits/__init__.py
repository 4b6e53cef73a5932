"""Workspace rate limits: requests and tokens per minute shared by all of a workspace's keys, enforced per
request without a database round-trip, in-process or across processes through Redis."""

from clearmaas.limits.cache import LimitCache
from clearmaas.limits.counters import WINDOW_SECONDS, Admission, Counter, MemoryCounter
from clearmaas.limits.limiter import Limiter
from clearmaas.limits.store import KEEP, UNLIMITED, Limits, set_limits

__all__ = [
    "KEEP",
    "UNLIMITED",
    "WINDOW_SECONDS",
    "Admission",
    "Counter",
    "LimitCache",
    "Limiter",
    "Limits",
    "MemoryCounter",
    "set_limits",
]
