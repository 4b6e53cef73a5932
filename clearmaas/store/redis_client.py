"""The asyncio Redis client of the shared state that requests may wait on (the billing book's leases, the rate
limiter's allowances): each gets its own bounded pool, so one cannot starve the other of connections."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["bounded_client"]


def bounded_client(url: str, *, socket_timeout: float, max_connections: int = 64) -> Redis:
    """A client whose pool blocks (up to a second) when all its connections are busy: a burst queues for a
    connection for microseconds instead of failing."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=1.0,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)
