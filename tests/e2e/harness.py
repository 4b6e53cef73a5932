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

import redis
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Variables that would leak a developer's real providers into the tests.
_PROVIDER_VARS = (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "DEEPSEEK_API_KEY",
    "XAI_API_KEY", "DASHSCOPE_API_KEY", "MOONSHOT_API_KEY", "MINIMAX_API_KEY", "CLEARMAAS_CONFIG",
    "CLEARMAAS_DATABASE_URL", "CLEARMAAS_REDIS_URL", "CLEARMAAS_PORT", "CLEARMAAS_HOST",
    "CLEARMAAS_ADMIN_TOKEN", "CLEARMAAS_BILLING", "CLEARMAAS_DATA_DIR", "CLEARMAAS_WORKERS",
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


# -- several processes on one database (scale-out), and bare first starts ----------------------------------

BOOTSTRAP_MARKER = "First start: created workspace"


def run_cli(config_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m clearmaas ARGS --config CONFIG`, as an operator would run it next to the servers."""
    return subprocess.run(
        [sys.executable, "-m", "clearmaas", *args, "--config", str(config_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


@dataclass
class ServeProcess:
    """One `clearmaas serve`; its stderr goes to `log` so a test can read what it printed."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_serve(config_path: Path, env: dict[str, str], log: Path) -> ServeProcess:
    """Start `clearmaas serve` on a free port without waiting for it (see `wait_all`)."""
    port = free_port()
    command = [sys.executable, "-m", "clearmaas", "serve", "--port", str(port), "--config", str(config_path)]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=sink)
    return ServeProcess(f"http://127.0.0.1:{port}", process, log)


def wait_all(servers: list[ServeProcess], timeout: float = 60.0) -> None:
    for server in servers:
        try:
            wait_for_health(f"{server.url}/health", server.process, timeout=timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its output:\n{server.output()[-4000:]}") from None


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate them together (a clean shutdown each), then wait; killing any that hang."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_config(config: dict[str, Any], workdir: Path) -> tuple[Path, dict[str, str]]:
    """The config file in `workdir` and the environment the CLI and servers run with."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "clearmaas.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path, clean_env(CLEARMAAS_DATA_DIR=str(workdir / "data"))


@dataclass
class ReplicaSet:
    """N gateway processes sharing one database (and Redis, when given); `urls[i]` is replica i, `api_key` a key
    of workspace `e2e`."""

    urls: list[str]
    api_key: str
    key_id: str
    config_path: Path
    env: dict[str, str]
    servers: list[ServeProcess]
    database_url: str
    redis_url: str | None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.config_path, self.env, *args)


def create_key(config_path: Path, env: dict[str, str], *args: str) -> tuple[str, str]:
    """`keys create ARGS` -> (key id, raw key)."""
    done = run_cli(config_path, env, "keys", "create", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return lines[0].split()[2], lines[-1]


@contextmanager
def replicas(
    config: dict[str, Any],
    workdir: Path,
    *,
    n: int = 3,
    database_url: str,
    redis_url: str | None = None,
    credit_usd: str = "1000000",
    key_args: tuple[str, ...] = (),
    prepare: tuple[tuple[str, ...], ...] = (),
) -> Iterator[ReplicaSet]:
    """Prepare the shared database once with the CLI (workspace `e2e`, `credit_usd` of credit, one key created
    with `key_args`, then each `prepare` command), and run `n` `serve` processes on it, each on its own port."""
    settings = {**config, "database_url": database_url}
    if redis_url is not None:
        settings["redis_url"] = redis_url
    config_path, env = write_config(settings, workdir)
    for args in (("workspaces", "create", "e2e"), ("credits", "add", "e2e", credit_usd, "--reason", "tests"), *prepare):
        done = run_cli(config_path, env, *args)
        assert done.returncode == 0, done.stderr
    key_id, api_key = create_key(config_path, env, "--workspace", "e2e", "--name", "tests", *key_args)
    servers = [start_serve(config_path, env, workdir / f"replica-{i}.log") for i in range(n)]
    try:
        wait_all(servers)
        yield ReplicaSet(
            [s.url for s in servers], api_key, key_id, config_path, env, servers, database_url, redis_url
        )
    finally:
        stop_all([s.process for s in servers])


# Redis databases the end-to-end tests may take (the unit tests use 0 and 9), and where the claims on them live.
E2E_REDIS_DBS = range(10, 15)
_REDIS_CLAIMS_DB = 15


@contextmanager
def claim_redis_db(host: str = "127.0.0.1", port: int = 6379) -> Iterator[str]:
    """The URL of a Redis database no other test run holds, emptied, for as long as the block runs: test runs
    started side by side in one checkout must not flush each other's keys. Raises redis.RedisError or OSError
    when Redis is not reachable, and RuntimeError when every database is taken."""
    claims = redis.Redis(host=host, port=port, db=_REDIS_CLAIMS_DB)
    try:
        for db in E2E_REDIS_DBS:
            name = f"clearmaas-e2e:claim:{db}"
            if not claims.set(name, os.getpid(), nx=True, ex=900):
                continue
            data = redis.Redis(host=host, port=port, db=db)
            try:
                data.flushdb()
                yield f"redis://{host}:{port}/{db}"
                data.flushdb()
            finally:
                data.close()
                claims.delete(name)
            return
        raise RuntimeError(f"every Redis database in {list(E2E_REDIS_DBS)} is claimed by another test run")
    finally:
        claims.close()
