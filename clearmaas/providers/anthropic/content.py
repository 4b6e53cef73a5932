"""Encode canonical conversation content as Anthropic `system` and `messages`.

The API's rules shape everything here: roles alternate, tool results open a user turn, text blocks are
never empty or whitespace-only, thinking blocks go back byte for byte and only to Anthropic, tool ids match
`^[a-zA-Z0-9_-]+$`. Request-level parameters (tools, sampling, thinking) live in `request.py`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from clearmaas.canonical import (
    AudioPart,
    ChatRequest,
    Details,
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
from clearmaas.canonical.tool_ids import safe_tool_id
from clearmaas.errors import InvalidRequest, NotImplementedForModel
from clearmaas.providers.anthropic.response import ORIGIN, PROTOCOL

__all__ = ["RAW_ARGUMENTS_KEY", "Block", "Turn", "encode_messages", "encode_system", "parse_arguments"]

# An Anthropic content block. The union is open (new block types keep appearing and are passed through
# verbatim), so it stays a dict rather than a closed TypedDict.
Block = dict[str, Any]
Turn = dict[str, Any]  # {"role": "user" | "assistant", "content": [Block, ...]}

# Tool-call arguments that are not a JSON object (a model cut off mid-call, a client's typo) are sent as
# `{"_raw_arguments": "<the text>"}`: Anthropic needs an object, and the model still sees what it wrote.
RAW_ARGUMENTS_KEY = "_raw_arguments"

# Leading base64 characters of each image format Anthropic accepts, for images sent without a media type.
_IMAGE_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))


def encode_system(request: ChatRequest) -> list[Block]:
    """`system` blocks: the request's system prompt, then any mid-conversation system turns in order
    (Anthropic has no system role in `messages`, so their position is lost; protocols.md §6.5)."""
    blocks: list[Block] = [block for part in request.system if (block := _text_block(part)) is not None]
    for message in request.messages:
        if message.role == "system":
            blocks.extend(
                block
                for part in message.parts
                if isinstance(part, TextPart) and (block := _text_block(part)) is not None
            )
    return blocks


def encode_messages(messages: list[Message]) -> list[Turn]:
    """Alternating user/assistant turns: same-role neighbours merged, tool results first in each user
    turn (they must answer the previous assistant turn's tool_use immediately), empty turns dropped."""
    turns: list[Turn] = []
    for message in messages:
        if message.role == "system":
            continue
        blocks = [block for part in message.parts if (block := _block(part, message.role)) is not None]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            content = turn["content"]
            turn["content"] = [b for b in content if b.get("type") == "tool_result"] + [
                b for b in content if b.get("type") != "tool_result"
            ]
    _trim_prefill(turns)
    return turns


def parse_arguments(arguments: str) -> dict[str, Any]:
    """Tool-call arguments (JSON text) as the object `tool_use.input` must be; never raises."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS_KEY: arguments}
    if value is None:
        return {}
    return value if isinstance(value, dict) else {RAW_ARGUMENTS_KEY: arguments}


def _block(part: Part, role: str) -> Block | None:
    if isinstance(part, TextPart):
        return _text_block(part)
    if isinstance(part, ImagePart):
        return _with_details({"type": "image", "source": _image_source(part)}, part.details)
    if isinstance(part, DocumentPart):
        return _document_block(part)
    if isinstance(part, ThinkingPart):
        return _thinking_block(part) if role == "assistant" else None
    if isinstance(part, ToolCallPart):
        block: Block = {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name}
        block["input"] = parse_arguments(part.arguments)
        return _with_details(block, part.details)
    if isinstance(part, ToolResultPart):
        return _tool_result_block(part)
    if isinstance(part, UnknownPart):
        # Only blocks that came from an Anthropic-protocol client or response mean anything here.
        return dict(part.data) if part.origin == PROTOCOL else None
    if isinstance(part, AudioPart):
        raise NotImplementedForModel("Anthropic models do not accept audio input.", param="messages")
    return None


def _text_block(part: TextPart) -> Block | None:
    # 400 "text content blocks must be non-empty" / "must contain non-whitespace text"
    # (anthropics/claude-code#59812, #23369).
    if not part.text.strip():
        return None
    return _with_details({"type": "text", "text": part.text}, part.details)


def _thinking_block(part: ThinkingPart) -> Block | None:
    """Anthropic's own thinking, unchanged; anything else is dropped, since a signature validates only at
    the provider that made it and unsigned thinking is rejected (protocols.md §6.7)."""
    if part.origin != ORIGIN:
        return None
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.redacted}
    if part.signature:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    return None


def _tool_result_block(part: ToolResultPart) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": safe_tool_id(part.tool_call_id)}
    content: list[Block] = []
    for item in part.content:
        if isinstance(item, TextPart):
            if (text := _text_block(item)) is not None:
                content.append(text)
        elif isinstance(item, ImagePart):
            content.append(_with_details({"type": "image", "source": _image_source(item)}, item.details))
        else:
            content.append(_document_block(item))
    if content:
        block["content"] = content
    if part.is_error:
        block["is_error"] = True
    return _with_details(block, part.details)


def _image_source(part: ImagePart) -> Block:
    if part.data:
        return {"type": "base64", "media_type": part.media_type or _sniff_image(part.data), "data": part.data}
    if part.url and part.url.startswith("data:"):
        media_type, data = _parse_data_url(part.url)
        return {"type": "base64", "media_type": media_type or _sniff_image(data), "data": data}
    if part.url:
        return {"type": "url", "url": part.url}
    raise InvalidRequest("An image part has neither data nor a URL.", param="messages")


def _document_block(part: DocumentPart) -> Block:
    media_type, data, url = part.media_type, part.data, part.url
    if url and url.startswith("data:"):
        url_media_type, data = _parse_data_url(url)
        media_type, url = media_type or url_media_type, None
    source: Block
    if part.text is not None:
        source = {"type": "text", "media_type": "text/plain", "data": part.text}
    elif data:
        media_type = media_type or "application/pdf"
        if media_type == "application/pdf":
            source = {"type": "base64", "media_type": media_type, "data": data}
        elif media_type.startswith("text/"):
            source = {"type": "text", "media_type": "text/plain", "data": _decode_text(data)}
        else:
            raise NotImplementedForModel(
                f"Anthropic accepts PDF and plain-text documents, not {media_type}.", param="messages"
            )
    elif url:
        source = {"type": "url", "url": url}
    else:
        raise InvalidRequest("A document part has no text, data or URL.", param="messages")
    block: Block = {"type": "document", "source": source}
    title = part.title or part.filename
    if title:
        block["title"] = title
    return _with_details(block, part.details)


def _with_details(block: Block, details: Details | None) -> Block:
    """Add the Anthropic-only wire fields kept in `details["anthropic"]` (cache_control, citations, ...);
    they never replace a field the block already has."""
    extra = (details or {}).get(ORIGIN)
    if extra:
        for key, value in extra.items():
            block.setdefault(key, value)
    return block


def _trim_prefill(turns: list[Turn]) -> None:
    """A final assistant turn is a prefill, and Anthropic rejects one whose text ends in whitespace (400
    "final assistant content cannot end with trailing whitespace"; vercel/ai#2124). Thinking is not touched."""
    if not turns or turns[-1]["role"] != "assistant":
        return
    content = turns[-1]["content"]
    while content and content[-1].get("type") == "text":
        text = str(content[-1].get("text", "")).rstrip()
        if text:
            content[-1] = {**content[-1], "text": text}
            return
        content.pop()
    if not content:
        turns.pop()


def _parse_data_url(url: str) -> tuple[str | None, str]:
    """`data:<media type>;base64,<data>` -> (media type or None, base64 data)."""
    header, comma, data = url[len("data:") :].partition(",")
    params = header.split(";")
    if not comma or "base64" not in params[1:]:
        raise InvalidRequest("Only base64 data URLs are supported for images and documents.", param="messages")
    return params[0] or None, data


def _sniff_image(data: str) -> str:
    for prefix, media_type in _IMAGE_MAGIC:
        if data.startswith(prefix):
            return media_type
    return "image/jpeg"


def _decode_text(data: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("A text document's data is not base64-encoded UTF-8.", param="messages") from exc
