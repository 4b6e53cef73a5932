"""Starting the real gateway (`python -m clearmaas serve`) and the fake upstream as subprocesses, the way a
user runs them, for the end-to-end tests and the benchmark."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Variables that would leak a developer's real providers into the tests.
_PROVIDER_VARS = (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "DEEPSEEK_API_KEY",
    "XAI_API_KEY", "DASHSCOPE_API_KEY", "MOONSHOT_API_KEY", "MINIMAX_API_KEY", "CLEARMAAS_CONFIG",
    "CLEARMAAS_DATABASE_URL", "CLEARMAAS_REDIS_URL", "CLEARMAAS_PORT", "CLEARMAAS_HOST",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_VARS}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before becoming ready")
        try:
            with urlrequest.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urlerror.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready in {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class FakeUpstreamProcess:
    url: str
    process: subprocess.Popen[bytes]

    def requests(self) -> list[dict[str, Any]]:
        with urlrequest.urlopen(f"{self.url}/__requests", timeout=5) as response:
            return list(json.loads(response.read()))

    def clear(self) -> None:
        urlrequest.urlopen(urlrequest.Request(f"{self.url}/__requests", method="DELETE"), timeout=5).close()

    def last(self) -> dict[str, Any]:
        found = self.requests()
        assert found, "the fake upstream received no request"
        return found[-1]


@contextmanager
def fake_upstream(*, fast: bool = False, cpu: int | None = None) -> Iterator[FakeUpstreamProcess]:
    port = free_port()
    command = [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port)]
    if fast:
        command.append("--fast")
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, cwd=ROOT, env=clean_env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/__health", process)
        yield FakeUpstreamProcess(url, process)
    finally:
        stop(process)


def gateway_config(fake_url: str, **overrides: Any) -> dict[str, Any]:
    """Every built-in provider pointed at the fake upstream, plus a custom OpenAI-compatible one."""
    from tests.fakes.upstream import FAKE_KEYS, provider_base_urls

    timeouts = {"connect": 2, "first_byte": 3, "between_chunks": 3, "total": 30}
    providers: dict[str, Any] = {
        pid: {"api_key": FAKE_KEYS[pid], "base_url": base, "timeouts": timeouts}
        for pid, base in provider_base_urls(fake_url).items()
    }
    providers["local"] = {
        "kind": "openai_compatible",
        "api_key": FAKE_KEYS["openai"],
        "base_url": provider_base_urls(fake_url)["openai"],
        "timeouts": timeouts,
        "models": [
            {
                "id": "llama-3.1-8b",
                "upstream": "llama-3.1-8b-instruct",
                "context_length": 131072,
                "max_output_tokens": 8192,
                "prices": {"input": "0.10", "cached_input": "0.10", "cache_write": "0.10", "output": "0.20"},
            }
        ],
    }
    # One attempt per model, so each fault test sees exactly one upstream call; retries have their own tests.
    config: dict[str, Any] = {"providers": providers, "routing": {"retries": 0}}
    config.update(overrides)
    return config


@dataclass
class GatewayProcess:
    url: str
    api_key: str
    data_dir: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clearmaas", *args, "--config", str(self.config_path)],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60,
        )


@contextmanager
def gateway(
    config: dict[str, Any], workdir: Path, *, cpu: int | None = None, credit_usd: str = "1000000"
) -> Iterator[GatewayProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "clearmaas.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = clean_env(CLEARMAAS_DATA_DIR=str(workdir / "data"))

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "clearmaas", *args, "--config", str(config_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("workspaces", "create", "e2e")
    cli("credits", "add", "e2e", str(credit_usd), "--reason", "tests")
    api_key = cli("keys", "create", "--workspace", "e2e", "--name", "tests").strip().splitlines()[-1]
    port = free_port()
    command = [sys.executable, "-m", "clearmaas", "serve", "--port", str(port), "--config", str(config_path)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/health", process)
        yield GatewayProcess(url, api_key, workdir / "data", config_path, process, env)
    finally:
        stop(process)
