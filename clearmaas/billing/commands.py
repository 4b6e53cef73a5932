"""The billing commands: `credits add`, `workspaces show`, `usage export` and `billing reconcile`, plus the
argument types `keys create` uses for `--credit-limit`, `--expires-in` and `--models`.

Commands take `(args, engine)` like every `clearmaas` command; `args.settings` supplies `redis_url`, so with
Redis configured a credit reaches the running gateways' live balance at once.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import TextIO

from sqlalchemy import Engine

from clearmaas.billing.export import ExportFilter, export_usage, parse_moment
from clearmaas.billing.ledger import add_credit, reconcile, workspace_summary
from clearmaas.billing.money import format_usd, parse_usd
from clearmaas.store.schema import utc_now

__all__ = ["lifetime_arg", "models_arg", "register", "usd_arg"]

EXIT_FAILURE = 1
EXIT_USAGE = 2

_Subcommands = argparse._SubParsersAction  # argparse exposes no public name for it
_LIFETIME = re.compile(r"(\d+)\s*(h|d|w|y)")
_UNIT_SECONDS = {"h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}
MIN_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(days=365)


# -- argument types ---------------------------------------------------------------------------------------


def usd_arg(text: str) -> int:
    """A positive dollar amount as micro-dollars, for argparse `type=`."""
    try:
        return parse_usd(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


usd_arg.__name__ = "amount"


def lifetime_arg(text: str) -> timedelta | None:
    """`1h`, `30d`, `12w`, `1y` (1 hour to 1 year, as the docs allow), or `never` (None)."""
    cleaned = text.strip().lower()
    if cleaned == "never":
        return None
    match = _LIFETIME.fullmatch(cleaned)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: write a lifetime such as 1h, 30d, 12w or 1y, or 'never'")
    lifetime = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise argparse.ArgumentTypeError(f"{text!r}: a key's lifetime must be between 1 hour and 1 year")
    return lifetime


lifetime_arg.__name__ = "lifetime"


def models_arg(text: str) -> tuple[str, ...]:
    """A comma-separated list of model-id globs, e.g. `openai/*,anthropic/claude-sonnet-*`."""
    globs = tuple(part.strip() for part in text.split(","))
    if not globs or any(not glob for glob in globs):
        raise argparse.ArgumentTypeError(f"{text!r}: write model globs separated by commas, e.g. openai/*,google/*")
    return globs


models_arg.__name__ = "models"


def expires_at(lifetime: timedelta | None, now: datetime | None = None) -> datetime | None:
    return None if lifetime is None else (now or utc_now()) + lifetime


# -- commands ---------------------------------------------------------------------------------------------


def _redis_url(args: argparse.Namespace) -> str | None:
    settings = getattr(args, "settings", None)
    return getattr(settings, "redis_url", None)


def _usd(micros: int) -> str:
    return ("-$" + format_usd(-micros)) if micros < 0 else "$" + format_usd(micros)


def _credits_add(args: argparse.Namespace, engine: Engine) -> int:
    credit = add_credit(
        engine,
        args.workspace,
        args.amount,
        reason=args.reason,
        actor=f"cli:{getpass.getuser()}",
        redis_url=_redis_url(args),
    )
    print(f"Added {_usd(credit.amount_micros)} to workspace {credit.workspace_name} (ledger entry {credit.entry_id}).")
    print(f"Balance: {_usd(credit.balance_micros)}.")
    if credit.live is False:
        print("Running gateways apply it within about a second.")
    return 0


def _workspaces_show(args: argparse.Namespace, engine: Engine) -> int:
    summary = workspace_summary(engine, args.name, redis_url=_redis_url(args))
    print(f"Workspace {summary.name} ({summary.id})")
    print(f"  balance     {_usd(summary.balance_micros)}")
    if summary.live_balance_micros is not None:
        print(f"  live        {_usd(summary.live_balance_micros)}  (includes charges not yet written)")
    if summary.reserved_micros is None:
        print("  reserved    unknown (held in each gateway's memory; configure redis_url to see it)")
    else:
        print(f"  reserved    {_usd(summary.reserved_micros)}")
    print(f"  credited    {_usd(summary.credited_micros)}")
    print(f"  spent       {_usd(summary.charged_micros)} over {summary.requests} requests")
    rpm = "unlimited" if summary.rpm_limit is None else f"{summary.rpm_limit}"
    tpm = "unlimited" if summary.tpm_limit is None else f"{summary.tpm_limit}"
    print(f"  limits      {rpm} requests/minute, {tpm} tokens/minute")
    if summary.keys:
        print("  keys")
        for key in summary.keys:
            limit = "no limit" if key.credit_limit_micros is None else f"limit {_usd(key.credit_limit_micros)}"
            state = "  revoked" if key.revoked else ""
            print(f"    {key.id}  {key.name or '-'}  spent {_usd(key.spent_micros)}  {limit}{state}")
    return 0


def _usage_export(args: argparse.Namespace, engine: Engine) -> int:
    try:
        where = ExportFilter(
            workspace=args.workspace,
            since=parse_moment(args.since) if args.since else None,
            until=parse_moment(args.until) if args.until else None,
            key_id=args.key,
            model=args.model,
        )
    except ValueError as exc:
        print(f"clearmaas: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.output and args.output != "-":
            out = stack.enter_context(open(args.output, "w", encoding="utf-8", newline=""))
        count = export_usage(engine, out, format=args.format, where=where)
    print(f"Exported {count} usage records.", file=sys.stderr)
    return 0


def _reconcile(args: argparse.Namespace, engine: Engine) -> int:
    problems = reconcile(engine, redis_url=_redis_url(args))
    if not problems:
        print("The books balance: every balance matches its ledger, and charges match usage records.")
        return 0
    for problem in problems:
        print(problem)
    print(f"clearmaas: error: {len(problems)} differences found", file=sys.stderr)
    return EXIT_FAILURE


def _subcommands_of(parser: argparse.ArgumentParser) -> _Subcommands[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, _Subcommands):
            return action
    raise LookupError(f"{parser.prog} has no subcommands")


def register(
    commands: _Subcommands[argparse.ArgumentParser],
    config: argparse.ArgumentParser,
    *,
    workspaces: _Subcommands[argparse.ArgumentParser] | None = None,
) -> None:
    """Add the billing commands; `config` is the shared `--config` parent, `workspaces` the subcommands of
    `clearmaas workspaces` (found by name when not given)."""
    if workspaces is None:
        workspaces = _subcommands_of(commands.choices["workspaces"])
    show = workspaces.add_parser("show", parents=[config], help="show a workspace's balance, spend and limits")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(run=_workspaces_show)

    credits = commands.add_parser("credits", help="add credit to workspaces")
    credit_commands = credits.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = credit_commands.add_parser("add", parents=[config], help="add credit to a workspace's balance")
    add.add_argument("workspace", metavar="WORKSPACE")
    add.add_argument("amount", type=usd_arg, metavar="USD", help="a dollar amount, e.g. 25 or 0.50")
    add.add_argument("--reason", default=None, metavar="TEXT", help="recorded in the ledger")
    add.set_defaults(run=_credits_add)

    usage = commands.add_parser("usage", help="usage records")
    usage_commands = usage.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = usage_commands.add_parser("export", parents=[config], help="export usage records as JSON lines or CSV")
    export.add_argument("--workspace", required=True, metavar="NAME")
    export.add_argument("--since", default=None, metavar="WHEN", help="ISO date or time, inclusive (UTC if no zone)")
    export.add_argument("--until", default=None, metavar="WHEN", help="ISO date or time, exclusive")
    export.add_argument("--key", default=None, metavar="KEY_ID")
    export.add_argument("--model", default=None, metavar="MODEL", help="requested or served model id")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", "-o", default=None, metavar="PATH", help="file to write (default: stdout)")
    export.set_defaults(run=_usage_export)

    billing = commands.add_parser("billing", help="billing checks")
    billing_commands = billing.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = billing_commands.add_parser(
        "reconcile", parents=[config], help="check balances against the ledger and charges against usage"
    )
    check.set_defaults(run=_reconcile)
