"""Configuration: a YAML file (`--config` or CLEARMAAS_CONFIG), overridden by CLEARMAAS_* environment
variables, with the providers' conventional key variables as the fallback for upstream keys.

Loaded once at startup; nothing here is read per request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "BUILTIN_PROVIDERS",
    "ConfigError",
    "DeploymentSettings",
    "ProviderSettings",
    "RoutingSettings",
    "Settings",
    "TimeoutSettings",
    "load_settings",
]


class ConfigError(Exception):
    """The configuration file or an environment variable is invalid."""


# Built-in provider id -> (adapter kind, conventional key variables, default base URL as its SDK means it).
BUILTIN_PROVIDERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "openai": ("openai", ("OPENAI_API_KEY",), "https://api.openai.com/v1"),
    "anthropic": ("anthropic", ("ANTHROPIC_API_KEY",), "https://api.anthropic.com"),
    "google": ("google", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "https://generativelanguage.googleapis.com"),
    "deepseek": ("deepseek", ("DEEPSEEK_API_KEY",), "https://api.deepseek.com"),
    "grok": ("grok", ("XAI_API_KEY",), "https://api.x.ai/v1"),
    "qwen": ("qwen", ("DASHSCOPE_API_KEY",), "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
    "kimi": ("kimi", ("MOONSHOT_API_KEY",), "https://api.moonshot.ai/v1"),
    "minimax": ("minimax", ("MINIMAX_API_KEY",), "https://api.minimax.io/v1"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutSettings(_Strict):
    """Seconds. `first_byte` bounds the wait for response headers, `between_chunks` the silence inside a
    stream, `total` the whole attempt."""

    connect: float = 10.0
    first_byte: float = 120.0
    between_chunks: float = 120.0
    total: float = 900.0


class DeploymentSettings(_Strict):
    name: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    weight: int = Field(default=1, ge=1)


class ProviderSettings(_Strict):
    """One upstream. Built-in ids need only `api_key`; a custom OpenAI-compatible upstream (vLLM, Ollama, a
    company proxy) sets `kind: openai_compatible`, `base_url` and its `models`."""

    kind: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    enabled: bool = True
    deployments: list[DeploymentSettings] = Field(default_factory=list)
    models: list[dict[str, Any]] = Field(default_factory=list)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)


class RoutingSettings(_Strict):
    """Retries, the per-deployment circuit breaker and the router cache (routing package). Seconds."""

    retries: int = Field(default=2, ge=0, le=10)  # extra attempts of one model after a retryable failure
    backoff: float = Field(default=0.25, ge=0)  # the first retry waits up to this (full jitter), doubling after
    backoff_max: float = Field(default=4.0, ge=0)
    deadline: float = Field(default=900.0, gt=0)  # every attempt of one request, fallbacks included
    cooldown: float = Field(default=5.0, gt=0)  # a failing deployment's first cooldown, doubling per failed probe
    cooldown_max: float = Field(default=300.0, gt=0)
    probe_timeout: float = Field(default=60.0, gt=0)  # a half-open probe that never reports frees its slot
    refresh: float = Field(default=1.0, gt=0)  # how often routers (and shared cooldowns) are re-read


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("clearmaas-data")
    database_url: str | None = None  # default: SQLite file in data_dir
    redis_url: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    # Off: no balances, reservations, charges, usage log or rate limits. For measuring the money path's
    # cost (bench/) and for trusted single-team setups that bill elsewhere.
    billing: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = 1
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    # Catalogue additions and overrides: entries in the bundled catalogue's shape, matched by `id`.
    models: list[dict[str, Any]] = Field(default_factory=list)
    # Model-name aliases: `{name: model}`, e.g. `{fast: openai/gpt-4o-mini}`; a target may be `clearmaas/{router}`.
    aliases: dict[str, str] = Field(default_factory=dict)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    # The admin API's bearer token (`/admin/v1/...`); None leaves the admin API disabled (404). Never a client key.
    admin_token: str | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'clearmaas.db').resolve()}"

    def provider(self, provider_id: str) -> ProviderSettings | None:
        """The configured provider, with a built-in's key taken from its conventional variable when the
        file is silent; None when it has no key (a provider without a key is not offered)."""
        configured = self.providers.get(provider_id)
        if configured is not None and not configured.enabled:
            return None
        builtin = BUILTIN_PROVIDERS.get(provider_id)
        if builtin is None:
            return configured
        kind, key_vars, default_url = builtin
        base = configured or ProviderSettings()
        api_key = base.api_key or next((os.environ[v] for v in key_vars if os.environ.get(v)), None)
        if api_key is None and not base.deployments:
            return None
        return base.model_copy(update={"kind": base.kind or kind, "api_key": api_key, "base_url": base.base_url or default_url})

    def provider_ids(self) -> list[str]:
        ids = list(BUILTIN_PROVIDERS)
        ids.extend(p for p in self.providers if p not in BUILTIN_PROVIDERS)
        return [p for p in ids if self.provider(p) is not None]


_ENV_OVERRIDES: dict[str, str] = {
    "CLEARMAAS_HOST": "host",
    "CLEARMAAS_PORT": "port",
    "CLEARMAAS_DATA_DIR": "data_dir",
    "CLEARMAAS_DATABASE_URL": "database_url",
    "CLEARMAAS_REDIS_URL": "redis_url",
    "CLEARMAAS_MAX_BODY_BYTES": "max_body_bytes",
    "CLEARMAAS_BILLING": "billing",
    "CLEARMAAS_LOG_LEVEL": "log_level",
    "CLEARMAAS_WORKERS": "workers",
    "CLEARMAAS_ADMIN_TOKEN": "admin_token",
}


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the file (if any), apply CLEARMAAS_* variables, then explicit overrides (CLI flags)."""
    path = config_path or os.environ.get("CLEARMAAS_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must be a mapping at the top level")
        raw = loaded or {}
    for var, key in _ENV_OVERRIDES.items():
        if os.environ.get(var):
            raw[key] = os.environ[var]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
