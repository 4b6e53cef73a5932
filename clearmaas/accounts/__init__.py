"""Workspaces and API keys: storing them, and the in-process cache the gateway authenticates with."""

from clearmaas.accounts.errors import AccountError, InvalidName, KeyNotFound, WorkspaceExists, WorkspaceNotFound
from clearmaas.accounts.key_cache import KeyCache
from clearmaas.accounts.keys import (
    KEY_PREFIX,
    KeyRecord,
    allows_model,
    create_key,
    generate_key,
    get_key,
    hash_key,
    is_usable,
    list_keys,
    revoke_key,
)
from clearmaas.accounts.workspaces import (
    Workspace,
    create_workspace,
    ensure_bootstrap,
    get_workspace,
    list_workspaces,
)

__all__ = [
    "KEY_PREFIX",
    "AccountError",
    "InvalidName",
    "KeyCache",
    "KeyNotFound",
    "KeyRecord",
    "Workspace",
    "WorkspaceExists",
    "WorkspaceNotFound",
    "allows_model",
    "create_key",
    "create_workspace",
    "ensure_bootstrap",
    "generate_key",
    "get_key",
    "get_workspace",
    "hash_key",
    "is_usable",
    "list_keys",
    "list_workspaces",
    "revoke_key",
]
