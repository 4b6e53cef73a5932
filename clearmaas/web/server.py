"""Running the app under uvicorn (uvloop + httptools: the fastest pure-Python-host combination here)."""

from __future__ import annotations

import gc
import sys

import uvicorn

from clearmaas.observability.logging import configure_logging
from clearmaas.relay.gateway import Gateway
from clearmaas.settings import ConfigError, Settings
from clearmaas.store.presence import AnotherProcessServing
from clearmaas.web.app import build_app

__all__ = ["run"]


def run(settings: Settings) -> None:
    """Serve until interrupted. Configuration errors surface here, before the port opens (ConfigError)."""
    configure_logging(settings.log_level)
    gateway = Gateway.from_settings(settings)
    if gateway.presence is not None:
        try:
            gateway.presence.claim()  # here, so a refusal is one line before the port opens, not a traceback
        except AnotherProcessServing as exc:
            raise ConfigError(str(exc)) from exc
    offered = ", ".join(sorted(gateway.providers)) or "none (set a provider key, see README)"
    # Most objects a request makes die young; the default thresholds run the collector so often that it
    # took 11-19% of a busy process (bench/README.md). Freezing what start-up built keeps it out of every
    # later collection.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    print(f"ClearMaas listening on http://{settings.host}:{settings.port} (providers: {offered})",
          file=sys.stderr, flush=True)
    uvicorn.run(
        build_app(settings, gateway=gateway),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=30,
    )
