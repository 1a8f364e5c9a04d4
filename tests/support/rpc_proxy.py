"""A fault-injecting JSON-RPC proxy in front of a node (HTTP and websocket), for tests.

It runs as an aiohttp server on a loopback port inside the test's own event loop (use it from
async tests: `async with RpcProxy(anvil.http_url) as proxy:`), so faults switch instantly and
deterministically between two awaits. Faults are plain attributes:

- `delay`: seconds to wait before answering each HTTP request or forwarding each websocket frame
- `http_status`: answer every HTTP request with this status (429, 503, ...) instead
- `max_log_range`: refuse `eth_getLogs` spanning more than this many blocks ("range too large")
- `unknown_blocks`: block numbers the node pretends not to know ("unknown block")
- `reject_batches`: answer a JSON-RPC batch with one error object, as nodes without batches do
- `drop_websockets()`: cut every open websocket now (transport aborted, no close frame)
- `pruned_beyond`: keep state only for the latest N blocks, as geth and BSC do (128 by default):
  `eth_getBalance`, `eth_call`, `eth_getTransactionCount` at an older block answer geth's
  "historical state <root> is not available", `debug_traceBlockByNumber` and `trace_block`
  answer "required historical state unavailable (reexec=128)" (both -32000)
- `batch_response_cap`: bytes of results a batch may carry; past it every further request of
  the batch answers -32003 "response too large", as geth's 25 MB `--rpc.batchresponsemaxsize`
- `batch_item_limit`: a batch with more requests answers one -32600 "batch too large" object
- `missing_methods`: methods answered with geth's -32601 "the method … does not exist/is not
  available" (a disabled API)
- `empty_logs`: block number -> how many more times `eth_getLogs` hides that block's logs
  (a broken or lying node); each answer that hid something counts one down
- `missing_tags`: block tags (`safe`, `finalized`) `eth_getBlockByNumber` refuses as a pre-merge
  geth does: -32000 "'finalized' tag not supported on pre-merge network"
- `results`: method name -> result to answer instead of forwarding (a syncing node's
  `eth_syncing` object and `eth_blockNumber` of 0, for instance)

`requests` records every (method, params) the proxy received, in arrival order.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

RANGE_TOO_LARGE = {"code": -32005, "message": "query returned more than 10000 results"}
UNKNOWN_BLOCK = {"code": -32000, "message": "unknown block"}
RESPONSE_TOO_LARGE = {"code": -32003, "message": "response too large"}  # geth rpc/errors.go
BATCH_TOO_LARGE = {"code": -32600, "message": "batch too large"}
TRACE_STATE_MISSING = {
    "code": -32000,
    "message": "required historical state unavailable (reexec=128)",
}

_STATE_METHODS = {"eth_getBalance": 1, "eth_call": 1, "eth_getTransactionCount": 1}
_TRACE_METHODS = {"debug_traceBlockByNumber": 0, "trace_block": 0}

# Where each method carries a block number among its params.
_BLOCK_PARAM = {"eth_getBlockByNumber": 0, "debug_traceBlockByNumber": 0, "eth_getBalance": 1}


class RpcProxy:
    """Forwards JSON-RPC to `upstream` (an http:// node URL that also serves websockets)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.upstream_ws = "ws" + upstream.removeprefix("http")
        self.requests: list[tuple[str, list[Any]]] = []
        self._sockets: set[asyncio.Transport] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.clear_faults()

    def clear_faults(self) -> None:
        self.delay = 0.0
        self.http_status: int | None = None
        self.max_log_range: int | None = None
        self.unknown_blocks: set[int] = set()
        self.reject_batches = False
        self.pruned_beyond: int | None = None
        self.batch_response_cap: int | None = None
        self.batch_item_limit: int | None = None
        self.empty_logs: dict[int, int] = {}
        self.missing_methods: set[str] = set()
        self.results: dict[str, Any] = {}
        self.missing_tags: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def methods(self, name: str) -> list[list[Any]]:
        """Params of every received request for method `name`."""
        return [params for method, params in self.requests if method == name]

    async def start(self) -> RpcProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self.drop_websockets()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> RpcProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def drop_websockets(self) -> None:
        for transport in list(self._sockets):
            transport.abort()
        self._sockets.clear()

    # -- HTTP --------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.http_status is not None:
            return web.Response(status=self.http_status, text="injected fault")
        body = await request.json()
        if isinstance(body, list):
            if self.reject_batches:
                error = {"code": -32600, "message": "batch requests are not supported"}
                return web.json_response({"jsonrpc": "2.0", "id": None, "error": error})
            if self.batch_item_limit is not None and len(body) > self.batch_item_limit:
                first = next((r.get("id") for r in body if isinstance(r, dict)), None)
                return web.json_response(
                    [{"jsonrpc": "2.0", "id": first, "error": BATCH_TOO_LARGE}]
                )
            return web.json_response(await self._answer_batch(body))
        return web.json_response(await self._answer(body))

    async def _answer_batch(self, body: list[dict[str, Any]]) -> list[Any]:
        # In order, like geth: once the results pass the cap, the rest answer "too large".
        replies: list[Any] = []
        size = 0
        for request in body:
            if self.batch_response_cap is not None and size > self.batch_response_cap:
                replies.append(
                    {"jsonrpc": "2.0", "id": request.get("id"), "error": RESPONSE_TOO_LARGE}
                )
                continue
            reply = await self._answer(request)
            size += len(json.dumps(reply.get("result")))
            replies.append(reply)
        return replies

    async def _answer(self, request: dict[str, Any]) -> Any:
        fault = self._fault(request) or await self._pruned(request)
        if fault is not None:
            return fault
        reply = await self._upstream(request)
        if request.get("method") == "eth_getLogs" and self.empty_logs:
            reply = self._hide_logs(reply)
        return reply

    async def _upstream(self, request: dict[str, Any]) -> Any:
        assert self._session is not None
        async with self._session.post(self.upstream, json=request) as response:
            return await response.json()

    async def _pruned(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """geth's answer for a state older than the latest `pruned_beyond` blocks, or None."""
        if self.pruned_beyond is None:
            return None
        method, params = str(request.get("method")), list(request.get("params") or [])
        position = _STATE_METHODS.get(method, _TRACE_METHODS.get(method))
        if position is None or len(params) <= position:
            return None
        tag = params[position]
        if not (isinstance(tag, str) and tag.startswith("0x")):
            return None
        number = int(tag, 16)
        # A trace of block n re-executes it on the state of n - 1.
        state_at = number - 1 if method in _TRACE_METHODS else number
        head = int((await self._upstream(_call("eth_blockNumber", [])))["result"], 16)
        if head - state_at < self.pruned_beyond:
            return None
        if method in _TRACE_METHODS:
            error = TRACE_STATE_MISSING
        else:
            block = (await self._upstream(_call("eth_getBlockByNumber", [tag, False])))["result"]
            root = (block or {}).get("stateRoot", "0x" + "00" * 32).removeprefix("0x")
            error = {"code": -32000, "message": f"historical state {root} is not available"}
        return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}

    def _hide_logs(self, reply: dict[str, Any]) -> dict[str, Any]:
        logs = reply.get("result")
        if not isinstance(logs, list):
            return reply
        kept, hidden = [], set()
        for log in logs:
            number = int(log["blockNumber"], 16)
            if self.empty_logs.get(number, 0) > 0:
                hidden.add(number)
            else:
                kept.append(log)
        for number in hidden:
            self.empty_logs[number] -= 1
        return {**reply, "result": kept}

    def _fault(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """An injected reply (error or canned result) for this request, or None to forward it."""
        method, params = str(request.get("method")), list(request.get("params") or [])
        self.requests.append((method, params))
        if method in self.results:
            return {"jsonrpc": "2.0", "id": request.get("id"), "result": self.results[method]}
        error: dict[str, Any] | None = None
        if method in self.missing_methods:
            error = {
                "code": -32601,
                "message": f"the method {method} does not exist/is not available",
            }
        if method == "eth_getBlockByNumber" and params and params[0] in self.missing_tags:
            error = {
                "code": -32000,
                "message": f"'{params[0]}' tag not supported on pre-merge network",
            }
        if method == "eth_getLogs" and self.max_log_range is not None:
            query = params[0]
            span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
            if span > self.max_log_range:
                error = RANGE_TOO_LARGE
        position = _BLOCK_PARAM.get(method)
        if position is not None and len(params) > position:
            tag = params[position]
            numeric = isinstance(tag, str) and tag.startswith("0x")
            if numeric and int(tag, 16) in self.unknown_blocks:
                error = UNKNOWN_BLOCK
        if error is None:
            return None
        return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}

    # -- websocket ---------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        transport = request.transport
        assert transport is not None
        self._sockets.add(transport)
        assert self._session is not None
        try:
            async with self._session.ws_connect(self.upstream_ws) as upstream:
                pumps = [
                    asyncio.create_task(self._pump_up(client, upstream)),
                    asyncio.create_task(self._pump_down(upstream, client)),
                ]
                _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._sockets.discard(transport)
            await client.close()
        return client

    async def _pump_up(
        self, client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
    ) -> None:
        async for message in client:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            if self.delay:
                await asyncio.sleep(self.delay)
            request = json.loads(message.data)
            fault = None
            if isinstance(request, dict):
                fault = self._fault(request) or await self._pruned(request)
            if fault is not None:
                await client.send_str(json.dumps(fault))
            elif isinstance(request, dict) and request.get("method") == "eth_getLogs":
                reply = self._hide_logs(await self._upstream(request))
                await client.send_str(json.dumps(reply))
            else:
                await upstream.send_str(message.data)

    async def _pump_down(
        self, upstream: aiohttp.ClientWebSocketResponse, client: web.WebSocketResponse
    ) -> None:
        async for message in upstream:
            if message.type == aiohttp.WSMsgType.TEXT and not client.closed:
                await client.send_str(message.data)


def _call(method: str, params: list[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 0, "method": method, "params": params}
