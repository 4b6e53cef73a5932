"""Running the app under uvicorn (uvloop + httptools: the fastest pure-Python-host combination here)."""

from __future__ import annotations

import sys

import uvicorn

from clearmaas.observability.logging import configure_logging
from clearmaas.settings import Settings
from clearmaas.web.app import build_app

__all__ = ["run"]


def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    print(f"ClearMaas listening on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
    uvicorn.run(
        build_app(settings),
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
