"""The fake upstream's fault switches: a base URL behind `/switch/NAME` fails only while its switch is on, and
only there, so a test can fail the first entry of a fallback chain or one deployment of a provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes import ANSWER_TEXT, PROVIDERS, FakeUpstream, provider_base_urls
from tests.fakes.test_fake_upstream import frames, native


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


async def post(fake: FakeUpstream, provider: str, text: str, *, switch: str | None = None,
               stream: bool = False) -> tuple[int, bytes]:
    path, headers, body = native(provider, text, stream=stream)
    base = provider_base_urls("")[provider]
    if switch is not None:
        path = f"/switch/{switch}" + path
    assert path.removeprefix(f"/switch/{switch}").startswith(base)
    async with aiohttp.ClientSession() as session, session.post(fake.base_url + path, json=body,
                                                                 headers=headers) as resp:
        try:
            return resp.status, await resp.read()
        except aiohttp.ClientPayloadError:
            return -resp.status, b""  # the stream was cut


async def control(fake: FakeUpstream, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
        method, fake.base_url + path, data=None if body is None else orjson.dumps(body)
    ) as resp:
        return resp.status, orjson.loads(await resp.read())


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_switched_base_url_serves_normally_while_off(fake: FakeUpstream, provider: str) -> None:
    status, raw = await post(fake, provider, "hi", switch="a")
    assert status == 200 and ANSWER_TEXT.split()[0].encode() in raw
    assert [(r["provider"], r["switch"]) for r in fake.requests] == [(provider, "a")]
    assert fake.requests[0]["path"].startswith("/switch/a/")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_switch_fails_only_its_own_base_url(fake: FakeUpstream, provider: str) -> None:
    assert await control(fake, "PUT", "/__switches/a", {"fault": "500"}) == (200, {"switch": "a", "fault": "500"})
    assert (await post(fake, provider, "hi", switch="a"))[0] == 500
    assert (await post(fake, provider, "hi", switch="b"))[0] == 200
    assert (await post(fake, provider, "hi"))[0] == 200
    assert [r["switch"] for r in fake.requests] == ["a", "b", None]


async def test_a_switch_overrides_the_prompts_fault_marker(fake: FakeUpstream) -> None:
    await control(fake, "PUT", "/__switches/a", {"fault": "429"})
    assert (await post(fake, "openai", "hi [fault:503]", switch="a"))[0] == 429
    assert (await post(fake, "openai", "hi [fault:503]", switch="b"))[0] == 503


async def test_switch_faults_take_an_argument_and_cover_streams(fake: FakeUpstream) -> None:
    await control(fake, "PUT", "/__switches/a", {"fault": "drop:2"})
    status, _ = await post(fake, "anthropic", "hi", switch="a", stream=True)
    assert status == -200  # headers sent, then the connection cut
    await control(fake, "PUT", "/__switches/a", {"fault": "stream_error"})
    status, raw = await post(fake, "anthropic", "hi", switch="a", stream=True)
    assert status == 200 and frames(raw)[-1].startswith(b"event: error\n")
    assert await control(fake, "GET", "/__switches") == (200, {"a": "stream_error"})


async def test_switches_turn_off_one_by_one_or_all_at_once(fake: FakeUpstream) -> None:
    await control(fake, "PUT", "/__switches/a", {"fault": "503"})
    await control(fake, "PUT", "/__switches/b", {"fault": "503"})
    assert await control(fake, "DELETE", "/__switches/a") == (200, {"switches": 1})
    assert (await post(fake, "google", "hi", switch="a"))[0] == 200
    assert (await post(fake, "google", "hi", switch="b"))[0] == 503
    assert await control(fake, "DELETE", "/__switches") == (200, {"switches": 0})
    assert (await post(fake, "google", "hi", switch="b"))[0] == 200


@pytest.mark.parametrize("body", [{}, {"fault": "not a fault!"}, {"fault": 500}, [1]])
async def test_a_bad_switch_request_is_refused(fake: FakeUpstream, body: Any) -> None:
    status, _ = await control(fake, "PUT", "/__switches/a", body)
    assert status == 400 and fake.switches == {}


async def test_an_unknown_path_behind_a_switch_is_404(fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session, session.post(fake.base_url + "/switch/a/nowhere", json={}) as resp:
        assert resp.status == 404
