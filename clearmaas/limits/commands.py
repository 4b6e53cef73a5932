"""`clearmaas workspaces limits NAME [--rpm N|none] [--tpm N|none]`: show or set a workspace's rate limits.

Running gateways pick a change up within about a second (their limit caches watch `updated_at`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sqlalchemy import Engine

from clearmaas.accounts.workspaces import Workspace, get_workspace
from clearmaas.limits.store import KEEP, MAX_RPM, MAX_TPM, set_limits

__all__ = ["register"]

_UNLIMITED_WORDS = ("none", "unlimited")


def _limit(maximum: int) -> Callable[[str], int | None]:
    def parse(text: str) -> int | None:
        if text.strip().lower() in _UNLIMITED_WORDS:
            return None
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from None
        if not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between 1 and {maximum}, or 'none' for unlimited")
        return value

    parse.__name__ = "limit"  # what argparse names in its "invalid limit value" message
    return parse


def _describe(workspace: Workspace) -> str:
    rpm = "unlimited" if workspace.rpm_limit is None else str(workspace.rpm_limit)
    tpm = "unlimited" if workspace.tpm_limit is None else str(workspace.tpm_limit)
    return f"workspace {workspace.name} ({workspace.id}): {rpm} requests/minute, {tpm} tokens/minute"


def _limits(args: argparse.Namespace, engine: Engine) -> int:
    if args.rpm is KEEP and args.tpm is KEEP:
        print(f"Limits of {_describe(get_workspace(engine, args.name))}.")
        return 0
    workspace = set_limits(engine, args.name, rpm=args.rpm, tpm=args.tpm)
    print(f"Set limits of {_describe(workspace)}.")
    print("Running gateways apply them within about a second.")
    return 0


def register(
    workspace_commands: argparse._SubParsersAction[argparse.ArgumentParser], config: argparse.ArgumentParser
) -> None:
    """Add `limits` under `clearmaas workspaces`; `config` is the shared `--config` parent parser."""
    command = workspace_commands.add_parser(
        "limits",
        parents=[config],
        help="show or set a workspace's rate limits",
        description="Show a workspace's rate limits, or set them with --rpm and --tpm. Limits are shared by "
        "all of the workspace's keys; 'none' removes a limit.",
    )
    command.add_argument("name", metavar="NAME")
    command.add_argument(
        "--rpm", type=_limit(MAX_RPM), default=KEEP, metavar="N|none", help="requests per minute (none: unlimited)"
    )
    command.add_argument(
        "--tpm", type=_limit(MAX_TPM), default=KEEP, metavar="N|none", help="tokens per minute (none: unlimited)"
    )
    command.set_defaults(run=_limits)
