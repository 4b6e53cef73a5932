"""What the money tests send and read: the prices and bounds the gateway will apply (from the catalogue and the
fake upstream's token formula), bursts of concurrent requests, the books as stored in the database, and the one
burst both the single-process and the replica tests fire (credit covering 20 requests, 200 sent at once).

The arithmetic here is written out again rather than imported from `clearmaas.billing`, so a test compares the
gateway against the documented rule, not against itself.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import orjson
from sqlalchemy import Engine, func, select

from clearmaas.billing.money import format_usd
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import Prices
from clearmaas.settings import Settings
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces
from tests.fakes.scenarios import ANSWER_TEXT, INPUT_OVERHEAD

__all__ = [
    "ANSWER_TOKENS",
    "AT_LEAST",
    "BOUND",
    "BURST",
    "BURST_BODY",
    "COST",
    "COVERED",
    "CREDIT",
    "Books",
    "Reply",
    "auth",
    "bound_micros",
    "burst",
    "chat_body",
    "check_books",
    "check_burst_replies",
    "cost_micros",
    "fake_input_tokens",
    "hang_up_mid_stream",
    "prices_of",
    "read_books",
    "spend_the_rest",
    "usage_rows",
    "wait_for_usage",
]

RunCli = Callable[..., subprocess.CompletedProcess[str]]  # `clearmaas ARGS` against the gateway's database

ANSWER_TOKENS = len(ANSWER_TEXT.split())
_PER_MILLION = 1_000_000


def prices_of(model_id: str) -> Prices:
    entry = Catalogue.load(Settings()).get(model_id)
    assert entry is not None and entry.prices is not None, model_id
    return entry.prices


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def fake_input_tokens(*texts: str) -> int:
    """What the fake upstream reports as input: the prompt's words plus its fixed overhead (scenarios.py)."""
    return sum(len(text.split()) for text in texts) + INPUT_OVERHEAD


def cost_micros(prices: Prices, *, input_tokens: int, output_tokens: int) -> int:
    """operations__billing-and-usage.md: the published per-token price, summed and rounded up once."""
    return _ceil_div(input_tokens * prices.input + output_tokens * prices.output, _PER_MILLION)


def bound_micros(prices: Prices, *, body_bytes: int, max_tokens: int) -> int:
    """What the gateway reserves before the call (billing/service.py): bytes / 4 + 1 input tokens at the dearest
    input price plus every allowed output token."""
    dearest = max(prices.input, prices.cached_input, prices.cache_write)
    return _ceil_div((body_bytes // 4 + 1) * dearest + max_tokens * prices.output, _PER_MILLION)


def chat_body(model: str, content: str, *, max_tokens: int, stream: bool = False) -> bytes:
    """A one-message request, valid for both the Chat Completions and the Messages routes."""
    message = {"role": "user", "content": content}
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": [message]}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.body["error"]
        return error


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "content-type": "application/json"}


def hang_up_mid_stream(
    url: str, key: str, body: bytes, *, path: str, chunks: int = 3, while_open: Callable[[], None] | None = None
) -> str:
    """Stream `body`, read `chunks` chunks, call `while_open`, then close the connection; returns the request id."""
    with httpx2.Client(base_url=url, timeout=20) as client:
        with client.stream("POST", path, content=body, headers=auth(key)) as response:
            assert response.status_code == 200, response.read()
            received = []
            # Held in a name: a generator left by `break` and no longer referenced is closed at once, and with it
            # the connection, before `while_open` runs.
            pieces = response.iter_raw()
            for chunk in pieces:
                received.append(chunk)
                if len(received) >= chunks:
                    break
            if while_open is not None:
                while_open()
    seen = b"".join(received)
    assert b"[DONE]" not in seen and b"message_stop" not in seen, "the answer ended before the client hung up"
    return response.headers["x-request-id"]


def burst(
    urls: Sequence[str], api_key: str, body: bytes, *, count: int, path: str = "/v1/chat/completions"
) -> list[Reply]:
    """`count` copies of one request sent all at once, request i to `urls[i % len(urls)]` (round-robin)."""
    return asyncio.run(_burst(urls, api_key, body, count, path))


async def _burst(urls: Sequence[str], api_key: str, body: bytes, count: int, path: str) -> list[Reply]:
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = asyncio.Event()

        async def one(i: int) -> Reply:
            await start.wait()
            async with session.post(urls[i % len(urls)] + path, data=body, headers=headers) as response:
                raw = await response.read()
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, orjson.loads(raw))

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        await asyncio.sleep(0)  # every task is parked on `start`: release them together
        start.set()
        return await asyncio.gather(*tasks)


@dataclass(frozen=True, slots=True)
class Books:
    """One workspace's money as the database has it, read in one transaction."""

    balance: int
    credited: int
    charges: dict[str, int]  # request id -> charged amount (positive)
    usage_costs: dict[str, int]  # request id -> usage record cost
    records: int
    key_spent: dict[str, int]


def read_books(engine: Engine, workspace: str = "e2e") -> Books:
    with engine.begin() as connection:
        ws_id, balance = connection.execute(
            select(workspaces.c.id, workspaces.c.balance_micros).where(workspaces.c.name == workspace)
        ).one()
        credited = connection.execute(
            select(func.coalesce(func.sum(ledger_entries.c.amount_micros), 0)).where(
                ledger_entries.c.workspace_id == ws_id, ledger_entries.c.kind != "charge"
            )
        ).scalar_one()
        charges = {
            str(rid): -int(amount)
            for rid, amount in connection.execute(
                select(ledger_entries.c.request_id, ledger_entries.c.amount_micros).where(
                    ledger_entries.c.workspace_id == ws_id, ledger_entries.c.kind == "charge"
                )
            )
        }
        costs = {
            str(rid): int(cost)
            for rid, cost in connection.execute(
                select(usage_records.c.request_id, usage_records.c.cost_micros).where(
                    usage_records.c.workspace_id == ws_id
                )
            )
        }
        spent = {
            str(kid): int(value)
            for kid, value in connection.execute(
                select(api_keys.c.id, api_keys.c.spent_micros).where(api_keys.c.workspace_id == ws_id)
            )
        }
    return Books(int(balance), int(credited), charges, costs, len(costs), spent)


def usage_rows(engine: Engine, **where: Any) -> list[dict[str, Any]]:
    query = select(usage_records)
    for column, value in where.items():
        query = query.where(usage_records.c[column] == value)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def wait_for_usage(engine: Engine, count: int, *, timeout: float = 20.0, **where: Any) -> list[dict[str, Any]]:
    """The usage records matching `where`, once there are `count` of them (the gateway writes them in batches,
    a fraction of a second after each request ends)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = usage_rows(engine, **where)
        if len(rows) >= count or time.monotonic() > deadline:
            assert len(rows) == count, f"{len(rows)} usage records, expected {count}"
            return rows
        time.sleep(0.1)


# -- a burst against credit that covers about 20 requests ---------------------------------------------------

BURST_MODEL = "openai/gpt-4.1"
BURST_PROMPT = "a b c d e f g h i j"
# max_tokens = the fake's answer length: the answer is not cut, and the reserved bound is close to the cost.
BURST_BODY = chat_body(BURST_MODEL, BURST_PROMPT, max_tokens=ANSWER_TOKENS)
PRICES = prices_of(BURST_MODEL)
COST = cost_micros(PRICES, input_tokens=fake_input_tokens(BURST_PROMPT), output_tokens=ANSWER_TOKENS)
BOUND = bound_micros(PRICES, body_bytes=len(BURST_BODY), max_tokens=ANSWER_TOKENS)
CREDIT = 20 * COST + COST // 2  # covers exactly 20 requests
COVERED = CREDIT // COST
BURST = 200
# The gateway reserves BOUND per request in flight, so a burst that all arrives before any request settles
# is served CREDIT // BOUND times; later arrivals may fit in what settled requests gave back.
AT_LEAST = CREDIT // BOUND
# What every exported line must carry (operations__billing-and-usage.md: the usage object, and its price).
EXPORT_REQUIRED_FIELDS = {
    "request_id", "model", "status", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
    "reasoning_tokens", "cost_usd",
}


def check_burst_replies(replies: list[Reply]) -> list[Reply]:
    """The replies of a burst against credit that covers COVERED requests; returns the served ones."""
    served = [r for r in replies if r.status == 200]
    refused = [r for r in replies if r.status != 200]
    assert AT_LEAST <= len(served) <= COVERED, len(served)
    assert {r.status for r in refused} == {403}
    assert {r.error["code"] for r in refused} == {"insufficient_user_quota"}
    for reply in served:
        assert reply.body["usage"]["prompt_tokens"] == fake_input_tokens(BURST_PROMPT)
        assert reply.body["usage"]["completion_tokens"] == ANSWER_TOKENS
    return served


def spend_the_rest(urls: Sequence[str], key: str) -> list[Reply]:
    """One request at a time (round-robin over `urls`) until one is refused: what the burst's reservations left
    unspent."""
    replies: list[Reply] = []
    while not replies or replies[-1].status == 200:
        assert len(replies) <= COVERED, "more requests served than the credit covers"
        replies.extend(burst([urls[len(replies) % len(urls)]], key, BURST_BODY, count=1))
    assert replies[-1].error["code"] == "insufficient_user_quota"
    return replies


def check_books(replies: list[Reply], *, run_cli: RunCli, engine: Engine, key_id: str) -> int:
    """After a burst and `spend_the_rest`: the ledger charged exactly the served requests, each its exact cost,
    and reconciles; returns how many were served."""
    served_ids = {r.headers["x-request-id"] for r in replies if r.status == 200}
    rows = wait_for_usage(engine, len(replies), key_id=key_id)
    books = read_books(engine)
    assert books.charges == dict.fromkeys(served_ids, COST)
    assert {row["request_id"]: row["cost_micros"] for row in rows if row["cost_micros"]} == books.charges
    assert sum(books.charges.values()) == sum(books.usage_costs.values()) == len(served_ids) * COST
    assert books.key_spent[key_id] == len(served_ids) * COST
    assert books.balance == books.credited - len(served_ids) * COST

    done = run_cli("billing", "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    _check_export(run_cli, served_ids, refused_count=len(replies) - len(served_ids))
    return len(served_ids)


def _check_export(run_cli: RunCli, served_ids: set[str], *, refused_count: int) -> None:
    done = run_cli("usage", "export", "--workspace", "e2e", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(served_ids) + refused_count
    for line in lines:
        assert EXPORT_REQUIRED_FIELDS <= line.keys()
        assert line["model"] == BURST_MODEL
    served = [line for line in lines if line["status"] == 200]
    assert {line["request_id"] for line in served} == served_ids
    for line in served:
        assert (line["input_tokens"], line["output_tokens"]) == (fake_input_tokens(BURST_PROMPT), ANSWER_TOKENS)
        assert (line["cache_read_tokens"], line["cache_write_tokens"], line["reasoning_tokens"]) == (0, 0, 0)
        assert line["cost_usd"] == format_usd(COST)
    for line in lines:
        if line["status"] != 200:
            assert (line["status"], line["error_code"]) == (403, "insufficient_user_quota")
            assert line["cost_usd"] == "0.000000"
