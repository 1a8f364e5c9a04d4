"""/v1/store: the calling key's store."""

from __future__ import annotations

from aiohttp import web

from api.auth import authenticated_store
from api.keys import GATEWAY

routes = web.RouteTableDef()


@routes.get("/v1/store")
async def get_store(request: web.Request) -> web.Response:
    store = authenticated_store(request)
    settings = request.app[GATEWAY].settings
    return web.json_response(
        {
            "id": store.id,
            "object": "store",
            "name": store.name,
            "address_mode": store.mode,
            "evm_xpub": store.xpub.original if store.xpub is not None else None,
            "treasuries": {n: t.treasury for n, t in store.treasuries.items()},
            "created_at": store.created_at_iso,
            "networks": {
                name: {
                    "chain_id": net.chain_id,
                    "title": net.display_name,
                    "confirmations": net.confirmations,
                    "assets": [
                        {"symbol": a.symbol, "decimals": a.decimals, "contract": a.contract}
                        for a in net.assets
                    ],
                }
                for name, net in settings.networks.items()
            },
        }
    )
