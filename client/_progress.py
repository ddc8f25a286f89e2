"""Progress of a long command on stderr: a tqdm bar with rate and ETA on a terminal,
otherwise (CI, a log file, nohup) one line every few seconds; nothing with `quiet`."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

DEFAULT_INTERVAL = 5.0


class Progress:
    """Counts records done and rejected; shows them as the stream allows."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        quiet: bool = False,
        interval: float = DEFAULT_INTERVAL,
        stream: IO[str] | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.rejects = 0
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._interval = interval
        self._started = self._last = time.monotonic()
        self._bar: Any = None
        if not quiet and self._stream.isatty():
            self._bar = tqdm(
                total=total,
                desc=label,
                unit="rec",
                unit_scale=True,
                dynamic_ncols=True,
                smoothing=0.1,
                file=self._stream,
            )

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if self.rejects:
                self._bar.set_postfix(rejects=self.rejects, refresh=False)
        elif not self._quiet:
            now = time.monotonic()
            if now - self._last >= self._interval:
                self._last = now
                self._report(now)

    def rejected(self, n: int = 1) -> None:
        self.rejects += n

    def _report(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        of = ""
        if self.total:
            share = min(self.done / self.total, 1.0)
            left = (self.total - self.done) / rate if rate else 0.0
            of = f"/{self.total:,} ({share:.0%}, about {left:,.0f}s left)"
        line = (
            f"{self.label}: {self.done:,}{of} records, {rate:,.0f}/s, "
            f"{self.rejects:,} rejected, {elapsed:,.0f}s"
        )
        print(line, file=self._stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
