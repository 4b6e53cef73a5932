"""Routing: model names and aliases, named routers and their strategies, fallback chains, and the health of
each provider's deployments."""

from clearmaas.routing.health import Health, trips_breaker
from clearmaas.routing.names import NameResolver, Resolved, RouterRef
from clearmaas.routing.plan import Candidate, RoutePlan
from clearmaas.routing.retry import RetryPolicy
from clearmaas.routing.router import MAX_CHAIN, Routing, chain_entries, fits_endpoint
from clearmaas.routing.routers import (
    AUTO_ROUTER,
    InvalidRouter,
    RouterCache,
    RouterDef,
    RouterError,
    RouterExists,
    RouterNotFound,
    create_router,
    delete_router,
    get_router,
    list_routers,
    parse_patterns,
    update_router,
)
from clearmaas.routing.strategies import STRATEGIES, Strategy, blended_price, rank

__all__ = [
    "AUTO_ROUTER",
    "MAX_CHAIN",
    "STRATEGIES",
    "Candidate",
    "Health",
    "InvalidRouter",
    "NameResolver",
    "Resolved",
    "RetryPolicy",
    "RoutePlan",
    "RouterCache",
    "RouterDef",
    "RouterError",
    "RouterExists",
    "RouterNotFound",
    "RouterRef",
    "Routing",
    "Strategy",
    "blended_price",
    "chain_entries",
    "create_router",
    "delete_router",
    "fits_endpoint",
    "get_router",
    "list_routers",
    "parse_patterns",
    "rank",
    "trips_breaker",
    "update_router",
]
