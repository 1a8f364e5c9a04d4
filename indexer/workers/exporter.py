"""Periodic analyst export: a fresh Parquet snapshot in `[analytics] export_dir` every interval.

Each run writes `export_dir/snapshot-<UTC time>/` and then points the `latest` symlink at it
with an atomic rename, so analysts always open a complete snapshot through `latest/`. The two
newest snapshots are kept (a query still reading the previous one is not cut off); older ones
are removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

from indexer.config import AnalyticsSettings
from indexer.domain.clock import Clock
from indexer.store.port import Storage

log = logging.getLogger(__name__)
PREFIX = "snapshot-"
STAMP = "%Y%m%dT%H%M%SZ"
KEEP = 2


class PeriodicExporter:
    def __init__(self, db: Storage, settings: AnalyticsSettings, clock: Clock) -> None:
        if settings.export_dir is None:
            raise ValueError("PeriodicExporter needs [analytics] export_dir")
        self.db = db
        self.directory: Path = settings.export_dir
        self.interval = settings.export_interval
        self.clock = clock

    def snapshots(self) -> list[Path]:
        """Complete snapshots, oldest first (a `.partial` directory is not one)."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.name.startswith(PREFIX) and p.is_dir() and not p.name.endswith(".partial")
        )

    def seconds_until_due(self) -> float:
        done = self.snapshots()
        if not done:
            return 0.0
        last = datetime.strptime(done[-1].name[len(PREFIX) :], STAMP).replace(
            tzinfo=self.clock.now().tzinfo
        )
        return max(0.0, self.interval - (self.clock.now() - last).total_seconds())

    async def tick(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / (PREFIX + self.clock.now().strftime(STAMP))
        summary = await self.db.export_snapshot(out)
        link = self.directory / "latest"
        staged = self.directory / ".latest.new"
        staged.unlink(missing_ok=True)
        staged.symlink_to(out.name)
        os.replace(staged, link)
        for old in self.snapshots()[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        rows = sum(t["rows"] for t in summary["tables"].values())
        log.info("analyst export written to %s (%d rows)", out, rows)
        return out

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds_until_due())
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("analyst export failed; retrying in %ss", self.interval)
                await asyncio.sleep(self.interval)
