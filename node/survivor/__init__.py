"""The survivor's page: hash photos in the browser, submit only hashes, withdraw with a secret."""

from blindmatch.node.survivor.routes import (
    CATEGORIES,
    RateLimiter,
    SurvivorLimits,
    SurvivorService,
    build_survivor_app,
    build_survivor_routes,
)

__all__ = [
    "CATEGORIES",
    "RateLimiter",
    "SurvivorLimits",
    "SurvivorService",
    "build_survivor_app",
    "build_survivor_routes",
]
