"""Webhook targets: which URLs merchants may register and which addresses we may connect to.

Two layers. `validate_url` checks a URL when it is registered (syntax, scheme, literal IPs,
names that always mean loopback). `GuardedResolver` checks every address a hostname
resolves to at connect time, so a name that resolves to a private address — or is rebound
to one after registration — is refused as well.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from indexer.domain.errors import ChainpayError, ValidationError

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata and platform services: never a webhook receiver, and a credential leak if
# reached. Refused even when private targets are allowed. Some are public addresses
# (Azure's wire server), so the generic private-range checks alone would miss them.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
METADATA_HOSTNAMES = frozenset({"metadata", "metadata.google.internal", "instance-data"})

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class ForbiddenTargetError(ChainpayError, OSError):
    """A webhook target resolved to an address we refuse to connect to."""

    def __init__(self, address: str) -> None:
        super().__init__(errno.EACCES, f"forbidden webhook target address {address}")
        self.address = address


def _parse_ip(ip: str | IPAddress) -> IPAddress | None:
    if not isinstance(ip, str):
        return ip
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def is_metadata_ip(ip: str | IPAddress) -> bool:
    """True for cloud instance-metadata addresses, including IPv4 embedded in IPv6."""
    addr = _parse_ip(ip)
    if addr is None:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            return embedded in METADATA_ADDRESSES
        addr = ipaddress.IPv6Address(int(addr))  # drop a zone id before comparing
    return addr in METADATA_ADDRESSES


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really reaches (mapped or NAT64), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_forbidden_ip(ip: str | IPAddress) -> bool:
    """True when a webhook must not connect to `ip` unless private targets are allowed.

    Private, loopback, link-local, unique-local, site-local, multicast, reserved,
    unspecified, shared (CGNAT), documentation and metadata addresses, and IPv6 forms that
    embed such an IPv4 address (mapped, NAT64, 6to4). Anything unparseable is forbidden.
    """
    addr = _parse_ip(ip)
    if addr is None:
        return True
    if is_metadata_ip(addr):
        return True
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            return is_forbidden_ip(embedded)
        if addr.sixtofour is not None and is_forbidden_ip(addr.sixtofour):
            return True
        if addr.is_site_local:
            return True
    return (
        not addr.is_global
        or addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
    )


def guard_address(ip: str, allow_private: bool) -> None:
    """Raise ForbiddenTargetError when a connection to `ip` is not allowed."""
    if is_metadata_ip(ip) or (not allow_private and is_forbidden_ip(ip)):
        raise ForbiddenTargetError(ip)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a non-canonical numeric host (2130706433, 0x7f.1, 017700000001) means."""
    if not re.fullmatch(r"[0-9a-fx.]+", host) or not re.search(r"[0-9]", host):
        return None
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def _invalid(code: str, message: str) -> ValidationError:
    return ValidationError(code, message, field="url")


def _check_host(host: str, allow_private: bool) -> None:
    """Refuse hosts that are private by their very spelling; DNS is checked at connect time."""
    name = host.rstrip(".")
    literal = _parse_ip(name)
    if literal is not None:
        if is_metadata_ip(literal) or (not allow_private and is_forbidden_ip(literal)):
            raise _invalid("private_target", f"{name} is a private or reserved address")
        return
    legacy = _legacy_ipv4(name)
    if legacy is not None:
        if is_metadata_ip(legacy) or (not allow_private and is_forbidden_ip(legacy)):
            raise _invalid("private_target", f"{name} means {legacy}, a private address")
        raise _invalid("invalid_url", "write an IPv4 address as four decimal numbers")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _invalid("invalid_url", "the host name is not valid")
    if labels[-1].isdigit():
        # No top-level domain is numeric; resolvers would read such a name as an address.
        raise _invalid("invalid_url", "the host name is not valid")
    if name in METADATA_HOSTNAMES:
        raise _invalid("private_target", "cloud metadata hosts are not allowed")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise _invalid("private_target", "localhost is not allowed as a webhook target")


def validate_url(url: str, allow_private: bool) -> str:
    """Check a webhook URL and return it normalised; raise ValidationError(field="url").

    Codes: invalid_url, url_too_long, https_required, credentials_in_url, invalid_port,
    private_target. Messages never repeat the URL, which may carry a token.
    """
    if not isinstance(url, str) or not url:
        raise _invalid("invalid_url", "url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid("url_too_long", f"url must be at most {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise _invalid("invalid_url", "url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _invalid("invalid_url", "url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid("invalid_url", "url must start with https://")
    if "@" in parts.netloc:
        raise _invalid("credentials_in_url", "url must not contain a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise _invalid("invalid_port", "port must be a number from 1 to 65535") from None
    if port == 0:
        raise _invalid("invalid_port", "port must be a number from 1 to 65535")
    try:
        parsed = URL(url)
    except (ValueError, UnicodeError):
        raise _invalid("invalid_url", "url is not a valid URL") from None
    host = parsed.host
    if not host:
        raise _invalid("invalid_url", "url must include a host")
    if scheme != "https" and not allow_private:
        raise _invalid("https_required", "url must use https")
    # IDN names are checked in their ASCII (punycode) form; IPv6 keeps its zone id readable.
    _check_host(host if _parse_ip(host) else (parsed.raw_host or host), allow_private)
    return str(parsed)


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a name if ANY address it resolves to is forbidden.

    Refusing on any (not all) closes the trick of one public and one private record.
    Literal IP hosts never reach a resolver in aiohttp; the sender guards those itself.
    """

    def __init__(self, allow_private: bool, resolver: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._resolver is None:
            self._resolver = DefaultResolver()
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            guard_address(result["host"], self.allow_private)
        return results

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
