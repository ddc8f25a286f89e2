"""What the workload generator says each benchmark query must answer (bench.query).

Every response of the query benchmark, warm-up or timed, is checked against these
after its clock stops, so that no figure can come from a wrong answer.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from metareg.v1 import metadata_pb2 as mpb

from . import workload

Q1_HITS = 100
Q2_FILTER = "quality_score >= 50 AND quality_score < 60"
Q2_LOW, Q2_HIGH = 50.0, 60.0
Q2_ORDER_BY = "quality_score"
Q2_PAGE = 100
Q3_RAIN_OR_SNOW = ("rain", "snow")
Q4_FILTER = "quality_score < 15"
Q4_BELOW = 15.0


class WrongAnswer(AssertionError):
    """A query returned something other than what the workload generator says it must."""


def _camera(values: dict[str, object]) -> str | None:
    return values.get("camera_id")  # type: ignore[return-value]


def _score(values: dict[str, object]) -> float | None:
    return values.get("quality_score")  # type: ignore[return-value]


def _q3_extra(values: dict[str, object]) -> bool:
    return values.get("is_night") is True and values.get("weather") in Q3_RAIN_OR_SNOW


@dataclass
class Expected:
    """The answers, from the generated records (ids are unit-<index>, records[index])."""

    records: Sequence[workload.Record]
    cameras: list[str]  # Q1/Q3 cameras, in the order the runs use them
    by_camera: dict[str, list[str]]  # every camera's ids, ascending
    q2_page: list[str]
    q2_matches: int
    q4_count: int

    @classmethod
    def of(cls, records: Sequence[workload.Record], wanted: int) -> Expected:
        by_camera: dict[str, list[str]] = collections.defaultdict(list)
        in_range: list[tuple[float, str]] = []
        q4 = 0
        for record in records:  # in data_unit_id order, so every id list is sorted
            camera = _camera(record.values)
            if camera is not None:
                by_camera[camera].append(record.data_unit_id)
            score = _score(record.values)
            if score is not None:
                if Q2_LOW <= score < Q2_HIGH:
                    in_range.append((score, record.data_unit_id))
                q4 += score < Q4_BELOW
        # Closest to Q1_HITS records first; ties by camera id, for a fixed choice.
        ranked = sorted(by_camera, key=lambda c: (abs(len(by_camera[c]) - Q1_HITS), c))
        if len(ranked) < wanted:
            raise ValueError(f"only {len(ranked)} cameras occur; need {wanted}")
        in_range.sort()
        page = [duid for _, duid in in_range[:Q2_PAGE]]
        return cls(records, ranked[:wanted], dict(by_camera), page, len(in_range), q4)

    def record(self, data_unit_id: str) -> workload.Record:
        record = self.records[int(data_unit_id.removeprefix("unit-"))]
        assert record.data_unit_id == data_unit_id
        return record

    def q1(self, camera: str) -> list[str]:
        return self.by_camera[camera]

    def q3(self, camera: str) -> list[str]:
        return [d for d in self.by_camera[camera] if _q3_extra(self.record(d).values)]


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _same_value(key: str, stored: mpb.Value, generated: object) -> bool:
    kind = stored.WhichOneof("kind")
    if kind == "embedding_value":
        return bool(list(stored.embedding_value.values) == list(generated))  # type: ignore[call-overload]
    if kind == "string_value":
        if key == "captured_at":  # stored normalised to UTC
            return _instant(stored.string_value) == _instant(str(generated))
        return bool(stored.string_value == generated)
    if kind == "number_value":
        return type(generated) is float and stored.number_value == generated
    if kind == "bool_value":
        return stored.bool_value is generated
    return False


def check_records(records: Sequence[mpb.StoredRecord], expected_ids: Sequence[str],
                  expected: Expected, what: str) -> None:  # fmt: skip
    """The response holds exactly `expected_ids`, in that order, with the generated values."""
    ids = [r.data_unit_id for r in records]
    if ids != list(expected_ids):
        missing = sorted(set(expected_ids) - set(ids))[:5]
        extra = sorted(set(ids) - set(expected_ids))[:5]
        raise WrongAnswer(
            f"{what}: {len(ids)} records, expected {len(expected_ids)} "
            f"(missing e.g. {missing}, unexpected e.g. {extra}, or out of order)"
        )
    for stored in records:
        generated = expected.record(stored.data_unit_id).values
        if set(stored.metadata) != set(generated):
            raise WrongAnswer(f"{what}: {stored.data_unit_id} has keys {sorted(stored.metadata)}")
        for key, value in stored.metadata.items():
            if not _same_value(key, value, generated[key]):
                raise WrongAnswer(f"{what}: {stored.data_unit_id}[{key}] = {value}")
