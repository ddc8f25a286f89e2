"""V: in-process validation throughput of metareg's compiled validator.

Compared on the same records with `jsonschema` (Draft 2020-12, format checks on,
all errors collected as metareg does) and `fastjsonschema`, both given the
JSON Schema that metareg exports for the same schema version.
"""

from __future__ import annotations

import importlib.metadata
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastjsonschema
from jsonschema import (  # type: ignore[import-untyped,unused-ignore]
    Draft202012Validator,
    FormatChecker,
)

from metareg.server.api.convert import update_from_proto, value_readers
from metareg.server.domain.bundle import check_update
from metareg.server.domain.fast_decoder import FastDecoder
from metareg.server.domain.json_records import decode_records
from metareg.server.domain.json_schema import export_json_schema
from metareg.server.domain.validator import CompiledValidator
from metareg.v1 import metadata_pb2 as mpb

from . import workload
from .stats import Timing, time_repeated

# fastjsonschema picks its code generator from "$schema"; it has none for
# draft 2020-12 and falls back to its newest one, draft 2019-09. Every keyword
# the export uses (properties, propertyNames, additionalProperties, anyOf,
# enum, type lists, pattern, maxLength, items as one schema, minItems,
# maxItems, minimum, maximum, format) means the same in both drafts.
FASTJSONSCHEMA_NOTE = (
    "exported schema compiled unchanged; fastjsonschema has no draft 2020-12 generator and "
    "uses its draft 2019-09 one (same meaning for every keyword used); its date-time and "
    "uuid formats are regexes"
)

# Invalid records every validator must reject (JSON form), so that a fast
# figure cannot come from a validator that silently checks nothing.
INVALID_SAMPLES: tuple[dict[str, object], ...] = (
    {"captured_at": "2024-02-30T12:00:00Z"},
    {"captured_at": "yesterday"},
    {"session_id": "0b5d2f7e-3c1a-1e9b-8f6d-2a7c9e1b4d30"},
    {"weather": "hail"},
    {"quality_score": True},
    {"camera_id": "x" * 33},
    {"clip": [0.5] * (workload.EMBEDDING_SIZE - 1)},
    {"undeclared": 1},
)


class BenchmarkSetupError(RuntimeError):
    """The benchmark cannot produce meaningful figures (e.g. a validator accepts bad input)."""


@dataclass(frozen=True)
class ValidationResults:
    records: int
    subset: int
    subset_embeddings: int
    metareg: Timing
    decode_and_check: Timing
    fastjsonschema: Timing
    metareg_subset: Timing
    jsonschema_subset: Timing
    json_fast: Timing
    json_generic: Timing

    @property
    def vs_jsonschema(self) -> float:
        return self.metareg_subset.rate / self.jsonschema_subset.rate

    @property
    def vs_fastjsonschema(self) -> float:
        return self.metareg.rate / self.fastjsonschema.rate

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.records,
            "jsonschema_subset": {"records": self.subset, "with_embedding": self.subset_embeddings},
            "metareg_check": self.metareg.to_json(),
            "metareg_decode_from_proto_and_check": self.decode_and_check.to_json(),
            "metareg_json_request_fast_path": self.json_fast.to_json(),
            "metareg_json_request_generic_path": self.json_generic.to_json(),
            "fastjsonschema": self.fastjsonschema.to_json(),
            "metareg_check_on_subset": self.metareg_subset.to_json(),
            "jsonschema_on_subset": self.jsonschema_subset.to_json(),
            "ratio_vs_jsonschema": self.vs_jsonschema,
            "ratio_vs_fastjsonschema": self.vs_fastjsonschema,
            "fastjsonschema_note": FASTJSONSCHEMA_NOTE,
            # Checked before timing (the run stops otherwise):
            "jsonschema_checks_date_time_format": True,
            "invalid_samples_rejected_by_every_validator": [str(x) for x in INVALID_SAMPLES],
            "versions": {
                name: importlib.metadata.version(name)
                for name in ("jsonschema", "fastjsonschema", "rfc3339-validator", "protobuf")
            },
        }


def metareg_validator() -> CompiledValidator:
    return CompiledValidator(workload.SCHEMA_NAME, 1, workload.schema_state())


def exported_schema() -> dict[str, Any]:
    document: dict[str, Any] = export_json_schema(workload.schema_version())
    return document


def require_date_time_checked() -> FormatChecker:
    """A FormatChecker that really checks date-time (jsonschema skips it without rfc3339)."""
    checker = FormatChecker()
    if "date-time" not in checker.checkers or checker.conforms("2024-02-30T00:00:00Z", "date-time"):
        raise BenchmarkSetupError(
            "jsonschema does not check the date-time format; install rfc3339-validator"
        )
    return checker


def _decoded(values: Mapping[str, object]) -> dict[str, object]:
    return {k: array("f", v) if isinstance(v, list) else v for k, v in values.items()}


# --- one pass of each validator; each returns how many records it rejected ----


def check_metareg(validator: CompiledValidator, records: Sequence[workload.Record]) -> int:
    check = validator.check
    return sum(1 for record in records if check(record.values)[1])


def decode_and_check_metareg(
    validator: CompiledValidator, messages: Sequence[mpb.MetadataUpdate]
) -> int:
    rejected = 0
    readers = value_readers(validator.value_kinds)  # as the server decodes
    for message in messages:
        update = update_from_proto(message, readers)
        _, problems = check_update(validator, update, coerce_strings=False)
        rejected += bool(problems)
    return rejected


def decode_json_requests(
    validator: CompiledValidator, requests: Sequence[bytes], *, fast: FastDecoder | None
) -> int:
    """ApplyBundleRequests in the JSON form, from their bytes, as the server checks them:
    the compiled fast path (`fast`), falling back to the generic decoder and the full
    validator, which is all that runs when `fast` is None. Returns the rejected count."""
    rejected = 0
    for raw in requests:
        body = mpb.ApplyBundleRequest.FromString(raw).updates_json
        updates = fast.decode(body) if fast is not None else None
        if updates is None:
            updates = decode_records(body, validator.state, "updates_json")
        for update in updates:
            rejected += bool(check_update(validator, update, coerce_strings=False)[1])
    return rejected


def fast_path_declines(fast: FastDecoder, requests: Sequence[bytes]) -> int:
    return sum(
        fast.decode(mpb.ApplyBundleRequest.FromString(raw).updates_json) is None for raw in requests
    )


def check_jsonschema(validator: Draft202012Validator, instances: Sequence[object]) -> int:
    # list(iter_errors) collects every violation, as metareg's validator does.
    return sum(1 for instance in instances if list(validator.iter_errors(instance)))


def check_fastjsonschema(compiled: Callable[[object], object], instances: Sequence[object]) -> int:
    rejected = 0
    for instance in instances:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException:
            rejected += 1
    return rejected


# --- set-up checks ------------------------------------------------------------


def _require_all_valid(name: str, rejected: int) -> None:
    if rejected:
        raise BenchmarkSetupError(f"{name} rejected {rejected} workload records; all are valid")


def _require_rejects_samples(
    validator: CompiledValidator, json_validator: Draft202012Validator, compiled: Callable[..., Any]
) -> None:
    for sample in INVALID_SAMPLES:
        verdicts = {
            "metareg": check_metareg(validator, [workload.Record("unit-x", _decoded(sample))]),
            "jsonschema": check_jsonschema(json_validator, [sample]),
            "fastjsonschema": check_fastjsonschema(compiled, [sample]),
        }
        accepted = [name for name, rejected in verdicts.items() if not rejected]
        if accepted:
            raise BenchmarkSetupError(f"{', '.join(accepted)} accepted invalid {sample!r:.80}")


# --- the measurement ------------------------------------------------------------


def measure_validation(
    records: Sequence[workload.Record], *, subset: int, repeats: int, subset_repeats: int
) -> ValidationResults:
    """Time every validator on the same records; jsonschema only on records[:subset]."""
    validator = metareg_validator()
    document = exported_schema()
    Draft202012Validator.check_schema(document)
    json_validator = Draft202012Validator(document, format_checker=require_date_time_checked())
    compiled = fastjsonschema.compile(document)
    _require_rejects_samples(validator, json_validator, compiled)

    messages = [workload.update_message(r) for r in records]
    requests = [
        workload.json_bundle_request(chunk).SerializeToString()
        for chunk in workload.chunks(records, 1000)
    ]
    fast = FastDecoder(validator.state)
    if fast_path_declines(fast, requests):
        raise BenchmarkSetupError("the compiled fast path declined valid workload bundles")
    instances = [workload.json_values(r.values) for r in records]
    few = records[:subset]
    few_instances = instances[:subset]
    _require_all_valid("metareg", check_metareg(validator, records))
    _require_all_valid("metareg (from proto)", decode_and_check_metareg(validator, messages))
    _require_all_valid("metareg (JSON)", decode_json_requests(validator, requests, fast=fast))
    _require_all_valid(
        "metareg (JSON, generic)", decode_json_requests(validator, requests, fast=None)
    )
    _require_all_valid("fastjsonschema", check_fastjsonschema(compiled, instances))
    _require_all_valid("jsonschema", check_jsonschema(json_validator, few_instances))

    n = len(records)
    return ValidationResults(
        records=n,
        subset=len(few),
        subset_embeddings=sum(1 for r in few if workload.EMBEDDING_KEY in r.values),
        metareg=time_repeated(lambda: check_metareg(validator, records), n, repeats),
        decode_and_check=time_repeated(
            lambda: decode_and_check_metareg(validator, messages), n, repeats
        ),
        fastjsonschema=time_repeated(lambda: check_fastjsonschema(compiled, instances), n, repeats),
        metareg_subset=time_repeated(lambda: check_metareg(validator, few), len(few), repeats),
        jsonschema_subset=time_repeated(
            lambda: check_jsonschema(json_validator, few_instances), len(few), subset_repeats
        ),
        json_fast=time_repeated(
            lambda: decode_json_requests(validator, requests, fast=fast), n, repeats
        ),
        json_generic=time_repeated(
            lambda: decode_json_requests(validator, requests, fast=None), n, repeats
        ),
    )
