"""metareg.client: the Python client for a metareg server, and the `metareg` CLI.

    from metareg.client import Client

    with Client("localhost:50051") as client:
        schema = client.schema("cams")
        schema.add_scalar("camera_id", data_type="varchar")
        schema.save()
        with client.bundle("cams") as bundle:
            bundle.update("unit-1", {"camera_id": "cam001"})
        for record in client.query("cams", 'camera_id = "cam001"', order_by="camera_id"):
            print(record.data_unit_id, record.metadata)

Depends only on the generated `metareg.v1` stubs, never on the server.
"""

from ._bundle import Bundle
from ._bundle_results import ChunkResult
from ._client import Client
from ._errors import (
    AlreadyExistsError,
    BundleError,
    CallError,
    CancelledError,
    ConflictError,
    DataFileError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    MetaregError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SchemaEditError,
    SchemaFileError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
    ValueConversionError,
    exception_class_for,
    from_grpc_error,
)
from ._files import load_schema_file
from ._query import QueryResults, ValueCounts
from ._results import (
    AuditEvent,
    BundleRejection,
    FieldViolation,
    FilterUpdate,
    Outcome,
    PreconditionViolation,
    QueryErrorPosition,
    RecordReport,
    SchemaImpact,
    SchemaSummary,
    SchemaUpdate,
    SchemaVersionInfo,
    StoredRecord,
    UpdateResult,
    ValidationReport,
    Violation,
)
from ._schema import MetadataSchema
from ._transport import InsecureTokenWarning, RetryPolicy

__all__ = [
    "AlreadyExistsError",
    "AuditEvent",
    "Bundle",
    "BundleError",
    "BundleRejection",
    "CallError",
    "CancelledError",
    "ChunkResult",
    "Client",
    "ConflictError",
    "DataFileError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "FilterUpdate",
    "InsecureTokenWarning",
    "InternalError",
    "InvalidArgumentError",
    "MetadataSchema",
    "MetaregError",
    "NotFoundError",
    "OutOfRangeError",
    "Outcome",
    "PermissionDeniedError",
    "PreconditionViolation",
    "QueryErrorPosition",
    "QueryResults",
    "RecordReport",
    "ResourceExhaustedError",
    "RetryPolicy",
    "SchemaEditError",
    "SchemaFileError",
    "SchemaImpact",
    "SchemaSummary",
    "SchemaUpdate",
    "SchemaVersionInfo",
    "StoredRecord",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "UpdateResult",
    "ValidationReport",
    "ValueConversionError",
    "ValueCounts",
    "Violation",
    "exception_class_for",
    "from_grpc_error",
    "load_schema_file",
]
