"""The server process: health, reflection, logging, graceful shutdown, hostile input."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer, start_server
from .pgcluster import free_port

METAREG = str(Path(sys.executable).with_name("metareg"))


def wait_serving(address: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server at {address} never reported SERVING")
            time.sleep(0.1)


def test_serve_command_runs_on_sqlite_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "METAREG_DATABASE_URL": ""}
    process = subprocess.Popen(
        [METAREG, "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("metareg.v1.SchemaRegistry", "metareg.v1.MetadataService"):
                status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
                assert status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert (tmp_path / "metareg.db").exists()  # the default embedded database
    assert "/grpc.health.v1.Health/Check OK" in output
    assert "received SIGTERM" in output
    assert "metareg stopped" in output


def test_serve_refuses_a_busy_port(tmp_path: Path, server: RunningServer) -> None:
    result = subprocess.run(
        [METAREG, "serve", "--port", str(server.port), "--database-url",
         f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (["serve"], {"METAREG_IDEMPOTENCY_TTL_HOURS": "1"},
         "error: METAREG_IDEMPOTENCY_TTL_HOURS=1.0 is out of range: use 24..87600 hours"),
        (["serve"], {"METAREG_IDEMPOTENCY_TTL_HOURS": "nan"},
         "error: METAREG_IDEMPOTENCY_TTL_HOURS=nan is out of range"),
        (["serve"], {"METAREG_MAX_WORKERS": "0"}, "error: METAREG_MAX_WORKERS=0 is out of range"),
        (["serve", "--log-level", "loud"], {}, "error: METAREG_LOG_LEVEL='loud' is out of range"),
        (["serve", "--database-url", "nosuch://x"], {}, "error: bad database URL"),
        (["serve", "--database-url", "sqlite:////nonexistent-dir/x.db"], {},
         "error: cannot use the database: unable to open database file"),
        (["db", "upgrade", "--database-url", "nosuch://x"], {}, "error: bad database URL"),
    ],
)  # fmt: skip
def test_operator_mistakes_are_one_line_errors(
    tmp_path: Path, command: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [METAREG, *command, "--port", str(free_port())] if command[0] == "serve" else
        [METAREG, *command],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "METAREG_DATABASE_URL": "", **env},
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr


def test_a_database_migrated_by_a_newer_version_is_named_as_such(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade = [METAREG, "db", "upgrade", "--database-url", url]
    assert subprocess.run(upgrade, capture_output=True, timeout=60).returncode == 0
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    again = subprocess.run(upgrade, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert "newer than this metareg knows" in again.stderr
    serve = subprocess.run(
        [METAREG, "serve", "--port", str(free_port()), "--database-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert serve.returncode == 1
    assert "migrated by a newer metareg" in serve.stderr


def test_reflection_lists_the_services(server: RunningServer) -> None:
    database = ProtoReflectionDescriptorDatabase(server.channel)
    services = set(database.get_services())
    assert {
        "metareg.v1.SchemaRegistry",
        "metareg.v1.MetadataService",
        "grpc.health.v1.Health",
    } <= services
    assert database.FindFileContainingSymbol("metareg.v1.SchemaRegistry") is not None


def test_every_rpc_is_logged_with_status_and_duration(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="metareg.rpc"):
        b.update_schema(server.registry, "s", 0, b.add_scalar("a", "number"))
        with pytest.raises(grpc.RpcError):
            b.get_schema(server.registry, "missing")
    lines = [r.getMessage() for r in caplog.records if r.name == "metareg.rpc"]
    assert any(line.startswith("/metareg.v1.SchemaRegistry/UpdateSchema OK ") for line in lines)
    assert any(line.startswith("/metareg.v1.SchemaRegistry/GetSchema NOT_FOUND ") for line in lines)
    assert all(line.endswith("ms") for line in lines)


def test_undecodable_request_bytes_are_invalid_argument(server: RunningServer) -> None:
    call = server.channel.unary_unary(
        "/metareg.v1.SchemaRegistry/GetSchema",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\x0a\xff\xff\xff\xff\x0f")  # a length prefix far beyond the message
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_server_bugs_become_internal_with_an_incident_id(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metareg.server.service import schemas

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(schemas.schemas, "read_ref", broken)
    with pytest.raises(grpc.RpcError) as caught:
        server.registry.GetSchema(rpb.GetSchemaRequest(name="s"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "incident" in caught.value.details()
    assert "simulated bug" not in caught.value.details()  # no internals leak


def test_graceful_stop_reports_not_serving(tmp_path: Path) -> None:
    running = start_server(f"sqlite:///{tmp_path / 'g.db'}")
    health = health_pb2_grpc.HealthStub(running.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == 1
    running.server.health.enter_graceful_shutdown()
    assert health.Check(health_pb2.HealthCheckRequest()).status == (
        health_pb2.HealthCheckResponse.NOT_SERVING
    )
    running.channel.close()
    running.server.stop(grace=1)
