"""Reading the admin API's input: a JSON body's fields and the query string's parameters, each checked and
converted (money to integer micro-dollars, times to aware UTC), every failure an `InvalidRequest` naming the
field. Unknown body fields are refused, so a typo (`credit_limit` for `credit_limit_usd`) is never silently
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Final

import orjson
from starlette.datastructures import QueryParams

from clearmaas.billing.export import parse_moment
from clearmaas.billing.money import format_usd, parse_usd
from clearmaas.errors import InvalidRequest

__all__ = ["MAX_BODY_BYTES", "Body", "Query", "iso", "parse_body", "usd"]

MAX_BODY_BYTES: Final = 1024 * 1024
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def usd(micros: int | None) -> str | None:
    """Micro-dollars as the API writes money: an exact decimal string ("12.500000"), never a float."""
    return None if micros is None else format_usd(micros)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def parse_body(raw: bytes, *, allowed: Collection[str]) -> Body:
    """The request body as a JSON object with no fields outside `allowed`; raises InvalidRequest."""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise InvalidRequest(f"Unknown field '{unknown[0]}' (accepted: {known}).", param=unknown[0])
    return Body(data)


class Body:
    """The fields of one JSON body. Each getter returns None for a field that is absent or null; `has` tells
    the two apart where null means "remove" (a PATCH)."""

    def __init__(self, data: Mapping[str, object]) -> None:
        self._data = data

    def has(self, name: str) -> bool:
        return name in self._data

    def raw(self, name: str, *, required: bool = False) -> object:
        """The field's JSON value, unchecked (None when absent or null)."""
        value = self._data.get(name)
        if value is None and required:
            raise InvalidRequest(f"'{name}' is required.", param=name)
        return value

    def text(self, name: str, *, required: bool = False, max_length: int = 200) -> str | None:
        value = self.raw(name, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > max_length or not value.isprintable():
            raise InvalidRequest(f"'{name}' must be 1 to {max_length} printable characters.", param=name)
        return value

    def email(self, name: str) -> str:
        value = self.text(name, required=True, max_length=320)
        assert value is not None
        address = value.strip().lower()
        if not _EMAIL.fullmatch(address):
            raise InvalidRequest(f"'{name}' must be an email address.", param=name)
        return address

    def choice(self, name: str, options: Collection[str], *, required: bool = False) -> str | None:
        value = self.raw(name, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or value not in options:
            raise InvalidRequest(f"'{name}' must be one of: {', '.join(options)}.", param=name)
        return value

    def usd(self, name: str, *, required: bool = False, allow_zero: bool = False) -> int | None:
        """A dollar amount as micro-dollars. Strings ("10.00") and whole numbers are exact; a JSON fraction
        (10.5) is refused, because a float may already have lost the value the client meant."""
        value = self.raw(name, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidRequest(f"'{name}' must be a decimal string of US dollars, e.g. \"10.00\".", param=name)
        try:
            return parse_usd(str(value), allow_zero=allow_zero)
        except ValueError as exc:
            raise InvalidRequest(f"'{name}': {exc}", param=name) from None

    def whole(self, name: str, *, maximum: int) -> int | None:
        """A positive whole number up to `maximum`."""
        value = self.raw(name, required=False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
            raise InvalidRequest(f"'{name}' must be a whole number from 1 to {maximum}, or null.", param=name)
        return value

    def flag(self, name: str) -> bool | None:
        value = self.raw(name, required=False)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise InvalidRequest(f"'{name}' must be true or false.", param=name)
        return value

    def strings(self, name: str, *, max_items: int = 100, max_length: int = 200) -> list[str] | None:
        """A list of non-empty printable strings."""
        value = self.raw(name, required=False)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > max_items:
            raise InvalidRequest(f"'{name}' must be an array of at most {max_items} strings.", param=name)
        for item in value:
            if not isinstance(item, str) or not item.strip() or len(item) > max_length or not item.isprintable():
                raise InvalidRequest(f"'{name}' entries must be 1 to {max_length} printable characters.", param=name)
        return [item.strip() for item in value]


class Query:
    """The query string's parameters."""

    def __init__(self, params: QueryParams) -> None:
        self._params = params

    def text(self, name: str, *, max_length: int = 200) -> str | None:
        value = self._params.get(name)
        if value is None or value == "":
            return None
        if len(value) > max_length:
            raise InvalidRequest(f"'{name}' is longer than {max_length} characters.", param=name)
        return value

    def whole(self, name: str, *, default: int, maximum: int) -> int:
        value = self._params.get(name)
        if value is None or value == "":
            return default
        if not value.isdigit() or not 0 < int(value) <= maximum:
            raise InvalidRequest(f"'{name}' must be a whole number from 1 to {maximum}.", param=name)
        return int(value)

    def moment(self, name: str) -> datetime | None:
        """An ISO 8601 date or time; without a zone it is UTC."""
        value = self.text(name, max_length=64)
        if value is None:
            return None
        try:
            return parse_moment(value)
        except ValueError as exc:
            raise InvalidRequest(f"'{name}': {exc}", param=name) from None
