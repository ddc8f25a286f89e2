"""`serve --workers N`: N forked server processes on one port, supervised by the parent."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkContext, ForkProcess
from types import FrameType
from typing import Protocol

from ..service.access import AccessService
from ..storage.database import Database
from ..storage.migrate import ensure_at_head
from . import logs, metrics, tls
from .access import check_exposure
from .config import Config
from .server import (
    bind_addresses,
    bind_socket,
    create_server,
    drain_on_signal,
    tune_garbage_collector,
)

log = logging.getLogger("metareg.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long past the drain grace a stopping worker may take before it is killed.
EXIT_MARGIN_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class WorkerFailed(RuntimeError):
    """A worker could not start, died while serving, or did not stop cleanly."""


class _Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class Worker:
    """One forked server process and the parent's end of its start-up report pipe."""

    number: int
    process: ForkProcess
    reports: Connection
    reported: bool = False  # ready, or gone before it could say so
    ready: bool = False

    def __str__(self) -> str:
        return f"worker {self.number} (pid {self.process.pid})"


def serve_workers(config: Config) -> None:
    """Run `config.workers` servers on one port until SIGTERM or SIGINT; WorkerFailed if
    one of them fails (the others are then stopped too: nothing is respawned)."""
    with ExitStack() as stack:
        port, reservations = stack.enter_context(reserve_port(config.host, config.port))
        database = check_database(config)
        if config.metrics_port:  # one /metrics here, of every worker's metrics
            host = config.metrics_host or config.host
            stack.enter_context(metrics.multiprocess_endpoint(host, config.metrics_port))
        supervisor = Supervisor(replace(config, port=port), database, reservations)
        supervisor.run()


@contextmanager
def reserve_port(host: str, port: int) -> Iterator[tuple[int, list[socket.socket]]]:
    """Hold `host:port` (a free port for 0) with SO_REUSEPORT while the workers use it.

    A plain bind first proves that nothing listens there: the workers' own binds
    would silently join another server's SO_REUSEPORT group on the same port.
    """
    busy = OSError(f"cannot listen on {host}:{port} (is the port in use?)")
    try:
        addresses = bind_addresses(host)
        probes: list[socket.socket] = []
        try:
            for address in addresses:
                probes.append(bind_socket(address, port, reuse_port=False))
                port = probes[0].getsockname()[1]
        finally:
            for probe in probes:
                probe.close()
        reservations = [bind_socket(address, port, reuse_port=True) for address in addresses]
    except OSError:
        raise busy from None
    try:
        yield port, reservations
    finally:
        for reservation in reservations:
            reservation.close()


def check_database(config: Config) -> str:
    """Migrate a brand-new SQLite file or refuse a database not at head, once for all workers
    (so that two never race to migrate); returns the URL to log, without its password."""
    database = Database(config.database_url, pool_size=1)
    try:
        ensure_at_head(database)
        check_exposure(config, AccessService(database))  # once, before any worker starts
        return database.url.render_as_string(hide_password=True)
    finally:
        # Before any fork: no connection and no checkpoint thread may be inherited.
        database.dispose()


class Supervisor:
    """Forks the workers, waits for them to be ready, and stops them all on a signal or
    when any one of them exits."""

    def __init__(self, config: Config, database: str, inherited: Sequence[_Closeable]) -> None:
        self.config = config
        self.database = database
        self.workers: list[Worker] = []
        self.signal_received: signal.Signals | None = None
        self._wakeup, self._wakeup_writer = socket.socketpair()
        self._wakeup_writer.setblocking(False)
        # Open in the parent; closed in each child, which has no use for them.
        self._inherited = [*inherited, self._wakeup, self._wakeup_writer]

    def run(self) -> None:
        previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        try:
            context = multiprocessing.get_context("fork")
            for number in range(1, self.config.workers + 1):
                self.workers.append(self._fork(context, number))
            problem = self._supervise()
            if problem:
                log.error("%s; stopping the server", problem)
            elif self.signal_received:
                log.info("received %s; stopping the workers", self.signal_received.name)
        finally:  # whatever happened, no worker outlives this call
            stopped_badly = self._stop_workers()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._wakeup.close()
            self._wakeup_writer.close()
        problem = problem or stopped_badly
        if problem:
            raise WorkerFailed(problem)
        log.info("metareg stopped")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only note it: the main loop, woken through the socket, does the work.
        self.signal_received = self.signal_received or signal.Signals(signum)
        with suppress(OSError):  # full of earlier signals, or closed once stopped
            self._wakeup_writer.send(b"\0")

    def _fork(self, context: ForkContext, number: int) -> Worker:
        reports, report = context.Pipe(duplex=False)
        inherited = [*self._inherited, *(w.reports for w in self.workers), reports]
        process = context.Process(
            target=run_worker,
            args=(number, self.config, report, inherited, os.getpid()),
            name=f"metareg-worker-{number}",
        )
        # Blocked across the fork: until the child has its own handlers, a signal
        # must neither kill it nor run the parent's handler in it.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        report.close()
        return Worker(number, process, reports)

    def _supervise(self) -> str | None:
        """Block until a stop signal (None) or a worker's failure (what happened)."""
        while self.signal_received is None:
            waiting = [w.reports for w in self.workers if not w.reported]
            sentinels = {w.process.sentinel: w for w in self.workers}
            woken = wait([self._wakeup, *waiting, *sentinels])
            for worker in self.workers:
                if worker.reports in woken:
                    problem = self._read_report(worker)
                    if problem:
                        return problem
            for sentinel in woken:
                if isinstance(sentinel, int) and sentinel in sentinels:
                    worker = sentinels[sentinel]
                    worker.process.join()
                    return f"{worker} exited unexpectedly with {_describe_exit(worker)}"
        return None

    def _read_report(self, worker: Worker) -> str | None:
        worker.reported = True
        try:
            problem: str | None = worker.reports.recv()
        except EOFError:  # it died before reporting; its sentinel tells how
            return None
        if problem:
            return f"{worker} could not start: {problem}"
        worker.ready = True
        if all(w.ready for w in self.workers):
            log.info(
                "metareg listening on %s:%d%s (database %s) with %d workers, pids %s",
                self.config.host,
                self.config.port,
                tls.log_marker(self.config),
                self.database,
                len(self.workers),
                ", ".join(str(w.process.pid) for w in self.workers),
            )
        return None

    def _stop_workers(self) -> str | None:
        """SIGTERM every worker, wait for it to drain, kill any that overstays."""
        for worker in self.workers:
            worker.process.terminate()  # SIGTERM, unless it has exited already
        deadline = time.monotonic() + self.config.shutdown_grace_seconds + EXIT_MARGIN_SECONDS
        problem = None
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                problem = problem or f"{worker} did not stop in time and was killed"
                log.error("%s did not stop in time; killing it", worker)
                worker.process.kill()
                worker.process.join()
            # A worker still starting when SIGTERM came has no handler yet and dies of it.
            elif worker.process.exitcode not in (0, -signal.SIGTERM):
                problem = problem or f"{worker} stopped with {_describe_exit(worker)}"
            worker.reports.close()
        return problem


def _describe_exit(worker: Worker) -> str:
    code = worker.process.exitcode
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def run_worker(
    number: int,
    config: Config,
    report: Connection,
    inherited: Sequence[_Closeable],
    parent_pid: int,
) -> None:
    """A worker process: one gRPC server on the shared port until SIGTERM.

    Runs in the forked child, where no gRPC object existed before this function.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Ctrl-C reaches the whole process group; the parent answers it with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _stop_with_parent(parent_pid)
    for item in inherited:
        item.close()
    _tag_log_lines(number, config.log_format)
    try:
        server, port = create_server(config, reuse_port=True, metrics_endpoint=False)
    except Exception as error:
        log.debug("could not start", exc_info=True)
        report.send(str(error) or type(error).__name__)
        sys.exit(1)
    tune_garbage_collector()
    server.start()
    stopped = drain_on_signal(server, config.shutdown_grace_seconds, (signal.SIGTERM,))
    log.info("serving on %s:%d%s (pid %d)", config.host, port, tls.log_marker(config), os.getpid())
    report.send(None)
    report.close()
    stopped.wait()
    log.info("stopped")


def _stop_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGTERM this worker (which then drains) if the parent dies first."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent_pid:  # it died before prctl took effect
        sys.exit(1)


def _tag_log_lines(number: int, log_format: str) -> None:
    """Mark every log line of this process with its worker number."""
    formatter = logs.formatter(log_format, number)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
