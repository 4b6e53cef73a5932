"""The admin credential: one operator token (`admin_token`, or CLEARMAAS_ADMIN_TOKEN), sent as
`Authorization: Bearer <token>` and compared in constant time. It is never a client key: a configured token
that looks like one is refused at startup, and an `sk-clearmaas-` key offered to the admin API is refused
without a comparison.

With no token configured the admin API is disabled and every `/admin/v1/...` request answers 404
`admin_api_disabled`: there is nothing to authenticate against, and an unconfigured gateway should not look
like it has an admin surface waiting for the right password.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from clearmaas.accounts.keys import KEY_PREFIX
from clearmaas.admin.errors import AdminAuthFailed, AdminDisabled
from clearmaas.settings import ConfigError, Settings

__all__ = ["MIN_TOKEN_LENGTH", "AdminGuard"]

# 32 characters of a random token are far beyond guessing; `secrets.token_urlsafe(32)` gives 43.
MIN_TOKEN_LENGTH: Final = 32
_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _digest(text: str) -> bytes:
    # Comparing fixed-length digests keeps `compare_digest` from returning early on a length mismatch, so the
    # time taken says nothing about the token's length either.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class AdminGuard:
    """Checks the admin credential of one request; built once from the settings."""

    def __init__(self, token: str | None) -> None:
        self._digest = _digest(token) if token is not None else None

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminGuard:
        """Raises ConfigError for a token that is too short, or that a client key could ever equal."""
        token = settings.admin_token
        if token is None:
            return cls(None)
        if token != token.strip() or not token.isprintable():
            raise ConfigError("admin_token must be printable, without surrounding spaces")
        if token.startswith(KEY_PREFIX):
            raise ConfigError(f"admin_token must not look like a client API key ({KEY_PREFIX}...); {_HINT}")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"admin_token must be at least {MIN_TOKEN_LENGTH} characters; {_HINT}")
        return cls(token)

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def check(self, headers: Mapping[str, str]) -> None:
        """Raises AdminDisabled (404) or AdminAuthFailed (401); returns when the request carries the token."""
        if self._digest is None:
            raise AdminDisabled(
                "The admin API is disabled on this gateway: set admin_token in the configuration "
                "(or CLEARMAAS_ADMIN_TOKEN) to enable it."
            )
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() != "bearer " or not authorization[7:].strip():
            raise AdminAuthFailed("Missing admin token. Send it as 'Authorization: Bearer <admin token>'.")
        offered = authorization[7:].strip()
        if offered.startswith(KEY_PREFIX):
            raise AdminAuthFailed("Client API keys are not accepted by the admin API; use the admin token.")
        if not hmac.compare_digest(_digest(offered), self._digest):
            raise AdminAuthFailed("Invalid admin token.")
