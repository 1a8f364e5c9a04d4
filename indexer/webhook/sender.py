"""The webhook sender: one signed POST to one endpoint, reported as an AttemptResult.

Network problems never raise; they become a short, stable `error` that is safe to store
and show to the merchant (no URL, no query string, no header values). Persistence and
scheduling of retries belong to the dispatcher.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from indexer import __version__
from indexer.domain.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from indexer.metrics import WEBHOOK_SECONDS
from indexer.webhook.target import ForbiddenTargetError, GuardedResolver, guard_address

USER_AGENT = f"chainpay-webhooks/{__version__}"


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one delivery attempt."""

    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str


def build_headers(event_id: str, body: bytes, secret: str, now: int) -> dict[str, str]:
    """Headers of one delivery: JSON content type, our user agent, event id and signature."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event_id,
        SIGNATURE_HEADER: sign(secret, body, now),
    }


def _forbidden_in(exc: BaseException) -> ForbiddenTargetError | None:
    """The ForbiddenTargetError behind an aiohttp connection error, if that is the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ForbiddenTargetError):
            return seen
        if isinstance(seen, aiohttp.ClientConnectorError):
            if isinstance(seen.os_error, ForbiddenTargetError):
                return seen.os_error
        seen = seen.__cause__
    return None


def describe_error(exc: BaseException) -> str:
    """A short, stable description of a failed attempt; never includes the URL."""
    forbidden = _forbidden_in(exc)
    if forbidden is not None:
        return f"private_target: {forbidden.address}"
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts subclass it too
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "tls_error: certificate"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls_error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns_error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection_refused"
        if isinstance(exc.os_error, ssl.SSLError):
            return "tls_error"
        return "connection_error"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server_disconnected"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid_url"
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return "invalid_response"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ConnectionError | OSError):
        return "connection_error"
    return f"client_error: {type(exc).__name__}"


class WebhookSender:
    """Sends webhook POSTs through one pooled session with the SSRF guard installed."""

    def __init__(
        self,
        allow_private: bool,
        timeout: float = 10.0,
        max_response_bytes: int = 4096,
        per_host_limit: int = 4,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.per_host_limit = per_host_limit
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily so the session and its connector belong to the running loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.allow_private),
                limit_per_host=self.per_host_limit,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # endpoints must not share cookies
                trust_env=False,  # no proxy from the environment: it would bypass the guard
                # The excerpt cap counts raw bytes: a compressed answer could inflate far
                # beyond it, so ask for none and never inflate what arrives anyway.
                headers={"Accept-Encoding": "identity"},
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the pooled session; a later send opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        """POST `body` to `url` once. Never raises for network or endpoint problems."""
        started = time.perf_counter()
        status: int | None = None
        excerpt = b""
        error = self._refusal(url)
        if error is None:
            try:
                status, excerpt = await self._post(url, body, headers)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = describe_error(exc)
        elapsed = time.perf_counter() - started
        WEBHOOK_SECONDS.observe(elapsed)
        ok = status is not None and 200 <= status < 300
        if status is not None and not ok:
            kind = "redirect_not_followed" if 300 <= status < 400 else "http_status"
            error = f"{kind}: {status}"
        return AttemptResult(
            ok=ok,
            status_code=status,
            latency_ms=round(elapsed * 1000),
            error=error,
            response_excerpt=excerpt.decode("utf-8", errors="replace"),
        )

    def _refusal(self, url: str) -> str | None:
        """Why `url` must not be contacted at all, checked before any connection."""
        try:
            parsed = URL(url)
        except ValueError:
            return "invalid_url"
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return "invalid_url"
        if parsed.scheme == "http" and not self.allow_private:
            return "https_required"
        # aiohttp hands literal IPs straight to connect(), past the resolver.
        try:
            literal = ipaddress.ip_address(parsed.host)
        except ValueError:
            return None
        try:
            guard_address(str(literal), self.allow_private)
        except ForbiddenTargetError as exc:
            return f"private_target: {exc.address}"
        return None

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        session = self._client()
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
            try:
                excerpt = await self._read_capped(response)
            except (aiohttp.ClientError, TimeoutError):
                # The status line arrived in time; a slow or broken body does not undo it.
                excerpt = b""
            return status, excerpt

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        remaining = self.max_response_bytes
        while remaining > 0:
            chunk = await response.content.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
