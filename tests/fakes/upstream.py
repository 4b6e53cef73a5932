"""One aiohttp server that plays all eight upstream providers, each under its own path prefix, for the test suite
and the benchmark; it records every request and injects the faults the request's markers ask for.

Use it in-process (`async with FakeUpstream() as fake`, or `with FakeUpstream.in_thread() as fake` for synchronous
code) or as a subprocess: `python -m tests.fakes.upstream --port N [--fast]` prints `READY <port>` once listening.
Point each provider's base_url at `provider_base_urls(fake.base_url)[provider]` and use `FAKE_KEYS[provider]`.
`GET /__requests` lists the recorded requests, `DELETE /__requests` clears them; a request whose client closed the
connection before the answer was complete is marked `"cancelled": true`.

Fault switches fail one base URL rather than every request carrying a marker (a fallback chain's or a deployment
list's first entry only): a provider path behind the prefix `/switch/NAME` (base URL `<fake>/switch/NAME/openai/v1`)
is served as usual until `PUT /__switches/NAME` with `{"fault": "500"}` (any fault marker's name and argument, e.g.
`"timeout:5"`, `"drop"`) turns the fault on for every request through it, overriding the prompt's fault marker;
`DELETE /__switches/NAME` turns it off, `DELETE /__switches` every switch, `GET /__switches` lists them. Requests
through a switch are recorded with `"switch": NAME` (else None).

Fast mode (`--fast`, `FakeUpstream(fast=True)` or the request header `x-fake-fast: 1`) answers a tiny precomputed
reply per provider with no parsing beyond the auth header, no recording (only `fast_hits` counts) and no markers.

What the answers contain, and the token formula, is documented in `tests/fakes/scenarios.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import orjson
from aiohttp import web

from tests.fakes.anthropic import AnthropicMessagesDialect
from tests.fakes.errors import error_reply, minimax_base_resp, stream_error_frame
from tests.fakes.google import MODEL_PATH, GeminiDialect
from tests.fakes.openai_like import OpenAIChatDialect
from tests.fakes.replies import JSON_TYPE, SSE_TYPE, Reply, RequestContext, sse_data
from tests.fakes.scenarios import Plan

__all__ = ["FAKE_KEYS", "PROVIDERS", "Dialect", "FakeUpstream", "main", "provider_base_urls"]

PROVIDERS = ("openai", "anthropic", "google", "deepseek", "grok", "qwen", "kimi", "minimax")
FAKE_KEYS: dict[str, str] = {
    "openai": "sk-fake-openai-0000", "anthropic": "sk-ant-fake-0000", "google": "AIzaFakeGoogleKey0000",
    "deepseek": "sk-fake-deepseek-0000", "grok": "xai-fake-grok-0000", "qwen": "sk-fake-qwen-0000",
    "kimi": "sk-fake-kimi-0000", "minimax": "sk-fake-minimax-0000",
}
# Shaped like each real base URL, as the provider's own SDK expects it (protocols.md §1.1, §2.1, §5).
_BASE_PATHS = {
    "openai": "/openai/v1", "anthropic": "/anthropic", "google": "/google", "deepseek": "/deepseek",
    "grok": "/grok/v1", "qwen": "/qwen/compatible-mode/v1", "kimi": "/kimi/v1", "minimax": "/minimax/v1",
}
_DROP_AFTER = 3  # frames a dropped or errored stream still delivers
_TIMEOUT_SECONDS = 30.0
_OVERLOADED = {"anthropic": 529}
_CLIENT_GONE = "fake_upstream.client_gone"  # set on a request whose client left mid-stream
_SWITCHED = re.compile(r"/switch/(?P<name>[A-Za-z0-9_.-]+)(?P<path>/.*)")
_SWITCH_ADMIN = re.compile(r"/__switches(?:/(?P<name>[A-Za-z0-9_.-]+))?")
_FAULT_SPEC = re.compile(r"(?P<name>[a-z0-9_]+)(?::(?P<arg>[0-9.]+))?")


class Dialect(Protocol):
    """One wire protocol the fake speaks; the provider id picks quirks inside it."""

    def context(self, provider: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: dict[str, Any]) -> RequestContext: ...

    def authenticate(self, provider: str, headers: dict[str, str], query: dict[str, str],
                     expected: str) -> Reply | None: ...

    def validate(self, ctx: RequestContext) -> Reply | None: ...

    def plan(self, ctx: RequestContext) -> Plan: ...

    def render(self, ctx: RequestContext, plan: Plan) -> Reply: ...

    def fast_reply(self, provider: str, *, stream: bool, include_usage: bool) -> Reply: ...


_CHAT = OpenAIChatDialect()
_ANTHROPIC = AnthropicMessagesDialect()
_GEMINI = GeminiDialect()
_ROUTES: dict[str, tuple[str, Dialect]] = {
    "/openai/v1/chat/completions": ("openai", _CHAT),
    "/anthropic/v1/messages": ("anthropic", _ANTHROPIC),
    "/deepseek/chat/completions": ("deepseek", _CHAT),
    "/deepseek/v1/chat/completions": ("deepseek", _CHAT),  # DeepSeek also serves the /v1 prefix
    "/grok/v1/chat/completions": ("grok", _CHAT),
    "/qwen/compatible-mode/v1/chat/completions": ("qwen", _CHAT),
    "/kimi/v1/chat/completions": ("kimi", _CHAT),
    "/minimax/v1/chat/completions": ("minimax", _CHAT),
}


def provider_base_urls(base: str) -> dict[str, str]:
    """Each provider's base_url on a fake listening at `base` (e.g. `http://127.0.0.1:8123`)."""
    root = base.rstrip("/")
    return {provider: root + path for provider, path in _BASE_PATHS.items()}


def _route(path: str) -> tuple[str, Dialect] | None:
    if path in _ROUTES:
        return _ROUTES[path]
    return ("google", _GEMINI) if MODEL_PATH.match(path) else None


def _unswitch(path: str) -> tuple[str | None, str]:
    """(switch name or None, the provider path behind it)."""
    match = _SWITCHED.fullmatch(path)
    return (match["name"], match["path"]) if match else (None, path)


class FakeUpstream:
    """The fake upstream server; `requests` holds every request received, oldest first."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, fast: bool = False) -> None:
        self.host, self.fast = host, fast
        self._port = port
        self.requests: list[dict[str, Any]] = []
        self.switches: dict[str, tuple[str, str | None]] = {}  # switch name -> (fault, argument) while on
        self.fast_hits = 0
        self._runner: web.AppRunner | None = None
        self._fast_cache: dict[tuple[str, bool, bool], tuple[bytes, dict[str, str]]] = {}

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def base_urls(self) -> dict[str, str]:
        return provider_base_urls(self.base_url)

    def requests_for(self, provider: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["provider"] == provider]

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self) -> str:
        # handler_cancellation: a client that gives up on [fault:timeout] frees its handler at once.
        self._runner = web.AppRunner(self.build_app(), access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[FakeUpstream]:
        """The server on its own event loop in a daemon thread, for synchronous callers."""
        fake = cls(**kwargs)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
            yield fake
        finally:
            asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/__requests":
            return self._admin(request)
        if request.path == "/__health":
            return web.json_response({"status": "ok"})
        admin = _SWITCH_ADMIN.fullmatch(request.path)
        if admin is not None:
            return await self._switch_admin(request, admin["name"])
        switch, path = _unswitch(request.path)
        route = _route(path)
        if route is None:
            return web.json_response({"error": f"fake upstream has no route {request.path}"}, status=404)
        if request.method != "POST":
            return web.json_response({"error": "method not allowed"}, status=405)
        provider, dialect = route
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query)
        if self.fast or headers.get("x-fake-fast") == "1":
            return self._fast(provider, dialect, path, headers, query, raw)
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        record: dict[str, Any] = {"provider": provider, "method": request.method, "path": request.path,
                                  "query": query, "headers": headers, "body": body, "switch": switch}
        self.requests.append(record)
        denied = dialect.authenticate(provider, headers, query, FAKE_KEYS[provider])
        if denied is not None:
            return await _send(request, denied)
        if not isinstance(body, dict):
            return await _send(request, error_reply(provider, 400))
        ctx = dialect.context(provider, path, query, headers, body)
        invalid = dialect.validate(ctx)
        if invalid is not None:
            return await _send(request, invalid)
        plan = dialect.plan(ctx)
        if switch in self.switches:
            fault, arg = self.switches[switch]
            plan = dataclasses.replace(plan, markers=dataclasses.replace(plan.markers, fault=fault, fault_arg=arg))
        try:
            response = await self._answer(request, dialect, ctx, plan)
        except asyncio.CancelledError:
            record["cancelled"] = True  # the client closed the connection while the answer was still coming
            raise
        if request.get(_CLIENT_GONE):
            record["cancelled"] = True
        return response

    async def _answer(self, request: web.Request, dialect: Dialect, ctx: RequestContext,
                      plan: Plan) -> web.StreamResponse:
        fault, arg = plan.markers.fault, plan.markers.fault_arg
        if fault == "timeout":
            await asyncio.sleep(float(arg) if arg else _TIMEOUT_SECONDS)
        elif fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        elif fault is not None and fault.isdigit():
            return await _send(request, error_reply(ctx.provider, int(fault), model=ctx.model))
        elif fault == "minimax_200_error" and ctx.provider == "minimax":
            # MiniMax reports some failures as HTTP 200 with base_resp.status_code set (errorcode docs).
            payload = minimax_base_resp(int(arg) if arg else 1002, model=ctx.model)
            if ctx.stream:
                return await _send(request, Reply(events=[sse_data(payload)], content_type=SSE_TYPE))
            return await _send(request, Reply(body=orjson.dumps(payload)))
        reply = dialect.render(ctx, plan)
        drop_after: int | None = None
        if fault == "stream_error":
            if reply.events is None:
                return await _send(request, error_reply(ctx.provider, _OVERLOADED.get(ctx.provider, 503)))
            reply.events = [*reply.events[:_DROP_AFTER], stream_error_frame(ctx.provider)]
        elif fault == "drop":
            drop_after = int(arg) if arg else _DROP_AFTER
        return await _send(request, reply, delay=plan.markers.chunk_delay, drop_after=drop_after)

    def _fast(self, provider: str, dialect: Dialect, path: str, headers: dict[str, str], query: dict[str, str],
              raw: bytes) -> web.StreamResponse:
        self.fast_hits += 1
        denied = dialect.authenticate(provider, headers, query, FAKE_KEYS[provider])
        if denied is not None:
            return web.Response(status=denied.status, body=denied.body, content_type=JSON_TYPE)
        if provider == "google":
            stream = path.endswith(":streamGenerateContent")
        else:
            stream = b'"stream":true' in raw or b'"stream": true' in raw
        include_usage = b'"include_usage":true' in raw or b'"include_usage": true' in raw
        key = (provider, stream, include_usage)
        if key not in self._fast_cache:
            reply = dialect.fast_reply(provider, stream=stream, include_usage=include_usage)
            self._fast_cache[key] = (reply.body or b"", {"Content-Type": reply.content_type, **reply.headers})
        body, reply_headers = self._fast_cache[key]
        return web.Response(body=body, headers=reply_headers)

    async def _switch_admin(self, request: web.Request, name: str | None) -> web.Response:
        if request.method == "GET" and name is None:
            return web.json_response({n: f"{f}:{a}" if a else f for n, (f, a) in self.switches.items()})
        if request.method == "DELETE":
            if name is None:
                self.switches.clear()
            else:
                self.switches.pop(name, None)
            return web.json_response({"switches": len(self.switches)})
        if request.method == "PUT" and name is not None:
            try:
                spec = orjson.loads(await request.read()).get("fault")
            except (orjson.JSONDecodeError, AttributeError):
                spec = None
            found = _FAULT_SPEC.fullmatch(spec) if isinstance(spec, str) else None
            if found is None:
                return web.json_response({"error": 'send {"fault": "500"} (a fault marker\'s name[:arg])'}, status=400)
            self.switches[name] = (found["name"], found["arg"])
            return web.json_response({"switch": name, "fault": spec})
        return web.json_response({"error": "method not allowed"}, status=405)

    def _admin(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            cleared = len(self.requests)
            self.requests.clear()
            return web.json_response({"cleared": cleared})
        return web.Response(body=orjson.dumps(self.requests), content_type=JSON_TYPE)


async def _send(request: web.Request, reply: Reply, *, delay: float = 0.0,
                drop_after: int | None = None) -> web.StreamResponse:
    headers = {"Content-Type": reply.content_type, **reply.headers}
    if reply.events is None:
        body = reply.body or b""
        if drop_after is None:
            return web.Response(status=reply.status, body=body, headers=headers)
        # A non-streamed answer that dies halfway through its body.
        response = web.StreamResponse(status=reply.status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        _abort(request)
        return response
    response = web.StreamResponse(status=reply.status, headers={**headers, "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        for index, frame in enumerate(reply.events):
            if drop_after is not None and index >= drop_after:
                _abort(request)
                return response
            if index and delay:
                await asyncio.sleep(delay)
            await response.write(frame)
        await response.write_eof()
    except ConnectionError:
        request[_CLIENT_GONE] = True
    return response


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _serve(host: str, port: int, fast: bool) -> None:
    fake = FakeUpstream(host=host, port=port, fast=fast)
    await fake.start()
    print(f"READY {fake.port}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed as READY <port>)")
    parser.add_argument("--fast", action="store_true", help="answer every request with a tiny precomputed reply")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.fast))


if __name__ == "__main__":
    main()
