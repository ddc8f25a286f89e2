"""MetadataService servicer: translate requests, call the metadata service, translate back."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from metareg.v1 import metadata_pb2 as pb
from metareg.v1 import metadata_pb2_grpc as pb_grpc

from ..domain.bundle import MetadataUpdate, Outcome
from ..service.metadata import BundleRequest, MetadataService
from ..service.query import QueryService
from . import call_notes, caller, convert

# gRPC reports about 2**63 seconds left for a call without a deadline.
_NO_DEADLINE_S = 1e9


def _deadline_clock(context: grpc.ServicerContext) -> Callable[[], float] | None:
    """The call's time_remaining, or None when it has no deadline."""
    return context.time_remaining if context.time_remaining() < _NO_DEADLINE_S else None


class MetadataServicer(pb_grpc.MetadataServiceServicer):
    def __init__(self, service: MetadataService, queries: QueryService) -> None:
        self.service = service
        self.queries = queries

    def _readers(self, schema: str) -> dict[str, convert.ValueReader]:
        return convert.value_readers(self.service.value_kinds(schema))

    def ValidateMetadata(
        self, request: pb.ValidateMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ValidateMetadataResponse:
        readers = self._readers(request.schema) if request.records else {}
        report = self.service.validate(
            request.schema,
            [convert.update_from_proto(r, readers) for r in request.records],
            records_json=request.records_json,
            version=request.schema_version,
            coerce_strings=request.coerce_strings,
        )
        call_notes.note_records(report.valid_count + len(report.invalid))
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
        readers = self._readers(request.schema) if request.updates else {}
        outcome = self.service.apply_bundle(
            BundleRequest(
                schema=request.schema,
                updates=[convert.update_from_proto(u, readers) for u in request.updates],
                updates_json=request.updates_json,
                partial=request.partial,
                idempotency_key=request.idempotency_key,
                request_hash=convert.request_digest(request) if request.idempotency_key else "",
                coerce_strings=request.coerce_strings,
                still_wanted=context.is_active,
                time_remaining=_deadline_clock(context),
            )
        )
        call_notes.note_records(len(outcome.results))
        # Time the commit and the answer up to the end of the call (or now, if the call
        # has ended already): the service's estimate of what a commit needs.
        if not context.add_callback(lambda: self.service.commit_answered(outcome)):
            self.service.commit_answered(outcome)
        response = pb.ApplyBundleResponse(
            schema_version=outcome.schema_version,
            applied_count=outcome.count(Outcome.APPLIED),
            unchanged_count=outcome.count(Outcome.UNCHANGED),
            rejected_count=outcome.count(Outcome.REJECTED),
            replayed=outcome.replayed,
        )
        convert.add_results(response.results, outcome.results)
        return response

    def GetMetadata(
        self, request: pb.GetMetadataRequest, context: grpc.ServicerContext
    ) -> pb.GetMetadataResponse:
        found, missing, unread = self.service.get_metadata(
            request.schema, list(request.data_unit_ids)
        )
        call_notes.note_records(len(found))
        return pb.GetMetadataResponse(
            records=[convert.record_to_proto(r) for r in found],
            missing_data_unit_ids=missing,
            unread_data_unit_ids=unread,
        )

    def DeleteMetadata(
        self, request: pb.DeleteMetadataRequest, context: grpc.ServicerContext
    ) -> pb.DeleteMetadataResponse:
        deleted, missing = self.service.delete_metadata(
            request.schema, list(request.data_unit_ids), caller.current("DeleteMetadata").caller
        )
        call_notes.note_records(deleted)
        return pb.DeleteMetadataResponse(deleted_count=deleted, missing_data_unit_ids=missing)

    def QueryMetadata(
        self, request: pb.QueryMetadataRequest, context: grpc.ServicerContext
    ) -> pb.QueryMetadataResponse:
        page = self.queries.query(
            request.schema, request.filter, request.order_by, request.page_size,
            request.page_token,
        )  # fmt: skip
        call_notes.note_records(len(page.records))
        return pb.QueryMetadataResponse(
            records=[convert.record_to_proto(r) for r in page.records],
            next_page_token=page.next_token,
            schema_version=page.schema_version,
        )

    def CountMetadata(
        self, request: pb.CountMetadataRequest, context: grpc.ServicerContext
    ) -> pb.CountMetadataResponse:
        count, version = self.queries.count(request.schema, request.filter)
        return pb.CountMetadataResponse(count=count, schema_version=version)

    def ListValues(
        self, request: pb.ListValuesRequest, context: grpc.ServicerContext
    ) -> pb.ListValuesResponse:
        facets = self.queries.list_values(
            request.schema, request.key, request.prefix, request.filter, request.limit
        )
        response = pb.ListValuesResponse(more=facets.more, schema_version=facets.schema_version)
        for value, count in facets.values:
            entry = response.values.add(count=count)
            convert.value_to_proto(value, entry.value)
        return response

    def UpdateByFilter(
        self, request: pb.UpdateByFilterRequest, context: grpc.ServicerContext
    ) -> pb.UpdateByFilterResponse:
        decoded = convert.update_from_proto(
            pb.MetadataUpdate(data_unit_id="patch", metadata=request.metadata, mode=request.mode)
        )
        patch = MetadataUpdate("*", decoded.values, decoded.mode, decoded.decode_problems)
        result = self.queries.update_by_filter(
            request.schema, request.filter, patch,
            validate_only=request.validate_only, coerce_strings=request.coerce_strings,
            caller=caller.current("UpdateByFilter").caller,
        )  # fmt: skip
        call_notes.note_records(result.updated)
        return pb.UpdateByFilterResponse(
            matched_count=result.matched,
            updated_count=result.updated,
            schema_version=result.schema_version,
        )
