"""How each OpenAI-compatible provider differs from OpenAI Chat Completions, as data.

The `openai_chat` adapter reads these flags and nothing else: every quirk fact about DeepSeek, Grok, Qwen,
Kimi and MiniMax lives here (with the doc or issue that forces it), never as `if provider == ...` in code.
Per-model facts (does it reason, how) live in the catalogue's `ModelEntry`, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from clearmaas.canonical import StopReason

__all__ = [
    "DEEPSEEK",
    "GENERIC",
    "GROK",
    "KIMI",
    "MINIMAX",
    "OPENAI",
    "PROFILES",
    "QWEN",
    "Profile",
    "ReasoningEcho",
    "SchemaSupport",
    "ThinkingSwitch",
]

# How a provider turns thinking on and off: DeepSeek and Kimi `thinking: {type: enabled|disabled}`,
# Qwen `enable_thinking: bool`.
ThinkingSwitch = Literal["none", "thinking_type", "enable_thinking"]
# How past reasoning goes back in history: dropped, as `reasoning_content` on assistant turns, or as
# MiniMax's `reasoning_details` list.
ReasoningEcho = Literal["drop", "reasoning_content", "reasoning_details"]
# `json_schema` response formats: sent as they are, downgraded to `json_object` plus the schema as an
# instruction, or refused with 400 api_not_implemented.
SchemaSupport = Literal["native", "json_object", "unsupported"]

# OpenAI platform features with no meaning at other providers; a same-protocol client's `extra` keeps them
# only for OpenAI itself and self-hosted servers.
_OPENAI_ONLY = frozenset(
    {"store", "metadata", "service_tier", "prompt_cache_key", "safety_identifier", "verbosity", "modalities",
     "audio", "prediction", "web_search_options"}
)


@dataclass(frozen=True, slots=True)
class Profile:
    """The flags that make one provider's Chat Completions dialect; defaults are OpenAI's behaviour."""

    name: str  # provider kind; also `ThinkingPart.origin` for reasoning it returns
    native: bool = False  # byte-compatible with OpenAI Chat: enables the same-format fast path
    path: str = "/chat/completions"  # joined to the deployment's base_url (an SDK base_url)

    # Request body.
    max_tokens_field: str = "max_tokens"
    text_parts_as_list: bool = True  # accepts `content: [{type: text}, ...]`; else text parts are joined
    max_stop: int = 4
    top_k: bool = False
    tool_choice: bool = True  # accepts `tool_choice` at all
    tool_choice_required: bool = True
    tool_choice_named: bool = True
    forced_tool_disables_thinking: bool = False  # a forced tool_choice is refused while thinking is on
    parallel_tool_calls: bool = True
    tool_strict: bool = False
    json_object: bool = True
    json_schema: SchemaSupport = "native"

    # Reasoning controls.
    effort_field: str | None = None
    effort_values: tuple[str, ...] = ()  # accepted efforts, lowest first; model capabilities may add more
    thinking_switch: ThinkingSwitch = "none"
    budget_field: str | None = None  # an explicit thinking budget in tokens
    reasoning_split: bool = False  # ask for reasoning out of `content` (MiniMax `reasoning_split`)
    reasoning_echo: ReasoningEcho = "drop"
    echo_placeholder: str = ""  # sent when an echo is required but the turn has no reasoning text
    thinking_streams_only: bool = False  # thinking is refused on non-streaming calls

    # Response decoding.
    reasoning_fields: tuple[str, ...] = ("reasoning_content",)  # first non-empty one wins
    think_tags: bool = False  # `<think>...</think>` may appear inside `content`
    finish_overrides: Mapping[str, StopReason] = field(default_factory=lambda: MappingProxyType({}))
    # An HTTP-200 body with `base_resp.status_code` != 0 is an error: that code -> its HTTP status.
    error_envelope: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))

    # Usage mapping (protocols.md §6.8): dotted paths into `usage`, first present one wins.
    cached_fields: tuple[str, ...] = ("prompt_tokens_details.cached_tokens",)
    cache_write_fields: tuple[str, ...] = ()
    completion_excludes_reasoning: bool = False

    strip_fields: frozenset[str] = frozenset()  # never forwarded from a same-protocol request's `extra`


OPENAI = Profile(
    name="openai",
    native=True,
    # `max_tokens` is rejected by reasoning models ("Use 'max_completion_tokens' instead", recorded in
    # fixtures/provider-recordings/openai-chat/reasoning-model-legacy-parameter-error.json).
    max_tokens_field="max_completion_tokens",
    tool_strict=True,
    effort_field="reasoning_effort",
    # `none` and `xhigh` exist only on some models: capabilities "effort_none" / "effort_xhigh" add them.
    effort_values=("minimal", "low", "medium", "high"),
)

DEEPSEEK = Profile(
    name="deepseek",
    strip_fields=_OPENAI_ONLY,
    # api-docs.deepseek.com: user content is a string; arrays of parts are not part of its schema.
    text_parts_as_list=False,
    max_stop=16,
    # Not in DeepSeek's request schema; `strict` needs the /beta base URL (api-docs.deepseek.com, function calling).
    parallel_tool_calls=False,
    # JSON Output supports json_object only (api-docs.deepseek.com/guides/json_mode; clearmaas docs: "Partial").
    json_schema="json_object",
    # api-docs.deepseek.com/guides/thinking_mode: `thinking: {type}` toggles; `reasoning_effort` low/high/max
    # (minimal->low, medium->high, xhigh->max in the zh-cn table).
    effort_field="reasoning_effort",
    effort_values=("low", "high", "max"),
    thinking_switch="thinking_type",
    # Same guide: an assistant turn that called tools must carry its `reasoning_content` in every later
    # request, and when the request has tools every assistant turn must (bojieli/ai-agent-book#982);
    # otherwise 400 "The reasoning_content in the thinking mode must be passed back to the API". Plain
    # chat turns are left without it: V4 ignores it there and the legacy R1 `deepseek-reasoner` rejected it
    # (zh-cn/guides/reasoning_model). An empty string satisfies the check (openclaw/openclaw#73417).
    reasoning_echo="reasoning_content",
    echo_placeholder="",
    # The server ran out of capacity mid-answer: the output is cut short (api-docs.deepseek.com, FinishReason).
    finish_overrides=MappingProxyType({"insufficient_system_resource": "max_tokens"}),
    cached_fields=("prompt_cache_hit_tokens", "prompt_tokens_details.cached_tokens"),
)

GROK = Profile(
    name="grok",
    strip_fields=_OPENAI_ONLY,
    # docs.x.ai reasoning guide: only grok-3-mini takes `reasoning_effort`, low|high; grok-4 rejects it, so
    # the catalogue marks grok-4 models `always`.
    effort_field="reasoning_effort",
    effort_values=("low", "high"),
    # docs.x.ai consumption guide: "reasoning token consumption will be counted separately from
    # completion_tokens, but will be counted in the total_tokens" (recorded: 12 + 1 + 228 = 241).
    completion_excludes_reasoning=True,
)

QWEN = Profile(
    name="qwen",
    strip_fields=_OPENAI_ONLY,
    top_k=True,
    # Model Studio function calling documents auto, none and a named function only.
    tool_choice_required=False,
    # help.aliyun.com/en/model-studio/deep-thinking: `enable_thinking` + `thinking_budget`.
    thinking_switch="enable_thinking",
    budget_field="thinking_budget",
    # "enable_thinking must be set to false for non-streaming calls" (help.aliyun.com deep-thinking).
    thinking_streams_only=True,
    # Model Studio context cache reports explicit-cache writes beside the hits.
    cache_write_fields=("prompt_tokens_details.cache_creation_input_tokens",),
)

KIMI = Profile(
    name="kimi",
    strip_fields=_OPENAI_ONLY,
    # platform.kimi.ai/docs/api/chat: `max_tokens` is deprecated and not honoured on kimi-k2.5 and later.
    max_tokens_field="max_completion_tokens",
    parallel_tool_calls=False,
    # 400 "tool_choice 'required'/'specified' is incompatible with thinking enabled"
    # (UKGovernmentBEIS/inspect_ai#5152, can1357/oh-my-pi#1077).
    forced_tool_disables_thinking=True,
    json_schema="json_object",
    # platform.kimi.ai use-kimi-k2-thinking-model: `thinking: {type: enabled|disabled}`.
    thinking_switch="thinking_type",
    # 400 "thinking is enabled but reasoning_content is missing in assistant tool call message at index N"
    # (CherryHQ/cherry-studio#12619); Kimi treats "" as missing (earendil-works/pi#4251).
    reasoning_echo="reasoning_content",
    echo_placeholder=".",
    cached_fields=("cached_tokens", "prompt_tokens_details.cached_tokens"),
)

# platform.minimax.io/docs/api-reference/errorcode: `base_resp.status_code` in an HTTP-200 body.
_MINIMAX_ERRORS: Mapping[int, int] = MappingProxyType(
    {
        1000: 500,  # unknown error
        1001: 504,  # request timeout
        1002: 429,  # rate limit
        1004: 401,  # not authorized
        1008: 429,  # insufficient balance: like OpenAI's insufficient_quota, another deployment may serve it
        1013: 500,  # internal service error
        1024: 500,  # internal error
        1026: 400,  # input flagged as sensitive
        1027: 400,  # output flagged as sensitive
        1033: 500,  # system error
        1039: 429,  # token rate limit
        1041: 429,  # connection limit
        2013: 400,  # invalid parameters
        2045: 429,  # rate growth limit
        2049: 401,  # invalid API key
        2056: 429,  # usage limit exceeded
    }
)

MINIMAX = Profile(
    name="minimax",
    # platform.minimax.io text-openai-api: `max_tokens` is deprecated for `max_completion_tokens`; no
    # tool_choice, response_format, parallel_tool_calls or strict (java.agentscope.io MiniMax notes).
    max_tokens_field="max_completion_tokens",
    tool_choice=False,
    tool_choice_required=False,
    tool_choice_named=False,
    parallel_tool_calls=False,
    json_object=False,
    json_schema="unsupported",
    # M2.x writes `<think>...</think>` into content unless `reasoning_split: true` moves it to
    # `reasoning_details`; the whole assistant message, reasoning included, must go back in history.
    reasoning_split=True,
    reasoning_echo="reasoning_details",
    think_tags=True,
    error_envelope=_MINIMAX_ERRORS,
    strip_fields=_OPENAI_ONLY | {"tool_choice", "response_format", "parallel_tool_calls"},
)

# vLLM, Ollama, LM Studio, llama.cpp and other self-hosted OpenAI-compatible servers.
GENERIC = Profile(
    name="openai_compatible",
    native=True,
    top_k=True,
    tool_strict=True,
    effort_field="reasoning_effort",
    effort_values=("low", "medium", "high"),
    # Newer vLLM and Ollama name the field `reasoning`; unparsed models leave `<think>` in content.
    reasoning_fields=("reasoning_content", "reasoning"),
    think_tags=True,
)

# Provider kind (settings `kind`) -> profile.
PROFILES: dict[str, Profile] = {
    "openai": OPENAI,
    "deepseek": DEEPSEEK,
    "grok": GROK,
    "qwen": QWEN,
    "kimi": KIMI,
    "minimax": MINIMAX,
    "openai_compatible": GENERIC,
}
