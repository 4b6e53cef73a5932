"""What the fake upstream answers: scenario markers, the canned text, tool arguments and token counts.

Everything here is provider-neutral and pure; the provider modules turn a `Plan` into their own wire shape.

Markers (anywhere in the system prompt or in the LAST message of the request, so a tool result sent back after
`[scenario:tool]` gets a plain answer instead of looping):

- `[scenario:tool]` one call to the first declared tool; `[scenario:parallel_tools]` two calls (first and second
  tool, or the first tool twice); without any declared tool both fall back to the plain answer.
- `[scenario:reasoning]` reasoning before the answer (combines with the tool scenarios).
- `[scenario:slow]` / `[scenario:slow:MS]` stream chunks 50 ms (or MS) apart.
- `[fault:NNN]` that HTTP status with the provider's real error body (429 adds `retry-after: 7`),
  `[fault:timeout]` / `[fault:timeout:S]` sleep 30 s (or S) before headers, `[fault:reset]`, `[fault:drop]` /
  `[fault:drop:N]`, `[fault:stream_error]`, `[fault:minimax_200_error]` / `[fault:minimax_200_error:CODE]`.

Token counts (exact, so tests can assert them):

- input = words in the prompt texts + 10. Prompt texts are the system prompt and the text content of every message
  (text parts and tool-result text), never tool schemas, tool-call arguments or reasoning; words = `str.split()`.
- answer tokens = words in `ANSWER_TEXT` (11) + 10 per tool call; reasoning tokens = words in `REASONING_TEXT` (14);
  output = answer + reasoning. A plain answer longer than the request's max-tokens limit is cut to that many
  words (reasoning first), and finishes with the provider's "length" reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = [
    "ANSWER_TEXT",
    "INPUT_OVERHEAD",
    "REASONING_TEXT",
    "SLOW_CHUNK_DELAY",
    "TOOL_CALL_TOKENS",
    "Markers",
    "Plan",
    "ToolCall",
    "ToolSpec",
    "all_strings",
    "argument_fragments",
    "count_words",
    "example_arguments",
    "make_plan",
    "parse_markers",
    "text_pieces",
]

ANSWER_TEXT = "Hello from the fake upstream. How can I help you today?"
REASONING_TEXT = "The user greets me, so a short and friendly answer is the right reply."
INPUT_OVERHEAD = 10
TOOL_CALL_TOKENS = 10
SLOW_CHUNK_DELAY = 0.05
_STRING_VALUES = ("Paris", "London")

_MARKER = re.compile(r"\[(scenario|fault):([a-z0-9_]+)(?::([0-9.]+))?\]")
_WORD = re.compile(r"\s*\S+")

Finish = Literal["stop", "tool_calls", "length"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the request declares: its name and JSON-schema-like parameter schema."""

    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the fake makes: the tool name and its arguments as compact JSON object text."""

    name: str
    arguments: str

    @property
    def args(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.arguments)
        return parsed


@dataclass(frozen=True, slots=True)
class Markers:
    """The scenario and fault markers found in a request."""

    reasoning: bool = False
    tool_calls: int = 0
    chunk_delay: float = 0.0
    fault: str | None = None
    fault_arg: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The provider-neutral content of one answer."""

    text: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    truncated: bool
    markers: Markers

    @property
    def reasoning_tokens(self) -> int:
        return count_words([self.reasoning])

    @property
    def answer_tokens(self) -> int:
        return count_words([self.text]) + TOOL_CALL_TOKENS * len(self.tool_calls)

    @property
    def output_tokens(self) -> int:
        return self.answer_tokens + self.reasoning_tokens

    @property
    def finish(self) -> Finish:
        if self.tool_calls:
            return "tool_calls"
        return "length" if self.truncated else "stop"


def count_words(texts: Iterable[str]) -> int:
    return sum(len(text.split()) for text in texts)


def parse_markers(texts: Iterable[str]) -> Markers:
    reasoning = False
    tool_calls = 0
    chunk_delay = 0.0
    fault: str | None = None
    fault_arg: str | None = None
    for text in texts:
        for kind, name, arg in _MARKER.findall(text):
            if kind == "fault":
                fault, fault_arg = name, arg or None
            elif name == "reasoning":
                reasoning = True
            elif name == "tool":
                tool_calls = max(tool_calls, 1)
            elif name == "parallel_tools":
                tool_calls = 2
            elif name == "slow":
                chunk_delay = float(arg) / 1000 if arg else SLOW_CHUNK_DELAY
    return Markers(reasoning, tool_calls, chunk_delay, fault, fault_arg)


def make_plan(
    *,
    marker_texts: Iterable[str],
    prompt_texts: Iterable[str],
    tools: list[ToolSpec],
    max_tokens: int | None = None,
) -> Plan:
    markers = parse_markers(marker_texts)
    input_tokens = count_words(prompt_texts) + INPUT_OVERHEAD
    reasoning = REASONING_TEXT if markers.reasoning else ""
    if markers.tool_calls and tools:
        second = tools[1] if len(tools) > 1 else tools[0]
        chosen = [tools[0], second][: markers.tool_calls]
        calls = tuple(
            ToolCall(spec.name, orjson.dumps(example_arguments(spec.schema, variant=i)).decode())
            for i, spec in enumerate(chosen)
        )
        return Plan("", reasoning, calls, input_tokens, False, markers)
    text = ANSWER_TEXT
    truncated = False
    if max_tokens is not None and count_words([reasoning, text]) > max_tokens:
        truncated = True
        reasoning = _first_words(reasoning, max_tokens)
        text = _first_words(text, max(max_tokens - count_words([reasoning]), 0))
    return Plan(text, reasoning, (), input_tokens, truncated, markers)


def example_arguments(schema: Mapping[str, Any], *, variant: int = 0) -> dict[str, Any]:
    """A valid arguments object for `schema`: one value per declared property (enums take their first member,
    strings are "Paris" for the first call and "London" for the second)."""
    value = _example_value(schema, variant)
    return value if isinstance(value, dict) else {}


def _example_value(schema: Mapping[str, Any], variant: int) -> Any:
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower() if kind is not None else ("object" if "properties" in schema else "string")
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {name: _example_value(sub if isinstance(sub, Mapping) else {}, variant) for name, sub in props.items()}
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    return _STRING_VALUES[variant % len(_STRING_VALUES)]


def text_pieces(text: str, *, words: int = 2) -> list[str]:
    """`text` cut into stream deltas of `words` words each (leading whitespace kept), concatenating back exactly."""
    tokens = _WORD.findall(text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def argument_fragments(arguments: str, *, size: int = 6) -> list[str]:
    """Tool-call argument JSON cut into fixed-size fragments, as providers stream it."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _first_words(text: str, n: int) -> str:
    return "".join(_WORD.findall(text)[:n]).lstrip()


def all_strings(value: Any) -> list[str]:
    """Every string inside a JSON value, for finding markers wherever a client put its text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return []
