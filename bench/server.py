"""Run a metareg server as a separate process for the end-to-end benchmarks.

The server is the real `metareg serve` command (or, for profiling, the small
wrapper in `bench.profiled_server`), on a free loopback port, logging to a file
in the benchmark's temporary directory. Its peak RSS is read from
/proc/<pid>/status and its per-RPC durations from its log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metareg.v1 import metadata_pb2_grpc, schema_registry_pb2, schema_registry_pb2_grpc

from . import workload
from .loader import BundleRun, apply_bundles
from .pg import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
START_ATTEMPTS = 3
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
_RPC_LOG = re.compile(r"/metareg\.v1\.MetadataService/(\w+) (\w+) ([0-9.]+)ms")


class ServerFailed(RuntimeError):
    """The server process did not start, or died."""


def metareg_command() -> list[str]:
    """The `metareg` console script of this virtualenv."""
    script = BIN / "metareg"
    if not script.exists():
        raise ServerFailed(f"{script} not found; install the project with `pip install -e .`")
    return [str(script)]


def run_metareg(*args: str) -> str:
    """Run a `metareg` subcommand to completion (e.g. `db upgrade`); returns its output."""
    done = subprocess.run(
        [*metareg_command(), *args], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    if done.returncode != 0:
        raise ServerFailed(f"metareg {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def read_status_kib(pid: int, field: str) -> int:
    """A `VmHWM`/`VmRSS`-style field of /proc/<pid>/status, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    channel: grpc.Channel

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def metadata(self) -> metadata_pb2_grpc.MetadataServiceStub:
        return metadata_pb2_grpc.MetadataServiceStub(self.channel)

    def peak_rss_bytes(self) -> int:
        """The process's high-water mark of resident memory (VmHWM)."""
        return read_status_kib(self.pid, "VmHWM") * 1024

    def rss_bytes(self) -> int:
        return read_status_kib(self.pid, "VmRSS") * 1024

    def logged_durations_ms(self, method: str = "ApplyBundle") -> list[float]:
        """Handler durations of successful `method` calls, as the server logged them."""
        text = self.log_path.read_text(errors="replace")
        return [
            float(ms)
            for name, code, ms in _RPC_LOG.findall(text)
            if name == method and code == "OK"
        ]

    def apply(self, bundles: Iterable[Sequence[workload.Record]]) -> BundleRun:
        """Apply bundles through this server; an RPC error carries the server's log tail."""
        try:
            return apply_bundles(self.metadata, bundles)
        except grpc.RpcError as error:
            raise ServerFailed(
                f"ApplyBundle failed: {error.code().name} {error.details()}\n"
                f"{_log_tail(self.log_path)}"
            ) from error

    @property
    def registry(self) -> schema_registry_pb2_grpc.SchemaRegistryStub:
        return schema_registry_pb2_grpc.SchemaRegistryStub(self.channel)

    def create_schema(self, indexed: Collection[str] = ()) -> int:
        """Create the benchmark schema (with an index on each key in `indexed`); its version."""
        response = self.registry.UpdateSchema(
            schema_registry_pb2.UpdateSchemaRequest(
                name=workload.SCHEMA_NAME,
                expected_version=0,
                changes=workload.schema_changes(indexed),
            )
        )
        return int(response.schema.version)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class PortTaken(ServerFailed):
    """Another process bound the free port first (it was free when picked)."""


def _wait_until_serving(
    process: subprocess.Popen[bytes], channel: grpc.Channel, log: Path, port: int
) -> None:
    """Wait for this process's "listening on" log line, then for health SERVING."""
    health = health_pb2_grpc.HealthStub(channel)
    listening = f"listening on 127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = _log_tail(log)
            failure = PortTaken if "cannot listen" in tail else ServerFailed
            raise failure(f"server exited with {process.returncode}:\n{tail}")
        if listening in log.read_text(errors="replace"):
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.1)
    raise ServerFailed(f"server not serving after {START_TIMEOUT_S:.0f}s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # graceful: the profiled server dumps its profile
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_command(
    database_url: str, port: int, profile_to: Path | None, workers: int = 1
) -> list[str]:
    flags = ["--host", "127.0.0.1", "--port", str(port), "--database-url", database_url]
    flags += ["--log-level", "INFO"]
    if profile_to is None:
        return [*metareg_command(), "serve", *flags, "--workers", str(workers)]
    return [sys.executable, "-m", "bench.profiled_server", *flags, "--output", str(profile_to)]


def _start(
    database_url: str,
    workdir: Path,
    name: str,
    profile_to: Path | None,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start a server on a free port; another port is tried if that one is taken meanwhile."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(extra_env or {})}
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        log_path = workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                server_command(database_url, port, profile_to, workers),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
            )
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
        try:
            _wait_until_serving(process, channel, log_path, port)
            return ServerProcess(process, port, log_path, channel)
        except PortTaken:
            channel.close()
            _stop(process)
            if attempt == START_ATTEMPTS:
                raise
        except BaseException:
            channel.close()
            _stop(process)
            raise
    raise AssertionError("unreachable")


@contextmanager
def running_server(
    database_url: str,
    workdir: Path,
    *,
    name: str,
    profile_to: Path | None = None,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Start a server on a free port, yield it once it is SERVING, and stop it afterwards
    (`extra_env`: METAREG_* settings for it)."""
    server = _start(database_url, workdir, name, profile_to, workers, extra_env)
    try:
        yield server
    finally:
        server.channel.close()
        _stop(server.process)
