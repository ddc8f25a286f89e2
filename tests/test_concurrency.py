"""Concurrent UpdateSchema calls never lose an update nor duplicate a version."""

from __future__ import annotations

import threading

import grpc
import pytest

from metareg.v1 import schema_registry_pb2 as rpb
from metareg.v1 import schema_registry_pb2_grpc

from . import builders as b
from .conftest import RunningServer

WRITERS = 8


def race(server: RunningServer, name: str, expected: int, round_: int) -> list[grpc.StatusCode]:
    """WRITERS clients, each on its own channel, save against `expected` at once."""
    barrier = threading.Barrier(WRITERS)
    codes: list[grpc.StatusCode] = [grpc.StatusCode.UNKNOWN] * WRITERS

    def save(index: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
            barrier.wait()
            try:
                b.update_schema(stub, name, expected, b.add_scalar(f"r{round_}w{index}", "number"))
                codes[index] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                codes[index] = error.code()

    threads = [threading.Thread(target=save, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


@pytest.mark.parametrize("rounds", [4])
def test_exactly_one_writer_wins_each_round(server: RunningServer, rounds: int) -> None:
    for round_ in range(rounds):  # round 0 races to create the schema
        codes = race(server, "contended", round_, round_)
        assert codes.count(grpc.StatusCode.OK) == 1, codes
        assert codes.count(grpc.StatusCode.ABORTED) == WRITERS - 1, codes
    history = server.registry.ListSchemaVersions(
        rpb.ListSchemaVersionsRequest(name="contended", page_size=100)
    )
    assert [v.version for v in history.versions] == list(range(rounds, 0, -1))
    latest = b.get_schema(server.registry, "contended")
    assert latest.version == rounds
    assert len(latest.keys) == rounds  # one winning key per round, none lost
    for version in range(1, rounds + 1):
        assert len(b.get_schema(server.registry, "contended", version).keys) == version
