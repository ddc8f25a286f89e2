"""Client: the one object Python users need to talk to a metareg server."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from ._bundle import Bundle, Progress, UpdateModeName
from ._dataframe import DataFrameApplied, apply_dataframe
from ._errors import ConflictError, InvalidArgumentError, NotFoundError, ValueConversionError
from ._export import ExportFormat, ExportProgress, export_records
from ._files import load_schema_file
from ._query import (
    DEFAULT_QUERY_PAGE_SIZE,
    QueryResults,
    ValueCounts,
    count_matches,
    list_values,
    update_matches,
)
from ._results import (
    AuditEvent,
    FilterUpdate,
    SchemaImpact,
    SchemaSummary,
    SchemaUpdate,
    UpdateResult,
    ValidationReport,
)
from ._schema import MetadataSchema, timestamp
from ._transport import (
    DEFAULT_TIMEOUT,
    MAX_REQUEST_BYTES,
    READ_RETRY_CODES,
    PemSource,
    RetryPolicy,
    Transport,
    channel_credentials,
    security_from_env,
    warn_if_token_in_clear,
)
from ._validation import Answered, Validation
from ._values import as_pairs, decode_metadata

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_VARIABLE = "METAREG_ADDRESS"
PAGE_SIZE = 1000
"""The server's limit on records, updates and ids per request."""
IMPORT_ATTEMPTS = 3

T = TypeVar("T")
Records = Mapping[str, Mapping[str, object]] | Iterable[Any]


def _pages(items: Iterable[T], size: int = PAGE_SIZE) -> Iterator[list[T]]:
    iterator = iter(items)
    while page := list(islice(iterator, size)):
        yield page


class Client:
    """A connection to a metareg server.

    Every call has a deadline of `timeout` seconds. Reads (queries and counts too), and
    bundle requests (which carry an idempotency key), are retried with backoff on
    UNAVAILABLE and DEADLINE_EXCEEDED; schema saves and update_by_filter never are.
    Failures raise the typed exceptions of `metareg.client` (e.g. ConflictError for
    ABORTED).

    Security: `tls=True` encrypts the connection and checks the server's certificate
    against `ca_cert` (without it, gRPC's default roots: the system's). `client_cert`
    and `client_key` are presented to a server that requires them (mTLS); any of the
    three implies TLS. Each is a file path (str or Path) or the PEM contents (bytes).
    `token` is sent as `authorization: Bearer <token>` on every call; if that is without
    TLS to another machine, the constructor warns once (InsecureTokenWarning). `credentials`
    (ready-made gRPC channel credentials) is the alternative to tls and the
    certificates. Unreadable or non-PEM files and a bad token raise ValueError.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        tls: bool = False,
        ca_cert: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        retry: RetryPolicy | None = None,
        interceptors: Sequence[Any] = (),
    ) -> None:
        self.address = address
        if credentials is None:
            credentials = channel_credentials(
                tls=tls, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key
            )
        elif tls or ca_cert is not None or client_cert is not None or client_key is not None:
            raise ValueError("give credentials or tls/ca_cert/client_cert/client_key, not both")
        self._transport = Transport(
            address,
            timeout=timeout,
            credentials=credentials,
            metadata=metadata,
            token=token,
            retry=retry or RetryPolicy(),
            interceptors=interceptors,
        )
        if token and credentials is None:
            warn_if_token_in_clear(address, stacklevel=2)

    @classmethod
    def from_env(cls, **options: Any) -> Client:
        """A client configured by the environment; `options` override it.

        `$METAREG_ADDRESS` (default 127.0.0.1:50051, where `metareg serve` listens),
        `$METAREG_TOKEN`, `$METAREG_TLS` (1/true/yes/on or 0/false/no/off),
        `$METAREG_CA_CERT`, `$METAREG_CLIENT_CERT` and `$METAREG_CLIENT_KEY` (file paths).
        """
        settings = security_from_env(os.environ)
        if options.get("credentials") is not None:  # instead of the TLS settings
            settings = {"token": settings["token"]}
        address = os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS
        return cls(address, **{**settings, **options})

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    # --- schemas ---------------------------------------------------------------

    def schema(self, name: str, *, version: int = 0) -> MetadataSchema:
        """A schema at `version` (0 = latest). A schema that does not exist yet comes back
        empty at version 0: add keys and `save()` to create it."""
        return MetadataSchema.fetch(self._transport, name, version)

    def list_schemas(self) -> list[SchemaSummary]:
        summaries: list[SchemaSummary] = []
        token = ""
        while True:
            request = rpb.ListSchemasRequest(page_size=1000, page_token=token)
            page = self._transport.call(
                self._transport.registry.ListSchemas, request, retry_on=READ_RETRY_CODES
            )
            summaries += [
                SchemaSummary(s.name, s.latest_version, s.active_keys, timestamp(s, "updated_at"))
                for s in page.schemas
            ]
            token = page.next_page_token
            if not token:
                return summaries

    def audit_events(self, schema: str = "", *, page_size: int = 100) -> Iterator[AuditEvent]:
        """The audit log, newest first, fetched page by page as you iterate: every schema
        change, DeleteMetadata, UpdateByFilter and key change (needs an admin key; one that
        covers some schemas sees only theirs)."""
        token = ""
        while True:
            request = rpb.ListAuditEventsRequest(schema=schema, page_size=page_size,
                                                 page_token=token)  # fmt: skip
            page = self._transport.call(
                self._transport.registry.ListAuditEvents, request, retry_on=READ_RETRY_CODES
            )
            for e in page.events:
                yield AuditEvent(e.id, timestamp(e, "time"), e.key_name, e.peer, e.rpc,
                                 e.schema, e.summary, e.outcome)  # fmt: skip
            token = page.next_page_token
            if not token:
                return

    def import_schema_from_dict(
        self,
        name: str,
        document: Mapping[str, object],
        *,
        allow_unknown_keys: bool | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> SchemaUpdate:
        """Make the schema match `document` (desired state): missing keys are soft-deleted.

        The flat form `{"camera_id": "varchar"}` and the full form
        `{"clip": {"type": "embedding", "size": 512}}` may be mixed. With `dry_run` nothing
        is written and the result shows the changes and their impact on stored records.
        An import is retried when someone else saved the schema meanwhile, since the
        document states the desired result whatever the version.
        """
        struct = struct_pb2.Struct()
        try:
            struct.update(document)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueConversionError(f"the schema document is not JSON-like: {error}") from None
        attempt = 0
        while True:
            attempt += 1
            current = self.schema(name).version
            request = rpb.ImportSchemaRequest(
                name=name,
                expected_version=current,
                document=struct,
                validate_only=dry_run,
                # A dry run reports the impact instead of failing on it.
                force=force or dry_run,
            )
            if allow_unknown_keys is not None:
                request.allow_unknown_keys = allow_unknown_keys
            try:
                response = self._transport.call(self._transport.registry.ImportSchema, request)
            except ConflictError:
                if attempt >= IMPORT_ATTEMPTS:
                    raise
                continue
            return SchemaUpdate(
                name=name,
                version=response.schema.version if response.changed else current,
                changed=response.changed,
                applied_changes=tuple(response.applied_changes),
                impact=SchemaImpact.from_proto(response.impact),
                dry_run=dry_run,
            )

    def import_schema_from_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        allow_unknown_keys: bool | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> SchemaUpdate:
        """Import a .json, .yaml or .yml schema file; errors name the file and the entry."""
        document = load_schema_file(path)
        try:
            return self.import_schema_from_dict(
                name, document, allow_unknown_keys=allow_unknown_keys, force=force, dry_run=dry_run
            )
        except InvalidArgumentError as error:
            error.add_context(os.fspath(path))
            raise

    def export_json_schema(self, name: str, *, version: int = 0) -> dict[str, Any]:
        """A version as a JSON Schema (draft 2020-12) for one record's metadata."""
        schema = self.schema(name, version=version)
        if schema.version == 0:
            raise NotFoundError(f'schema "{name}" does not exist')
        return schema.to_json_schema()

    # --- metadata ---------------------------------------------------------------

    def validate(
        self,
        name: str,
        records: Records,
        *,
        version: int = 0,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
    ) -> ValidationReport:
        """Check records against the schema without writing; every violation is reported.

        `records` is a dict {data_unit_id: metadata}, or an iterable of (id, metadata)
        pairs, of {"data_unit_id": ..., "metadata": {...}} objects or of StoredRecords
        (what `query` yields). Sent 1000 per request, all
        against the same schema version. A record whose values have no metadata
        representation (e.g. a nested object) is reported with rule "value".
        """
        validation = self._validation(
            name, version=version, coerce_strings=coerce_strings, flatten_nested=flatten_nested
        )
        try:
            for data_unit_id, metadata in as_pairs(records):
                validation.add(data_unit_id, metadata)
            return validation.report()
        finally:
            validation.close()  # after an error: nothing is left waiting

    def _validation(
        self,
        name: str,
        *,
        version: int = 0,
        coerce_strings: bool,
        flatten_nested: bool,
        on_answer: Answered | None = None,
    ) -> Validation:
        """What `validate` uses; the CLI adds file lines to it and takes each answer."""
        return Validation(
            self._transport,
            name,
            version=version,
            coerce_strings=coerce_strings,
            flatten_nested=flatten_nested,
            on_answer=on_answer,
        )

    def bundle(
        self,
        name: str,
        *,
        partial: bool = False,
        progress: Progress | None = None,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
        keep_results: bool = True,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> Bundle:
        """A Bundle of updates: `with client.bundle("cams") as bundle: bundle.update(...)`.

        Sends a request every 1000 updates (sooner past `max_request_bytes`) and at the end
        of the block; each request is one transaction. `progress` is a tqdm-like bar or a
        callable that receives each ChunkResult. Pass `keep_results=False` for very long
        streams to keep memory flat (`results` then stays empty).
        """
        return Bundle(
            self._transport,
            name,
            partial=partial,
            progress=progress,
            coerce_strings=coerce_strings,
            flatten_nested=flatten_nested,
            keep_results=keep_results,
            max_request_bytes=max_request_bytes,
        )

    def apply(
        self,
        name: str,
        records: Records,
        *,
        mode: UpdateModeName | str = "merge",
        partial: bool = False,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
    ) -> list[UpdateResult]:
        """Apply records in one bundle (see `bundle`) and return the per-update results."""
        with self.bundle(
            name, partial=partial, coerce_strings=coerce_strings, flatten_nested=flatten_nested
        ) as bundle:
            for data_unit_id, metadata in as_pairs(records):
                bundle.update(data_unit_id, metadata, mode=mode)
        return bundle.results

    def apply_dataframe(
        self,
        schema: str,
        df: Any,
        id_column: str = "data_unit_id",
        *,
        mode: UpdateModeName | str = "merge",
        partial: bool = False,
    ) -> DataFrameApplied:
        """Apply each row of a pandas DataFrame as one update, in one bundle (see `bundle`).

        The `id_column` column (or the index, if it has that name) holds the data unit
        ids; every other column is a key. Missing cells (NaN, None, pd.NA, NaT) are
        left out, so merge mode keeps the stored value; numpy scalars become Python
        values, Timestamps datetimes, and list or array cells stay vectors. Returns the
        per-row `results` and the `counts` by outcome; without `partial` a request with
        an invalid row raises BundleError. ValueError names a missing id column.
        """
        return apply_dataframe(self, schema, df, id_column, mode=mode, partial=partial)

    def get_metadata(self, name: str, data_unit_ids: Iterable[str]) -> dict[str, dict[str, object]]:
        """{data_unit_id: {key: value}} for the ids that have a record (any number of ids,
        read 1000 per request). Embeddings come back as lists of floats."""
        found: dict[str, dict[str, object]] = {}
        for page in _pages(dict.fromkeys(data_unit_ids)):
            while page:  # the server leaves ids unread once a response reaches 32 MiB
                request = mpb.GetMetadataRequest(schema=name, data_unit_ids=page)
                response = self._transport.call(
                    self._transport.metadata_service.GetMetadata,
                    request,
                    retry_on=READ_RETRY_CODES,
                )
                for record in response.records:
                    found[record.data_unit_id] = decode_metadata(record.metadata)
                page = list(response.unread_data_unit_ids)
        return found

    def delete_metadata(self, name: str, data_unit_ids: Iterable[str]) -> int:
        """Delete whole records; returns how many existed. Not retried (a repeat would
        miscount), so a failure part-way leaves the earlier pages deleted."""
        deleted = 0
        for page in _pages(dict.fromkeys(data_unit_ids)):
            request = mpb.DeleteMetadataRequest(schema=name, data_unit_ids=page)
            response = self._transport.call(
                self._transport.metadata_service.DeleteMetadata, request
            )
            deleted += response.deleted_count
        return deleted

    # --- queries ------------------------------------------------------------------

    def query(
        self,
        name: str,
        filter: str = "",
        *,
        order_by: str | None = None,
        page_size: int = DEFAULT_QUERY_PAGE_SIZE,
        limit: int | None = None,
    ) -> QueryResults:
        """The records `filter` matches, as StoredRecords, fetched page by page as you iterate.

        `filter` is the server's filter language, e.g. `camera_id = "cam-1" AND score >= 0.5`
        (empty matches every record). `order_by` is "key", "key asc" or "key desc"
        (records without the key come last); by default records come in data_unit_id
        order. Each request asks for `page_size` records (1..1000); `limit` stops after
        that many. A rejected filter or ordering raises InvalidArgumentError at once,
        with `.query_error` giving the column. Each item has `.data_unit_id` and
        `.metadata` (the form `get_metadata` returns), plus `.revision`,
        `.schema_version` and `.updated_at`; `apply` accepts them as they are.
        """
        return QueryResults(
            self._transport,
            name,
            filter,
            order_by=order_by or "",
            page_size=page_size,
            limit=limit,
        )

    def count(self, name: str, filter: str = "") -> int:
        """How many records `filter` matches (every record of the schema when empty)."""
        return count_matches(self._transport, name, filter)

    def values(
        self, name: str, key: str, *, prefix: str = "", filter: str = "", limit: int = 20
    ) -> ValueCounts:
        """The distinct values `key` holds, with how many records hold each, most frequent
        first (equal counts by value): for autocomplete and data slicing.

        For varchar, enum, uuid, boolean and number keys. `prefix` keeps the values that
        start with it (string keys only, case-sensitive); `filter` counts only the
        records it matches; `limit` is 1..1000. An indexed key without a filter is
        answered from its index; otherwise the matching records are read.
        """
        return list_values(
            self._transport, name, key, prefix=prefix, filter_text=filter, limit=limit
        )

    def export(
        self,
        schema: str,
        path: str | os.PathLike[str],
        *,
        filter: str = "",
        format: ExportFormat | None = None,
        progress: ExportProgress | None = None,
    ) -> int:
        """Write the records `filter` matches (every record when empty) to a file that
        `metareg metadata apply` reads; return how many were written.

        `format` is "jsonl", "csv" or "parquet" (the `[parquet]` extra); by default the
        file name says (.jsonl, .ndjson, .csv, .parquet; .gz compresses JSONL and
        CSV). Records are read a page at a time and written as they come, so memory does
        not grow with their number. The file is written as PATH.partial and renamed
        when complete: a failed export leaves no file at PATH. `progress` is a tqdm-like
        bar or a callable; each gets the number of records of every page written.
        """
        return export_records(self, schema, path, filter=filter, format=format, progress=progress)

    def update_by_filter(
        self,
        name: str,
        filter: str,
        metadata: Mapping[str, object],
        *,
        mode: UpdateModeName | str = "merge",
        validate_only: bool = False,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
    ) -> FilterUpdate:
        """Apply one patch to every record `filter` matches, in one transaction.

        The filter is required (use e.g. `some_key EXISTS` to mean every record). If
        the patch would make any match invalid, nothing is written and
        InvalidArgumentError names the records. A filter matching more than 50,000
        records raises ResourceExhaustedError and writes nothing: narrow it and repeat.
        With `validate_only` the matches are counted and checked, and nothing is
        written. Never retried: a repeat could patch records that match only now.
        """
        return update_matches(
            self._transport,
            name,
            filter,
            metadata,
            mode=mode,
            validate_only=validate_only,
            coerce_strings=coerce_strings,
            flatten_nested=flatten_nested,
        )
