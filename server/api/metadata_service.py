"""MetadataService servicer: translate requests, call the metadata service, translate back."""

from __future__ import annotations

import grpc

from metareg.v1 import metadata_pb2 as pb
from metareg.v1 import metadata_pb2_grpc as pb_grpc

from ..domain.bundle import Outcome
from ..service.metadata import BundleRequest, MetadataService
from . import convert


class MetadataServicer(pb_grpc.MetadataServiceServicer):
    def __init__(self, service: MetadataService) -> None:
        self.service = service

    def ValidateMetadata(
        self, request: pb.ValidateMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ValidateMetadataResponse:
        report = self.service.validate(
            request.schema,
            [convert.update_from_proto(r) for r in request.records],
            version=request.schema_version,
            coerce_strings=request.coerce_strings,
        )
        return pb.ValidateMetadataResponse(
            schema_version=report.schema_version,
            ok=not report.invalid,
            invalid_records=[
                pb.RecordReport(
                    index=index,
                    data_unit_id=duid,
                    violations=[
                        convert.violation_to_proto("records", index, duid, p) for p in problems
                    ],
                )
                for index, duid, problems in report.invalid
            ],
            valid_count=report.valid_count,
            invalid_count=len(report.invalid),
        )

    def ApplyBundle(
        self, request: pb.ApplyBundleRequest, context: grpc.ServicerContext
    ) -> pb.ApplyBundleResponse:
        outcome = self.service.apply_bundle(
            BundleRequest(
                schema=request.schema,
                updates=[convert.update_from_proto(u) for u in request.updates],
                partial=request.partial,
                idempotency_key=request.idempotency_key,
                request_hash=convert.request_digest(request) if request.idempotency_key else "",
                coerce_strings=request.coerce_strings,
            )
        )
        return pb.ApplyBundleResponse(
            schema_version=outcome.schema_version,
            results=[convert.result_to_proto(r) for r in outcome.results],
            applied_count=outcome.count(Outcome.APPLIED),
            unchanged_count=outcome.count(Outcome.UNCHANGED),
            rejected_count=outcome.count(Outcome.REJECTED),
            replayed=outcome.replayed,
        )

    def GetMetadata(
        self, request: pb.GetMetadataRequest, context: grpc.ServicerContext
    ) -> pb.GetMetadataResponse:
        found, missing = self.service.get_metadata(request.schema, list(request.data_unit_ids))
        return pb.GetMetadataResponse(
            records=[convert.record_to_proto(r) for r in found], missing_data_unit_ids=missing
        )

    def DeleteMetadata(
        self, request: pb.DeleteMetadataRequest, context: grpc.ServicerContext
    ) -> pb.DeleteMetadataResponse:
        deleted, missing = self.service.delete_metadata(request.schema, list(request.data_unit_ids))
        return pb.DeleteMetadataResponse(deleted_count=deleted, missing_data_unit_ids=missing)
