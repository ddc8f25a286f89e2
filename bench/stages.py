"""Where a bundle's server time goes: ApplyBundle's stages, in process, CPU per bundle.

    .venv/bin/python -m bench.stages                       # SQLite, 30,000 records
    .venv/bin/python -m bench.stages --records 10000

The benchmark's JSON bundles (bench.workload) go straight to MetadataService.apply_bundle
on a fresh SQLite database, with no gRPC. Each stage is timed by wrapping the function
that does it, in CPU time of this process (so a slower disk or another busy process
shifts the wall time, not these figures); the rest of the call is "session and the
rest" (begin, commit bookkeeping, the result objects). bench.metadata prints this table
with its own figures.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm.session import SessionTransaction

from metareg.server.api.convert import changes_from_proto
from metareg.server.service import metadata as metadata_service
from metareg.server.service.cache import SchemaCache
from metareg.server.service.metadata import BundleRequest, MetadataService
from metareg.server.service.schemas import SchemaService
from metareg.server.storage import idempotency, records
from metareg.server.storage.database import Database
from metareg.server.storage.migrate import upgrade

from . import workload
from .stats import median

# (label, object, attribute): the function whose CPU time is the stage's.
STAGES: tuple[tuple[str, Any, str], ...] = (
    ("decode and check (JSON, fast path)", MetadataService, "decode_json"),
    ("read stored records", records, "load_records"),
    ("plan: merge, encode, results", metadata_service, "plan_bundle"),
    ("write: executemany / COPY", records, "write_records"),
    ("commit", SessionTransaction, "commit"),
    ("idempotency key: find + store", idempotency, "find"),
    ("idempotency key: find + store", idempotency, "store"),
    ("idempotency key: outcome as JSON", metadata_service.BundleOutcome, "to_json"),
    ("schema row and validator", MetadataService, "_schema"),
)
REST = "session and the rest"


@dataclass(frozen=True)
class StageTimes:
    bundles: int
    total_ms: float  # median CPU per bundle
    stages_ms: dict[str, float]  # mean CPU per bundle per stage; REST included

    def to_json(self) -> dict[str, object]:
        return {
            "bundles": self.bundles,
            "cpu_ms_per_bundle_median": self.total_ms,
            "stages_cpu_ms": self.stages_ms,
        }


@contextmanager
def _timed(spent: dict[str, float]) -> Iterator[None]:
    originals: list[tuple[Any, str, Callable[..., Any]]] = []
    for label, owner, name in STAGES:
        real = getattr(owner, name)
        originals.append((owner, name, real))

        def wrapper(*args: Any, _real: Any = real, _label: str = label, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[_label] += time.process_time() - started

        setattr(owner, name, wrapper)
    try:
        yield
    finally:
        for owner, name, real in originals:
            setattr(owner, name, real)


def measure_stages(
    bundles: Sequence[Sequence[workload.Record]], workdir: Path, warm_up: int = 3
) -> StageTimes:
    """Apply `bundles` in process on a fresh SQLite file; CPU per stage per bundle."""
    database = Database(f"sqlite:///{workdir / 'stages.db'}")
    try:
        upgrade(database)
        cache = SchemaCache()
        SchemaService(database, cache).update_schema(
            workload.SCHEMA_NAME, 0, changes_from_proto(workload.schema_changes())
        )
        service = MetadataService(database, cache)
        bodies = [workload.json_updates(bundle) for bundle in bundles]
        spent: dict[str, float] = defaultdict(float)
        totals: list[float] = []
        gc.collect()
        gc.freeze()  # as the server does (app.server.tune_garbage_collector)
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        try:
            with _timed(spent):
                for number, body in enumerate(bodies):
                    if number == warm_up:
                        spent.clear()
                    started = time.process_time()
                    service.apply_bundle(
                        BundleRequest(workload.SCHEMA_NAME, updates_json=body,
                                      idempotency_key=uuid.uuid4().hex, request_hash="-")
                    )  # fmt: skip
                    if number >= warm_up:
                        totals.append(time.process_time() - started)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
    finally:
        database.dispose()
    count = len(totals)
    stages = {label: seconds / count * 1000 for label, seconds in spent.items()}
    stages[REST] = (sum(totals) - sum(spent.values())) / count * 1000
    return StageTimes(count, median(totals) * 1000, stages)


def render(times: StageTimes, bundle_size: int) -> str:
    lines = [
        f"ApplyBundle stages in process (SQLite, JSON form, {times.bundles} bundles of "
        f"{bundle_size}): CPU per bundle, median {times.total_ms:.1f} ms "
        f"({times.total_ms * 1000 / bundle_size:.1f} µs per record)",
    ]
    for label, ms in sorted(times.stages_ms.items(), key=lambda item: -item[1]):
        lines.append(f"  {ms:6.2f} ms  {ms * 1000 / bundle_size:5.2f} µs/record  {label}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--bundle-size", type=int, default=1000)
    args = parser.parse_args(argv)
    bundles = list(workload.chunks(workload.generate(args.records), args.bundle_size))
    with tempfile.TemporaryDirectory(prefix="metareg-stages-") as tmp:
        print(render(measure_stages(bundles, Path(tmp)), args.bundle_size))


if __name__ == "__main__":
    main()
