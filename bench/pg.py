"""Typed access to the throwaway PostgreSQL cluster in tests/pgcluster.py.

tests/ is not among the type-checked packages, so the module is imported
dynamically (mypy does not follow it) and described here by a protocol.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib import import_module
from typing import Protocol, cast

_pgcluster = import_module("tests.pgcluster")

PostgresUnavailable = cast(type[Exception], _pgcluster.PostgresUnavailable)


class Cluster(Protocol):
    host: str
    port: int
    user: str

    def url(self, dbname: str) -> str: ...

    def database(self, dbname: str) -> AbstractContextManager[str]:
        """Create `dbname` for the duration of the block; yields its SQLAlchemy URL."""
        ...


def postgres_cluster(*, durable: bool) -> AbstractContextManager[Cluster]:
    """Start a fresh cluster (durable=True: fsync and full page writes on), remove it after."""
    return cast(AbstractContextManager[Cluster], _pgcluster.postgres_cluster(durable=durable))


def free_port() -> int:
    """A free loopback TCP port."""
    return int(_pgcluster.free_port())
