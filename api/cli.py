"""The `chainpay` command: serve, migrate, store and key management.

Exit codes: 0 done, 1 failed at run time, 2 bad configuration or bad input (one line on
stderr naming the file and key, or the argument).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from api import admin, contracts, copies, dev, startup
from api.app import ApiRunner, build_app
from api.bootstrap import Gateway, background_loops, open_storage
from api.command import Handler, UsageError, call_admin, settings_from
from api.logs import configure_logging
from indexer import deriver, forwarder
from indexer.config import ConfigError, Settings
from indexer.domain.clock import SystemClock
from indexer.domain.errors import ChainpayError, ConflictError, NotFoundError, ValidationError
from indexer.services.stores import StoreService
from indexer.store.duckdb.database import Database
from indexer.store.errors import DatabaseLocked, StoreError

log = logging.getLogger("chainpay")
COMMANDS: dict[str, Handler] = {}  # filled by build_parser(), never at import


class ListenError(ChainpayError):
    """The HTTP port cannot be bound (in use, not permitted): exit 1, one line."""


def main(argv: Sequence[str] | None = None) -> int:
    # The database, its WAL, backups, exports and the admin socket hold xpubs, webhook secrets
    # and API key hashes: whatever the caller's umask, everything chainpay creates is private.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None) or not getattr(args, "command_key", None):
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command_key](args)
    except ConfigError as exc:
        _fail(f"chainpay: config error: {exc}")
        return 2
    except (UsageError, ValidationError, ConflictError, NotFoundError) as exc:
        _fail(f"chainpay: {getattr(exc, 'message', exc)}")
        return 2
    except (StoreError, ListenError) as exc:
        _fail(f"chainpay: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> None:
    """The last line on stderr: log lines still buffered go out first."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(message, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chainpay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", help="TOML config file (default: $CHAINPAY_CONFIG or ./chainpay.toml)"
    )
    sub = parser.add_subparsers(dest="command")

    serve_parser = sub.add_parser("serve", help="run the API, chain indexer and webhook dispatcher")
    serve_parser.add_argument("--host", help="listen address (default from config, 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="listen port (default from config, 8080)")
    serve_parser.add_argument(
        "--no-api",
        action="store_true",
        help="indexer and dispatcher only (still serves /metrics, /healthz, /readyz)",
    )
    serve_parser.add_argument(
        "--migrate", action="store_true", help="apply pending migrations first"
    )
    serve_parser.set_defaults(command_key="serve")
    COMMANDS["serve"] = cmd_serve

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(command_key="migrate")
    COMMANDS["migrate"] = cmd_migrate

    move = sub.add_parser(
        "migrate-to",
        help="copy this config's DuckDB file into an empty PostgreSQL database (serve stopped)",
    )
    move.add_argument("url", metavar="POSTGRESQL_URL", help="postgresql://user@host:5432/db")
    move.add_argument("--json", action="store_true", help="print the rows copied as JSON")
    move.set_defaults(command_key="migrate-to")
    COMMANDS["migrate-to"] = cmd_migrate_to

    store = sub.add_parser("store", help="manage stores").add_subparsers(
        dest="store_command", required=True
    )
    create = store.add_parser("create", help="create a store and print its first API key")
    create.add_argument("--name", required=True)
    mode = create.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--evm-xpub", help="xpub mode: account xpub for m/44'/60'/0' (or its /0 chain)"
    )
    mode.add_argument(
        "--treasury",
        action="append",
        metavar="NETWORK=0xADDRESS",
        help="forwarder mode: the EIP-55 treasury on a network (repeat for each network)",
    )
    create.add_argument("--json", action="store_true", help='print only {"store_id", "api_key"}')
    create.set_defaults(command="store", command_key="store create")
    COMMANDS["store create"] = cmd_store_create

    key = sub.add_parser("key", help="manage API keys").add_subparsers(
        dest="key_command", required=True
    )
    key_create = key.add_parser("create", help="create another API key for a store")
    key_create.add_argument("store_id")
    key_create.add_argument("--json", action="store_true")
    key_create.set_defaults(command="key", command_key="key create")
    COMMANDS["key create"] = cmd_key_create
    key_revoke = key.add_parser("revoke", help="revoke an API key (takes effect at once)")
    key_revoke.add_argument("key_id")
    key_revoke.set_defaults(command="key", command_key="key revoke")
    COMMANDS["key revoke"] = cmd_key_revoke

    COMMANDS.update(copies.add_parsers(sub))  # export, backup, restore
    COMMANDS.update(contracts.add_parsers(sub))  # contracts deploy|verify, sweep
    COMMANDS.update(dev.add_parsers(sub, serve))  # dev, dev pay: on the same serve loop
    return parser


# -- serve -----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging(settings.log_format, settings.log_level)
    startup.require_networks(settings)
    gateway = Gateway(settings)
    embedded = not settings.database.exists() or settings.source == "defaults"
    gateway.open(migrate=args.migrate or embedded)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    asyncio.run(serve(gateway, host, port, api=not args.no_api))
    return 0


async def serve(
    gateway: Gateway,
    host: str,
    port: int,
    api: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM: HTTP site, admin socket and background loops.

    `on_ready` is called once the HTTP site accepts connections (`chainpay dev` prints its
    banner then, so every URL it shows already answers).
    """
    banner = await startup.probe_networks(gateway)  # a wrong chain id stops us before binding
    # Forwarder addresses are issued only on networks whose factory matches the artifact.
    used = {
        (n, t.factory) for st in gateway.stores.stores.values() for n, t in st.treasuries.items()
    }
    for where, problem in (
        await gateway.stores.verify_factories(gateway.settings.networks)
    ).items():
        network, factory = where.split(" ")
        level = logging.WARNING if (network, factory) in used else logging.INFO
        log.log(
            level, "forwarder factory on %s: %s; no forwarder addresses there", network, problem
        )
    app = build_app(gateway, api=api)
    runner = ApiRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:  # EADDRINUSE, EACCES, an address not on this machine
        await runner.cleanup()
        await gateway.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    admin_runner = web.AppRunner(admin.build_admin_app(gateway), access_log=None)
    await admin_runner.setup()
    sock = admin.socket_path(gateway.settings.database)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    await web.UnixSite(admin_runner, str(sock)).start()
    os.chmod(sock, 0o600)
    stop = asyncio.Event()
    gateway.on_failure = stop.set  # a worker's ConfigError (wrong chain id) ends the process
    gateway.start_workers(background_loops(gateway))
    gateway.stores.prefill()
    log.info(
        "chainpay listening on http://%s:%s (database %s)", host, port, gateway.settings.database
    )
    for line in banner:
        log.info("%s", line)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:  # listening, and Ctrl-C is handled from here on
        on_ready()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
        await admin_runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        await gateway.close()
        deriver.shutdown()
    if gateway.failure is not None:
        raise gateway.failure


# -- migrate ---------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_storage(settings)
    applied = db.migrate()
    where: object = settings.database
    if settings.postgres_url is not None:
        from indexer.store.postgres.database import redacted

        where = redacted(settings.postgres_url)
    print(
        f"{where}: applied {len(applied)} migration(s)" + "".join(f"\n  {m.name}" for m in applied)
    )
    asyncio.run(db.close())
    return 0


def cmd_migrate_to(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.postgres_url is not None:
        raise UsageError("migrate-to copies a DuckDB file: this config's database is PostgreSQL")
    if not str(args.url).startswith(("postgresql://", "postgres://")):
        raise UsageError(f"expected a postgresql:// URL, got {args.url!r}")
    from indexer.store.postgres.move import TargetNotEmpty, move

    try:
        copied = move(settings.database, args.url)
    except TargetNotEmpty as exc:  # refused before anything was written
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(copied))
    else:
        print(
            f"{settings.database}: copied {sum(copied.values())} rows in {len(copied)} tables; "
            'point every replica at it with database = "postgresql://…" (CHAINPAY_DATABASE)'
        )
    return 0


# -- stores and keys: directly on the file, or through a running gateway's admin socket ---------
def _offline(
    settings: Settings, action: Callable[[Database, StoreService], dict[str, Any]]
) -> dict[str, Any] | None:
    try:
        db = open_storage(settings)
    except DatabaseLocked:  # a running gateway owns the DuckDB file: go through its socket
        return None
    try:
        db.migrate()
        service = StoreService(db, SystemClock())
        db.read_sync(service.load)
        return action(db, service)
    finally:
        asyncio.run(db.close())


def cmd_store_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.treasury is not None:
        return _create_forwarder_store(settings, args)

    def offline(db: Database, service: StoreService) -> dict[str, Any]:
        store, key, _ = db.write_sync(
            lambda c: service.create_store_tx(c, args.name, args.evm_xpub)
        )
        return {"store_id": store.id, "api_key": key.secret, "key_id": key.key_id}

    result = _offline(settings, offline) or call_admin(
        settings, "/admin/stores", {"name": args.name, "evm_xpub": args.evm_xpub}
    )
    _print_key(result, args.json, f"Created store {result['store_id']} ({args.name}).")
    return 0


def _create_forwarder_store(settings: Settings, args: argparse.Namespace) -> int:
    treasuries: dict[str, str] = {}
    for item in args.treasury:
        network, sep, address = item.partition("=")
        if not sep or not network or network in treasuries:
            raise UsageError(f"--treasury {item!r}: expected NETWORK=0xADDRESS, once per network")
        treasuries[network] = address

    def offline(db: Database, service: StoreService) -> dict[str, Any]:
        service.factories = {n: forwarder.factory_for(net) for n, net in settings.networks.items()}
        named = {n: net for n, net in settings.networks.items() if n in treasuries}
        asyncio.run(service.verify_factories(named))
        store, key, _ = db.write_sync(
            lambda c: service.create_forwarder_store_tx(c, args.name, treasuries)
        )
        return {"store_id": store.id, "api_key": key.secret, "key_id": key.key_id}

    result = _offline(settings, offline) or call_admin(
        settings, "/admin/stores", {"name": args.name, "treasuries": treasuries}
    )
    _print_key(result, args.json, f"Created forwarder store {result['store_id']} ({args.name}).")
    return 0


def cmd_key_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    def offline(db: Database, service: StoreService) -> dict[str, Any]:
        key, _ = db.write_sync(lambda c: service.create_key_tx(c, args.store_id))
        return {"store_id": key.store_id, "api_key": key.secret, "key_id": key.key_id}

    result = _offline(settings, offline) or call_admin(
        settings, f"/admin/stores/{args.store_id}/keys"
    )
    if args.json:  # unlike `store create`, the key id is printed: it is what `key revoke` takes
        print(json.dumps({k: result[k] for k in ("store_id", "key_id", "api_key")}))
        return 0
    _print_key(result, False, f"Created API key {result['key_id']} for store {result['store_id']}.")
    return 0


def cmd_key_revoke(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    def offline(db: Database, service: StoreService) -> dict[str, Any]:
        db.write_sync(lambda c: service.revoke_key_tx(c, args.key_id))
        return {"key_id": args.key_id}

    _offline(settings, offline) or call_admin(settings, f"/admin/keys/{args.key_id}/revoke")
    print(f"Revoked API key {args.key_id}.")
    return 0


def _print_key(result: dict[str, Any], as_json: bool, headline: str) -> None:
    if as_json:
        print(json.dumps({"store_id": result["store_id"], "api_key": result["api_key"]}))
        return
    print(headline)
    print(f"  key id:  {result['key_id']}")
    print(f"  API key: {result['api_key']}")
    print("The API key is shown only this once: store it in your backend's secrets now.")


if __name__ == "__main__":
    raise SystemExit(main())
