"""Fixtures: real databases (SQLite and a throwaway PostgreSQL) and a real gRPC server."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from metareg.server.app import Config, create_server
from metareg.server.storage.database import Database
from metareg.server.storage.migrate import upgrade
from metareg.v1 import metadata_pb2_grpc, schema_registry_pb2_grpc

from .pgcluster import Cluster, postgres_cluster

BACKENDS = ("sqlite", "postgresql")
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_template(pg_cluster: Cluster) -> Iterator[str]:
    """A database migrated to head, copied for each test (CREATE DATABASE … TEMPLATE)."""
    with pg_cluster.database("metareg_template") as url:
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield "metareg_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "metareg.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at head for one test, on the parametrised backend."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "metareg.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    template_name: str = request.getfixturevalue("pg_template")
    from pytest_postgresql.janitor import DatabaseJanitor

    name = f"metareg_test_{next(_database_numbers)}"
    janitor = DatabaseJanitor(
        user=cluster.user,
        host=cluster.host,
        port=cluster.port,
        dbname=name,
        template_dbname=template_name,
        password=None,
    )
    janitor.init()
    try:
        yield cluster.url(name)
    finally:
        janitor.drop()


@dataclass
class RunningServer:
    address: str
    port: int
    server: Any
    channel: grpc.Channel
    database_url: str

    @property
    def registry(self) -> schema_registry_pb2_grpc.SchemaRegistryStub:
        return schema_registry_pb2_grpc.SchemaRegistryStub(self.channel)

    @property
    def metadata(self) -> metadata_pb2_grpc.MetadataServiceStub:
        return metadata_pb2_grpc.MetadataServiceStub(self.channel)


CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_metadata_size", 4 * 1024 * 1024),
]


def start_server(database_url: str, **config: Any) -> RunningServer:
    settings = {"host": "127.0.0.1", "port": 0, "max_workers": 8, **config}
    server, port = create_server(Config(database_url=database_url, **settings))
    server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return RunningServer(address, port, server, channel, database_url)


@pytest.fixture
def server(database_url: str) -> Iterator[RunningServer]:
    """A real in-process gRPC server on a free port, backed by a fresh database."""
    running = start_server(database_url)
    try:
        yield running
    finally:
        running.channel.close()
        running.server.stop(grace=None)
