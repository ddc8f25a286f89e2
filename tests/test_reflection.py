"""Server reflection through a `grpc.reflection.v1` client whose messages come from the
protocol's own definition (tests/protos/reflection_v1.proto), compiled by protoc into a
descriptor pool of the client's, apart from the server's; and v1alpha still served."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc

from metareg.server.domain.access import Role

from .conftest import RunningServer, start_server
from .test_access import CLI

PROTO = Path(__file__).parent / "protos" / "reflection_v1.proto"
METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
EXPECTED_SERVICES = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "metareg.v1.MetadataService",
    "metareg.v1.SchemaRegistry",
}


@dataclass(frozen=True)
class V1Protocol:
    """The v1 messages, compiled from the .proto into a pool of the test's own."""

    file: descriptor_pb2.FileDescriptorProto
    request: Any
    response: Any

    def client(self, channel: grpc.Channel) -> Any:
        return channel.stream_stream(
            METHOD,
            request_serializer=self.request.SerializeToString,
            response_deserializer=self.response.FromString,
        )


@pytest.fixture(scope="module")
def v1() -> V1Protocol:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reflection.pb"
        well_known = resources.files("grpc_tools") / "_proto"
        status = protoc.main(
            ["protoc", f"-I{PROTO.parent}", f"-I{well_known}",
             f"--descriptor_set_out={out}", PROTO.name]
        )  # fmt: skip
        assert status == 0
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (file,) = files.file
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)

    def message(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return V1Protocol(
        file,
        message("grpc.reflection.v1.ServerReflectionRequest"),
        message("grpc.reflection.v1.ServerReflectionResponse"),
    )


def ask(v1: V1Protocol, channel: grpc.Channel, *requests: Any, **metadata: str) -> list[Any]:
    """The responses to `requests`, sent on one v1 stream."""
    call = v1.client(channel)
    return list(call(iter(requests), timeout=10, metadata=list(metadata.items()) or None))


def files_of(response: Any) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    parsed = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    return {file.name: file for file in parsed}


def test_a_v1_client_lists_every_service(server: RunningServer, v1: V1Protocol) -> None:
    (response,) = ask(v1, server.channel, v1.request(list_services=""))
    assert response.WhichOneof("message_response") == "list_services_response"
    names = [s.name for s in response.list_services_response.service]
    assert set(names) == EXPECTED_SERVICES
    assert len(names) == len(EXPECTED_SERVICES)
    assert response.original_request == v1.request(list_services="")


def test_a_v1_client_fetches_a_service_file_with_its_dependencies(
    server: RunningServer, v1: V1Protocol
) -> None:
    one, two = ask(
        v1,
        server.channel,
        v1.request(file_containing_symbol="metareg.v1.SchemaRegistry"),
        v1.request(file_containing_symbol="metareg.v1.ApplyBundleRequest"),
    )
    registry = files_of(one)
    service_file = registry["metareg/v1/schema_registry.proto"]
    (service,) = [s for s in service_file.service if s.name == "SchemaRegistry"]
    assert {"GetSchema", "UpdateSchema", "ImportSchema", "ListSchemas"} <= {
        m.name for m in service.method
    }
    # Every file it imports comes along, so a client can build the messages.
    for dependency in service_file.dependency:
        assert dependency in registry, dependency
    metadata = files_of(two)["metareg/v1/metadata.proto"]
    (apply,) = [m for s in metadata.service for m in s.method if m.name == "ApplyBundle"]
    assert apply.input_type == ".metareg.v1.ApplyBundleRequest"


def test_the_v1_reflection_file_is_the_protocol_itself(
    server: RunningServer, v1: V1Protocol
) -> None:
    """What the server describes as v1 has the messages of the protocol, field for field
    (so its v1alpha answers are valid v1 answers)."""
    (response,) = ask(
        v1, server.channel, v1.request(file_containing_symbol="grpc.reflection.v1.ServerReflection")
    )
    served = files_of(response)["grpc/reflection/v1/reflection.proto"]
    assert served.package == "grpc.reflection.v1"

    def shape(file: descriptor_pb2.FileDescriptorProto) -> object:
        messages = {
            m.name: sorted(
                (f.number, f.name, f.type, f.label, f.type_name, f.HasField("oneof_index"))
                for f in m.field
            )
            for m in file.message_type
        }
        methods = [
            (s.name, m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for s in file.service
            for m in s.method
        ]
        return messages, methods

    assert shape(served) == shape(v1.file)


def test_a_v1_client_is_told_what_is_not_found(server: RunningServer, v1: V1Protocol) -> None:
    missing_symbol, missing_file, listing = ask(
        v1,
        server.channel,
        v1.request(file_containing_symbol="metareg.v1.NoSuchService"),
        v1.request(file_by_filename="no/such.proto"),
        v1.request(list_services=""),  # the stream goes on after an error
    )
    for response in (missing_symbol, missing_file):
        assert response.WhichOneof("message_response") == "error_response"
        assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert listing.WhichOneof("message_response") == "list_services_response"


def test_v1alpha_is_still_served(server: RunningServer) -> None:
    database = ProtoReflectionDescriptorDatabase(server.channel)
    assert set(database.get_services()) == EXPECTED_SERVICES
    assert database.FindFileContainingSymbol("metareg.v1.MetadataService") is not None


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    """A server on SQLite with one reader key."""
    from metareg.server.service.access import AccessService
    from metareg.server.storage.database import Database

    running = start_server(f"sqlite:///{tmp_path / 'keys.db'}")
    database = Database(running.database_url)
    try:
        token = AccessService(database).create_key("reader", Role.READER, [], CLI)[1]
        yield running, token
    finally:
        database.dispose()
        running.channel.close()
        running.server.stop(grace=None)


def test_v1_reflection_needs_a_key_once_keys_exist(
    keyed_server: tuple[RunningServer, str], v1: V1Protocol
) -> None:
    running, token = keyed_server
    with pytest.raises(grpc.RpcError) as refused:
        ask(v1, running.channel, v1.request(list_services=""))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (response,) = ask(
        v1, running.channel, v1.request(list_services=""), authorization=f"Bearer {token}"
    )
    assert {s.name for s in response.list_services_response.service} == EXPECTED_SERVICES
