"""Debian's `wrk` as the benchmarks' HTTP load generator: a POST script and a run's figures.

A Python client would cap the rate it measures; wrk (C, one thread per run here) does not.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LUA = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.timeout
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%d\\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, bad))
end
"""


def post_script(path: Path, body: dict[str, Any], key: str) -> Path:
    """Write a wrk script that POSTs `body` (JSON) with `key` as the bearer token."""
    path.write_text(_LUA % (json.dumps(json.dumps(body)), key), encoding="utf-8")
    return path


def wrk(
    urls: str | Sequence[str], script: Path, seconds: int, connections: int
) -> dict[str, float]:
    """Drive every URL at once, `connections` split over them: rate summed (req/s), p50, p99
    and max the worst of them (ms), errors summed (non-2xx/3xx, connect, timeout)."""
    targets = [urls] if isinstance(urls, str) else list(urls)
    results: list[tuple[int, int, float, float, float, int]] = []

    def one(url: str) -> None:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections // len(targets)}", f"-d{seconds}s", "-s",
             str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        found = re.search(r"RESULT (\d+) (\d+) (\S+) (\S+) (\S+) (\d+)", out)
        assert found is not None, out
        r, d, p50, p99, worst, errors = found.groups()
        results.append((int(r), int(d), float(p50), float(p99), float(worst), int(errors)))

    threads = [threading.Thread(target=one, args=(url,)) for url in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != len(targets):
        raise RuntimeError("a wrk run failed (see its output above)")
    return {
        "rate": sum(r / (d / 1e6) for r, d, *_ in results),
        "p50": max(row[2] for row in results),
        "p99": max(row[3] for row in results),
        "max": max(row[4] for row in results),
        "errors": sum(row[5] for row in results),
    }
