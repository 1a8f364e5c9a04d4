"""The JSON-RPC client for the operator's node (aiohttp only): calls, batches and new-head streams.

Transport follows the URL: http(s):// sends each call as an HTTP POST, ws(s):// pipelines calls
on one websocket. Every aiohttp, socket and JSON failure is translated into `indexer.chain.errors`
here and counted in the RPC metrics. The client never retries; `reconnecting_heads` is the one
place that waits and tries again, because a head stream must outlive any single connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from indexer.chain.errors import (
    MethodNotFound,
    ResponseTooLarge,
    RpcConnectionError,
    RpcError,
    RpcHttpError,
    RpcResponseError,
    RpcTimeout,
    classify_response_error,
)
from indexer.metrics import (
    RPC_BATCH_LIMIT,
    RPC_ERRORS,
    RPC_REQUESTS,
    RPC_SECONDS,
    WS_CONNECTED,
    WS_RECONNECTS,
)

log = logging.getLogger(__name__)

Request = tuple[str, Sequence[Any]]

_MAX_WS_MESSAGE = 256 * 1024 * 1024  # a full block or a block trace can exceed aiohttp's 4 MB
_CLOSE_TIMEOUT = 2.0  # seconds to wait for a node to answer a websocket close
_BATCH_REFUSED_STATUSES = frozenset({400, 501})
_BATCH_REPROBE_SECONDS = 600.0  # a node that refused batches is asked again after this long


def _translate(exc: BaseException, timeout: float) -> RpcError:
    """Map a transport exception onto the client's error classes."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, TimeoutError):
        return RpcTimeout(f"no answer within {timeout}s")
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return RpcHttpError(exc.status, "websocket handshake refused")
    return RpcConnectionError(f"{type(exc).__name__}: {exc}")


def _result(reply: Any) -> Any:
    """The `result` of one JSON-RPC reply object, or its error raised as an exception."""
    if not isinstance(reply, dict):
        raise RpcResponseError(None, f"expected a JSON-RPC object, got {type(reply).__name__}")
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code")
            raise classify_response_error(
                code if isinstance(code, int) else None, str(error.get("message", ""))
            )
        raise classify_response_error(None, str(error))
    if "result" not in reply:
        raise RpcResponseError(None, "reply has neither result nor error")
    return reply["result"]


class _WsChannel:
    """One websocket carrying requests; a reader task routes each reply to its waiter by id."""

    def __init__(self, session: aiohttp.ClientSession, url: str, heartbeat: float) -> None:
        self._session = session
        self._url = url
        self._heartbeat = heartbeat
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._lock = asyncio.Lock()

    async def request(self, payload: dict[str, Any]) -> Any:
        ws = await self._connected()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[payload["id"]] = waiter
        try:
            await ws.send_str(json.dumps(payload))
            return await waiter
        finally:
            self._pending.pop(payload["id"], None)

    async def _connected(self) -> aiohttp.ClientWebSocketResponse:
        async with self._lock:
            if self._ws is None or self._ws.closed:
                self._ws = await self._session.ws_connect(
                    self._url, heartbeat=self._heartbeat, max_msg_size=_MAX_WS_MESSAGE
                )
                self._reader = asyncio.create_task(self._read(self._ws))
            return self._ws

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    reply = json.loads(message.data)
                except ValueError:
                    continue
                reply_id = reply.get("id") if isinstance(reply, dict) else None
                waiter = self._pending.get(reply_id) if isinstance(reply_id, int) else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(reply)
        finally:
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(RpcConnectionError("websocket to node closed"))

    async def close(self) -> None:
        # Bounded: a node that never answers the close frame must not hang a shutdown.
        if self._ws is not None:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self._ws.close()
            except TimeoutError:
                pass
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


class JsonRpcClient:
    """Talks JSON-RPC to one node; `network` labels every metric it records."""

    def __init__(
        self,
        url: str,
        network: str,
        timeout: float = 10.0,
        *,
        poll_interval: float = 1.0,
        max_batch: int = 100,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported node URL scheme {scheme!r}")
        self.url = url
        self.network = network
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_batch = max_batch  # geth refuses batches over 1,000 items by default
        self.is_websocket = scheme in ("ws", "wss")
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._channel: _WsChannel | None = None
        self._batch_limit = max_batch
        self._batches_refused_at: float | None = None  # monotonic time of the last refusal
        self._ceiling: tuple[int, float] | None = None  # (largest size not refused, when)

    async def __aenter__(self) -> JsonRpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _request(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Send one request and return its `result`; raises an `RpcError` subclass."""
        RPC_REQUESTS.labels(self.network, method).inc()
        started = time.perf_counter()
        try:
            reply = await self._send(self._request(method, params))
            return _result(reply)
        except RpcError as exc:
            RPC_ERRORS.labels(self.network, method, exc.kind).inc()
            raise
        finally:
            RPC_SECONDS.labels(self.network, method).observe(time.perf_counter() - started)

    async def batch(self, requests: Sequence[Request]) -> list[Any]:
        """Results of several requests, in order; raises the first failure in request order.

        Over HTTP this is a JSON-RPC batch, in chunks of at most `batch_limit` requests. A node
        that caps a batch (geth: more than 25 MB of results answers the rest -32003 "response
        too large"; more than 1,000 items is "batch too large") keeps what it answered, and
        the rest goes again in smaller chunks: the limit halves on each cap and grows back by
        a quarter after each full chunk that passes, never above `max_batch`. A request that
        is too large even alone goes as a single call, which geth does not cap. Over a
        websocket the requests are pipelined on the open connection instead.
        """
        if not requests:
            return []
        if self.is_websocket or not self._batches_allowed():
            return await self._concurrent(requests)
        results: list[Any] = []
        start = 0
        while start < len(requests):
            if not self._batches_allowed():
                results.extend(await self._concurrent(requests[start:]))
                break
            size = self.batch_limit
            if size <= 1:
                method, params = requests[start]
                results.append(await self.call(method, params))
                start += 1
                continue
            chunk = requests[start : start + size]
            answered = await self._http_batch(chunk)
            results.extend(answered)
            start += len(answered)
            if len(answered) == len(chunk):
                if len(chunk) == size:
                    self._set_batch_limit(size + max(1, size // 4))
            elif self._batches_refused_at is None:  # capped: what fit is the next size
                if not answered:  # refused whole ("batch too large"): never grow back to it
                    self._ceiling = (len(chunk) - 1, time.monotonic())
                self._set_batch_limit(len(answered) or size // 2)
        return results

    @property
    def batch_limit(self) -> int:
        """How many requests the next HTTP batch may carry (adapts to the node's caps)."""
        return self._batch_limit

    def _set_batch_limit(self, size: int) -> None:
        ceiling = self.max_batch
        if self._ceiling is not None:
            if time.monotonic() - self._ceiling[1] < _BATCH_REPROBE_SECONDS:
                ceiling = min(ceiling, self._ceiling[0])
            else:
                self._ceiling = None  # the node may have been reconfigured: grow and see
        size = max(1, min(size, ceiling))
        if size < self._batch_limit:
            log.warning(
                "node for %s capped a batch; batches now carry at most %d requests",
                self.network, size,
            )  # fmt: skip
        self._batch_limit = size
        RPC_BATCH_LIMIT.labels(self.network).set(size)

    def _batches_allowed(self) -> bool:
        if self._batches_refused_at is None:
            return True
        if time.monotonic() - self._batches_refused_at >= _BATCH_REPROBE_SECONDS:
            self._batches_refused_at = None  # ask again: the node may have been reconfigured
            return True
        return False

    def _refuse_batches(self) -> None:
        self._batches_refused_at = time.monotonic()
        log.warning("node for %s refused a JSON-RPC batch; sending single calls", self.network)

    async def _concurrent(self, requests: Sequence[Request]) -> list[Any]:
        outcomes = await asyncio.gather(
            *(self.call(method, params) for method, params in requests), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return list(outcomes)

    async def _http_batch(self, requests: Sequence[Request]) -> list[Any]:
        """Results of a prefix of `requests` (all of them unless the node capped the batch)."""
        payload = [self._request(method, params) for method, params in requests]
        for method, _ in requests:
            RPC_REQUESTS.labels(self.network, method).inc()
        started = time.perf_counter()
        try:
            replies = await self._post(payload)
        except RpcHttpError as exc:
            self._count_batch_error(requests, exc)
            if exc.status == 413:  # this batch's size, not batching itself
                return []
            if exc.status not in _BATCH_REFUSED_STATUSES:
                raise
            self._refuse_batches()
            return []
        except RpcError as exc:
            self._count_batch_error(requests, exc)
            raise
        finally:
            RPC_SECONDS.labels(self.network, "batch").observe(time.perf_counter() - started)
        if not isinstance(replies, list):
            # One error object for the whole batch: a cap on its size, or no batches at all.
            try:
                _result(replies)
                raise RpcResponseError(None, "node answered a batch with a single result")
            except (ResponseTooLarge, MethodNotFound) as exc:
                self._count_batch_error(requests, exc)
                if isinstance(exc, MethodNotFound):
                    self._refuse_batches()
                return []
            except RpcResponseError as exc:
                if type(exc) is not RpcResponseError or exc.transient:
                    self._count_batch_error(requests, exc)
                    raise
                self._refuse_batches()  # e.g. -32600 "invalid request" from a node without them
                return []
        by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
        results: list[Any] = []
        for (method, _), request in zip(requests, payload, strict=True):
            reply = by_id.get(request["id"])
            try:
                if reply is None:
                    raise RpcResponseError(None, f"batch reply lacks id {request['id']}")
                results.append(_result(reply))
            except ResponseTooLarge as exc:
                # geth answers every request after its cap this way: keep what came before
                RPC_ERRORS.labels(self.network, method, exc.kind).inc()
                return results
            except RpcError as exc:
                RPC_ERRORS.labels(self.network, method, exc.kind).inc()
                raise
        return results

    def _count_batch_error(self, requests: Sequence[Request], exc: RpcError) -> None:
        for method, _ in requests:
            RPC_ERRORS.labels(self.network, method, exc.kind).inc()

    async def _send(self, payload: dict[str, Any]) -> Any:
        if not self.is_websocket:
            return await self._post(payload)
        if self._channel is None:
            self._channel = _WsChannel(self._get_session(), self.url, heartbeat=self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._channel.request(payload)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, self.timeout) from exc

    async def _post(self, payload: Any) -> Any:
        session = self._get_session()
        try:
            async with asyncio.timeout(self.timeout):
                async with session.post(self.url, json=payload) as response:
                    body = await response.read()
                    if response.status != 200:
                        text = body[:200].decode("utf-8", errors="replace")
                        raise RpcHttpError(response.status, text)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, self.timeout) from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise RpcResponseError(None, "node answered with invalid JSON") from exc

    async def subscribe_new_heads(self) -> AsyncIterator[dict[str, Any]]:
        """Yield new head objects as the node announces them.

        ws(s)://: an `eth_subscribe newHeads` subscription on its own websocket; a dropped
        socket raises `RpcConnectionError` (use `reconnecting_heads` to carry on).
        http(s)://: polls `eth_blockNumber` every `poll_interval` seconds and yields synthetic
        heads `{"number": "0x…", "synthetic": True}` whenever the number changes (only the
        latest number when several blocks arrived in between; the tail catches up by range).
        """
        stream = self._ws_heads() if self.is_websocket else self._polled_heads()
        async for head in stream:
            yield head

    async def _polled_heads(self) -> AsyncIterator[dict[str, Any]]:
        last: int | None = None
        while True:
            number = int(await self.call("eth_blockNumber"), 16)
            if number != last:
                last = number
                yield {"number": hex(number), "synthetic": True}
            await asyncio.sleep(self.poll_interval)

    async def _ws_heads(self) -> AsyncIterator[dict[str, Any]]:
        connected = WS_CONNECTED.labels(self.network)
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    ws = await self._get_session().ws_connect(
                        self.url, heartbeat=self.timeout, max_msg_size=_MAX_WS_MESSAGE
                    )
                    subscription = await self._subscribe(ws)
            except (RpcError, TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = _translate(exc, self.timeout)
                RPC_ERRORS.labels(self.network, "eth_subscribe", error.kind).inc()
                if error is exc:
                    raise
                raise error from exc
            connected.set(1)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                try:
                    notice = json.loads(message.data)
                except ValueError as exc:
                    raise RpcResponseError(None, "node sent invalid JSON on websocket") from exc
                params = notice.get("params") if isinstance(notice, dict) else None
                if isinstance(params, dict) and params.get("subscription") == subscription:
                    yield params["result"]
            raise RpcConnectionError("websocket to node closed")
        finally:
            connected.set(0)
            if ws is not None:
                try:  # bounded: a node that never answers the close frame must not stall a stop
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await ws.close()
                except TimeoutError:
                    pass

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        request = self._request("eth_subscribe", ["newHeads"])
        RPC_REQUESTS.labels(self.network, "eth_subscribe").inc()
        await ws.send_str(json.dumps(request))
        while True:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RpcConnectionError("websocket closed before the subscription was confirmed")
            try:
                reply = json.loads(message.data)
            except ValueError as exc:
                raise RpcResponseError(None, "node sent invalid JSON on websocket") from exc
            if isinstance(reply, dict) and reply.get("id") == request["id"]:
                return str(_result(reply))

    async def close(self) -> None:
        """Close the websocket channel and the HTTP session; the client may be used again."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._session is not None:
            await self._session.close()
            self._session = None


async def reconnecting_heads(
    client: JsonRpcClient, *, initial_delay: float = 0.5, max_delay: float = 30.0
) -> AsyncIterator[dict[str, Any]]:
    """Yield heads forever, resubscribing after any `RpcError` with capped backoff and jitter.

    The delay doubles per failed attempt up to `max_delay` and resets once a head arrives; each
    wait is drawn from [delay/2, delay] so many gateways restarting together do not stampede.
    """
    delay = initial_delay
    while True:
        try:
            async for head in client.subscribe_new_heads():
                delay = initial_delay
                yield head
        except RpcError as exc:
            log.warning("head stream for %s failed (%s); reconnecting", client.network, exc.kind)
        WS_RECONNECTS.labels(client.network).inc()
        await asyncio.sleep(delay * (0.5 + random.random() / 2))
        delay = min(delay * 2, max_delay)
