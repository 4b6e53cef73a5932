"""Why a workspace or key operation was refused, in words meant for the operator at the command line.

These are administrative errors; a request carrying a bad key becomes `clearmaas.errors.AuthenticationFailed`
in the auth layer, not one of these.
"""

from __future__ import annotations

__all__ = ["AccountError", "InvalidName", "KeyNotFound", "WorkspaceExists", "WorkspaceNotFound"]


class AccountError(Exception):
    """Base: the operation was refused; `str(error)` says why."""


class InvalidName(AccountError):
    """A workspace or key name is empty, too long or has characters it may not have."""


class WorkspaceNotFound(AccountError):
    """No workspace has that name."""


class WorkspaceExists(AccountError):
    """A workspace with that name already exists."""


class KeyNotFound(AccountError):
    """No key has that id."""
