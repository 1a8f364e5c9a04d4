"""What `chainpay serve` checks and says before it listens: each network's node, head and cursor.

A node that reports another chain id stops start-up (a ConfigError, exit 2) before the port is
bound; a node that does not answer is reported and left to the tail, which keeps trying (and
checks the chain id when it first connects). A config that watches no network is refused when
it comes from defaults alone, and announced loudly otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from api.bootstrap import Gateway
from indexer.chain.errors import RpcError
from indexer.chain.reader import ChainReader
from indexer.chain.rpc import JsonRpcClient
from indexer.config import ConfigError, Settings
from indexer.domain.network import Network
from indexer.store.rows import Cursor
from indexer.workers.tail import sync_progress

log = logging.getLogger("chainpay")
PROBE_TIMEOUT = 5.0  # seconds per node request; a node that is down refuses at once


def require_networks(settings: Settings) -> None:
    """No config and no networks: refuse, rather than serve a gateway that watches nothing."""
    if settings.networks:
        return
    if settings.source == "defaults":
        raise ConfigError(
            "defaults",
            "networks",
            "no config file (--config, $CHAINPAY_CONFIG or ./chainpay.toml) and no network "
            "to watch: refusing to start",
        )
    log.warning(
        "%s configures no [networks.*]: chainpay watches NO chain, sees no payment, and "
        "/readyz answers 503",
        settings.source,
    )


async def probe_networks(gateway: Gateway) -> list[str]:
    """One banner line per network; raises ConfigError when a node is on another chain."""
    networks = list(gateway.settings.networks.values())
    return list(await asyncio.gather(*(_probe(gateway, network) for network in networks)))


async def _probe(gateway: Gateway, network: Network) -> str:
    name = network.name
    cursor = await gateway.db.read(lambda c: c.chain.get_cursor(name))
    where = f"network {name} (chain id {network.chain_id}) node {redacted(network.rpc_url)}"
    client = JsonRpcClient(network.rpc_url, name, timeout=PROBE_TIMEOUT)
    reader = ChainReader(client)
    try:
        chain_id = await reader.chain_id()
        if chain_id != network.chain_id:
            raise ConfigError(
                gateway.settings.source,
                f"networks.{name}.chain_id",
                f"node reports chain id {chain_id}, not {network.chain_id}",
            )
        head = await reader.head_number()
        syncing = await sync_progress(client, reader, gateway.clock.now().timestamp())
    except RpcError as exc:
        return f"{where}: unreachable ({exc}); cursor {_number(cursor)}; the tail keeps trying"
    finally:
        await client.close()
    if syncing is not None:
        return (
            f"{where}: head {head}, cursor {_number(cursor)}: the node is syncing "
            f"({syncing.describe()}); waiting for it, not ready"
        )
    if cursor is None:
        start = max(head - network.confirmations, 0)
        return f"{where}: head {head}, no cursor yet: first start, watching from block {start + 1}"
    behind = max(head - cursor.number, 0)
    seconds = behind * network.block_time
    if seconds > network.ready_lag_seconds:
        return (
            f"{where}: head {head}, cursor {cursor.number}: catching up {behind} blocks "
            f"(about {seconds:.0f} s of chain at {network.block_time:g} s a block)"
        )
    return f"{where}: head {head}, cursor {cursor.number}: at the head"


def redacted(url: str) -> str:
    """The node's URL without user, password, path or query: they may carry a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def _number(cursor: Cursor | None) -> str:
    return "none yet" if cursor is None else str(cursor.number)
