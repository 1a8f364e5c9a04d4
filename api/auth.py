"""Bearer API keys, checked for every route by default: each key is scoped to one store.

`auth_middleware` runs before every handler and answers 401 for a missing, unknown or revoked
key, unless the route is on `PUBLIC_ROUTES` — the reviewed list of what a customer, a probe or
Prometheus reaches without a key. A new route is therefore authenticated unless someone adds it
to that list (and to the test that pins it); handlers never opt in.
"""

from __future__ import annotations

from aiohttp import web

from api.errors import ApiError, Handler
from api.keys import GATEWAY
from indexer.services.stores import Store

STORE = web.RequestKey("store", Store)

# Route templates (aiohttp's `canonical`) that answer GET and HEAD without a key. Every other
# method on them, and every other route, needs one. Review any addition: it is public.
PUBLIC_ROUTES = frozenset(
    {
        "/healthz",  # probes
        "/readyz",
        "/metrics",  # Prometheus
        "/openapi.json",
        "/pay/{invoice_id}",  # the customer's checkout: the invoice id is the secret
        "/pay/{invoice_id}/status",
        "/pay/{invoice_id}/qr.svg",
        "/static",  # the checkout page's CSS and script
    }
)
_PUBLIC_METHODS = frozenset({"GET", "HEAD"})


def is_public(method: str, canonical: str) -> bool:
    return method in _PUBLIC_METHODS and canonical in PUBLIC_ROUTES


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates every matched route that is not public; 404 and 405 stay as they are."""
    match = request.match_info
    resource = match.route.resource
    if match.http_exception is None and resource is not None:
        if not is_public(request.method, resource.canonical):
            request[STORE] = _authenticate(request)
    return await handler(request)


def authenticated_store(request: web.Request) -> Store:
    """The calling key's store, which `auth_middleware` checked before the handler ran."""
    store: Store | None = request.get(STORE)
    if store is None:  # a public route asking for a store: a bug, never an anonymous caller
        raise RuntimeError(f"{request.method} {request.path} is public: it has no store")
    return store


def _authenticate(request: web.Request) -> Store:
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
    return store
