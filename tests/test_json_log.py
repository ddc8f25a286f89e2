"""`--log-format json`: one JSON object per line, an RPC's with its method, status,
duration, peer, schema and record count, and never a value, a data unit id or a token;
in process and through `metareg serve` (one process and `--workers 2`)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metareg.server.app.logs import JsonFormatter, JsonRpcLog, RpcLog
from metareg.server.domain.access import Role
from metareg.server.service.access import AccessService
from metareg.server.storage.database import Database
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb
from metareg.v1 import schema_registry_pb2_grpc

from . import builders as b
from .conftest import RunningServer, start_server
from .pgcluster import free_port
from .test_access import CLI
from .test_app import wait_serving

METAREG = str(Path(sys.executable).with_name("metareg"))
CANARY_VALUE = "canary-value-5d1e0b"
CANARY_ID = "canary-unit-93af27"
RPC_FIELDS = {"time", "level", "logger", "method", "status", "duration_ms", "peer"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def json_server(database_url: str) -> Iterator[tuple[RunningServer, str]]:
    """A server logging JSON, with one admin key (every call sends its token)."""
    running = start_server(database_url, log_format="json")
    database = Database(database_url)
    try:
        token = AccessService(database).create_key("ops", Role.ADMIN, [], CLI)[1]
        yield running, token
    finally:
        database.dispose()
        running.channel.close()
        running.server.stop(grace=None)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the `metareg` loggers write, through the JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("metareg")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parsed_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_rpc_lines_carry_their_fields_and_never_a_value_an_id_or_a_token(
    json_server: tuple[RunningServer, str], captured: io.StringIO
) -> None:
    running, token = json_server
    auth = [("authorization", f"Bearer {token}")]
    registry, metadata = running.registry, running.metadata
    registry.UpdateSchema(
        rpb.UpdateSchemaRequest(
            name="cams", expected_version=0,
            changes=[b.add_scalar("camera", "varchar", 64), b.add_scalar("score", "number")],
        ),
        metadata=auth,
    )  # fmt: skip
    good = [
        b.metadata_update(CANARY_ID, {"camera": CANARY_VALUE, "score": 1.5}),
        b.metadata_update("unit-2", {"camera": CANARY_VALUE}),
    ]
    metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="cams", updates=good), metadata=auth)
    bad = [b.metadata_update(CANARY_ID, {"score": CANARY_VALUE})]  # a string for a number
    with pytest.raises(grpc.RpcError) as rejected:
        metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="cams", updates=bad), metadata=auth)
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert CANARY_VALUE in rejected.value.details()  # the caller is told; the log is not
    as_json = json.dumps([{"data_unit_id": CANARY_ID, "metadata": {"camera": CANARY_VALUE}}])
    metadata.ValidateMetadata(
        mpb.ValidateMetadataRequest(schema="cams", records_json=as_json.encode()), metadata=auth
    )
    metadata.GetMetadata(
        mpb.GetMetadataRequest(schema="cams", data_unit_ids=[CANARY_ID, "unit-2", "none"]),
        metadata=auth,
    )
    with pytest.raises(grpc.RpcError):
        registry.GetSchema(rpb.GetSchemaRequest(name="missing"), metadata=auth)
    with pytest.raises(grpc.RpcError) as anonymous:
        registry.GetSchema(rpb.GetSchemaRequest(name="cams"))
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError):  # a wrong token is not logged either
        registry.GetSchema(
            rpb.GetSchemaRequest(name="cams"), metadata=[("authorization", f"Bearer {token}x")]
        )
    health_pb2_grpc.HealthStub(running.channel).Check(health_pb2.HealthCheckRequest())

    text = captured.getvalue()
    for secret in (CANARY_VALUE, CANARY_ID, token, token[4:]):
        assert secret not in text
    lines = parsed_lines(text)
    rpc = [line for line in lines if line["logger"] == "metareg.rpc"]
    assert [(line["method"].rsplit("/", 1)[1], line["status"]) for line in rpc] == [
        ("UpdateSchema", "OK"),
        ("ApplyBundle", "OK"),
        ("ApplyBundle", "INVALID_ARGUMENT"),
        ("ValidateMetadata", "OK"),
        ("GetMetadata", "OK"),
        ("GetSchema", "NOT_FOUND"),
        ("GetSchema", "UNAUTHENTICATED"),
        ("GetSchema", "UNAUTHENTICATED"),
        ("Check", "OK"),
    ]
    for line in rpc:
        assert RPC_FIELDS <= set(line) <= RPC_FIELDS | {"schema", "records"}, line
        assert line["level"] == "INFO"
        assert TIME.match(line["time"]), line
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
        assert line["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:[::1]:")), line
    facts = [(line.get("schema"), line.get("records")) for line in rpc]
    assert facts == [
        ("cams", None),
        ("cams", 2),
        ("cams", None),  # rejected: nothing carried through
        ("cams", 1),
        ("cams", 2),  # the records found
        ("missing", None),
        ("cams", None),
        ("cams", None),
        (None, None),  # health names no schema
    ]
    assert rpc[1]["method"] == "/metareg.v1.MetadataService/ApplyBundle"


def test_a_long_schema_name_is_cut_and_control_characters_are_escaped(
    json_server: tuple[RunningServer, str], captured: io.StringIO
) -> None:
    running, token = json_server
    name = "x\n" + "y" * 5000
    with pytest.raises(grpc.RpcError) as raised:
        running.registry.GetSchema(
            rpb.GetSchemaRequest(name=name), metadata=[("authorization", f"Bearer {token}")]
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (line,) = [x for x in parsed_lines(captured.getvalue()) if x["logger"] == "metareg.rpc"]
    assert line["schema"] == name[:256]


def test_other_lines_are_json_too_with_their_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(worker=3))
    logger = logging.getLogger("metareg.test-json-log")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("listening on %s", "127.0.0.1:1")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = parsed_lines(stream.getvalue())
    assert first == {
        "time": first["time"], "level": "INFO", "logger": "metareg.test-json-log",
        "worker": 3, "message": "listening on 127.0.0.1:1",
    }  # fmt: skip
    assert TIME.match(first["time"])
    assert second["level"] == "ERROR"
    assert second["message"] == "failed"
    assert "RuntimeError: boom" in second["exception"]


def test_the_json_rpc_line_reads_as_text_to_a_text_handler() -> None:
    from metareg.server.api.call_notes import CallNotes
    from metareg.server.app.logs import CachedTimeFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CachedTimeFormatter())
    logger = logging.getLogger("metareg.test-json-rpc")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        JsonRpcLog(logger)(
            "/metareg.v1.SchemaRegistry/GetSchema", "OK", 0.42, "ipv4:x", CallNotes()
        )
        RpcLog(logger)("/metareg.v1.SchemaRegistry/GetSchema", "OK", 0.42)
    finally:
        logger.removeHandler(handler)
    one, two = stream.getvalue().splitlines()
    assert one.split(" INFO ")[1] == two.split(" INFO ")[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_metareg_serve_writes_only_json_lines(tmp_path: Path, workers: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [METAREG, "serve", "--port", str(port), "--log-format", "json",
         "--workers", str(workers), "--database-url", f"sqlite:///{tmp_path / 'm.db'}"],
        cwd=tmp_path, env={**os.environ, "METAREG_MAX_WORKERS": "4"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
            b.update_schema(registry, "cams", 0, b.add_scalar("camera", "text"))
            b.metadata_stub(channel).ApplyBundle(
                mpb.ApplyBundleRequest(
                    schema="cams", updates=[b.metadata_update(CANARY_ID, {"camera": CANARY_VALUE})]
                )
            )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert CANARY_VALUE not in output
    assert CANARY_ID not in output
    lines = parsed_lines(output)
    messages = [line.get("message", "") for line in lines]
    assert any(m.startswith("metareg listening on 127.0.0.1:") for m in messages), output
    assert any(m.startswith("Running upgrade") for m in messages), output  # alembic's too
    assert "metareg stopped" in messages
    (apply,) = [line for line in lines if line.get("method", "").endswith("/ApplyBundle")]
    assert (apply["status"], apply["schema"], apply["records"]) == ("OK", "cams", 1)
    if workers > 1:
        assert apply["worker"] in (1, 2)
        assert {line["worker"] for line in lines if "worker" in line} <= {1, 2}
    else:
        assert not any("worker" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--log-format", "xml"], {},
         "error: METAREG_LOG_FORMAT='xml' is out of range: use text or json"),
        ([], {"METAREG_LOG_FORMAT": "yaml"}, "error: METAREG_LOG_FORMAT='yaml' is out of range"),
    ],
)  # fmt: skip
def test_an_unknown_log_format_is_a_one_line_error(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [METAREG, "serve", "--port", str(free_port()), *args], cwd=tmp_path,
        env={**os.environ, "METAREG_DATABASE_URL": "", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert list(tmp_path.iterdir()) == []
