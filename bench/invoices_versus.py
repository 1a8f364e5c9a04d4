"""Invoice creation of this checkout against an earlier commit, under the same conditions.

    .venv/bin/python bench/invoices_versus.py BASELINE_REF [--rounds 5] [--count 2000]
                                              [--concurrency 32]

Checks BASELINE_REF out into a temporary git worktree, starts a `chainpay serve` from it and
one from this checkout (each on a fresh DuckDB file, both through this venv's Python), plus
the trivial aiohttp endpoint of bench/invoices.py. Each round drives the trivial endpoint, the
baseline and this checkout back to back, so a slow minute of a shared host hits all three; the
medians of the ratios are printed last. The host's speed varies more between minutes than the
difference being measured: compare within a round, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.invoices import TRIVIAL, drive, start_gateway  # noqa: E402
from tests.support.process import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("baseline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    worktree = Path(tempfile.mkdtemp(prefix="chainpay-baseline-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(worktree), args.baseline],
        check=True,
    )
    processes = []
    try:
        base = start_gateway(worktree)
        processes.append(base[0])
        this = start_gateway(ROOT)
        processes.append(this[0])
        trivial_port = free_port()
        processes.append(subprocess.Popen([sys.executable, "-c", TRIVIAL, str(trivial_port)]))
        time.sleep(1.0)
        trivial_url = f"http://127.0.0.1:{trivial_port}/v1/invoices"
        for _, url, key in (base, this):  # warm both up: first requests start pools, caches
            asyncio.run(drive(url, key, args.count, args.concurrency))
        rounds = []
        for number in range(args.rounds):
            t, _ = asyncio.run(drive(trivial_url, "-", args.count, args.concurrency))
            b, _ = asyncio.run(drive(base[1], base[2], args.count, args.concurrency))
            n, _ = asyncio.run(drive(this[1], this[2], args.count, args.concurrency))
            rounds.append((t, b, n))
            print(
                f"round {number}: trivial {t:,.0f}/s  baseline {b:,.0f}/s ({100 * b / t:.1f}%)  "
                f"this {n:,.0f}/s ({100 * n / t:.1f}%)  this/baseline {n / b:.2f}",
                flush=True,
            )
        print(
            f"median of {len(rounds)} rounds at concurrency {args.concurrency}: "
            f"baseline {100 * statistics.median(b / t for t, b, _ in rounds):.1f}% of trivial, "
            f"this {100 * statistics.median(n / t for t, _, n in rounds):.1f}%, "
            f"this/baseline {statistics.median(n / b for _, b, n in rounds):.2f}x"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(20)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False
        )


if __name__ == "__main__":
    main()
