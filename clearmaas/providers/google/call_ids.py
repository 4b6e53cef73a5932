"""Tool-call ids that carry a Gemini call's thoughtSignature (and Gemini's own call id) across turns.

Gemini 3 wants each functionCall's thoughtSignature back with the call in the next request, but neither an
OpenAI tool_call nor an Anthropic tool_use has anywhere to keep it: the id is the one field every client
echoes verbatim. So the id the gateway gives a Gemini call ends in a marker and the base64url of those
details, whose alphabet is legal everywhere (Anthropic ids included), and the request encoder reads them
back when the client replays the call. An id Gemini gave the call itself is the base, and is recognised
on the way back because the ids the gateway generates have a fixed shape (`response.tool_call_id`).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

__all__ = ["details_from_call_id", "id_with_details"]

_MARK = "_gts_"
_GENERATED = re.compile(r"^call_[0-9a-f]{24}$")


def id_with_details(base: str, google: dict[str, Any] | None) -> str:
    """`base`, with the call's thoughtSignature packed after a marker when it has one."""
    signature = (google or {}).get("thoughtSignature")
    if not signature:
        return base
    encoded = base64.urlsafe_b64encode(orjson.dumps({"s": signature})).decode().rstrip("=")
    return f"{base}{_MARK}{encoded}"


def details_from_call_id(call_id: str) -> dict[str, Any]:
    """The Gemini details behind an id made by `id_with_details`: its signature, and Gemini's own id
    when the base was not one the gateway generated. Empty for ids from other providers."""
    base, mark, encoded = call_id.rpartition(_MARK)
    if not mark:
        return {}
    google: dict[str, Any] = {}
    try:
        packed = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    if isinstance(packed, dict) and isinstance(packed.get("s"), str):
        google["thoughtSignature"] = packed["s"]
    if base and not _GENERATED.match(base):
        google["id"] = base
    return google
