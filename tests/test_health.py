"""Health that follows the database: a real PostgreSQL of this module's own is stopped
and started again while real health clients watch and poll the server; and SQLite's
file taken away and put back."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metareg.server.storage.database import Database
from metareg.server.storage.migrate import upgrade
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer, start_server
from .pgcluster import Cluster, postgres_cluster

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("", "metareg.v1.SchemaRegistry", "metareg.v1.MetadataService")


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """A cluster for this module alone: its tests stop it, which the others' must not see."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(own_cluster: Cluster) -> Iterator[str]:
    with own_cluster.database("metareg_health") as url:
        database = Database(url)
        upgrade(database)
        database.dispose()
        yield url


@pytest.fixture
def cluster_restored(own_cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, running again after the test whatever happened in it."""
    try:
        yield own_cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # it runs already
            own_cluster.start()


def statuses(running: RunningServer) -> dict[str, int]:
    stub = health_pb2_grpc.HealthStub(running.channel)
    return {
        s: stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=5).status for s in SERVICES
    }


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until `condition()` held; AssertionError past `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - started


class Watcher:
    """A health Watch stream of one service, its statuses collected as they come."""

    def __init__(self, running: RunningServer, service: str) -> None:
        stub = health_pb2_grpc.HealthStub(running.channel)
        self.seen: list[int] = []
        self._call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self.seen.append(response.status)
        except grpc.RpcError:
            pass  # cancelled at the end

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(timeout=10)


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def get_schema_code(running: RunningServer) -> grpc.StatusCode:
    return code_of(lambda: running.registry.GetSchema(rpb.GetSchemaRequest(name="cams")))


def data_call_codes(running: RunningServer) -> list[grpc.StatusCode]:
    """A read outside any transaction, a listing, a validation and a bundle."""
    update = b.metadata_update("unit-1", {"camera": "north"})
    calls: list[Callable[[], object]] = [
        lambda: running.registry.GetSchema(rpb.GetSchemaRequest(name="cams"), timeout=30),
        lambda: running.registry.ListSchemas(rpb.ListSchemasRequest(), timeout=30),
        lambda: running.metadata.ValidateMetadata(
            mpb.ValidateMetadataRequest(
                schema="cams", records=[b.metadata_record("unit-1", {"camera": "x"})]
            ),
            timeout=30,
        ),
        lambda: running.metadata.ApplyBundle(
            mpb.ApplyBundleRequest(schema="cams", updates=[update]), timeout=30
        ),
    ]
    return [code_of(call) for call in calls]


def test_health_goes_not_serving_while_postgresql_is_down_and_back(
    pg_url: str, cluster_restored: Cluster
) -> None:
    running = start_server(pg_url, health_interval_seconds=0.2, health_timeout_seconds=2)
    watchers = [Watcher(running, service) for service in SERVICES]
    try:
        b.update_schema(running.registry, "cams", 0, b.add_scalar("camera", "text"))
        assert statuses(running) == dict.fromkeys(SERVICES, SERVING)

        cluster_restored.stop()
        took = wait_until(lambda: set(statuses(running).values()) == {NOT_SERVING})
        assert took < 5
        # Calls meanwhile fail as unavailable (retryable), never as a server bug.
        assert data_call_codes(running) == [grpc.StatusCode.UNAVAILABLE] * 4

        cluster_restored.start()
        took = wait_until(lambda: set(statuses(running).values()) == {SERVING})
        assert took < 5
        assert data_call_codes(running) == [grpc.StatusCode.OK] * 4
        wait_until(lambda: all(w.seen[-1:] == [SERVING] for w in watchers))
    finally:
        for watcher in watchers:
            watcher.close()
        running.channel.close()
        running.server.stop(grace=None)
    for watcher in watchers:  # each stream saw the flip and the return, nothing else
        assert watcher.seen == [SERVING, NOT_SERVING, SERVING]


def test_a_call_that_finds_the_database_down_flips_health_at_once(
    pg_url: str, cluster_restored: Cluster
) -> None:
    """With probes a minute apart, the failing call itself prompts the probe."""
    running = start_server(pg_url, health_interval_seconds=60, health_timeout_seconds=2)
    try:
        b.update_schema(running.registry, "cams", 0, b.add_scalar("camera", "text"))
        monitor = running.server.database_health
        wait_until(lambda: monitor.probes >= 1)  # the first probe, at start
        cluster_restored.stop()
        assert statuses(running) == dict.fromkeys(SERVICES, SERVING)  # not probed since
        assert get_schema_code(running) == grpc.StatusCode.UNAVAILABLE
        assert wait_until(lambda: statuses(running)[""] == NOT_SERVING) < 2
        cluster_restored.start()
        monitor.suspect()
        wait_until(lambda: statuses(running) == dict.fromkeys(SERVICES, SERVING))
    finally:
        running.channel.close()
        running.server.stop(grace=None)


def test_a_draining_server_stays_not_serving(pg_url: str) -> None:
    running = start_server(pg_url, health_interval_seconds=0.1)
    running.server.health.enter_graceful_shutdown()
    monitor = running.server.database_health
    seen = monitor.probes
    wait_until(lambda: monitor.probes >= seen + 3)  # the probe finds the database up
    assert set(statuses(running).values()) == {NOT_SERVING}
    running.channel.close()
    running.server.stop(grace=None)


def test_sqlite_health_follows_the_database_file(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "metareg.db"
    path.write_bytes(sqlite_template.read_bytes())
    running = start_server(f"sqlite:///{path}", health_interval_seconds=0.1)
    try:
        assert statuses(running) == dict.fromkeys(SERVICES, SERVING)
        path.rename(tmp_path / "away.db")
        wait_until(lambda: set(statuses(running).values()) == {NOT_SERVING}, timeout=10)
        (tmp_path / "away.db").rename(path)
        wait_until(lambda: set(statuses(running).values()) == {SERVING}, timeout=10)
    finally:
        running.channel.close()
        running.server.stop(grace=None)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("health_interval_seconds", 0.0, "METAREG_HEALTH_INTERVAL_SECONDS=0.0 is out of range"),
        ("health_timeout_seconds", 1.0, "METAREG_HEALTH_TIMEOUT_SECONDS=1.0 is out of range"),
        ("health_timeout_seconds", float("nan"), "METAREG_HEALTH_TIMEOUT_SECONDS=nan"),
    ],
)
def test_probe_settings_out_of_range_are_refused(setting: str, value: float, message: str) -> None:
    from metareg.server.app import Config

    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Config(**{setting: value})
