"""Commits of other processes, heard through PostgreSQL's LISTEN/NOTIFY.

Triggers (`SCHEMA`, applied with the migrations) call `pg_notify` in the very transaction that
inserts events (channel `chainpay_events`) or changes stores, API keys or webhook endpoints
(`chainpay_settings`). NOTIFY is transactional: the notification is delivered when that
transaction commits, never for one rolled back, and PostgreSQL folds repeats within one
transaction into one.

`follow` keeps one dedicated connection LISTENing and calls `wake` with the kinds of what
committed ({"events"}, {"settings"}) as each notification arrives. Notifications sent while no
connection listens are lost, so after every (re)connect it wakes with every kind once; a
connection that dies (PostgreSQL restarted, a network cut) is replaced after `retry` seconds,
and an idle one is checked every `keepalive` seconds. Listeners keep their own polling as the
safety net: a notification makes work happen sooner, never makes it happen at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from indexer import metrics

log = logging.getLogger(__name__)

CHANNELS = {"chainpay_events": "events", "chainpay_settings": "settings"}
EVERY_KIND = frozenset(CHANNELS.values())
_SETTINGS_TABLES = ("stores", "api_keys", "webhook_endpoints")

SCHEMA = (
    """CREATE OR REPLACE FUNCTION chainpay_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END $$""",
    "CREATE OR REPLACE TRIGGER events_notify AFTER INSERT ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION chainpay_notify('chainpay_events')",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION chainpay_notify('chainpay_settings')"
        for table in _SETTINGS_TABLES
    ),
)


async def follow(
    url: str,
    wake: Callable[[set[str]], None],
    *,
    keepalive: float = 5.0,
    retry: float = 1.0,
    connect_timeout: float = 5.0,
) -> None:
    """Listen until cancelled, calling `wake(kinds)` on the event loop (see the docstring)."""
    lost: str | None = None
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=int(max(connect_timeout, 1))
            )
        except psycopg.Error as exc:
            if lost is None:
                lost = _first_line(exc)
                log.warning("cannot listen for other replicas' commits: %s; retrying", lost)
            await asyncio.sleep(retry)
            continue
        try:
            async with conn:
                for channel in CHANNELS:
                    await conn.execute(f"LISTEN {channel}".encode())
                metrics.DB_LISTENING.set(1)
                if lost is not None:
                    log.warning("listening for other replicas' commits again (after: %s)", lost)
                    lost = None
                _wake(wake, set(EVERY_KIND))  # whatever committed while nobody listened
                while True:
                    async for note in conn.notifies(timeout=keepalive):
                        kind = CHANNELS.get(note.channel)
                        if kind is not None:
                            _wake(wake, {kind})
                    await conn.execute(b"SELECT 1")  # a dead connection raises here
        except psycopg.Error as exc:
            metrics.DB_LISTENING.set(0)
            lost = _first_line(exc)
            log.warning("stopped listening for other replicas' commits: %s; reconnecting", lost)
            await asyncio.sleep(retry)
        finally:
            metrics.DB_LISTENING.set(0)


def _wake(wake: Callable[[set[str]], None], kinds: set[str]) -> None:
    for kind in kinds:
        metrics.DB_REMOTE_COMMITS.labels(kind).inc()
    try:
        wake(kinds)
    except Exception:  # a listener's bug must not stop the others from hearing commits
        log.exception("a remote-commit listener failed")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
