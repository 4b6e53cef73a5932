"""Canonical `ChatRequest` → Gemini `generateContent` request: contents, system instruction, tools and
generation config. Pure: builds bytes, sends nothing.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from clearmaas.providers.google.call_ids import details_from_call_id
from clearmaas.canonical.messages import (
    AudioPart,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.canonical.request import ChatRequest, ResponseFormat, ToolChoice
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.base import Deployment, UpstreamRequest
from clearmaas.providers.google.schema import clean_parameters, clean_schema
from clearmaas.providers.google.thinking import generation, thinking_config
from clearmaas.providers.google.wire import (
    Content,
    FunctionDeclaration,
    FunctionResponse,
    GenerateContentRequest,
    GenerationConfig,
    Part as WirePart,
    ToolConfig,
)

__all__ = ["BUILTIN_TOOLS", "SKIP_SIGNATURE", "encode_body", "encode_request", "model_url", "upstream_headers"]

# Reserved function names that become Gemini's built-in tools (clearmaas-docs advanced__tool-calling.md).
BUILTIN_TOOLS = frozenset({"googleSearch", "codeExecution", "urlContext"})
# Google's documented stand-in for a function call Gemini did not produce (another provider's history):
# Gemini 3 answers 400 "Function call is missing a thought_signature" without one
# (https://ai.google.dev/gemini-api/docs/thought-signatures, FAQ; lbjlaq/Antigravity-Manager#139).
SKIP_SIGNATURE = "skip_thought_signature_validator"
# Never taken from the client: the gateway's own credentials and the framing of the body it builds.
_OWN_HEADERS = frozenset({"authorization", "x-goog-api-key", "content-type", "content-length", "host"})
_CHOICE_MODE = {"auto": "AUTO", "required": "ANY", "none": "NONE", "tool": "ANY"}


def model_url(base_url: str, upstream: str, *, stream: bool) -> str:
    """`{base}/v1beta/models/{model}:generateContent`, or the SSE streaming action."""
    model = upstream.removeprefix("models/")
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base_url.rstrip('/')}/v1beta/models/{model}:{action}"


def upstream_headers(deployment: Deployment) -> dict[str, str]:
    return {"content-type": "application/json", "x-goog-api-key": deployment.api_key}


def encode_request(request: ChatRequest, *, model: ModelEntry, deployment: Deployment) -> UpstreamRequest:
    headers = upstream_headers(deployment)
    if request.origin == "gemini":
        for name, value in request.forward_headers.items():
            if name.lower() not in _OWN_HEADERS:
                headers.setdefault(name.lower(), value)
    return UpstreamRequest(
        method="POST",
        url=model_url(deployment.base_url, model.upstream, stream=request.stream),
        headers=headers,
        body=orjson.dumps(encode_body(request, model)),
        stream=request.stream,
    )


def encode_body(request: ChatRequest, model: ModelEntry) -> GenerateContentRequest:
    body: GenerateContentRequest = {"contents": _contents(request.messages, model)}
    system = [p.text for p in request.system if p.text]
    system += [p.text for m in request.messages if m.role == "system" for p in m.parts if isinstance(p, TextPart)]
    if any(system):
        body["systemInstruction"] = {"parts": [{"text": text} for text in system if text]}
    declarations, tools = _tools(request)
    if tools:
        body["tools"] = tools
    tool_config = _tool_config(request.tool_choice, declarations)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(request, model)
    if config:
        body["generationConfig"] = config
    if request.origin == "gemini" and request.extra:
        # Fields the Gemini surface did not model (safetySettings, cachedContent, responseModalities...).
        return _merge(dict(body), request.extra)  # type: ignore[return-value]
    return body


# --- contents -----------------------------------------------------------------------------------------


def _contents(messages: list[Message], model: ModelEntry) -> list[Content]:
    calls = {p.id: p for m in messages for p in m.parts if isinstance(p, ToolCallPart)}
    contents: list[Content] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = [wire for part in message.parts for wire in _part(part, role, calls)]
        if not parts:
            continue  # Gemini rejects a content without parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # roles must alternate; merge consecutive turns
        else:
            contents.append({"role": role, "parts": parts})
    version = generation(model.upstream)
    if version is not None and version >= (3, 0):
        for content in contents:
            _sign_first_call(content)
    return contents


def _sign_first_call(content: Content) -> None:
    """Gemini 3 validates the signature of the first functionCall of each model step; one that came from
    elsewhere has none and gets Google's documented placeholder."""
    if content["role"] != "model":
        return
    for part in content["parts"]:
        if "functionCall" in part:
            part.setdefault("thoughtSignature", SKIP_SIGNATURE)
            return


def _part(part: Part, role: str, calls: dict[str, ToolCallPart]) -> list[WirePart]:
    if isinstance(part, TextPart):
        signature = _google(part.details).get("thoughtSignature") if role == "model" else None
        if not part.text and not signature:
            return []
        text: WirePart = {"text": part.text}
        if signature:
            text["thoughtSignature"] = signature
        return [text]
    if isinstance(part, ThinkingPart):
        # Only Gemini's own thoughts go back; another provider's reasoning (and its signature) means
        # nothing here (protocols.md §6.7).
        if part.origin != "google" or part.redacted or not (part.text or part.signature):
            return []
        thought: WirePart = {"text": part.text, "thought": True}
        if part.signature:
            thought["thoughtSignature"] = part.signature
        return [thought]
    if isinstance(part, ToolCallPart):
        return [_function_call(part)]
    if isinstance(part, ToolResultPart):
        return _function_response(part, calls)
    if isinstance(part, (ImagePart, DocumentPart, AudioPart)):
        media = _media(part)
        return [media] if media is not None else []
    if isinstance(part, UnknownPart):
        return [part.data] if part.origin == "gemini" else []  # type: ignore[list-item]
    return []


def _call_details(part: ToolCallPart) -> dict[str, Any]:
    """The call's Gemini details: on the part when it never left the gateway, else packed in its id."""
    return _google(part.details) or details_from_call_id(part.id)


def _function_call(part: ToolCallPart) -> WirePart:
    google = _call_details(part)
    call: WirePart = {"functionCall": {"name": part.name, "args": _arguments(part.arguments)}}
    if google.get("id"):
        # Only an id Gemini itself gave is echoed; the ids the gateway generates never go upstream.
        call["functionCall"]["id"] = google["id"]
    if google.get("thoughtSignature"):
        call["thoughtSignature"] = google["thoughtSignature"]
    return call


def _arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        # A malformed call in replayed history (often another model's): keep it visible to the model
        # rather than fail the whole conversation.
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": value}


def _function_response(part: ToolResultPart, calls: dict[str, ToolCallPart]) -> list[WirePart]:
    call = calls.get(part.tool_call_id)
    # Gemini matches results to calls by name (functionResponse.name is required).
    name = call.name if call is not None else (part.name or part.tool_call_id)
    text = "".join(p.text for p in part.content if isinstance(p, TextPart))
    payload: FunctionResponse = {"name": name, "response": {"error" if part.is_error else "result": text}}
    google_id = _call_details(call).get("id") if call is not None else None
    if google_id:
        payload["id"] = google_id
    out: list[WirePart] = [{"functionResponse": payload}]
    # Images and files in a result follow it as ordinary parts of the same user turn, which every
    # Gemini model reads (multimodal functionResponse.parts is Gemini 3 only).
    for extra in part.content:
        if not isinstance(extra, TextPart):
            media = _media(extra)
            if media is not None:
                out.append(media)
    return out


def _media(part: ImagePart | DocumentPart | AudioPart) -> WirePart | None:
    if isinstance(part, AudioPart):
        # OpenAI's input_audio format names the subtype: mp3 → audio/mp3 (advanced__audio-input.md).
        return {"inlineData": {"mimeType": f"audio/{part.format}", "data": part.data}}
    fallback = "image/jpeg" if isinstance(part, ImagePart) else "application/pdf"
    if part.data:
        return {"inlineData": {"mimeType": part.media_type or fallback, "data": part.data}}
    if part.url and part.url.startswith("data:"):
        header, _, data = part.url.partition(",")
        mime = header[5:].split(";")[0] or part.media_type or fallback
        return {"inlineData": {"mimeType": mime, "data": data}}
    if part.url:
        # No download here (no I/O in a translator): Gemini fetches Files-API, GCS and public URLs itself.
        mime = part.media_type or mimetypes.guess_type(part.url.split("?")[0])[0] or fallback
        return {"fileData": {"mimeType": mime, "fileUri": part.url}}
    if isinstance(part, DocumentPart) and part.text:
        return {"text": part.text}
    return None


def _google(details: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    return (details or {}).get("google") or {}


# --- tools and config ---------------------------------------------------------------------------------


def _tools(request: ChatRequest) -> tuple[list[FunctionDeclaration], list[dict[str, Any]]]:
    declarations: list[FunctionDeclaration] = []
    builtins: list[dict[str, Any]] = []
    for tool in request.tools:
        if tool.name in BUILTIN_TOOLS:
            builtins.append({tool.name: {}})
            continue
        declaration: FunctionDeclaration = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        parameters = clean_parameters(tool.parameters)
        if parameters is not None:
            declaration["parameters"] = parameters
        declarations.append(declaration)
    tools: list[dict[str, Any]] = [{"functionDeclarations": declarations}] if declarations else []
    tools.extend(builtins)
    if request.origin == "gemini":
        tools.extend(request.native_tools)
    return declarations, tools


def _tool_config(choice: ToolChoice | None, declarations: list[FunctionDeclaration]) -> ToolConfig | None:
    if choice is None or not declarations:
        return None
    if choice.mode == "tool" and choice.name not in {d["name"] for d in declarations}:
        return None  # a built-in or unknown name cannot be forced through functionCallingConfig
    config: ToolConfig = {"functionCallingConfig": {"mode": _CHOICE_MODE[choice.mode]}}
    if choice.mode == "tool" and choice.name:
        config["functionCallingConfig"]["allowedFunctionNames"] = [choice.name]
    return config


def _generation_config(request: ChatRequest, model: ModelEntry) -> GenerationConfig:
    config: GenerationConfig = {}
    if request.temperature is not None and "no_temperature" not in model.capabilities:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.top_k is not None:
        config["topK"] = request.top_k
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    _response_format(request.response_format, config)
    thinking = thinking_config(request.reasoning, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _response_format(fmt: ResponseFormat | None, config: GenerationConfig) -> None:
    if fmt is None or fmt.type == "text":
        return
    config["responseMimeType"] = "application/json"
    if fmt.type == "json_schema" and fmt.schema:
        config["responseSchema"] = clean_schema(fmt.schema, ordering=True)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, merging nested objects (so extra `generationConfig` keys add to ours)."""
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            base[key] = _merge(dict(current), value)
        else:
            base[key] = value
    return base
