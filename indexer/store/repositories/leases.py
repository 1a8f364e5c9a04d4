"""Leases with fencing tokens (SQL shared by both adapters)."""

from __future__ import annotations

from datetime import datetime

from indexer.store.repositories.base import Repository
from indexer.store.rows import Lease


class SqlLeaseRepository(Repository):
    """The leases repository: its SQL on one connection."""

    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> int | None:
        """Take or keep the lease `name` until `until`: free, expired, or already ours.

        Returns the fencing token (new when the holder changes), or None while another holder's
        lease runs."""
        self.conn.execute(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (name) DO NOTHING",
            [name, holder, now],
        )
        row = self.conn.execute(
            "UPDATE leases SET token = CASE WHEN holder = ? AND expires_at > ? THEN token "
            "ELSE token + 1 END, holder = ?, expires_at = ? "
            "WHERE name = ? AND (holder = ? OR expires_at <= ?) RETURNING token",
            [holder, now, holder, until, name, holder, now],
        ).fetchone()
        return None if row is None else int(row[0])

    def renew(self, name: str, holder: str, token: int, until: datetime) -> bool:
        """Extend our lease if it is still ours with this token: the fencing check, made in
        the transaction whose writes it guards."""
        rows = self.conn.execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ? "
            "RETURNING token",
            [until, name, holder, token],
        ).fetchall()
        return bool(rows)

    def release(self, name: str, holder: str, token: int, now: datetime) -> None:
        """Let the lease go at a clean stop, so another holder takes over at once."""
        self.conn.execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ?",
            [now, name, holder, token],
        )

    def all_leases(self) -> list[Lease]:
        rows = self.conn.execute(
            "SELECT name, holder, token, expires_at FROM leases ORDER BY name"
        ).fetchall()
        return [Lease(name, holder, int(token), expires) for name, holder, token, expires in rows]
