"""Wallet: BIP32 public derivation from a store's extended public key to EIP-55 addresses.

chainpay holds no private key and no seed. A store registers the account-level key a wallet
exports for m/44'/60'/0' (depth 3); invoice i then gets m/44'/60'/0'/0/i. The external-chain
key m/44'/60'/0'/0 (depth 4) is accepted too and gives the same addresses: index i is its
child i. Any other depth, or a private key, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from bip_utils import Bip32Secp256k1, EthAddrEncoder

from indexer.domain.errors import ValidationError

ACCOUNT_DEPTH = 3
EXTERNAL_CHAIN_DEPTH = 4
MAX_INDEX = 2**31 - 1  # non-hardened child indexes only


@dataclass(frozen=True)
class ExtendedPublicKey:
    """A validated xpub, normalised to the external chain (…/0) from which addresses derive."""

    original: str
    depth: int
    _chain: Bip32Secp256k1

    def address(self, index: int) -> str:
        """The EIP-55 address of child `index` on the external chain."""
        if not 0 <= index <= MAX_INDEX:
            raise ValueError(f"address index out of range: {index}")
        key = self._chain.ChildKey(index).PublicKey().KeyObject()
        return str(EthAddrEncoder.EncodeKey(key))

    @property
    def fingerprint(self) -> str:
        """Identifies the external chain, so two stores cannot register the same key."""
        return str(self._chain.PublicKey().ToExtended())


def parse_xpub(text: object, field: str = "evm_xpub") -> ExtendedPublicKey:
    """Validate an extended public key and return its external chain."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("invalid_xpub", "an extended public key (xpub…) is required", field)
    text = text.strip()
    if text[:4] in ("xprv", "tprv", "yprv", "zprv"):
        raise ValidationError(
            "private_key_refused",
            "that is a private key: chainpay needs only the extended PUBLIC key (xpub…)",
            field,
        )
    try:
        key = Bip32Secp256k1.FromExtendedKey(text)
    except Exception:  # bip-utils raises a dozen types (base58, checksum, version, length)
        raise ValidationError(
            "invalid_xpub", "not a valid extended public key (bad encoding or checksum)", field
        ) from None
    if not key.IsPublicOnly():
        raise ValidationError(
            "private_key_refused", "only extended public keys are accepted", field
        )
    depth = key.Depth().ToInt()
    if depth == ACCOUNT_DEPTH:
        chain = key.ChildKey(0)
    elif depth == EXTERNAL_CHAIN_DEPTH:
        chain = key
    else:
        raise ValidationError(
            "invalid_xpub_depth",
            f"expected the account key m/44'/60'/0' (depth 3) or its external chain "
            f"m/44'/60'/0'/0 (depth 4); this key has depth {depth}",
            field,
        )
    return ExtendedPublicKey(original=text, depth=depth, _chain=chain)


_parsed: dict[str, ExtendedPublicKey] = {}


def derive_addresses(xpub: str, start: int, count: int) -> list[str]:
    """The addresses of children `start` … `start + count - 1`: the deriver process's job."""
    key = _parsed.get(xpub)
    if key is None:
        key = _parsed[xpub] = parse_xpub(xpub)
    return [key.address(index) for index in range(start, start + count)]
