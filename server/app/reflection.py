"""Server reflection in both protocol versions: `grpc.reflection.v1` and `v1alpha`.

grpcio-reflection serves v1alpha only. The v1 protocol has the same messages, field for
field, under the package `grpc.reflection.v1`, so one servicer answers both: a v1
request parses as a v1alpha one and a v1alpha response is a valid v1 response, byte for
byte. The v1 file descriptor is derived from the installed v1alpha one and added to the
default pool, so that a v1 client can also list and describe the reflection service.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE: str = reflection.SERVICE_NAME
SERVICE_NAMES = (V1_SERVICE, V1ALPHA_SERVICE)


def v1_file_descriptor() -> FileDescriptor:
    """The v1 reflection file in the default pool, added on first use."""
    pool = descriptor_pool.Default()
    try:
        found: FileDescriptor = pool.FindFileByName(V1_FILE)
        return found
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old_prefix = f".{proto.package}."
    new_prefix = f".{V1_PACKAGE}."

    def renamed(type_name: str) -> str:
        if type_name.startswith(old_prefix):
            return new_prefix + type_name[len(old_prefix) :]
        return type_name

    proto.name = V1_FILE
    proto.package = V1_PACKAGE
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = renamed(field.type_name)
        if message.nested_type:  # none in the v1alpha file; refuse to half-rename one
            raise RuntimeError("unexpected nested messages in the v1alpha reflection file")
    for service in proto.service:
        for method in service.method:
            method.input_type = renamed(method.input_type)
            method.output_type = renamed(method.output_type)
    added: FileDescriptor = pool.AddSerializedFile(proto.SerializeToString())
    return added


def enable_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serve reflection of `service_names` (and of both reflection services) on `server`."""
    v1_file_descriptor()
    servicer = reflection.ReflectionServicer((*service_names, *SERVICE_NAMES))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1_method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1_method}),)
    )
