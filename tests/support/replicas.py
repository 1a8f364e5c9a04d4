"""A `chainpay serve` replica as a real process: started, signalled, asked whether it leads."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.process import CHAINPAY, http_json, wait_http


class Replica:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [CHAINPAY, "--config", str(self.config), "serve", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_http(f"{self.base}/healthz", self.process, timeout=timeout)

    def leads(self, network: str = "ethereum") -> bool:
        """Its /readyz names this process as the network's lease holder."""
        _, body = http_json("GET", f"{self.base}/readyz")
        leader = (body.get("networks", {}).get(network) or {}).get("leader") or ""
        return leader.split(":")[1:2] == [str(self.pid)]

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)
        if sig == signal.SIGKILL:
            assert self.process is not None
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
