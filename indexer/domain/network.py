"""Networks and assets: what a chain is called here, its id, its native coin and its tokens."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Asset:
    """A payable asset on one network: the native coin (contract None) or an ERC20 token."""

    symbol: str
    decimals: int
    contract: str | None = None  # EIP-55 checksummed; None for the native coin

    @property
    def is_native(self) -> bool:
        return self.contract is None


@dataclass(frozen=True, slots=True)
class Network:
    """One EVM chain watched through the operator's own node."""

    name: str
    chain_id: int
    rpc_url: str
    confirmations: int
    native: Asset
    tokens: tuple[Asset, ...] = ()
    title: str = ""  # plain words for people ("Ethereum", "BNB Smart Chain")
    # "depth": confirmed `confirmations` deep. "safe"/"finalized": confirmed once at or below
    # the node's block with that tag; depth applies after `finality_wait_seconds`, or at once
    # when the node does not answer the tag.
    finality: str = "depth"
    finality_wait_seconds: int = 900
    preset: str | None = None  # the chain preset this network was built from, if any
    block_time: float = 12.0  # seconds between blocks: turns block counts into time and back
    ready_lag_seconds: float = 48.0  # /readyz: not ready once this far behind (or unreachable)
    max_lag_seconds: float = 120.0  # the ChainpayNetworkLagging alert's threshold
    # Forwarder stores: the ForwarderFactory (EIP-55); None means its deterministic address.
    forwarder_factory: str | None = None
    _by_symbol: dict[str, Asset] = field(default_factory=dict, compare=False, repr=False)
    _by_contract: dict[str, Asset] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_symbol[self.native.symbol] = self.native
        for token in self.tokens:
            self._by_symbol[token.symbol] = token
            assert token.contract is not None
            self._by_contract[token.contract.lower()] = token

    @property
    def finality_tag(self) -> str | None:
        """The node block tag a payment must reach ("safe", "finalized"), None for depth."""
        return None if self.finality == "depth" else self.finality

    @property
    def display_name(self) -> str:
        return self.title or self.name

    def asset(self, symbol: str) -> Asset | None:
        """The asset with this symbol on this network, or None."""
        return self._by_symbol.get(symbol)

    def token_by_contract(self, contract: str) -> Asset | None:
        """The configured token at this contract address (any case), or None: a spoof."""
        return self._by_contract.get(contract.lower())

    @property
    def assets(self) -> tuple[Asset, ...]:
        return (self.native, *self.tokens)
