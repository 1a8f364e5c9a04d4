"""Bearer API keys: each key is scoped to one store; missing or revoked keys answer 401."""

from __future__ import annotations

from aiohttp import web

from api.errors import ApiError
from api.keys import GATEWAY
from indexer.services.stores import Store

STORE = web.RequestKey("store", Store)


def authenticated_store(request: web.Request) -> Store:
    """The calling key's store, or a 401. Call at the top of every /v1 handler."""
    cached: Store | None = request.get(STORE)
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer <key>'")
    store = request.app[GATEWAY].stores.authenticate(secret.strip())
    if store is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    request[STORE] = store
    return store
