"""The OpenAI Chat Completions wire shapes this surface reads and writes, as TypedDicts.

Request shapes describe what `decode.py` accepts (clients send more; unknown fields are checked, not typed);
response shapes are exactly what `encode.py` and `stream.py` emit. Field lists follow the official SDK's
`openai/types/chat/*` (protocols.md §2). No logic lives here.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

__all__ = [
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "Delta",
    "DeltaFunction",
    "DeltaToolCall",
    "ErrorBody",
    "ErrorEnvelope",
    "FileRef",
    "FinishReason",
    "FunctionCall",
    "FunctionDefinition",
    "FunctionTool",
    "ImageURL",
    "InputAudio",
    "PromptTokensDetails",
    "ResponseMessage",
    "ToolCall",
    "ToolMessage",
    "WireUsage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


# --- request -------------------------------------------------------------------------------------


class ImageURL(TypedDict):
    url: str
    detail: NotRequired[Literal["auto", "low", "high"]]


class InputAudio(TypedDict):
    data: str  # base64
    format: str  # "wav" | "mp3"


class FileRef(TypedDict, total=False):
    file_data: str  # "data:application/pdf;base64,..."
    file_id: str
    filename: str


class ContentPart(TypedDict, total=False):
    """One element of a `content` array; which key is set depends on `type`."""

    type: str  # "text" | "image_url" | "input_audio" | "file" | "refusal"
    text: str
    image_url: ImageURL
    input_audio: InputAudio
    file: FileRef
    refusal: str


class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text, as the model wrote it


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(TypedDict, total=False):
    role: Literal["assistant"]
    content: str | list[ContentPart] | None
    refusal: str | None
    tool_calls: list[ToolCall]
    name: str
    reasoning_content: str  # non-standard (DeepSeek, Qwen, Kimi, xAI), widely sent back by clients


class ToolMessage(TypedDict):
    role: Literal["tool"]
    tool_call_id: str
    content: str | list[ContentPart]


class FunctionDefinition(TypedDict, total=False):
    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool | None


class FunctionTool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


# --- response ------------------------------------------------------------------------------------


class PromptTokensDetails(TypedDict):
    cached_tokens: int
    cache_write_tokens: NotRequired[int]  # in the SDK's CompletionUsage; sent only when non-zero


class CompletionTokensDetails(TypedDict):
    reasoning_tokens: int


class WireUsage(TypedDict):
    prompt_tokens: int  # includes cached tokens
    completion_tokens: int  # includes reasoning tokens
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class ResponseMessage(TypedDict):
    role: Literal["assistant"]
    content: str | None
    refusal: None
    tool_calls: NotRequired[list[ToolCall]]
    reasoning_content: NotRequired[str]


class Choice(TypedDict):
    index: int
    message: ResponseMessage
    logprobs: None
    finish_reason: FinishReason


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: WireUsage


class DeltaFunction(TypedDict, total=False):
    name: str
    arguments: str


class DeltaToolCall(TypedDict):
    index: int
    id: NotRequired[str]
    type: NotRequired[Literal["function"]]
    function: DeltaFunction


class Delta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str
    reasoning_content: str
    tool_calls: list[DeltaToolCall]


class ChunkChoice(TypedDict):
    index: int
    delta: Delta
    logprobs: None
    finish_reason: FinishReason | None


class ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[WireUsage | None]  # present only when the client set stream_options.include_usage


class ErrorBody(TypedDict):
    message: str
    type: str
    code: str | None
    param: str | None


class ErrorEnvelope(TypedDict):
    error: ErrorBody
