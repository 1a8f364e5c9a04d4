"""The unswept balance gauge: what forwarder deposit addresses hold for their treasuries.

Every `interval` seconds, one read of the books (`unswept_amounts`: per address, confirmed
credits minus canonical sweeps, never below zero, summed per network and asset) sets
`chainpay_unswept_amount{network,asset}` for every configured asset (0 when nothing waits), and
`chainpay_unswept_alert_threshold` comes from `[sweep] alert_above`; ChainpayUnsweptValueHigh
compares the two. It reads on a reader thread in its own snapshot, never in a block's
transaction. On a shared store it runs in the process holding its lease, and clears its series
when it stops, so a former holder never reports a stale balance beside the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from decimal import Decimal

from indexer import metrics
from indexer.domain.network import Network
from indexer.store.port import Storage

log = logging.getLogger(__name__)


class UnsweptGauge:
    def __init__(
        self,
        db: Storage,
        networks: Mapping[str, Network],
        alert_above: Mapping[str, str],
        interval: float = 60.0,
    ) -> None:
        self.db = db
        self.networks = dict(networks)
        self.alert_above = dict(alert_above)
        self.interval = interval

    def set_thresholds(self) -> None:
        """One threshold series per configured (network, asset) that `alert_above` names."""
        for name, network in self.networks.items():
            for asset in network.assets:
                value = self.alert_above.get(asset.symbol)
                if value is not None:  # checked against the asset's decimals by the config
                    metrics.UNSWEPT_ALERT_THRESHOLD.labels(name, asset.symbol).set(
                        float(Decimal(value))
                    )

    async def measure(self) -> dict[tuple[str, str], int]:
        """Read the books once and set the gauge; returns the exact amounts (base units)."""
        amounts = await self.db.read(lambda uow: uow.chain.unswept_amounts())
        for name, network in self.networks.items():
            for asset in network.assets:
                units = amounts.get((name, asset.symbol), 0)
                # int / int is the correctly rounded float of the exact quotient
                value = units / 10**asset.decimals
                metrics.UNSWEPT_AMOUNT.labels(name, asset.symbol).set(value)
        return amounts

    async def run(self) -> None:
        self.set_thresholds()
        try:
            while True:
                try:
                    await self.measure()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a storage outage: /readyz reports it; try later
                    log.warning("unswept balance not measured: %s", exc)
                await asyncio.sleep(self.interval)
        finally:
            metrics.UNSWEPT_AMOUNT.clear()
