"""Logging set-up, and the one line per RPC, kept cheap because every call writes it.

The standard library's path for a log call costs about 10 µs: it walks the stack for
the caller, formats the time with strftime and looks up the thread and process. An
RPC's line needs none of that. `RpcLog` builds its record directly, and
`CachedTimeFormatter` formats each second's time once; the lines are unchanged
(`2026-12-02 15:43:56,123 INFO metareg.rpc: /metareg.v1.SchemaRegistry/GetSchema OK
0.4ms`), and they still go through logging's handlers, levels and filters.

With `--log-format json` every line is one JSON object (`JsonFormatter`), and an RPC's
(`JsonRpcLog`) holds its method, status, duration, peer and, when the call has them,
the schema it names and its record count: never a value, a data unit id or a token.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from ..api.call_notes import CallNotes

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A schema name is at most 255 characters when valid; a longer one is cut to this.
MAX_LOGGED_SCHEMA = 256


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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (UTC, ISO 8601 to the millisecond), `level`,
    `logger`, then an RPC line's fields or any other line's `message` (and `exception`),
    and `worker` in a worker of `--workers N`."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker
        self._second = -1
        self._text = ""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # a race here only formats the same second twice
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
        }
        if self._worker is not None:
            fields["worker"] = self._worker
        rpc: dict[str, Any] | None = record.__dict__.get("rpc")
        if rpc is not None:
            fields.update(rpc)
        else:
            fields["message"] = record.getMessage()
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(fields).decode()


def formatter(log_format: str, worker: int | None = None) -> logging.Formatter:
    """The formatter of `log_format` ("text" or "json"), marking a worker's lines."""
    if log_format == "json":
        return JsonFormatter(worker)
    if worker is not None:
        return CachedTimeFormatter(f"[worker {worker}] {LOG_FORMAT}")
    return CachedTimeFormatter()


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr at `level`: for the server's own process (`metareg serve`), since it
    also turns off logging's thread and process lookups for the whole process."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    chosen = formatter(log_format)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(chosen)
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


class JsonRpcLog:
    """The RPC line of the JSON log: the record carries its fields for `JsonFormatter`
    (and still reads `METHOD STATUS 1.2ms` to a text handler)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("metareg.rpc")

    def __call__(
        self, method: str, status: str, elapsed_ms: float, peer: str, notes: CallNotes
    ) -> None:
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "method": method,
            "status": status,
            "duration_ms": round(elapsed_ms, 3),
            "peer": peer,
        }
        if notes.schema is not None:
            fields["schema"] = notes.schema[:MAX_LOGGED_SCHEMA]
        if notes.records is not None:
            fields["records"] = notes.records
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, "%s %s %.1fms",
            (method, status, elapsed_ms), None, extra={"rpc": fields},
        )  # fmt: skip
        logger.handle(record)
