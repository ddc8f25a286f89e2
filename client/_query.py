"""Queries: page through the records a filter matches, count them, list a key's values
with their counts, patch them all at once.

The filter language is the server's (see the "Filters" comment in metadata.proto); the
client sends filters as they are and never parses them. Query and count are reads and
are retried like every read. UpdateByFilter is not idempotent (a repeat may find other
matches, or count 0 updates the second time), so it is never retried.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from metareg.v1 import metadata_pb2 as mpb

from ._bundle import UpdateModeName, update_mode
from ._results import FilterUpdate, StoredRecord
from ._schema import timestamp
from ._transport import READ_RETRY_CODES, Transport
from ._values import decode_metadata, decode_value, encode_metadata

DEFAULT_QUERY_PAGE_SIZE = 500
"""Records per QueryMetadata request: few round trips, and 500 records of 4096-d
embeddings (8 MiB) still make a modest message."""
MAX_QUERY_PAGE_SIZE = 1000
"""The server's limit on records per page."""


def record_from_proto(message: mpb.StoredRecord) -> StoredRecord:
    return StoredRecord(
        data_unit_id=message.data_unit_id,
        metadata=decode_metadata(message.metadata),
        schema_version=message.schema_version,
        revision=message.revision,
        updated_at=timestamp(message, "updated_at"),
    )


class QueryResults(Iterator[StoredRecord]):
    """The records a filter matches, in order, fetched one page per request as you iterate.

    The first page is requested when the query is made, so a filter the server rejects
    raises InvalidArgumentError from `Client.query` itself; later pages are requested
    only when the iteration reaches them, and only one page is held in memory. Paging
    follows the server's page tokens, which never skip or repeat a record, even while
    records are written. Iterate once: a second loop continues where the first stopped.
    """

    def __init__(
        self,
        transport: Transport,
        schema: str,
        filter_text: str,
        *,
        order_by: str = "",
        page_size: int = DEFAULT_QUERY_PAGE_SIZE,
        limit: int | None = None,
    ) -> None:
        if isinstance(page_size, bool) or not 1 <= page_size <= MAX_QUERY_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_QUERY_PAGE_SIZE}, not {page_size!r}")
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise ValueError(f"limit must be a positive number of records or None, not {limit!r}")
        self._transport = transport
        self._query = {"schema": schema, "filter": filter_text, "order_by": order_by}
        self._page_size = page_size
        self._token = ""
        self._remaining = limit
        self._page: deque[mpb.StoredRecord] = deque()
        self._more = True
        # The schema's latest version when the most recent page was read.
        self.schema_version = 0
        self.pages_read = 0
        self._fetch()

    def __iter__(self) -> QueryResults:
        return self

    def __next__(self) -> StoredRecord:
        while not self._page and self._more:
            self._fetch()
        if not self._page:
            raise StopIteration
        return record_from_proto(self._page.popleft())

    def pages(self) -> Iterator[list[StoredRecord]]:
        """The records not yet iterated, one list per page (the first list holds the
        rest of the current page)."""
        for messages in self.messages():
            yield [record_from_proto(message) for message in messages]

    def messages(self) -> Iterator[list[mpb.StoredRecord]]:
        """`pages()` as the server's messages, not decoded (an export fetches the next
        page on one thread while it decodes and writes this one on another)."""
        while True:
            while not self._page and self._more:
                self._fetch()
            if not self._page:
                return
            page = list(self._page)
            self._page.clear()
            yield page

    def _fetch(self) -> None:
        size = self._page_size
        if self._remaining is not None:
            # Ask for no more than are still wanted: `limit=3` reads 3 records, not a page.
            size = min(size, self._remaining)
        request = mpb.QueryMetadataRequest(**self._query, page_size=size, page_token=self._token)
        response = self._transport.call(
            self._transport.metadata_service.QueryMetadata, request, retry_on=READ_RETRY_CODES
        )
        self.pages_read += 1
        self.schema_version = response.schema_version
        records = response.records
        if self._remaining is not None:
            records = records[: self._remaining]
            self._remaining -= len(records)
        self._page.extend(records)
        self._token = response.next_page_token
        self._more = bool(response.next_page_token) and self._remaining != 0


def count_matches(transport: Transport, schema: str, filter_text: str) -> int:
    response = transport.call(
        transport.metadata_service.CountMetadata,
        mpb.CountMetadataRequest(schema=schema, filter=filter_text),
        retry_on=READ_RETRY_CODES,
    )
    return int(response.count)


@dataclass(frozen=True)
class ValueCounts:
    """The distinct values of one key with their record counts, most frequent first
    (`Client.values`). Iterating gives (value, count) pairs."""

    counts: list[tuple[object, int]]
    more: bool
    """Whether the key holds more distinct values (after the prefix) than were returned."""
    schema_version: int

    def __iter__(self) -> Iterator[tuple[object, int]]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)

    def as_dict(self) -> dict[object, int]:
        return dict(self.counts)


def list_values(
    transport: Transport, schema: str, key: str, *, prefix: str, filter_text: str, limit: int
) -> ValueCounts:
    response = transport.call(
        transport.metadata_service.ListValues,
        mpb.ListValuesRequest(
            schema=schema, key=key, prefix=prefix, filter=filter_text, limit=limit
        ),
        retry_on=READ_RETRY_CODES,
    )
    counts = [(decode_value(entry.value), int(entry.count)) for entry in response.values]
    return ValueCounts(counts, response.more, response.schema_version)


def update_matches(
    transport: Transport,
    schema: str,
    filter_text: str,
    metadata: Mapping[str, object],
    *,
    mode: UpdateModeName | str,
    validate_only: bool,
    coerce_strings: bool,
    flatten_nested: bool,
) -> FilterUpdate:
    request = mpb.UpdateByFilterRequest(
        schema=schema,
        filter=filter_text,
        mode=update_mode(mode),
        validate_only=validate_only,
        coerce_strings=coerce_strings,
    )
    encode_metadata(metadata, request.metadata, flatten_nested=flatten_nested)
    response = transport.call(transport.metadata_service.UpdateByFilter, request)
    return FilterUpdate(
        matched_count=response.matched_count,
        updated_count=response.updated_count,
        schema_version=response.schema_version,
        validate_only=validate_only,
    )
