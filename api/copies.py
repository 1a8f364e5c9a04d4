"""The commands that copy the store out and back: `chainpay export`, `backup` and `restore`.

`export` and `backup` work either way: with the gateway stopped they open the DuckDB file
read-only; while `chainpay serve` holds it they ask the gateway over its admin socket, and the
gateway does the copy on its own cursor (see Database.export_snapshot and backup). `restore` only
runs with the gateway stopped.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.command import Handler, UsageError, call_admin, settings_from
from indexer.store.duckdb.backup import RESTORE_ADDRESS_GAP, backup_file, restore_file
from indexer.store.duckdb.connection import open_connection
from indexer.store.duckdb.export import write_snapshot
from indexer.store.errors import DatabaseLocked


def add_parsers(sub: Any) -> dict[str, Handler]:
    """Add export, backup and restore to `sub`; return their handlers by command key."""
    export = sub.add_parser(
        "export", help="write a consistent Parquet copy of the analyst tables (safe while serving)"
    )
    export.add_argument(
        "--out", help="new or empty directory (default: ./chainpay-export-<UTC time>)"
    )
    export.add_argument("--json", action="store_true", help="print the snapshot summary as JSON")
    export.set_defaults(command_key="export")

    backup = sub.add_parser(
        "backup", help="write a consistent copy of the database to a new file (safe while serving)"
    )
    backup.add_argument("out_file", metavar="OUT_FILE", help="the backup file to create")
    backup.add_argument("--json", action="store_true", help="print the backup summary as JSON")
    backup.set_defaults(command_key="backup")

    restore = sub.add_parser(
        "restore", help="replace the database by a backup (the gateway must be stopped)"
    )
    restore.add_argument("backup_file", metavar="BACKUP_FILE")
    restore.add_argument(
        "--skip-addresses",
        type=int,
        default=RESTORE_ADDRESS_GAP,
        metavar="N",
        help="start new invoices N HD indexes past the backup's highest (default %(default)s)",
    )
    restore.add_argument(
        "--force", action="store_true", help="replace an existing database (kept as <file>.bak)"
    )
    restore.set_defaults(command_key="restore")
    return {"export": cmd_export, "backup": cmd_backup, "restore": cmd_restore}


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or f"chainpay-export-{stamp}").resolve()
    try:
        conn = open_connection(settings.database, read_only=True)
    except DatabaseLocked:
        summary = call_admin(settings, "/admin/export", {"out": str(out)})
    else:
        try:
            summary = write_snapshot(conn, out)
        finally:
            conn.close()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"Exported a snapshot taken at {summary['taken_at']} to {out}")
    for table, info in summary["tables"].items():
        print(f"  {table}: {info['rows']} rows")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    out = Path(args.out_file).resolve()
    try:
        summary = backup_file(settings.database, out)
    except DatabaseLocked:
        summary = call_admin(settings, "/admin/backup", {"out": str(out)})
    if args.json:
        print(json.dumps(summary))
        return 0
    rows = sum(summary["tables"].values())
    print(
        f"Backed up {settings.database} to {out} ({summary['bytes']} bytes, {rows} rows, "
        f"schema version {summary['schema_version']}, {summary['seconds']}s)"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.database.exists() and not args.force:
        raise UsageError(
            f"{settings.database} exists: pass --force to replace it (it is kept as .bak)"
        )
    if args.skip_addresses < 0:
        raise UsageError("--skip-addresses must be zero or more")
    result = restore_file(
        Path(args.backup_file),
        settings.database,
        force=args.force,
        address_gap=args.skip_addresses,
    )
    print(f"Restored {settings.database} from {args.backup_file}")
    print(
        f"  new invoices start {args.skip_addresses} addresses past the backup's last one, so "
        "no address handed out after the backup is reused"
    )
    if result["previous"]:
        print(f"  the replaced database is kept as {result['previous']}")
    if result["pending_migrations"]:
        print("  the backup is an older schema: run `chainpay migrate` before `chainpay serve`")
    return 0
