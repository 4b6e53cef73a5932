"""Rate limits switched off (`billing: false`): every request is admitted."""

from __future__ import annotations

from typing import Any

from clearmaas.limits.counters import NOT_COUNTED, Admission

__all__ = ["Unlimited"]


class Unlimited:
    """The `Limiter` interface that admits everything and counts nothing."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def admit_now(self, workspace_id: str, tokens: int) -> Admission:
        return NOT_COUNTED

    async def admit(self, workspace_id: str, *, tokens: int) -> Admission:
        return NOT_COUNTED

    def adjust_now(self, workspace_id: str, estimated: int, actual: int, admission: Any = None) -> bool:
        return True

    async def adjust(self, workspace_id: str, *, estimated: int, actual: int, admission: Any = None) -> None:
        return None
