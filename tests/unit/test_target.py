"""Webhook targets: URL validation and the forbidden-address rules (no network)."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from indexer.domain.errors import ValidationError
from indexer.webhook.target import (
    ForbiddenTargetError,
    GuardedResolver,
    is_forbidden_ip,
    is_metadata_ip,
    validate_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://example.com/hook", "https://example.com/hook", id="plain-https"),
        pytest.param("HTTPS://Example.COM/Hook", "https://example.com/Hook", id="case-normalised"),
        pytest.param("https://example.com:8443/h?k=v", "https://example.com:8443/h?k=v", id="port"),
        pytest.param("https://8.8.8.8/hook", "https://8.8.8.8/hook", id="public-ipv4"),
        pytest.param(
            "https://[2001:4860:4860::8888]/h", "https://[2001:4860:4860::8888]/h", id="public-v6"
        ),
        pytest.param(
            "https://пример.рф/hook", "https://xn--e1afmkfd.xn--p1ai/hook", id="idn-to-punycode"
        ),
        pytest.param("https://hooks.example.com./x", "https://hooks.example.com./x", id="fqdn-dot"),
    ],
)
def test_validate_url_accepts_public_https_urls(url: str, expected: str) -> None:
    assert validate_url(url, allow_private=False) == expected


@pytest.mark.parametrize(
    ("url", "code"),
    [
        pytest.param("", "invalid_url", id="empty"),
        pytest.param("example.com/hook", "invalid_url", id="no-scheme"),
        pytest.param("ftp://example.com/", "invalid_url", id="ftp"),
        pytest.param("javascript:alert(1)", "invalid_url", id="javascript"),
        pytest.param("file:///etc/passwd", "invalid_url", id="file"),
        pytest.param("https:///hook", "invalid_url", id="no-host"),
        pytest.param("https://exa mple.com/", "invalid_url", id="space"),
        pytest.param("https://example.com/\r\nX-Injected: 1", "invalid_url", id="crlf"),
        pytest.param("https://exa_mple!.com/", "invalid_url", id="bad-host-chars"),
        pytest.param("https://1.2.3.4.5/", "invalid_url", id="numeric-tld"),
        pytest.param("https://" + "a" * 64 + ".com/", "invalid_url", id="label-too-long"),
        pytest.param("https://example.com/" + "a" * 2030, "url_too_long", id="over-2048"),
        pytest.param("http://example.com/hook", "https_required", id="plain-http"),
        pytest.param("https://user:pw@example.com/", "credentials_in_url", id="userinfo"),
        pytest.param("https://token@example.com/", "credentials_in_url", id="user-only"),
        pytest.param("https://@example.com/", "credentials_in_url", id="empty-userinfo"),
        pytest.param("https://example.com:0/", "invalid_port", id="port-zero"),
        pytest.param("https://example.com:65536/", "invalid_port", id="port-too-big"),
        pytest.param("https://example.com:http/", "invalid_port", id="port-not-number"),
    ],
)
def test_validate_url_rejects_malformed_urls_with_stable_codes(url: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_url(url, allow_private=False)

    assert caught.value.code == code
    assert caught.value.field == "url"


def test_validate_url_accepts_exactly_2048_characters() -> None:
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))

    assert validate_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://127.0.0.1/", id="loopback"),
        pytest.param("https://127.8.9.10/", id="loopback-range"),
        pytest.param("https://10.0.0.1/", id="rfc1918-10"),
        pytest.param("https://172.16.5.4/", id="rfc1918-172"),
        pytest.param("https://192.168.1.1/", id="rfc1918-192"),
        pytest.param("https://100.64.0.1/", id="cgnat-shared"),
        pytest.param("https://169.254.1.1/", id="link-local"),
        pytest.param("https://0.0.0.0/", id="unspecified"),
        pytest.param("https://224.0.0.1/", id="multicast"),
        pytest.param("https://240.0.0.1/", id="reserved"),
        pytest.param("https://255.255.255.255/", id="broadcast"),
        pytest.param("https://192.0.2.1/", id="documentation"),
        pytest.param("https://[::1]/", id="v6-loopback"),
        pytest.param("https://[::]/", id="v6-unspecified"),
        pytest.param("https://[fe80::1]/", id="v6-link-local"),
        pytest.param("https://[fe80::1%25eth0]/", id="v6-link-local-zone"),
        pytest.param("https://[fc00::1]/", id="v6-unique-local"),
        pytest.param("https://[fec0::1]/", id="v6-site-local"),
        pytest.param("https://[ff02::1]/", id="v6-multicast"),
        pytest.param("https://[::ffff:127.0.0.1]/", id="v4-mapped-loopback"),
        pytest.param("https://[::ffff:10.0.0.1]/", id="v4-mapped-private"),
        pytest.param("https://[64:ff9b::a00:1]/", id="nat64-private"),
        pytest.param("https://[2002:a00:1::]/", id="6to4-private"),
        pytest.param("https://2130706433/", id="decimal-127.0.0.1"),
        pytest.param("https://0x7f.1/", id="hex-127.0.0.1"),
        pytest.param("https://0x7f000001/", id="hex-dword"),
        pytest.param("https://017700000001/", id="octal-dword"),
        pytest.param("https://0177.0.0.1/", id="octal-dotted"),
        pytest.param("https://127.1/", id="short-form"),
        pytest.param("https://127.0.0.1./", id="trailing-dot-ip"),
        pytest.param("https://localhost/", id="localhost"),
        pytest.param("https://LOCALHOST./", id="localhost-fqdn"),
        pytest.param("https://api.localhost/", id="localhost-subdomain"),
    ],
)
def test_validate_url_refuses_private_targets(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_url(url, allow_private=False)

    assert caught.value.code == "private_target"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8080/hook", id="loopback-http"),
        pytest.param("http://localhost:8080/hook", id="localhost-http"),
        pytest.param("http://10.1.2.3/hook", id="private-http"),
        pytest.param("https://[fd12::5]/hook", id="unique-local"),
        pytest.param("http://receiver/hook", id="single-label-name"),
    ],
)
def test_validate_url_allows_private_http_targets_when_configured(url: str) -> None:
    assert validate_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://169.254.169.254/latest/meta-data/", id="aws-gcp-azure"),
        pytest.param("http://[fd00:ec2::254]/latest/", id="aws-v6"),
        pytest.param("http://100.100.100.200/latest/", id="alibaba"),
        pytest.param("http://168.63.129.16/", id="azure-wire-server"),
        pytest.param("http://[::ffff:169.254.169.254]/", id="mapped-metadata"),
        pytest.param("http://2852039166/", id="decimal-metadata"),
        pytest.param("http://metadata.google.internal/", id="gcp-name"),
    ],
)
def test_validate_url_refuses_metadata_even_when_private_allowed(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_url(url, allow_private=True)

    assert caught.value.code == "private_target"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://2130706433/", id="decimal"),
        pytest.param("http://0x7f.1/", id="hex"),
    ],
)
def test_validate_url_refuses_numeric_ip_tricks_even_when_private_allowed(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_url(url, allow_private=True)

    assert caught.value.code == "invalid_url"


def test_validation_messages_never_repeat_the_url() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_url("http://example.com/hook?token=s3cret", allow_private=False)

    assert "s3cret" not in caught.value.message


@pytest.mark.parametrize(
    ("ip", "forbidden"),
    [
        pytest.param("8.8.8.8", False, id="public-v4"),
        pytest.param("1.1.1.1", False, id="public-v4-b"),
        pytest.param("2606:4700:4700::1111", False, id="public-v6"),
        pytest.param("::ffff:8.8.8.8", False, id="mapped-public"),
        pytest.param("64:ff9b::808:808", False, id="nat64-public"),
        pytest.param("127.0.0.1", True, id="loopback"),
        pytest.param("10.255.255.255", True, id="private"),
        pytest.param("100.100.100.200", True, id="alibaba-metadata"),
        pytest.param("169.254.169.254", True, id="metadata"),
        pytest.param("168.63.129.16", True, id="azure-wire-server-is-public-but-forbidden"),
        pytest.param("fd00:ec2::254", True, id="aws-v6-metadata"),
        pytest.param("::ffff:192.168.0.1", True, id="mapped-private"),
        pytest.param("::127.0.0.1", True, id="v4-compatible"),
        pytest.param("2001:db8::1", True, id="v6-documentation"),
        pytest.param("not-an-ip", True, id="garbage-is-forbidden"),
    ],
)
def test_is_forbidden_ip(ip: str, forbidden: bool) -> None:
    assert is_forbidden_ip(ip) is forbidden


@pytest.mark.parametrize(
    ("ip", "metadata"),
    [
        pytest.param("169.254.169.254", True, id="imds"),
        pytest.param("::ffff:169.254.169.254", True, id="mapped-imds"),
        pytest.param("fd00:ec2::254", True, id="imds-v6"),
        pytest.param("169.254.1.1", False, id="other-link-local"),
        pytest.param("garbage", False, id="garbage"),
    ],
)
def test_is_metadata_ip(ip: str, metadata: bool) -> None:
    assert is_metadata_ip(ip) is metadata


class ScriptedResolver(AbstractResolver):
    """A DNS stand-in answering each lookup with the next scripted list of addresses."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=ip, port=port, family=family, proto=0, flags=0)
            for ip in self.answers.pop(0)
        ]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver_passes_public_answers_through() -> None:
    guard = GuardedResolver(allow_private=False, resolver=ScriptedResolver(["93.184.215.14"]))

    [result] = await guard.resolve("example.com", 443)

    assert result["host"] == "93.184.215.14"


async def test_guarded_resolver_refuses_when_any_answer_is_private() -> None:
    guard = GuardedResolver(
        allow_private=False, resolver=ScriptedResolver(["93.184.215.14", "10.0.0.7"])
    )

    with pytest.raises(ForbiddenTargetError) as caught:
        await guard.resolve("mixed.example", 443)

    assert caught.value.address == "10.0.0.7"


async def test_guarded_resolver_refuses_a_name_rebound_to_a_private_address() -> None:
    guard = GuardedResolver(
        allow_private=False, resolver=ScriptedResolver(["93.184.215.14"], ["127.0.0.1"])
    )

    await guard.resolve("rebind.example", 443)
    with pytest.raises(ForbiddenTargetError):
        await guard.resolve("rebind.example", 443)


async def test_guarded_resolver_allows_private_but_never_metadata_when_configured() -> None:
    guard = GuardedResolver(
        allow_private=True, resolver=ScriptedResolver(["10.0.0.7"], ["169.254.169.254"])
    )

    assert await guard.resolve("internal.example", 443)
    with pytest.raises(ForbiddenTargetError):
        await guard.resolve("metadata.example", 80)


async def test_guarded_resolver_closes_the_resolver_it_wraps() -> None:
    inner = ScriptedResolver()

    await GuardedResolver(allow_private=False, resolver=inner).close()

    assert inner.closed
