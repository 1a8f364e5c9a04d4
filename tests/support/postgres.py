"""A throwaway PostgreSQL cluster the tests start themselves (initdb + pg_ctl, Unix socket only).

Debian's `postgresql` package provides the server binaries (installed by `.ci/setup --test`); no
system service is used. The cluster lives in a temporary directory and listens only on a socket
there. PostgreSQL refuses to run as root, so under root (as in CI) its commands run as the
`postgres` user the package creates. Each test gets a fresh database copied from a migrated
template (CREATE DATABASE … TEMPLATE: tens of milliseconds).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count()


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run `bash .ci/setup --test`")
    return Path(found[-1]).parent


class PostgresCluster:
    def __init__(self, root: Path, fast: bool = True) -> None:
        self.root = root
        self.data = root / "data"
        self.socket = root / "socket"
        self.bin = server_bin()
        self.fast = fast  # fsync off: tests kill chainpay, never PostgreSQL

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=True, timeout=120
        )

    def start(self) -> None:
        self.socket.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "chainpay",
            "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C",
        )  # fmt: skip
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket}'",
            "max_connections": "300",
            "shared_buffers": "'128MB'",
        }
        if self.fast:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def restart(self) -> None:
        """Stop (disconnecting every client) and start again, as an operator's restart does."""
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
            "-m", "fast", "-w", "-t", "60", "restart",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://chainpay@/{database}?host={self.socket}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement.encode())

    def new_database(self, template: str | None = None) -> str:
        name = f"test_{os.getpid()}_{next(_counter)}"
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    root = Path(tempfile.mkdtemp(prefix="chainpay-pg-"))
    cluster = PostgresCluster(root)
    cluster.start()
    try:
        cluster.sql("CREATE DATABASE chainpay_template")
        from indexer.store.postgres.database import PostgresStorage

        template = PostgresStorage(cluster.url("chainpay_template"), pool_size=2)
        template.migrate()
        template._close_sync()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, migrated database of the session's cluster."""
    return postgres_cluster.new_database(template="chainpay_template")


class Backend:
    """Which store a test's gateways use: the DuckDB file, or a PostgreSQL database.

    Tests that take a gateway through `config_path`, `gateway_factory` or `webhook_harness` run
    once per backend (one parametrized fixture, not a second suite). A DuckDB path a test names
    maps to one PostgreSQL database, so a test that reopens "the same file" reopens the same
    database.
    """

    def __init__(self, name: str, cluster: PostgresCluster | None) -> None:
        self.name = name
        self.cluster = cluster
        self._urls: dict[Path, str] = {}

    def url_for(self, path: Path) -> str | None:
        if self.cluster is None:
            return None
        if path not in self._urls:
            self._urls[path] = self.cluster.new_database(template="chainpay_template")
        return self._urls[path]


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "postgres":
        if request.node.get_closest_marker("duckdb_only"):
            pytest.fail("a duckdb_only test must not run on PostgreSQL (deselected at collection)")
        return Backend("postgres", request.getfixturevalue("postgres_cluster"))
    return Backend("duckdb", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `duckdb_only` (they open the DuckDB file itself) run on DuckDB alone."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and params.params.get("backend") == "postgres"
        (drop if on_postgres and item.get_closest_marker("duckdb_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
