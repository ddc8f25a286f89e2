"""A throwaway PostgreSQL cluster for tests and benchmarks.

PostgreSQL refuses to run as root, so when we are root the server binaries run
as the `postgres` system user, in a temporary directory that user owns, on a
free loopback port. Databases are created with pytest-postgresql's janitor.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_postgresql.janitor import DatabaseJanitor


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    explicit = os.environ.get("METAREG_PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin); "
        "install them with `apt-get install postgresql` or set METAREG_PG_BINDIR"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    # What `stop` and `start` need (a cluster made by `postgres_cluster`).
    bindir: Path | None = None
    datadir: Path | None = None
    options: str = ""
    logfile: Path | None = None

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    @contextmanager
    def database(self, dbname: str) -> Iterator[str]:
        """Create `dbname` for the duration of the block; yields its SQLAlchemy URL."""
        janitor = DatabaseJanitor(
            user=self.user, host=self.host, port=self.port, dbname=dbname, password=None
        )
        janitor.init()
        try:
            yield self.url(dbname)
        finally:
            janitor.drop()

    def stop(self) -> None:
        """Stop the server (fast: connections are cut), keeping its data."""
        assert self.bindir is not None
        assert self.datadir is not None
        _run_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                       "-w", "stop"])  # fmt: skip

    def start(self) -> None:
        """Start the server again, on the same port with the same options."""
        assert self.bindir is not None
        assert self.datadir is not None
        _run_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", self.options,
                       "-l", str(self.logfile), "-w", "-t", "60", "start"])  # fmt: skip


def _run_as_owner(command: list[str]) -> None:
    subprocess.run(_as_owner(command), check=True, capture_output=True, text=True)


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """Start a fresh cluster, yield its address, and remove it afterwards.

    Tests run without fsync for speed; benchmarks pass durable=True so that
    commits really reach the disk, as in production.
    """
    bindir = find_bindir()
    base = Path(tempfile.mkdtemp(prefix="metareg-pg-"))
    datadir = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres", group="postgres")
    port = free_port()
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    run = lambda cmd: subprocess.run(  # noqa: E731
        _as_owner(cmd), check=True, capture_output=True, text=True
    )
    try:
        run([str(bindir / "initdb"), "-D", str(datadir), "-U", user, "-A", "trust", "-E", "UTF8",
             "--no-sync"])  # fmt: skip
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=100"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
    except subprocess.CalledProcessError as error:
        shutil.rmtree(base, ignore_errors=True)
        raise PostgresUnavailable(f"could not start PostgreSQL: {error.stderr}") from error
    try:
        yield Cluster("127.0.0.1", port, user, bindir, datadir, options, base / "server.log")
    finally:
        subprocess.run(
            _as_owner(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
