from __future__ import annotations

import re

from clearmaas.canonical import ChatRequest, Message, TextPart, ToolCallPart, ToolResultPart
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.google.call_ids import details_from_call_id, id_with_details
from clearmaas.providers.google.request import encode_body  # type: ignore[attr-defined]


def test_signature_survives_in_the_id_and_the_id_is_legal_everywhere() -> None:
    call_id = id_with_details("call_" + "a" * 24, {"thoughtSignature": "CiM+/sig=="})
    assert re.fullmatch(r"[A-Za-z0-9_-]+", call_id)
    assert details_from_call_id(call_id) == {"thoughtSignature": "CiM+/sig=="}


def test_geminis_own_id_is_recovered_but_generated_ones_are_not() -> None:
    assert details_from_call_id(id_with_details("fc-9", {"thoughtSignature": "s"})) == {
        "thoughtSignature": "s", "id": "fc-9"}
    assert id_with_details("fc-9", {"id": "fc-9"}) == "fc-9"  # nothing to carry
    assert details_from_call_id("call_abc") == {} and details_from_call_id("toolu_01") == {}


def test_a_replayed_call_without_details_gets_its_signature_back_upstream() -> None:
    call_id = id_with_details("call_" + "b" * 24, {"thoughtSignature": "SIG"})
    history = [
        Message(role="user", parts=[TextPart("weather?")]),
        # What comes back from a client: the id only, no details.
        Message(role="assistant", parts=[ToolCallPart(id=call_id, name="weather", arguments='{"city":"Paris"}')]),
        Message(role="user", parts=[ToolResultPart(tool_call_id=call_id, content=[TextPart("sunny")])]),
    ]
    model = ModelEntry(id="google/gemini-3-pro-preview", provider="google", upstream="gemini-3-pro-preview",
                       context_length=1000, max_output_tokens=100)
    body = encode_body(ChatRequest(model=model.id, origin="openai_chat", messages=history), model=model)
    call = next(p for p in body["contents"][1]["parts"] if "functionCall" in p)
    assert call["thoughtSignature"] == "SIG"
    assert "id" not in call["functionCall"]
    response = body["contents"][2]["parts"][0]["functionResponse"]
    assert response["name"] == "weather"
