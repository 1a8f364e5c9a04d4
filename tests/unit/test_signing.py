"""Webhook signatures: the header format, verification, tolerance, rotation, bad input."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from indexer.domain.signing import new_secret, sign, verify_signature

SECRET = "whsec_test-secret"
BODY = b'{"id":"evt_1","type":"invoice.paid"}'
T = 1_700_000_000


def test_sign_matches_an_independently_computed_hmac() -> None:
    expected = hmac.new(
        b"whsec_test-secret", b'1700000000.{"id":"evt_1","type":"invoice.paid"}', hashlib.sha256
    ).hexdigest()

    assert sign(SECRET, BODY, T) == f"t=1700000000,v1={expected}"


def test_sign_matches_a_vector_computed_with_openssl() -> None:
    # printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test-secret
    digest = "86504ca838957ec97acf37c1d76e9e0c2acdd8699c4965f24cab90b9bff876dc"

    assert sign(SECRET, b'{"id":"evt_1"}', T) == f"t=1700000000,v1={digest}"


def test_verify_accepts_own_signature() -> None:
    assert verify_signature(BODY, sign(SECRET, BODY, T), SECRET, now=T)


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [
        pytest.param(0, True, id="same-second"),
        pytest.param(300, True, id="exactly-tolerance-late"),
        pytest.param(-300, True, id="exactly-tolerance-early"),
        pytest.param(301, False, id="one-second-too-late"),
        pytest.param(-301, False, id="one-second-too-early"),
        pytest.param(86_400, False, id="replayed-a-day-later"),
    ],
)
def test_verify_enforces_timestamp_tolerance(skew: int, accepted: bool) -> None:
    header = sign(SECRET, BODY, T)

    assert verify_signature(BODY, header, SECRET, tolerance=300, now=T + skew) is accepted


def test_verify_rejects_a_tampered_body() -> None:
    header = sign(SECRET, BODY, T)

    assert not verify_signature(BODY.replace(b"paid", b"void"), header, SECRET, now=T)


def test_verify_rejects_another_secret() -> None:
    assert not verify_signature(BODY, sign("whsec_other", BODY, T), SECRET, now=T)


def test_verify_rejects_a_shifted_timestamp_with_the_old_digest() -> None:
    digest = sign(SECRET, BODY, T).split("v1=")[1]

    assert not verify_signature(BODY, f"t={T + 1},v1={digest}", SECRET, now=T)


def test_verify_accepts_any_of_several_v1_entries_during_rotation() -> None:
    old = sign("whsec_old", BODY, T).split("v1=")[1]
    new = sign("whsec_new", BODY, T).split("v1=")[1]
    header = f"t={T},v1={old},v1={new}"

    assert verify_signature(BODY, header, "whsec_old", now=T)
    assert verify_signature(BODY, header, "whsec_new", now=T)
    assert not verify_signature(BODY, header, "whsec_third", now=T)


def test_verify_accepts_a_list_of_secrets_during_rotation() -> None:
    header = sign("whsec_new", BODY, T)

    assert verify_signature(BODY, header, ["whsec_old", "whsec_new"], now=T)
    assert not verify_signature(BODY, header, ["whsec_old"], now=T)
    assert not verify_signature(BODY, header, [], now=T)


def test_verify_ignores_unknown_schemes_next_to_v1() -> None:
    header = sign(SECRET, BODY, T) + ",v2=zzz"

    assert verify_signature(BODY, header, SECRET, now=T)


def test_verify_uses_the_wall_clock_by_default() -> None:
    assert verify_signature(BODY, sign(SECRET, BODY, int(time.time())), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="no-equals"),
        pytest.param("t=1700000000", id="no-v1"),
        pytest.param("v1=" + "0" * 64, id="no-timestamp"),
        pytest.param("t=abc,v1=" + "0" * 64, id="non-numeric-timestamp"),
        pytest.param("t=-5,v1=" + "0" * 64, id="negative-timestamp"),
        pytest.param("t=1e9,v1=" + "0" * 64, id="exponent-timestamp"),
        pytest.param("t=1700000000,t=1700000000,v1=" + "0" * 64, id="two-timestamps"),
        pytest.param("t=1700000000,v1=xyz", id="short-digest"),
        pytest.param("t=1700000000,v1=" + "é" * 64, id="non-ascii-digest"),
        pytest.param("t=1700000000,v1=" + "0" * 64 + ",", id="trailing-comma"),
        pytest.param("t=" + "9" * 400 + ",v1=" + "0" * 64, id="huge-timestamp"),
        pytest.param("t=1700000000," + "v1=" + "0" * 64 + "," * 10_000, id="very-long"),
        pytest.param("\x00\xff", id="control-bytes"),
    ],
)
def test_verify_returns_false_for_malformed_headers(header: str) -> None:
    assert verify_signature(BODY, header, SECRET, now=T) is False


@pytest.mark.parametrize(
    "header",
    [pytest.param(None, id="none"), pytest.param(b"t=1,v1=00", id="bytes")],
)
def test_verify_returns_false_for_non_string_headers(header: object) -> None:
    assert verify_signature(BODY, header, SECRET, now=T) is False  # type: ignore[arg-type]


def test_new_secret_is_prefixed_urlsafe_and_random() -> None:
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_")
    assert len(first) == len("whsec_") + 43  # 32 bytes in unpadded base64
    assert set(first.removeprefix("whsec_")) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert first != second
