"""Address derivation in a worker process, off the gateway's GIL.

Deriving an address costs ~70 us of CPU in bip-utils and coincurve, nearly all of it holding the
GIL. In a thread that time is taken from the event loop and from the DuckDB writer, which must
win the GIL back after every statement; in one worker process it runs on the other core. The
process is started on first use, shared by every store of this process, and holds nothing
secret: it sees extended public keys only.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

from indexer.wallet import derive_addresses

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def submit(xpub: str, start: int, count: int) -> Future[list[str]]:
    """Derive `count` addresses from `start` in the worker process."""
    global _pool
    with _lock:
        if _pool is None:
            # spawn: the gateway runs threads (DuckDB, readers), which fork would copy mid-state
            _pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
        pool = _pool
    try:
        return pool.submit(derive_addresses, xpub, start, count)
    except RuntimeError:  # broken (the worker died) or shut down: start a new one next time
        with _lock:
            if _pool is pool:
                _pool = None
        raise


def shutdown() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _watch_parent(parent: int) -> None:
    """In the worker: exit once the gateway is gone, even if it was killed without a word."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="deriver-parent-watch", daemon=True).start()
