"""The deterministic metadata workload shared by the benchmarks.

A 13-key schema (3 varchar, 1 text, 3 number, 2 boolean, 1 datetime, 1 uuid,
1 enum of 5 options and a 512-d embedding) and seeded records for it. Every
record has 6-10 keys; about 10% carry the embedding (counted among the keys).
All values are valid for the schema.

`camera_id` takes CAMERAS (6,667) values, so that an equality on it matches
about 100 of 1,000,000 records (each key is present in ~66% of the records),
as the query benchmark (bench.query) specifies. It is drawn from the same two
random draws as before (40 x 1000 pairs, folded onto the cameras: 6,665 of
them from 6 pairs each, 2 from 5), so the random stream, and therefore every
other value of every record, is exactly what it was with 40,000 cameras; the
ids keep their shape, `cam-NN-NNN`, and their length.

`iter_records` yields the same records as `generate` one at a time, for runs
too large to hold in memory at once.

Records are kept in the *decoded* form the server works with after reading a
request: str, float, bool and `array('f')` for the embedding. `json_values`
gives the JSON form (the embedding as a list of floats) for JSON Schema
validators, and `update_message` / `bundle_request` give the wire form.
"""

from __future__ import annotations

import random
import sys
import uuid
from array import array
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import msgspec

from metareg.server.domain.schema import KeyDefinition, KeyType, SchemaState, SchemaVersion
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb
from metareg.v1.wire import float32_bytes

SCHEMA_NAME = "bench-cameras"
DEFAULT_SEED = 20240501
EMBEDDING_KEY = "clip"
EMBEDDING_SIZE = 512
EMBEDDING_SHARE = 0.10
MIN_KEYS, MAX_KEYS = 6, 10
WEATHER = ("sunny", "cloudy", "overcast", "rain", "snow")
# Distinct camera_id values: ~100 records each per 1,000,000 (see the module docstring).
CAMERAS = 6667

KEYS: tuple[KeyDefinition, ...] = (
    KeyDefinition("camera_id", KeyType.VARCHAR, max_length=32),
    KeyDefinition("site", KeyType.VARCHAR, max_length=64),
    KeyDefinition("annotator", KeyType.VARCHAR, max_length=128),
    KeyDefinition("notes", KeyType.TEXT),
    KeyDefinition("quality_score", KeyType.NUMBER),
    KeyDefinition("blur", KeyType.NUMBER),
    KeyDefinition("frame_count", KeyType.NUMBER),
    KeyDefinition("is_night", KeyType.BOOLEAN),
    KeyDefinition("reviewed", KeyType.BOOLEAN),
    KeyDefinition("captured_at", KeyType.DATETIME),
    KeyDefinition("session_id", KeyType.UUID),
    KeyDefinition("weather", KeyType.ENUM, enum_options=WEATHER),
    KeyDefinition(EMBEDDING_KEY, KeyType.EMBEDDING, embedding_size=EMBEDDING_SIZE),
)
SCALAR_KEYS = tuple(d.key for d in KEYS if d.key != EMBEDDING_KEY)

_SITES = (
    "warehouse-berlin-3",
    "depot-lyon-1",
    "crossing-osaka-12",
    "harbour-rotterdam-7",
    "campus-austin-2",
    "tunnel-zurich-5",
    "mall-sao-paulo-4",
    "yard-gdansk-9",
)
_ANNOTATORS = (
    "a.nguyen@labelteam.example",
    "b.okafor@labelteam.example",
    "c.müller@labelteam.example",
    "d.kowalski@vendor.example",
    "e.tanaka@vendor.example",
    "qa-bot-v2",
)
_NOTE_PHRASES = (
    "glare on the left side",
    "partially occluded by a truck",
    "lens needs cleaning",
    "pedestrian near the frame edge",
    "motion blur in the last second",
    "re-checked after the firmware update",
    "low light, IR on",
    "Straße nass, Reflexionen",
    "café sign visible",
    "duplicate of an earlier clip?",
    "ok",
)
_EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = 2 * 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Record:
    """One record in decoded form: str, float, bool, or array('f') for the embedding."""

    data_unit_id: str
    values: dict[str, object]


def schema_state() -> SchemaState:
    """The benchmark schema as the server's domain object."""
    return SchemaState({d.key: d for d in KEYS})


def schema_version(version: int = 1) -> SchemaVersion:
    return SchemaVersion(SCHEMA_NAME, version, schema_state(), None)


def schema_changes(indexed: Collection[str] = ()) -> list[spb.SchemaChange]:
    """The UpdateSchema changes that create the benchmark schema on a server.

    Keys named in `indexed` (scalar or enum keys) are declared with a query index.
    """
    unknown = set(indexed) - {d.key for d in KEYS if d.type is not KeyType.EMBEDDING}
    if unknown:
        raise ValueError(f"cannot index {sorted(unknown)}: not a scalar or enum key")
    changes: list[spb.SchemaChange] = []
    for d in KEYS:
        if d.type is KeyType.ENUM:
            enum = spb.AddEnum(key=d.key, values=d.enum_options)
            if d.key in indexed:
                enum.indexed = True
            changes.append(spb.SchemaChange(add_enum=enum))
        elif d.type is KeyType.EMBEDDING:
            size = d.embedding_size or 0
            changes.append(spb.SchemaChange(add_embedding=spb.AddEmbedding(key=d.key, size=size)))
        else:
            scalar = spb.AddScalar(key=d.key, type=d.type.value)
            if d.max_length is not None:
                scalar.max_length = d.max_length
            if d.key in indexed:
                scalar.indexed = True
            changes.append(spb.SchemaChange(add_scalar=scalar))
    return changes


def data_unit_id(index: int) -> str:
    return f"unit-{index:06d}"


def camera_id(number: int) -> str:
    """The camera_id value of camera `number` (0 .. CAMERAS-1)."""
    return f"cam-{number // 1000:02d}-{number % 1000:03d}"


_OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (-8, -5, 1, 2, 5, 9))


def _datetime_text(rng: random.Random) -> str:
    """ISO 8601 with a Z, a numeric offset, or no offset (naive = UTC); some with fractions."""
    moment = _EPOCH + timedelta(seconds=rng.randrange(_SPAN_SECONDS))
    style = rng.randrange(4)
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rng.randrange(1000):03d}Z"
    if style == 2:
        return moment.astimezone(rng.choice(_OFFSETS)).isoformat(timespec="seconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _notes(rng: random.Random) -> str:
    return "; ".join(rng.sample(_NOTE_PHRASES, rng.randint(1, 4)))


# Maps a random byte to the top byte of a little-endian float32: its sign bit is
# kept and the exponent is forced into 2**-7 .. 2**0, so every element is a
# finite float of magnitude 0.0078..2 with random sign and mantissa.
_TOP_BYTE = bytes((b & 0x80) | (0x3C + (b & 0x03)) for b in range(256))


def _embedding(rng: random.Random) -> array[float]:
    """EMBEDDING_SIZE finite float32 values from seeded random bytes (fast: no per-item Python)."""
    raw = bytearray(rng.randbytes(4 * EMBEDDING_SIZE))
    raw[3::4] = bytes(raw[3::4]).translate(_TOP_BYTE)
    vector = array("f")
    vector.frombytes(bytes(raw))
    if sys.byteorder != "little":  # pragma: no cover - the bytes above are little-endian
        vector.byteswap()
    return vector


def _scalar(key: str, rng: random.Random) -> object:
    match key:
        case "camera_id":
            pair = rng.randrange(40) * 1000 + rng.randrange(1000)  # the draws of 40,000 cameras
            return camera_id(pair % CAMERAS)
        case "site":
            return rng.choice(_SITES)
        case "annotator":
            return rng.choice(_ANNOTATORS)
        case "notes":
            return _notes(rng)
        case "quality_score":
            return round(rng.uniform(0.0, 100.0), 2)
        case "blur":
            return round(rng.random(), 4)
        case "frame_count":
            return float(rng.randint(1, 10_000))
        case "is_night" | "reviewed":
            return rng.random() < 0.3
        case "captured_at":
            return _datetime_text(rng)
        case "session_id":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        case "weather":
            return rng.choice(WEATHER)
    raise KeyError(key)


def _record(index: int, rng: random.Random, embedding_share: float) -> Record:
    count = rng.randint(MIN_KEYS, MAX_KEYS)
    has_embedding = rng.random() < embedding_share
    keys = rng.sample(SCALAR_KEYS, count - 1 if has_embedding else count)
    values: dict[str, object] = {key: _scalar(key, rng) for key in keys}
    if has_embedding:
        values[EMBEDDING_KEY] = _embedding(rng)
    return Record(data_unit_id(index), values)


def generate(
    count: int,
    *,
    seed: int = DEFAULT_SEED,
    embedding_share: float = EMBEDDING_SHARE,
    first_index: int = 0,
) -> list[Record]:
    """`count` records with ids unit-<first_index>.., the same for the same arguments."""
    return list(iter_records(count, seed=seed, embedding_share=embedding_share,
                             first_index=first_index))  # fmt: skip


def iter_records(
    count: int,
    *,
    seed: int = DEFAULT_SEED,
    embedding_share: float = EMBEDDING_SHARE,
    first_index: int = 0,
) -> Iterator[Record]:
    """The records of `generate`, one at a time."""
    rng = random.Random(seed)
    for i in range(count):
        yield _record(first_index + i, rng, embedding_share)


def json_values(values: Mapping[str, object]) -> dict[str, object]:
    """The JSON form of a record: the embedding becomes a list of floats."""
    return {k: v.tolist() if type(v) is array else v for k, v in values.items()}


def fill_value(target: mpb.Value, value: object) -> None:
    """Set one proto Value from a decoded value."""
    if type(value) is str:
        target.string_value = value
    elif type(value) is bool:
        target.bool_value = value
    elif type(value) is float:
        target.number_value = value
    elif type(value) is array:
        target.embedding_value.values.extend(value)
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _fill_update(update: mpb.MetadataUpdate, record: Record) -> None:
    update.data_unit_id = record.data_unit_id
    metadata = update.metadata
    for key, value in record.values.items():
        fill_value(metadata[key], value)


def update_message(record: Record) -> mpb.MetadataUpdate:
    """`record` as a merge update."""
    update = mpb.MetadataUpdate()
    _fill_update(update, record)
    return update


def bundle_request(records: Sequence[Record], schema: str = SCHEMA_NAME) -> mpb.ApplyBundleRequest:
    """An atomic ApplyBundleRequest with one merge update per record."""
    request = mpb.ApplyBundleRequest(schema=schema)
    updates = request.updates
    for record in records:
        _fill_update(updates.add(), record)
    return request


def json_updates(records: Sequence[Record]) -> bytes:
    """The JSON record form of merge updates, embeddings as base64 of float32 (DESIGN §6)."""
    return msgspec.json.encode(
        [
            {
                "data_unit_id": r.data_unit_id,
                "metadata": {
                    k: float32_bytes(v) if type(v) is array else v for k, v in r.values.items()
                },
            }
            for r in records
        ]
    )  # bytes values are written as base64 strings


def json_bundle_request(
    records: Sequence[Record], schema: str = SCHEMA_NAME
) -> mpb.ApplyBundleRequest:
    """An atomic ApplyBundleRequest carrying `records` in the JSON record form."""
    return mpb.ApplyBundleRequest(schema=schema, updates_json=json_updates(records))


def chunks(records: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    """Consecutive slices of `size` records (bundles)."""
    for start in range(0, len(records), size):
        yield records[start : start + size]
