"""Logging set-up, and the one line per RPC, kept cheap because every call writes it.

The standard library's path for a log call costs about 10 µs: it walks the stack for
the caller, formats the time with strftime and looks up the thread and process. An
RPC's line needs none of that. `RpcLog` builds its record directly, and
`CachedTimeFormatter` formats each second's time once; the lines are unchanged
(`2026-12-02 15:43:56,123 INFO metareg.rpc: /metareg.v1.SchemaRegistry/GetSchema OK
0.4ms`), and they still go through logging's handlers, levels and filters.
"""

from __future__ import annotations

import logging
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CachedTimeFormatter(logging.Formatter):
    """The default `asctime` (local time, milliseconds), formatted once per second."""

    def __init__(self, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:  # a race here only formats the same second twice
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"


def configure(level: str) -> None:
    """Log to stderr at `level`: for the server's own process (`metareg serve`), since it
    also turns off logging's thread and process lookups for the whole process."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    formatter = CachedTimeFormatter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    # Nothing here logs thread or process names; skip looking them up per record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class RpcLog:
    """Writes `METHOD STATUS 1.2ms` at INFO on logger `metareg.rpc` for every call."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("metareg.rpc")

    def __call__(self, method: str, status: str, elapsed_ms: float) -> None:
        logger = self._logger
        if logger.isEnabledFor(logging.INFO):  # cached by logging until levels change
            record = logger.makeRecord(
                logger.name, logging.INFO, __file__, 0, "%s %s %.1fms",
                (method, status, elapsed_ms), None,
            )  # fmt: skip
            logger.handle(record)
