"""`clearmaas routers create|list|update|delete`: manage a workspace's named routers `clearmaas/{name}`.

Running gateways pick a change up within about a second (their router caches watch `updated_at`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sqlalchemy import Engine

from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.errors import ModelNotFound
from clearmaas.routing.names import NameResolver, RouterRef
from clearmaas.routing.routers import (
    InvalidRouter,
    ModelCheck,
    RouterDef,
    create_router,
    delete_router,
    list_routers,
    update_router,
)
from clearmaas.routing.strategies import STRATEGIES
from clearmaas.settings import Settings

__all__ = ["register"]

_APPLIED = "Running gateways apply it within about a second."


def _model_check(settings: Settings) -> ModelCheck:
    """Refuse a default model the catalogue (with the config's aliases) does not know."""

    def check(model: str) -> None:
        resolver = NameResolver(Catalogue.load(settings), aliases=settings.aliases)
        try:
            found = resolver.resolve(model)
        except ModelNotFound as exc:
            raise InvalidRouter(f"default model {model!r}: {exc.message}") from None
        if isinstance(found, RouterRef):
            raise InvalidRouter(f"default model {model!r} names a router, not a model")

    return check


def _describe(router: RouterDef) -> str:
    models = ", ".join(router.patterns) or "every model"
    default = router.default_model or "none"
    state = "enabled" if router.enabled else "disabled"
    return f"clearmaas/{router.name}: {router.strategy}, models {models}, default model {default}, {state}"


def _create(args: argparse.Namespace, engine: Engine) -> int:
    router = create_router(
        engine,
        args.workspace,
        args.name,
        patterns=args.models or (),
        strategy=args.strategy,
        default_model=args.default_model,
        enabled=not args.disabled,
        check_model=_model_check(args.settings),
    )
    print(f"Created router {_describe(router)} in workspace {args.workspace}.")
    print(_APPLIED)
    return 0


def _update(args: argparse.Namespace, engine: Engine) -> int:
    router = update_router(
        engine,
        args.workspace,
        args.name,
        patterns=args.models,
        strategy=args.strategy,
        default_model=args.default_model,
        enabled=args.enabled,
        check_model=_model_check(args.settings),
    )
    print(f"Updated router {_describe(router)} in workspace {args.workspace}.")
    print(_APPLIED)
    return 0


def _delete(args: argparse.Namespace, engine: Engine) -> int:
    delete_router(engine, args.workspace, args.name)
    print(f"Deleted router clearmaas/{args.name} from workspace {args.workspace}.")
    return 0


def _list(args: argparse.Namespace, engine: Engine) -> int:
    rows = [
        (
            f"clearmaas/{r.name}",
            r.strategy,
            ", ".join(r.patterns) or "*",
            r.default_model or "-",
            ("yes" if r.enabled else "no") + (" (built-in)" if r.builtin else ""),
        )
        for r in list_routers(engine, args.workspace)
    ]
    _table(("ROUTER", "STRATEGY", "MODELS", "DEFAULT MODEL", "ENABLED"), rows)
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], config: argparse.ArgumentParser) -> None:
    """Add `clearmaas routers …`; `config` is the shared `--config` parent parser."""
    routers = commands.add_parser("routers", help="manage a workspace's named routers (clearmaas/NAME)")
    actions = routers.add_subparsers(dest="action", metavar="ACTION", required=True)
    models_help = "allowed models: globs, comma- or newline-separated, case-insensitive (empty: every model)"

    create = actions.add_parser("create", parents=[config], help="create a router")
    create.add_argument("workspace", metavar="WORKSPACE")
    create.add_argument("name", metavar="NAME", help="1-50 of a-z, 0-9, '_', '-'")
    create.add_argument("--models", metavar="GLOBS", default=None, help=models_help)
    create.add_argument("--strategy", choices=STRATEGIES, default="balanced", help="default: balanced")
    create.add_argument("--default-model", metavar="ID", default=None, help="used when no model matches")
    create.add_argument("--disabled", action="store_true", help="create it disabled")
    create.set_defaults(run=_create)

    listing = actions.add_parser("list", parents=[config], help="list a workspace's routers")
    listing.add_argument("workspace", metavar="WORKSPACE")
    listing.set_defaults(run=_list)

    change = actions.add_parser("update", parents=[config], help="change a router; options not given stay")
    change.add_argument("workspace", metavar="WORKSPACE")
    change.add_argument("name", metavar="NAME")
    change.add_argument("--models", metavar="GLOBS", default=None, help=models_help + "; '' for every model")
    change.add_argument("--strategy", choices=STRATEGIES, default=None)
    change.add_argument("--default-model", metavar="ID", default=None, help="'' removes it")
    switch = change.add_mutually_exclusive_group()
    switch.add_argument("--enabled", dest="enabled", action="store_const", const=True, default=None)
    switch.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    change.set_defaults(run=_update)

    delete = actions.add_parser("delete", parents=[config], help="delete a router (auto included)")
    delete.add_argument("workspace", metavar="WORKSPACE")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(run=_delete)
