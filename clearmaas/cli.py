"""The `clearmaas` command: `serve` the gateway, and manage workspaces and API keys in the same database.

Every command reads the same configuration (`--config`/CLEARMAAS_CONFIG, CLEARMAAS_* variables) and
migrates the database first. Bad input ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NoReturn

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from clearmaas import __version__
from clearmaas.accounts import keys as key_store
from clearmaas.accounts import workspaces as workspace_store
from clearmaas.accounts.errors import AccountError
from clearmaas.billing import commands as billing_args
from clearmaas.settings import ConfigError, Settings, load_settings
from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import upgrade
from clearmaas.store.schema import utc_now

__all__ = ["main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Abort(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _open_database(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    try:
        upgrade(url)
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise _Abort(f"cannot open the database {shown}: {reason}", EXIT_FAILURE) from exc
    return create_engine_for(url)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else "-"


def _status(record: key_store.KeyRecord, now: datetime) -> str:
    if record.revoked_at is not None:
        return "revoked"
    return "active" if key_store.is_usable(record, now) else "expired"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    engine = _open_database(settings)
    try:
        raw = workspace_store.ensure_bootstrap(engine)
    finally:
        engine.dispose()
    if raw is not None:
        print(
            "\nFirst start: created workspace "
            f"{workspace_store.BOOTSTRAP_WORKSPACE!r} and this API key. It is shown only now; store it:\n\n"
            f"    {raw}\n\n"
            "Requests are billed from the workspace balance, which starts at $0. Add credit first:\n"
            "    clearmaas credits add default 10\n"
            "More keys: clearmaas keys create --workspace default\n",
            file=sys.stderr,
            flush=True,
        )
    # Imported here so the management commands start without loading the HTTP stack.
    server = importlib.import_module("clearmaas.web.server")
    server.run(settings)
    return 0


def _workspaces_create(args: argparse.Namespace, engine: Engine) -> int:
    workspace = workspace_store.create_workspace(engine, args.name)
    print(f"Created workspace {workspace.name} ({workspace.id}).")
    return 0


def _workspaces_list(args: argparse.Namespace, engine: Engine) -> int:
    rows = [
        (w.name, w.id, _when(w.created_at), str(w.rpm_limit or "-"), str(w.tpm_limit or "-"))
        for w in workspace_store.list_workspaces(engine)
    ]
    _table(("NAME", "ID", "CREATED", "RPM", "TPM"), rows)
    return 0


def _keys_create(args: argparse.Namespace, engine: Engine) -> int:
    record, raw = key_store.create_key(
        engine,
        args.workspace,
        name=args.label,
        expires_at=billing_args.expires_at(args.expires_in),
        credit_limit_micros=args.credit_limit,
        model_allowlist=args.models,
    )
    label = f" {record.name!r}" if record.name else ""
    print(f"Created key {record.id}{label} in workspace {record.workspace_name}.")
    print("This is the only time the key is shown; store it now:")
    print(raw)
    return 0


def _keys_list(args: argparse.Namespace, engine: Engine) -> int:
    now = utc_now()
    rows = [
        (
            r.id,
            r.name or "-",
            r.prefix + "…",
            _when(r.created_at),
            _when(r.last_used_at),
            _when(r.expires_at),
            _status(r, now),
        )
        for r in key_store.list_keys(engine, args.workspace)
    ]
    _table(("ID", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "STATUS"), rows)
    return 0


def _keys_revoke(args: argparse.Namespace, engine: Engine) -> int:
    record, revoked_now = key_store.revoke_key(engine, args.key_id)
    if revoked_now:
        print(f"Revoked key {record.id} ({record.prefix}…) in workspace {record.workspace_name}.")
    else:
        print(f"Key {record.id} was already revoked at {_when(record.revoked_at)}.")
    return 0


_Command = Callable[[argparse.Namespace, Engine], int]


def _parser() -> argparse.ArgumentParser:
    # `--config` is accepted before or after the subcommand; SUPPRESS keeps a subparser from
    # overwriting a value given at the top level with its own default.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="YAML configuration file (or CLEARMAAS_CONFIG)"
    )
    parser = argparse.ArgumentParser(prog="clearmaas", description="Self-hostable LLM API gateway.")
    parser.add_argument("--config", metavar="PATH", default=None, help="YAML configuration file (or CLEARMAAS_CONFIG)")
    parser.add_argument("--version", action="version", version=f"clearmaas {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[config], help="run the gateway")
    serve.add_argument("--host", default=None, help="interface to listen on (default from configuration)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default from configuration)")

    ws = commands.add_parser("workspaces", help="manage workspaces")
    ws_commands = ws.add_subparsers(dest="action", metavar="ACTION", required=True)
    ws_create = ws_commands.add_parser("create", parents=[config], help="create a workspace")
    ws_create.add_argument("name", metavar="NAME")
    ws_create.set_defaults(run=_workspaces_create)
    ws_commands.add_parser("list", parents=[config], help="list workspaces").set_defaults(run=_workspaces_list)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    k_create = key_commands.add_parser("create", parents=[config], help="create a key; prints it once, last")
    k_create.add_argument("--workspace", required=True, metavar="NAME")
    k_create.add_argument("--name", dest="label", default=None, metavar="LABEL", help="a label for the key")
    k_create.add_argument("--credit-limit", type=billing_args.usd_arg, default=None, metavar="USD", help="cap on total spend")
    k_create.add_argument("--expires-in", type=billing_args.lifetime_arg, default=None, metavar="1h|30d|1y|never")
    k_create.add_argument("--models", type=billing_args.models_arg, default=(), metavar="GLOB,...", help="allowed models")
    k_create.set_defaults(run=_keys_create)
    k_list = key_commands.add_parser("list", parents=[config], help="list a workspace's keys")
    k_list.add_argument("--workspace", required=True, metavar="NAME")
    k_list.set_defaults(run=_keys_list)
    k_revoke = key_commands.add_parser("revoke", parents=[config], help="revoke a key by id")
    k_revoke.add_argument("key_id", metavar="KEY_ID")
    k_revoke.set_defaults(run=_keys_revoke)

    # Commands owned by other packages register themselves here, each with the shared `--config` parent.
    importlib.import_module("clearmaas.routing.commands").register(commands, config)
    importlib.import_module("clearmaas.limits.commands").register(ws_commands, config)
    importlib.import_module("clearmaas.billing.commands").register(commands, config, workspaces=ws_commands)
    return parser


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "serve":
        settings = load_settings(args.config, host=args.host, port=args.port)
        return _serve(args, settings)
    run: _Command = args.run
    settings = load_settings(args.config)
    args.settings = settings  # for commands that need more than the database (e.g. redis_url)
    engine = _open_database(settings)
    try:
        return run(args, engine)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run one command and exit with its status (0, 1 for a failure, 2 for bad input), like argparse
    does for `--help`, `--version` and usage errors."""
    sys.exit(_run(argv))


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = _dispatch(parser, args)
    except (AccountError, ConfigError) as exc:
        code = _fail(str(exc), EXIT_USAGE)
    except _Abort as exc:
        code = _fail(str(exc), exc.code)
    except SQLAlchemyError as exc:
        code = _fail(f"database error: {getattr(exc, 'orig', None) or exc}", EXIT_FAILURE)
    return code


def _fail(message: str, code: int) -> int:
    print(f"clearmaas: error: {message}", file=sys.stderr)
    return code
