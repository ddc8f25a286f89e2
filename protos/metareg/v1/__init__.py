"""Generated protobuf and gRPC modules for the metareg.v1 API (do not edit the *_pb2 files)."""
