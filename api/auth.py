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
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer <key>'")
    # Keys are ASCII; bytes that are not UTF-8 arrive as surrogate escapes and must never reach
    # the hash (which would raise): such a header is simply not a known key.
    store = request.app[GATEWAY].stores.authenticate(secret) if secret.isascii() else None
    if store is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    request[STORE] = store
    return store
