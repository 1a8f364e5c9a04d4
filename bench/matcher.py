"""Benchmark of the issued-address matcher against a plain Python set of hex strings.

Run: .venv/bin/python bench/matcher.py [sizes...]   (default 1000 100000 1000000)

Each (structure, size) runs in a fresh subprocess so RSS figures are not polluted by earlier
runs. Addresses arrive as fresh hex strings, as they would from DuckDB, so a structure that keeps
strings pays for them. Lookups screen 1,000,000 random non-issued addresses (which also gives the
bloom filter's false-positive rate) and then a sample of issued ones.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBES = 1_000_000
HIT_SAMPLE = 100_000


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_keys(n: int) -> list[bytes]:
    blob = os.urandom(20 * n)
    return [blob[i : i + 20] for i in range(0, 20 * n, 20)]


def as_hex(keys: list[bytes]) -> Iterator[str]:
    return ("0x" + key.hex() for key in keys)


def run_one(kind: str, size: int) -> dict[str, float]:
    issued = random_keys(size)
    probes = ["0x" + key.hex() for key in random_keys(PROBES)]
    hits = ["0x" + key.hex() for key in issued[:HIT_SAMPLE]]
    from indexer.matcher import AddressMatcher  # imported before measuring: not the structure

    before, peak_before = rss_mb(), peak_rss_mb()
    started = time.perf_counter()
    if kind == "matcher":
        matcher = AddressMatcher()
        matcher.add_many(as_hex(issued))
        screen = matcher.screen
    else:
        plain = set(as_hex(issued))

        def screen(addresses: list[str]) -> set[str]:
            return {a for a in addresses if a.lower() in plain}

    build = time.perf_counter() - started
    growth, peak = rss_mb() - before, max(0.0, peak_rss_mb() - peak_before)

    started = time.perf_counter()
    found = screen(probes)
    miss_rate = PROBES / (time.perf_counter() - started)
    assert not found, "random addresses collided with issued ones"
    started = time.perf_counter()
    confirmed = screen(hits)
    hit_rate = len(hits) / (time.perf_counter() - started)
    assert len(confirmed) == len(hits)
    false_positives = matcher.stats().false_positives if kind == "matcher" else 0
    return {
        "build_s": build,
        "misses_per_s": miss_rate,
        "hits_per_s": hit_rate,
        "fp_rate": false_positives / PROBES,
        "rss_growth_mb": growth,
        "peak_growth_mb": peak,
    }


def main(sizes: list[int]) -> None:
    print(f"probes: {PROBES:,} random non-issued addresses; hits: up to {HIT_SAMPLE:,} issued")
    header = (
        f"{'structure':<18}{'issued':>10}{'build s':>9}{'misses/s':>12}{'hits/s':>12}"
        f"{'FP rate':>10}{'RSS +MB':>9}{'peak +MB':>10}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        for kind, label in (("matcher", "AddressMatcher"), ("baseline", "set of hex str")):
            output = subprocess.run(
                [sys.executable, __file__, "--one", kind, str(size)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(output)
            fp = f"{r['fp_rate']:.2e}" if kind == "matcher" else "-"
            print(
                f"{label:<18}{size:>10,}{r['build_s']:>9.2f}{r['misses_per_s']:>12,.0f}"
                f"{r['hits_per_s']:>12,.0f}{fp:>10}{r['rss_growth_mb']:>9.1f}"
                f"{r['peak_growth_mb']:>10.1f}"
            )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2], int(sys.argv[3]))))
    else:
        main([int(arg) for arg in sys.argv[1:]] or [1_000, 100_000, 1_000_000])
