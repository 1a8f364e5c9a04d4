"""Two `chainpay serve` replicas on one PostgreSQL database, and the chain tail's failover.

Invoices are created through both replicas while payments are mined, one per block. The replica
tailing the chain is SIGKILLed five times at random moments (each time after the other replica
took over from the previous kill) and once SIGSTOPped for longer than its lease, then
resumed: it must not commit anything after losing the lease. Afterwards every payment is on the
books exactly once, every invoice is paid, no address was issued twice, the tail skipped no
block, and every event reached the merchant's endpoint.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.gateway import Chain, config_file
from tests.support.process import free_port, http_json, run
from tests.support.receiver import Receiver
from tests.support.replicas import Replica

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
USDT = 10**6


def leader_of(replicas: list[Replica], within: float = 30.0) -> Replica:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                try:
                    if replica.leads():
                        return replica
                except OSError:
                    pass
        time.sleep(0.2)
    raise AssertionError("no replica leads the network")


async def test_two_replicas_credit_every_payment_once_across_five_leader_kills_and_a_pause(
    chain: Chain, postgres_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    # given two replicas on one database, a store, and an endpoint for its events
    ports = [free_port(), free_port()]
    configs = []
    for n, port in enumerate(ports):
        config = config_file(tmp_path / f"r{n}.toml", postgres_url, [chain], port)
        config.write_text(config.read_text() + "[webhooks]\nallow_private_targets = true\n")
        configs.append(config)
    made = run("--config", str(configs[0]), "store", "create", "--name", "s", "--evm-xpub",
               "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt",
               "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]
    replicas = [
        Replica(c, p, tmp_path / f"r{n}.log")
        for n, (c, p) in enumerate(zip(configs, ports, strict=True))
    ]
    for replica in replicas:
        replica.start()
    status, _ = http_json("POST", f"{replicas[1].base}/v1/webhook-endpoints",
                          {"url": receiver.url}, key)  # fmt: skip
    assert status == 201

    # and invoices created through both replicas, at once
    invoices: list[dict[str, Any]] = []
    for n in range(8):
        status, body = http_json("POST", f"{replicas[n % 2].base}/v1/invoices",
                                 {"network": "ethereum", "asset": "USDT", "amount": "3"}, key)  # fmt: skip
        assert status == 201, body
        invoices.append(body)
    assert len({i["address"] for i in invoices}) == 8  # no address issued twice

    # when payments stream in, one per block, while the leader is killed and paused
    def pay() -> None:
        for _ in range(3):
            for invoice in invoices:
                chain.anvil.token_mint(chain.usdt, chain.payer, USDT)
                chain.anvil.token_transfer(
                    chain.usdt, chain.payer, invoice["address"].lower(), USDT
                )
                time.sleep(0.6)  # payments keep arriving across the first kills

    payer = threading.Thread(target=pay)
    payer.start()
    try:
        moments = random.Random(5)
        for _ in range(5):
            await asyncio.sleep(moments.uniform(0.2, 2.0))
            leader = await asyncio.to_thread(leader_of, replicas)
            leader.signal(signal.SIGKILL)
            await asyncio.to_thread(leader.start)
        # a pause longer than the lease: the other replica takes over, the paused one resumes
        leader = await asyncio.to_thread(leader_of, replicas)
        leader.signal(signal.SIGSTOP)
        await asyncio.sleep(13)
        other = await asyncio.to_thread(leader_of, [r for r in replicas if r is not leader])
        leader.signal(signal.SIGCONT)
        await asyncio.to_thread(payer.join)
        chain.anvil.mine(3)

        # then every invoice is paid, on either replica's API
        async def all_paid() -> bool:
            for n, invoice in enumerate(invoices):
                _, body = http_json("GET", f"{replicas[n % 2].base}/v1/invoices/{invoice['id']}",
                                    key=key)  # fmt: skip
                if body["status"] != "paid":
                    return False
            return True

        deadline = time.monotonic() + 60
        while not await all_paid():
            assert time.monotonic() < deadline, [r.log.read_text()[-3000:] for r in replicas]
            await asyncio.sleep(0.5)
        assert other.leads() or leader.leads()
        # and every event committed so far reaches the endpoint, each id with one payload
        with psycopg.connect(postgres_url) as conn:
            events = {row[0] for row in conn.execute("SELECT id FROM events").fetchall()}
        bodies: dict[str, bytes] = {}
        deadline = time.monotonic() + 60
        while not events <= set(bodies):
            assert time.monotonic() < deadline, f"{len(events - set(bodies))} events undelivered"
            for request in receiver.requests:
                event_id = json.loads(request.body)["id"]
                assert bodies.setdefault(event_id, request.body) == request.body
            await asyncio.sleep(0.5)
    finally:
        payer.join(timeout=60)
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.signal(signal.SIGCONT)  # a paused one must be able to stop
            replica.stop()

    with psycopg.connect(postgres_url) as conn:
        # every payment exactly once, every transfer once
        counts = conn.execute(
            "SELECT invoice_id, count(*), count(DISTINCT (tx_hash, log_index)) FROM payments "
            "GROUP BY invoice_id"
        ).fetchall()
        assert sorted((c, d) for _, c, d in counts) == [(3, 3)] * 8
        duplicates = conn.execute(
            "SELECT tx_hash, log_index FROM transfers WHERE NOT orphaned "
            "GROUP BY tx_hash, log_index HAVING count(*) > 1"
        ).fetchall()
        assert duplicates == []
        # the tail skipped no block: every payment's transfer is in the books
        missing = conn.execute(
            "SELECT count(*) FROM payments p WHERE NOT EXISTS (SELECT 1 FROM transfers t "
            "WHERE t.tx_hash = p.tx_hash AND t.log_index = p.log_index)"
        ).fetchone()
        assert missing == (0,)
