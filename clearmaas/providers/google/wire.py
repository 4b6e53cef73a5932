"""Gemini `generateContent` wire shapes (v1beta REST, camelCase), as TypedDicts for the encoder and decoder.

Only the fields this adapter reads or writes are listed; anything else in a body passes through untyped.
Field names follow https://ai.google.dev/api/generate-content.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "Blob",
    "Candidate",
    "Content",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "GenerationConfig",
    "Part",
    "PartialArg",
    "ThinkingConfig",
    "ToolConfig",
    "UsageMetadata",
]


class Blob(TypedDict):
    mimeType: str
    data: str  # base64


class FileData(TypedDict):
    mimeType: str
    fileUri: str


class PartialArg(TypedDict, total=False):
    """One streamed argument fragment (Vertex's `streamFunctionCallArguments`)."""

    jsonPath: str
    stringValue: str
    numberValue: float
    boolValue: bool
    nullValue: str
    willContinue: bool


class FunctionCall(TypedDict, total=False):
    id: str
    name: str
    args: dict[str, Any]
    partialArgs: list[PartialArg]
    willContinue: bool


class FunctionResponse(TypedDict, total=False):
    id: str
    name: str
    response: dict[str, Any]


class Part(TypedDict, total=False):
    text: str
    thought: bool
    thoughtSignature: str
    inlineData: Blob
    fileData: FileData
    functionCall: FunctionCall
    functionResponse: FunctionResponse


class Content(TypedDict, total=False):
    role: str  # "user" | "model"
    parts: list[Part]


class FunctionDeclaration(TypedDict, total=False):
    name: str
    description: str
    parameters: dict[str, Any]


class FunctionCallingConfig(TypedDict, total=False):
    mode: str  # AUTO | ANY | NONE | VALIDATED
    allowedFunctionNames: list[str]


class ToolConfig(TypedDict):
    functionCallingConfig: FunctionCallingConfig


class ThinkingConfig(TypedDict, total=False):
    includeThoughts: bool
    thinkingBudget: int
    thinkingLevel: str  # MINIMAL | LOW | MEDIUM | HIGH


class GenerationConfig(TypedDict, total=False):
    temperature: float
    topP: float
    topK: int
    maxOutputTokens: int
    stopSequences: list[str]
    responseMimeType: str
    responseSchema: dict[str, Any]
    thinkingConfig: ThinkingConfig


class GenerateContentRequest(TypedDict, total=False):
    contents: list[Content]
    systemInstruction: Content
    tools: list[dict[str, Any]]  # {functionDeclarations: [...]} or a built-in such as {googleSearch: {}}
    toolConfig: ToolConfig
    generationConfig: GenerationConfig


class UsageMetadata(TypedDict, total=False):
    promptTokenCount: int  # includes cachedContentTokenCount
    cachedContentTokenCount: int
    candidatesTokenCount: int  # excludes thoughts
    thoughtsTokenCount: int
    toolUsePromptTokenCount: int
    totalTokenCount: int


class Candidate(TypedDict, total=False):
    content: Content
    finishReason: str
    finishMessage: str
    index: int
    groundingMetadata: dict[str, Any]


class GenerateContentResponse(TypedDict, total=False):
    candidates: list[Candidate]
    promptFeedback: dict[str, Any]
    usageMetadata: UsageMetadata
    modelVersion: str
    responseId: str
