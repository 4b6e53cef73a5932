"""Tool-call ids that survive every provider's rules.

Anthropic requires `^[a-zA-Z0-9_-]+$`; Kimi's ids look like `functions.get_weather:0`, and Kimi needs them
back unchanged. So an id that breaks the rule is encoded reversibly (a prefix plus base64url, whose alphabet
is legal), and decoded again when it comes back: the same id always maps to the same string.
"""

from __future__ import annotations

import base64
import re

__all__ = ["restore_tool_id", "safe_tool_id"]

_LEGAL = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX = "cmx_"


def safe_tool_id(tool_id: str) -> str:
    """An Anthropic-legal id for `tool_id`; legal ids are kept as they are."""
    if _LEGAL.match(tool_id) and not tool_id.startswith(_PREFIX):
        return tool_id
    encoded = base64.urlsafe_b64encode(tool_id.encode()).decode().rstrip("=")
    return _PREFIX + encoded


def restore_tool_id(tool_id: str) -> str:
    """The original id behind `safe_tool_id`'s output (identity for ids it did not encode)."""
    if not tool_id.startswith(_PREFIX):
        return tool_id
    body = tool_id[len(_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return tool_id
