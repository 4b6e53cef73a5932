"""A session shaped like Claude Code's, end to end: `/v1/messages?beta=true` with its headers, two cached system
blocks, its tool set, `metadata.user_id`, `context_management`, thinking and a 32k `max_tokens`, served by
non-Anthropic models and read by the anthropic SDK's beta stream helper; then the tool result goes back, and the
side calls Claude Code makes (`count_tokens`, model discovery) answer in Anthropic's shapes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from tests.e2e.cases import assert_no_leak
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess
from tests.fakes.scenarios import ANSWER_TEXT, example_arguments

BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
         "prompt-caching-scope-2026-01-05"]
USER_ID = f"user_{'ab12' * 16}_account_{uuid.uuid4()}_session_{uuid.uuid4()}"
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#"}


_S = {"type": "string"}
_N = {"type": "number"}
_B = {"type": "boolean"}
TOOLS: list[dict[str, Any]] = [
    {"name": "Task", "description": "Launch a new agent to handle complex, multi-step tasks autonomously.",
     "input_schema": _schema({"description": _S, "prompt": _S, "subagent_type": _S},
                             ["description", "prompt", "subagent_type"])},
    {"name": "Bash", "description": "Executes a given bash command in a persistent shell session.",
     "input_schema": _schema({"command": _S, "timeout": _N, "description": _S, "run_in_background": _B}, ["command"])},
    {"name": "Glob", "description": "Fast file pattern matching tool.",
     "input_schema": _schema({"pattern": _S, "path": _S}, ["pattern"])},
    {"name": "Grep", "description": "A powerful search tool built on ripgrep.",
     "input_schema": _schema({"pattern": _S, "path": _S, "glob": _S,
                              "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
                              "-i": _B, "-n": _B, "head_limit": _N, "multiline": _B}, ["pattern"])},
    {"name": "ExitPlanMode", "description": "Prompts the user to exit plan mode.",
     "input_schema": _schema({"plan": _S}, ["plan"])},
    {"name": "Read", "description": "Reads a file from the local filesystem.",
     "input_schema": _schema({"file_path": _S, "offset": _N, "limit": _N}, ["file_path"])},
    {"name": "Edit", "description": "Performs exact string replacements in files.",
     "input_schema": _schema({"file_path": _S, "old_string": _S, "new_string": _S, "replace_all": _B},
                             ["file_path", "old_string", "new_string"])},
    {"name": "MultiEdit", "description": "Makes multiple edits to a single file in one operation.",
     "input_schema": _schema({"file_path": _S, "edits": {"type": "array", "items": _schema(
         {"old_string": _S, "new_string": _S, "replace_all": _B}, ["old_string", "new_string"])}},
         ["file_path", "edits"])},
    {"name": "Write", "description": "Writes a file to the local filesystem.",
     "input_schema": _schema({"file_path": _S, "content": _S}, ["file_path", "content"])},
    {"name": "NotebookEdit", "description": "Replaces the contents of a specific cell in a Jupyter notebook.",
     "input_schema": _schema({"notebook_path": _S, "cell_id": _S, "new_source": _S,
                              "cell_type": {"type": "string", "enum": ["code", "markdown"]},
                              "edit_mode": {"type": "string", "enum": ["replace", "insert", "delete"]}},
                             ["notebook_path", "new_source"])},
    {"name": "WebFetch", "description": "Fetches content from a specified URL and processes it.",
     "input_schema": _schema({"url": {"type": "string", "format": "uri"}, "prompt": _S}, ["url", "prompt"])},
    {"name": "TodoWrite", "description": "Create and manage a structured task list for your current session.",
     "input_schema": _schema({"todos": {"type": "array", "items": _schema(
         {"content": _S, "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
          "activeForm": _S}, ["content", "status", "activeForm"])}}, ["todos"])},
    {"name": "WebSearch", "description": "Allows Claude to search the web.",
     "input_schema": _schema({"query": {"type": "string", "minLength": 2},
                              "allowed_domains": {"type": "array", "items": _S},
                              "blocked_domains": {"type": "array", "items": _S}}, ["query"])},
    {"name": "BashOutput", "description": "Retrieves output from a running or completed background bash shell.",
     "input_schema": _schema({"bash_id": _S, "filter": _S}, ["bash_id"])},
    {"name": "KillShell", "description": "Kills a running background bash shell by its ID.",
     "input_schema": _schema({"shell_id": _S}, ["shell_id"])},
    {"name": "SlashCommand", "description": "Execute a slash command within the main conversation.",
     "input_schema": _schema({"command": _S}, ["command"])},
]
SYSTEM: list[dict[str, Any]] = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
     "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks. "
                             "Use the instructions below and the tools available to you to assist the user.",
     "cache_control": {"type": "ephemeral", "scope": "global"}},
]
SERVING_MODELS = ["deepseek/deepseek-chat", "openai/gpt-4o-mini", "google/gemini-2.5-flash"]
UPSTREAM_OF = {"deepseek/deepseek-chat": "deepseek", "openai/gpt-4o-mini": "openai",
               "google/gemini-2.5-flash": "google"}


def first_turn(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\nThis is a reminder that your todo list is empty.\n"
                                 "</system-reminder>"},
        {"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}},
    ]}]


@pytest.fixture(scope="module")
def claude_code(gw: GatewayProcess) -> Iterator[tuple[anthropic.Anthropic, list[httpx2.Request]]]:
    """An SDK client sending what Claude Code sends, and the requests it made (to check their URLs)."""
    sent: list[httpx2.Request] = []
    http = httpx2.Client(event_hooks={"request": [sent.append]}, timeout=20)
    headers = {"x-app": "cli", "user-agent": "claude-cli/2.1.9 (external, cli)",
               "anthropic-dangerous-direct-browser-access": "true"}
    with anthropic.Anthropic(base_url=gw.url, auth_token=gw.api_key, api_key=None, max_retries=0,
                             default_headers=headers, http_client=http) as client:
        yield client, sent


def _stream(client: anthropic.Anthropic, model: str, messages: list[dict[str, Any]]) -> Any:
    with client.beta.messages.stream(
        model=model, max_tokens=32000, system=SYSTEM, messages=messages, tools=TOOLS,  # type: ignore[arg-type]
        metadata={"user_id": USER_ID}, betas=BETAS,  # type: ignore[list-item]
        thinking={"type": "enabled", "budget_tokens": 31999},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},  # type: ignore[list-item,typeddict-item]
        extra_query={"beta": "true"},  # Claude Code's query; this SDK version does not add it itself
    ) as stream:
        events = list(stream)
        return events, stream.get_final_message()


@pytest.mark.parametrize("model", SERVING_MODELS)
def test_claude_code_session_on_a_non_anthropic_model(
    claude_code: tuple[anthropic.Anthropic, list[httpx2.Request]], fake: FakeUpstreamProcess, gw: GatewayProcess,
    model: str,
) -> None:
    client, sent = claude_code
    sent.clear()
    messages = first_turn("[scenario:tool] Start a helper agent")
    events, message = _stream(client, model, messages)

    assert sent[0].url.path == "/v1/messages" and sent[0].url.params.get("beta") == "true"
    assert sent[0].headers["anthropic-beta"] == ",".join(BETAS)
    assert events[0].type == "message_start" and events[0].message.usage.input_tokens > 0
    assert events[-1].type == "message_stop"
    assert message.stop_reason == "tool_use"
    calls = [b for b in message.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "Task"
    assert calls[0].input == example_arguments(TOOLS[0]["input_schema"])
    assert ANTHROPIC_ID.match(calls[0].id)
    for block in message.content:
        assert block.type in ("tool_use", "thinking") or (block.type == "text" and block.text)

    received = fake.last()
    assert received["provider"] == UPSTREAM_OF[model]
    body = received["body"]
    dumped = json.dumps(received)
    assert gw.api_key not in dumped
    assert "cache_control" not in dumped  # an Anthropic-only hint; other providers may reject it
    assert "claude-code-20250219" not in dumped  # protocol headers go to Anthropic upstreams only
    if UPSTREAM_OF[model] == "google":
        declared = [d["name"] for t in body["tools"] for d in t["functionDeclarations"]]
        system_text = "".join(p["text"] for p in body["systemInstruction"]["parts"])
    else:
        declared = [t["function"]["name"] for t in body["tools"]]
        system_text = body["messages"][0]["content"]
        system_text = system_text if isinstance(system_text, str) else "".join(p["text"] for p in system_text)
        assert body["messages"][0]["role"] == "system"
    assert declared == [t["name"] for t in TOOLS]
    assert SYSTEM[0]["text"] in system_text and SYSTEM[1]["text"] in system_text

    # Claude Code runs the tool and sends the result back with the whole turn, as it received it.
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": [{"type": "text", "text": "Agent done."}]}]})
    fake.clear()
    events, answer = _stream(client, model, messages)

    assert answer.stop_reason == "end_turn"
    texts = [b for b in answer.content if b.type == "text"]
    assert len(texts) == 1 and texts[0].type == "text" and texts[0].text == ANSWER_TEXT
    assert answer.usage.output_tokens == len(ANSWER_TEXT.split())
    assert_no_leak(json.dumps([e.model_dump() for e in events]), fake_url=fake.url)


def test_claude_code_fast_path_to_anthropic_forwards_betas_and_body(
    claude_code: tuple[anthropic.Anthropic, list[httpx2.Request]], fake: FakeUpstreamProcess
) -> None:
    client, _ = claude_code
    events, message = _stream(client, "anthropic/claude-sonnet-4.6", first_turn("Hello there"))

    assert message.content[-1].type == "text" and message.content[-1].text == ANSWER_TEXT
    received = fake.last()
    assert received["provider"] == "anthropic"
    assert received["headers"]["anthropic-beta"] == ",".join(BETAS)
    body = received["body"]
    assert body["model"] == "claude-sonnet-4-6"
    assert body["system"] == SYSTEM and body["tools"] == TOOLS
    assert body["metadata"] == {"user_id": USER_ID}
    assert body["context_management"] == {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    assert body["max_tokens"] == 32000 and body["thinking"] == {"type": "enabled", "budget_tokens": 31999}


def test_count_tokens_answers_locally(
    claude_code: tuple[anthropic.Anthropic, list[httpx2.Request]], fake: FakeUpstreamProcess
) -> None:
    client, sent = claude_code
    sent.clear()
    counted = client.beta.messages.count_tokens(
        model="deepseek/deepseek-chat", system=SYSTEM, messages=first_turn("How many tokens?"),  # type: ignore[arg-type]
        tools=TOOLS, betas=BETAS, extra_query={"beta": "true"},  # type: ignore[arg-type,list-item]
    )

    assert sent[0].url.path == "/v1/messages/count_tokens" and sent[0].url.params.get("beta") == "true"
    assert counted.input_tokens > 0
    fewer = client.beta.messages.count_tokens(model="deepseek/deepseek-chat",
                                              messages=[{"role": "user", "content": "hi"}])
    assert 0 < fewer.input_tokens < counted.input_tokens
    assert fake.requests() == []


def test_model_discovery_answers_the_anthropic_list_shape(
    claude_code: tuple[anthropic.Anthropic, list[httpx2.Request]], http: httpx2.Client, gw: GatewayProcess
) -> None:
    client, _ = claude_code
    page = client.models.list(limit=1000)
    ids = [m.id for m in page.data]
    assert "anthropic/claude-sonnet-4.6" in ids and "anthropic/claude-opus-4.8" in ids
    assert all(m.type == "model" and m.display_name for m in page.data)

    raw = http.get("/v1/models", params={"limit": 1000},
                   headers={"x-api-key": gw.api_key, "anthropic-version": "2023-06-01"})
    assert raw.status_code == 200
    listed = raw.json()
    assert set(listed) >= {"data", "has_more", "first_id", "last_id"}
    assert listed["has_more"] is False
    assert listed["first_id"] == listed["data"][0]["id"] and listed["last_id"] == listed["data"][-1]["id"]
    claude = [m for m in listed["data"] if m["id"].startswith("anthropic/claude")]
    assert len(claude) >= 6
    for item in claude:
        assert item["type"] == "model"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["created_at"])
        assert item["max_input_tokens"] > 0 and item["max_tokens"] > 0
