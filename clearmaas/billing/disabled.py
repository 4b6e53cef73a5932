"""Billing switched off (`billing: false`): every request is allowed and nothing is recorded."""

from __future__ import annotations

from typing import Any

from clearmaas.accounts.keys import KeyRecord
from clearmaas.catalogue.entry import ModelEntry

__all__ = ["DisabledBilling"]


class DisabledBilling:
    """The `Billing` interface with no book, no ledger and no usage log."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def reserve_now(self, key: KeyRecord, entry: ModelEntry, input_tokens: int, max_output_tokens: int) -> None:
        return None

    async def reserve(self, key: KeyRecord, entry: ModelEntry, *, input_tokens: int, max_output_tokens: int) -> None:
        return None

    async def release(self, reservation: Any) -> None:
        return None

    async def settle(self, reservation: Any, record: Any) -> None:
        return None

    def settle_now(self, reservation: Any, record: Any) -> None:
        return None
