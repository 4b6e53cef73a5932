"""The money path: reserving a bound before an upstream call, settling to the actual cost, the usage log,
and the ledger tools operators use (credits, summaries, export, reconciliation)."""

from clearmaas.billing.book import BalanceBook, Charge, MemoryBook, Refusal, Reservation
from clearmaas.billing.ledger import Credit, WorkspaceSummary, add_credit, reconcile, workspace_summary
from clearmaas.billing.money import format_usd, parse_usd
from clearmaas.billing.pricing import cost_micros, reservation_bound
from clearmaas.billing.redis_book import RedisBook
from clearmaas.billing.service import Billing
from clearmaas.billing.tools import ToolRate, tool_rates_for
from clearmaas.billing.usage_log import UsageItem, UsageLog

__all__ = [
    "BalanceBook",
    "Billing",
    "Charge",
    "Credit",
    "MemoryBook",
    "RedisBook",
    "Refusal",
    "Reservation",
    "ToolRate",
    "UsageItem",
    "UsageLog",
    "WorkspaceSummary",
    "add_credit",
    "cost_micros",
    "format_usd",
    "parse_usd",
    "reconcile",
    "reservation_bound",
    "tool_rates_for",
    "workspace_summary",
]
