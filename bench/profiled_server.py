"""A metareg server whose ApplyBundle handler runs under cProfile.

Run as `python -m bench.profiled_server --port P --database-url URL --output F`.
It is `create_server` with one change: `MetadataServicer.ApplyBundle` is wrapped
so that each call is profiled (cProfile only sees the thread that enabled it,
so the profiler is switched on inside the handler's worker thread; concurrent
calls are not profiled). On SIGTERM it stops the server and writes the
profile to F (pstats format).

Request parsing happens in grpc before the handler and is not in the profile;
`bench.profiling` measures it separately.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from metareg.server.api.metadata_service import MetadataServicer
from metareg.server.app import Config, create_server

log = logging.getLogger("metareg.server")


def profile_apply_bundle(profiler: cProfile.Profile) -> None:
    """Patch MetadataServicer.ApplyBundle (before the server is built) to run under profiler."""
    original: Callable[..., Any] = MetadataServicer.ApplyBundle
    busy = threading.Lock()

    def apply_bundle(self: MetadataServicer, request: Any, context: Any) -> Any:
        if not busy.acquire(blocking=False):
            return original(self, request, context)
        try:
            profiler.enable()
            try:
                return original(self, request, context)
            finally:
                profiler.disable()
        finally:
            busy.release()

    MetadataServicer.ApplyBundle = apply_bundle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    profiler = cProfile.Profile()
    profile_apply_bundle(profiler)
    server, port = create_server(
        Config(database_url=args.database_url, host=args.host, port=args.port)
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    server.start()
    log.info("metareg (ApplyBundle under cProfile) listening on %s:%d", args.host, port)
    while not stopped.wait(0.5):
        pass
    server.stop(grace=5.0)
    profiler.dump_stats(args.output)


if __name__ == "__main__":
    main()
