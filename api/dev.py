"""`chainpay dev`: a local dev chain, a test USDT, a demo store and the gateway in one command.

`chainpay dev pay INVOICE_ID` then pays an invoice from a funded dev account, the way a
customer's wallet would. Everything lives in one dev directory (`.dev` by default): the anvil
chain state, the DuckDB file, the generated config and `dev.json` (the demo store's API key,
a dev-only key). The demo store receives to addresses of a PUBLIC test mnemonic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import functools
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound, Web3Exception
from web3.types import TxParams, TxReceipt, Wei

from api.bootstrap import Gateway
from api.command import Handler
from api.logs import configure_logging
from indexer.config import load_settings
from indexer.domain.errors import ChainpayError, ValidationError
from indexer.domain.money import parse_amount

DEMO_MNEMONIC = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)
# m/44'/60'/0' of DEMO_MNEMONIC: the store derives its receiving addresses from it.
DEMO_XPUB = "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt"  # noqa: E501
STORE_NAME = "Demo shop"
NETWORK = "devnet"
CHAIN_ID = 31337
CONFIRMATIONS = 3
USDT_DECIMALS = 6
FAUCET_USDT = 1_000_000 * 10**USDT_DECIMALS  # minted to each customer account
HOST = "127.0.0.1"
ServeLoop = Callable[..., Awaitable[None]]  # api.cli.serve


class DevError(ChainpayError):
    """The dev setup cannot go on (anvil missing, port taken, gateway not running, …)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class DevState:
    """dev.json: what `chainpay dev pay` and the next `chainpay dev` need to know."""

    gateway_url: str = ""
    anvil_url: str = ""
    token: str | None = None
    store_id: str | None = None
    api_key: str | None = None  # dev only: a demo key on a demo store

    @classmethod
    def load(cls, directory: Path) -> DevState:
        path = directory / "dev.json"
        if not path.exists():
            return cls()
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})

    def save(self, directory: Path) -> None:
        path = directory / "dev.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        path.chmod(0o600)


# -- command line --------------------------------------------------------------------------------
def add_parsers(sub: Any, serve: ServeLoop) -> dict[str, Handler]:
    """Add dev and dev pay to `sub`; return their handlers by command key.

    `serve` is api.cli's serve loop, passed in so the dev gateway runs exactly as
    `chainpay serve` does without this module importing api.cli.
    """
    dev = sub.add_parser(
        "dev", help="run the gateway on a local dev chain (anvil) with a demo store and test USDT"
    )
    dev.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    dev.add_argument("--dir", default=".dev", help="dev directory (default ./.dev)")
    dev.set_defaults(command_key="dev")
    pay = dev.add_subparsers(dest="dev_command").add_parser(
        "pay", help="pay an invoice from a funded dev account, as a customer's wallet would"
    )
    pay.add_argument("invoice_id")
    pay.add_argument("--amount", help="decimal amount to send (default: what is still due)")
    pay.add_argument("--dir", default=argparse.SUPPRESS, help="dev directory (default ./.dev)")
    pay.set_defaults(command_key="dev pay")
    return {"dev": functools.partial(cmd_dev, serve=serve), "dev pay": cmd_dev_pay}


def cmd_dev(args: argparse.Namespace, serve: ServeLoop) -> int:
    try:
        return run_dev(Path(args.dir), args.port, serve)
    except DevError as exc:
        print(f"chainpay dev: {exc}", file=sys.stderr)
        return exc.exit_code


def cmd_dev_pay(args: argparse.Namespace) -> int:
    try:
        state = DevState.load(Path(args.dir).resolve())
        print(asyncio.run(pay_invoice(state, args.dir, args.invoice_id, args.amount)))
        return 0
    except DevError as exc:
        print(f"chainpay dev pay: {exc}", file=sys.stderr)
        return exc.exit_code


# -- chainpay dev --------------------------------------------------------------------------------
def run_dev(directory: Path, port: int, serve: ServeLoop) -> int:
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    anvil_bin = find_anvil()
    with _exclusive(directory):
        _check_port(port)
        anvil = AnvilProcess(anvil_bin, directory)
        anvil.start()
        try:
            state = DevState.load(directory)
            state.anvil_url = anvil.http_url
            state.gateway_url = f"http://{HOST}:{port}"
            database = directory / "chainpay.duckdb"
            state.token, reason = asyncio.run(
                prepare_chain(anvil.http_url, state.token, database.exists(), read_cursor(database))
            )
            if reason is not None:
                reset_database(directory, reason)
                state.store_id = state.api_key = None
            config = write_config(directory, anvil.ws_url, state.token, port)
            settings = load_settings(config)
            configure_logging(settings.log_format, settings.log_level)
            gateway = Gateway(settings)
            gateway.open(migrate=True)
            asyncio.run(_run(gateway, state, directory, anvil, serve))
        finally:
            anvil.stop()
    return 0


async def _run(
    gateway: Gateway, state: DevState, directory: Path, anvil: Any, serve: ServeLoop
) -> None:
    try:
        await ensure_demo_store(gateway, state)
        state.save(directory)
    except BaseException:
        await gateway.close()
        raise
    await serve(
        gateway,
        HOST,
        int(state.gateway_url.rsplit(":", 1)[1]),
        on_ready=lambda: print(banner(state, directory, anvil.ws_url), flush=True),
    )


async def ensure_demo_store(gateway: Gateway, state: DevState) -> None:
    """Reuse the demo store and key from dev.json; create them on a fresh database."""
    stores = gateway.stores.stores
    if state.store_id in stores and state.api_key and gateway.stores.authenticate(state.api_key):
        return
    existing = next((s for s in stores.values() if s.name == STORE_NAME), None)
    if existing is not None:  # dev.json was lost: same store, a new dev key
        key = await gateway.stores.create_key(existing.id)
        state.store_id, state.api_key = existing.id, key.secret
        return
    store, key = await gateway.stores.create_store(STORE_NAME, DEMO_XPUB)
    state.store_id, state.api_key = store.id, key.secret


def find_anvil() -> Path:
    """anvil from the npm package (`npm ci`, run by .ci/setup), else from PATH."""
    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        modules = base / "node_modules"
        # The platform binary itself, not the node wrapper: signals then reach anvil directly.
        native = sorted(modules.glob("@foundry-rs/anvil-*/bin/anvil"))
        for candidate in [*native, modules / ".bin" / "anvil"]:
            if candidate.is_file():
                return candidate
    found = shutil.which("anvil")
    if found is None:
        raise DevError("anvil (the local dev chain) is not installed: run .ci/setup")
    return Path(found)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    with (directory / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevError(f"another `chainpay dev` is already using {directory}") from None
        yield


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise DevError(f"port {port} is in use: pick another one with --port") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class AnvilProcess:
    """anvil with a block every second and its chain saved in the dev directory (`--state`)."""

    def __init__(self, binary: Path, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def start(self) -> None:
        command = [
            str(self.binary), "--host", HOST, "--port", str(self.port),
            "--chain-id", str(CHAIN_ID), "--block-time", "1",
            "--state", str(self.directory / "anvil-state.json"),
        ]  # fmt: skip
        with (self.directory / "anvil.log").open("ab") as log:
            # Own session: Ctrl-C reaches chainpay, which stops the gateway first, then anvil.
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # runs before chainpay starts any thread
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevError(f"anvil exited at start; see {self.directory / 'anvil.log'}", 1)
            with contextlib.suppress(OSError):
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            time.sleep(0.05)
        self.stop()
        raise DevError(f"anvil did not start in 20 s; see {self.directory / 'anvil.log'}", 1)

    def stop(self) -> None:
        """SIGTERM: anvil writes its state file on the way out."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _die_with_parent() -> None:
    """Linux: anvil gets SIGTERM if chainpay dies without cleaning up (no orphan chain)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# -- the dev chain -------------------------------------------------------------------------------
# web3.py drives the dev chain: deploying the test token and sending a customer's payment are
# what a wallet does, and AsyncWeb3 does them with the contract's ABI. The indexer's hot path
# keeps its own JSON-RPC client (docs/discussions.md, "web3.py: the dev chain, not the tail").
DevWeb3 = AsyncWeb3[AsyncHTTPProvider]


def connect(url: str) -> DevWeb3:
    return AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": 30}))


def test_token(w3: DevWeb3, address: str | None = None) -> Any:
    artifact = json.loads(
        resources.files("indexer.chain").joinpath("contracts/TestToken.json").read_text()
    )
    if address is None:
        return w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact["abi"])


async def mined(w3: DevWeb3, sending: Awaitable[HexBytes]) -> TxReceipt:
    """Send from an unlocked anvil account; return the receipt once mined (a block a second)."""
    try:
        tx_hash = await sending
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.1)
    except (Web3Exception, ValueError) as exc:  # reverts, node errors, the 30 s timeout
        raise DevError(f"the dev chain refused the transaction: {exc}", 1) from None
    if receipt["status"] != 1:
        raise DevError(f"transaction {tx_hash.to_0x_hex()} reverted", 1)
    return receipt


async def prepare_chain(
    url: str, token: str | None, has_database: bool, cursor: tuple[int, str] | None
) -> tuple[str, str | None]:
    """The test USDT (deployed unless the saved chain has it), and why the database must be
    reset (the chain it indexed is gone), or None."""
    w3 = connect(url)
    try:
        if token and await w3.eth.get_code(to_checksum_address(token)):
            if cursor is None:
                return token, None
            try:
                block = await w3.eth.get_block(cursor[0])
            except BlockNotFound:
                block = None
            if block is None or block["hash"].to_0x_hex().lower() != cursor[1].lower():
                return token, f"block {cursor[0]} the database indexed is not on the dev chain"
            return token, None
        token = await deploy_usdt(w3)
        fresh = "the dev chain starts from scratch (its saved state is missing)"
        return token, fresh if has_database else None
    finally:
        await w3.provider.disconnect()


async def deploy_usdt(w3: DevWeb3) -> str:
    accounts = list(await w3.eth.accounts)  # web3 types it as a 1-tuple
    owner = accounts[0]
    deploy = test_token(w3).constructor("Tether USD (dev)", "USDT", USDT_DECIMALS)
    receipt = await mined(w3, deploy.transact({"from": owner}))
    token = test_token(w3, receipt["contractAddress"])
    nonce = await w3.eth.get_transaction_count(owner, "pending")
    sent = [  # explicit nonces: every mint goes out at once and lands in one block
        token.functions.mint(customer, FAUCET_USDT).transact({"from": owner, "nonce": nonce + i})
        for i, customer in enumerate(accounts[1:])
    ]
    for sending in sent:
        await mined(w3, sending)
    return str(token.address)


def read_cursor(database: Path) -> tuple[int, str] | None:
    """The last block the database indexed on the dev network, if any."""
    if not database.exists():
        return None
    try:
        conn = duckdb.connect(str(database), read_only=True)
    except duckdb.Error:
        return None  # unreadable: the gateway reports it when it opens the file
    try:
        row = conn.execute(
            "SELECT block_number, block_hash FROM chain_cursors WHERE network = ?", [NETWORK]
        ).fetchone()
    except duckdb.Error:
        row = None  # not migrated yet: nothing indexed
    finally:
        conn.close()
    return (int(row[0]), str(row[1])) if row else None


def reset_database(directory: Path, reason: str) -> None:
    print(
        f"chainpay dev: {reason}, so the dev database starts over "
        f"({directory / 'chainpay.duckdb'} removed): a new demo store, a new API key, "
        "and invoices from before are gone.",
        file=sys.stderr,
    )
    for name in ("chainpay.duckdb", "chainpay.duckdb.wal"):
        (directory / name).unlink(missing_ok=True)


def write_config(directory: Path, rpc_url: str, token: str, port: int) -> Path:
    """The dev config, written on every start (the anvil port changes)."""
    path = directory / "chainpay.toml"
    path.write_text(
        f"""# Written by `chainpay dev` on every start: edit chainpay.toml for real use, not this.
database = {json.dumps(str(directory / "chainpay.duckdb"))}
public_url = "http://{HOST}:{port}"

[server]
host = "{HOST}"
port = {port}

[webhooks]
allow_private_targets = true  # dev only: lets webhooks reach a receiver on this machine

[networks.{NETWORK}]
title = "Local dev chain"
chain_id = {CHAIN_ID}
rpc_url = "{rpc_url}"
confirmations = {CONFIRMATIONS}
native = {{ symbol = "ETH", decimals = 18 }}

[[networks.{NETWORK}.tokens]]
symbol = "USDT"
contract = "{token}"
decimals = {USDT_DECIMALS}
"""
    )
    return path


def banner(state: DevState, directory: Path, anvil_ws: str) -> str:
    url = state.gateway_url
    dir_flag = "" if directory == Path(".dev").resolve() else f" --dir {directory}"
    line = "=" * 78
    return f"""
{line}
 chainpay dev: the gateway on a local dev chain
{line}
 !! WARNING: the demo store's addresses come from the PUBLIC test mnemonic
 !!   "{DEMO_MNEMONIC}"
 !! Anyone can spend what is sent to them. NEVER use this mnemonic for real funds.
{line}

 Gateway      {url}
 Dev chain    {anvil_ws} (anvil, chain id {CHAIN_ID}, a block every second)
 Network      "{NETWORK}": ETH and test USDT at {state.token}, {CONFIRMATIONS} confirmations
 Demo store   {state.store_id} ({STORE_NAME})
 API key      {state.api_key}
              (a dev-only key, kept in {directory / "dev.json"})

 Create an invoice:

   curl -s {url}/v1/invoices \\
     -H 'Authorization: Bearer {state.api_key}' \\
     -H 'Content-Type: application/json' \\
     -d '{{"network": "{NETWORK}", "asset": "USDT", "amount": "10.00", "order_id": "order-1"}}'

 Then:
   checkout page    {url}/pay/INVOICE_ID   (the invoice's checkout_url)
   pay it           chainpay dev pay INVOICE_ID [--amount 4.2]{dir_flag}
   metrics          {url}/metrics
   API description  {url}/openapi.json
   readiness        {url}/readyz

 Ctrl-C stops the gateway and the dev chain; both keep their state in {directory}.
"""


# -- chainpay dev pay ----------------------------------------------------------------------------
async def pay_invoice(state: DevState, directory: str, invoice_id: str, amount: str | None) -> str:
    if not state.api_key or not state.anvil_url or not state.token:
        raise DevError(f"no dev setup in {directory}: start `chainpay dev` first")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        invoice = await _fetch_invoice(session, state, invoice_id)
    decimals = USDT_DECIMALS if invoice["asset"] == "USDT" else 18
    text = amount if amount is not None else invoice["amount_due"]
    try:
        units = parse_amount(text, decimals, "--amount")
    except ValidationError as exc:
        if amount is None:
            raise DevError(f"nothing is due on {invoice_id} (status {invoice['status']})") from None
        raise DevError(f"--amount: {exc.message}") from None
    w3 = connect(state.anvil_url)
    try:
        customer = list(await w3.eth.accounts)[1]
        to = to_checksum_address(invoice["address"])
        if invoice["asset"] == "USDT":
            transfer = test_token(w3, state.token).functions.transfer(to, units)
            receipt = await mined(w3, transfer.transact({"from": customer}))
        else:
            payment: TxParams = {"from": customer, "to": to, "value": Wei(units)}
            receipt = await mined(w3, w3.eth.send_transaction(payment))
    finally:
        await w3.provider.disconnect()
    return (
        f"Sent {text} {invoice['asset']} from {customer} to {to}\n"
        f"  tx {receipt['transactionHash'].to_0x_hex()} in block {receipt['blockNumber']}\n"
        f"Confirmations arrive on their own (a block every second): watch "
        f"{invoice['checkout_url']}"
    )


async def _fetch_invoice(
    session: aiohttp.ClientSession, state: DevState, invoice_id: str
) -> dict[str, Any]:
    url = f"{state.gateway_url}/v1/invoices/{invoice_id}"
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {state.api_key}"}) as r:
            body = await r.json()
            status = r.status
    except aiohttp.ClientConnectionError:
        raise DevError(
            f"no gateway answers at {state.gateway_url}: is `chainpay dev` running?", 1
        ) from None
    if status != 200:
        message = body.get("error", {}).get("message", f"HTTP {status}")
        raise DevError(f"cannot read invoice {invoice_id}: {message}")
    return dict(body)
