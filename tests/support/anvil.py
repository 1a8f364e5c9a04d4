"""The anvil dev node as a test fixture: a real node process on a free loopback port.

anvil stands in for geth/BSC (same JSON-RPC and websocket API). `Anvil` talks to it with a small
synchronous client for test set-up (accounts, transfers, deployments, mining); the code under test
uses its own client. State is kept in a `--state` file, so `stop()` then `start()` restarts the
node on the same port with the chain as it was.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector

from tests.support.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_BIN = REPO_ROOT / "node_modules" / ".bin" / "anvil"
ARTIFACTS = REPO_ROOT / "indexer" / "chain" / "contracts"
_START_TIMEOUT = 15.0


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or answered a set-up request with an error."""


def calldata(signature: str, *args: Any) -> str:
    """ABI-encoded call data for `signature` such as "transfer(address,uint256)"."""
    types = signature[signature.index("(") + 1 : -1]
    encoded = abi_encode(types.split(",") if types else [], list(args))
    return "0x" + (function_signature_to_4byte_selector(signature) + encoded).hex()


def load_artifact(name: str) -> dict[str, Any]:
    artifact: dict[str, Any] = json.loads((ARTIFACTS / f"{name}.json").read_text())
    return artifact


class Anvil:
    """One anvil process; `start()` it, `stop()` it, `start()` it again with the same chain."""

    def __init__(
        self, chain_id: int = 31337, block_time: float | None = None, workdir: Path | None = None
    ) -> None:
        if not ANVIL_BIN.exists():
            raise AnvilError(f"{ANVIL_BIN} is missing: run .ci/setup (it runs `npm ci`)")
        self.chain_id = chain_id
        self.block_time = block_time
        self.port = free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="anvil-"))
        self.state_file = self.workdir / f"anvil-{chain_id}-state.json"
        self.log_file = self.workdir / f"anvil-{chain_id}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._accounts: list[str] | None = None
        self._ids = iter(range(1, 1 << 62))

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Anvil:
        if self.running:
            return self
        command = [
            str(ANVIL_BIN),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--state", str(self.state_file),
        ]  # fmt: skip
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise AnvilError(f"anvil exited on start:\n{self._log_tail()}")
            try:
                self.rpc("eth_chainId")
                return
            except (OSError, AnvilError):
                time.sleep(0.05)
        self.stop()
        raise AnvilError(f"anvil did not answer within {_START_TIMEOUT}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def stop(self) -> None:
        """Stop the node gracefully (SIGTERM), which dumps its state for the next `start()`."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    # -- set-up helpers --------------------------------------------------------------------
    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(
            self.http_url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise AnvilError(f"{method} failed: {reply['error']}")
        return reply["result"]

    @property
    def accounts(self) -> list[str]:
        """The node's unlocked, funded dev accounts (lowercase)."""
        if self._accounts is None:
            self._accounts = [a.lower() for a in self.rpc("eth_accounts")]
        return self._accounts

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, n: int = 1) -> None:
        self.rpc("anvil_mine", hex(n))

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", snapshot_id))

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def send_tx(
        self,
        frm: str,
        to: str | None,
        data: str = "0x",
        value: int = 0,
        gas: int | None = None,
        expect_success: bool = True,
    ) -> dict[str, Any]:
        """Send from an unlocked account and return the receipt once mined."""
        tx: dict[str, Any] = {"from": frm, "data": data, "value": hex(value)}
        if to is not None:
            tx["to"] = to
        if gas is not None:  # a fixed gas skips estimation, so a reverting tx is still mined
            tx["gas"] = hex(gas)
        tx_hash = self.rpc("eth_sendTransaction", tx)
        deadline = time.monotonic() + 30
        while (receipt := self.rpc("eth_getTransactionReceipt", tx_hash)) is None:
            if time.monotonic() > deadline:
                raise AnvilError(f"transaction {tx_hash} was not mined")
            time.sleep(0.05)
        if expect_success and int(receipt["status"], 16) != 1:
            raise AnvilError(f"transaction {tx_hash} reverted")
        return dict(receipt)

    def send_eth(self, frm: str, to: str, wei: int) -> dict[str, Any]:
        return self.send_tx(frm, to, value=wei)

    def deploy(self, artifact_name: str, *ctor_args: Any, frm: str | None = None) -> str:
        """Deploy a contract from indexer/chain/contracts; returns its lowercase address."""
        artifact = load_artifact(artifact_name)
        ctor = next((item for item in artifact["abi"] if item["type"] == "constructor"), None)
        types = [i["type"] for i in ctor["inputs"]] if ctor else []
        data = artifact["bytecode"] + abi_encode(types, list(ctor_args)).hex()
        receipt = self.send_tx(frm or self.accounts[0], None, data=data)
        return str(receipt["contractAddress"]).lower()

    def deploy_token(self, symbol: str = "TST", decimals: int = 6) -> str:
        return self.deploy("TestToken", f"Test {symbol}", symbol, decimals)

    def token_mint(self, token: str, to: str, amount: int) -> dict[str, Any]:
        data = calldata("mint(address,uint256)", to, amount)
        return self.send_tx(self.accounts[0], token, data=data)

    def token_transfer(self, token: str, frm: str, to: str, amount: int) -> dict[str, Any]:
        return self.send_tx(frm, token, data=calldata("transfer(address,uint256)", to, amount))

    def forward(self, forwarder: str, frm: str, to: str, wei: int) -> dict[str, Any]:
        """Send native coin through the Forwarder contract: an internal transfer to `to`."""
        return self.send_tx(frm, forwarder, data=calldata("forward(address)", to), value=wei)

    def split(
        self, forwarder: str, frm: str, recipients: Sequence[str], amounts: Sequence[int]
    ) -> dict[str, Any]:
        data = calldata("split(address[],uint256[])", list(recipients), list(amounts))
        return self.send_tx(frm, forwarder, data=data, value=sum(amounts))


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    """A fresh anvil (chain id 31337, automine) for one test."""
    node = Anvil(chain_id=31337, workdir=tmp_path).start()
    yield node
    node.stop()


@pytest.fixture
def anvil_factory(tmp_path: Path) -> Iterator[Callable[..., Anvil]]:
    """Start more nodes: `anvil_factory(chain_id=56, block_time=1)`; all stopped afterwards."""
    started: list[Anvil] = []

    def make(chain_id: int = 31337, block_time: float | None = None) -> Anvil:
        workdir = tmp_path / f"anvil-{len(started)}"
        workdir.mkdir()
        node = Anvil(chain_id=chain_id, block_time=block_time, workdir=workdir).start()
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()
