"""`metareg serve --workers 2`: two processes on one port, on SQLite and PostgreSQL.

Which worker answers a channel is up to the kernel (SO_REUSEPORT balances
connections), so the tests do not count on luck: they open channels one at a
time, find in /proc which worker accepted each one, and keep opening until both
workers hold enough of them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb
from metareg.v1 import schema_registry_pb2_grpc

from . import builders as b
from .conftest import BACKENDS
from .pgcluster import Cluster

METAREG = str(Path(sys.executable).with_name("metareg"))
WORKERS = 2
CHANNELS_PER_WORKER = 8
MAX_CHANNELS = 64  # fewer than 8 of 64 on one worker: about 1 in 10^10 with fair hashing
# Each channel its own TCP connection, so each can land on another worker.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
LISTENING = re.compile(
    rf"metareg listening on 127\.0\.0\.1:(\d+) \(database .*\) with {WORKERS} workers, "
    r"pids (\d+(?:, \d+)*)"
)
T = TypeVar("T")


class ServerLog:
    """The merged stdout and stderr of a server process, read as it is written."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, found: Callable[[str], T | None], timeout: float = 60.0) -> T:
        """The first truthy `found(text)`, polling until the log has it."""
        deadline = time.monotonic() + timeout
        while True:
            result = found(self.text)
            if result:
                return result
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=5)
                result = found(self.text)
                if result:
                    return result
                raise AssertionError(f"not in the server log:\n{self.text}")
            time.sleep(0.05)


@dataclass
class WorkersServer:
    backend: str
    process: subprocess.Popen[str]
    log: ServerLog
    port: int
    pids: list[int]  # worker 1 first
    channels: dict[int, list[grpc.Channel]] = field(default_factory=dict)  # by worker pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def mixed_channels(self, per_worker: int) -> list[grpc.Channel]:
        """`per_worker` channels connected to each worker, interleaved."""
        chosen = [self.channels[pid][:per_worker] for pid in self.pids]
        return [channel for group in zip(*chosen, strict=True) for channel in group]


def tcp_sockets() -> dict[int, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state) for every TCP socket on the host."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            columns = row.split()
            local, remote, state, inode = columns[1], columns[2], columns[3], int(columns[9])
            sockets[inode] = (hex_port(local), hex_port(remote), state)
    return sockets


def hex_port(address: str) -> int:
    """The port of an ADDRESS:PORT column of /proc/net/tcp, both in hex."""
    return int(address.rsplit(":", 1)[1], 16)


def socket_inodes(pid: int | str) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed in the meantime
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


ESTABLISHED, LISTEN = "01", "0A"


def connected_worker(server: WorkersServer, known_client_ports: set[int]) -> int:
    """The pid of the worker that accepted the connection this process opened last."""
    sockets = tcp_sockets()
    mine = {sockets[i][0] for i in socket_inodes("self") if i in sockets
            and sockets[i][1] == server.port and sockets[i][2] == ESTABLISHED}  # fmt: skip
    (client_port,) = mine - known_client_ports
    known_client_ports.add(client_port)
    for pid in server.pids:
        for inode in socket_inodes(pid):
            if sockets.get(inode) == (server.port, client_port, ESTABLISHED):
                return pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def connect_to_both_workers(server: WorkersServer) -> None:
    """Open channels until each worker accepted CHANNELS_PER_WORKER of them.

    Each channel makes one ListSchemas call, so the server logs one line per channel.
    """
    server.channels.update({pid: [] for pid in server.pids})
    client_ports: set[int] = set()
    opened = 0
    while min(len(c) for c in server.channels.values()) < CHANNELS_PER_WORKER:
        assert opened < MAX_CHANNELS, {pid: len(c) for pid, c in server.channels.items()}
        channel = grpc.insecure_channel(server.address, options=OWN_CONNECTION)
        registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
        registry.ListSchemas(rpb.ListSchemasRequest(), timeout=10)
        server.channels[connected_worker(server, client_ports)].append(channel)
        opened += 1


@contextmanager
def running_workers(
    backend: str, database_url: str, cwd: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[WorkersServer]:
    """`metareg serve --workers 2 --port 0 [flags]`, stopped (or killed) on the way out."""
    process = subprocess.Popen(
        [METAREG, "serve", "--workers", str(WORKERS), "--port", "0",
         "--database-url", database_url, *flags],
        cwd=cwd, env={**os.environ, "METAREG_MAX_WORKERS": "8", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = ServerLog(process)
    pids: list[int] = []
    try:
        ready = log.wait_for(LISTENING.search)
        pids = [int(pid) for pid in ready[2].split(", ")]
        yield WorkersServer(backend, process, log, int(ready[1]), pids)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in pids:  # never leave a worker behind, whatever happened
            with suppress(OSError):  # gone already, which is the normal case
                if database_url in Path(f"/proc/{pid}/cmdline").read_text():  # not a reused pid
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module", params=BACKENDS)
def workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkersServer]:
    """One two-worker server per backend for this module; the last test stops it."""
    directory = tmp_path_factory.mktemp("workers")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{directory / 'metareg.db'}"  # a new file: the server migrates it
        else:
            cluster: Cluster = request.getfixturevalue("pg_cluster")
            url = stack.enter_context(cluster.database("metareg_workers"))
            upgrade = [METAREG, "db", "upgrade", "--database-url", url]
            subprocess.run(upgrade, check=True, capture_output=True, timeout=60)
        server = stack.enter_context(running_workers(request.param, url, directory))
        stack.callback(lambda: [c.close() for cs in server.channels.values() for c in cs])
        connect_to_both_workers(server)
        yield server


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces


def listening_ports(pid: int) -> set[int]:
    sockets = tcp_sockets()
    return {sockets[i][0] for i in socket_inodes(pid) if i in sockets and sockets[i][2] == LISTEN}


def test_the_parent_forks_workers_that_all_listen_on_one_port(workers: WorkersServer) -> None:
    assert len(set(workers.pids)) == WORKERS
    for pid in workers.pids:
        assert parent_of(pid) == workers.process.pid
        assert workers.port in listening_ports(pid)
    # The parent only holds the port (bound, not listening): it serves nothing itself.
    assert workers.port not in listening_ports(workers.process.pid)
    if workers.backend == "sqlite":  # a new file: migrated once, by the parent, before forking
        upgrades = [line for line in workers.log.lines if "Running upgrade" in line]
        assert upgrades, workers.log.text
        assert not any(line.startswith("[worker") for line in upgrades), upgrades
        assert len({line.split("Running upgrade", 1)[1] for line in upgrades}) == len(upgrades)


def test_each_worker_answers_the_calls_on_its_connections(workers: WorkersServer) -> None:
    """The fixture made one ListSchemas call per channel; each worker logged its own."""
    expected = {str(n): len(workers.channels[pid]) for n, pid in enumerate(workers.pids, 1)}
    assert min(expected.values()) >= CHANNELS_PER_WORKER

    def answered(text: str) -> dict[str, int] | None:
        lines = re.findall(
            r"^\[worker (\d+)\] .* metareg\.rpc: /metareg\.v1\.SchemaRegistry/ListSchemas OK ",
            text, re.M,
        )  # fmt: skip
        return Counter(lines) if len(lines) >= sum(expected.values()) else None

    assert workers.log.wait_for(answered) == expected


def test_a_schema_race_across_workers_has_one_winner(workers: WorkersServer) -> None:
    channels = workers.mixed_channels(CHANNELS_PER_WORKER)
    barrier = threading.Barrier(len(channels))

    def create(index: int) -> grpc.StatusCode:
        registry = schema_registry_pb2_grpc.SchemaRegistryStub(channels[index])
        barrier.wait()
        try:
            b.update_schema(registry, "raced", 0, b.add_scalar(f"key{index}", "number"))
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    codes = at_once(create, len(channels))
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert codes.count(grpc.StatusCode.ABORTED) == len(channels) - 1, codes
    registry = schema_registry_pb2_grpc.SchemaRegistryStub(channels[-1])
    schema = b.get_schema(registry, "raced")
    assert (schema.version, len(schema.keys)) == (1, 1)


def test_an_idempotent_bundle_applies_once_across_workers(workers: WorkersServer) -> None:
    channels = workers.mixed_channels(4)  # 4 connections to each worker
    registry = schema_registry_pb2_grpc.SchemaRegistryStub(channels[0])
    b.update_schema(registry, "idem", 0, b.add_scalar("score", "number"),
                    b.add_scalar("camera", "varchar"))  # fmt: skip
    ids = [f"unit-{i}" for i in range(20)]
    request = mpb.ApplyBundleRequest(
        schema="idem",
        idempotency_key="bundle-1",
        updates=[
            b.metadata_update(d, {"score": i / 2, "camera": "north"}) for i, d in enumerate(ids)
        ],
    )
    barrier = threading.Barrier(len(channels))

    def apply(index: int) -> mpb.ApplyBundleResponse:
        stub = b.metadata_stub(channels[index])
        barrier.wait()
        response: mpb.ApplyBundleResponse = stub.ApplyBundle(request, timeout=60)
        return response

    responses = at_once(apply, len(channels))
    # Then again, one after another, through one connection to each worker.
    responses += [b.metadata_stub(c).ApplyBundle(request) for c in channels[:WORKERS]]
    assert [r.replayed for r in responses].count(False) == 1, [r.replayed for r in responses]
    (first,) = [r for r in responses if not r.replayed]
    assert [(u.data_unit_id, u.outcome, u.revision) for u in first.results] == [
        (d, mpb.UPDATE_OUTCOME_APPLIED, 1) for d in ids
    ]
    for response in responses:
        replay = mpb.ApplyBundleResponse()
        replay.CopyFrom(response)
        replay.replayed = False
        assert replay == first
    stored = b.metadata_stub(channels[1]).GetMetadata(
        mpb.GetMetadataRequest(schema="idem", data_unit_ids=ids)
    )
    assert [(r.data_unit_id, r.revision) for r in stored.records] == [(d, 1) for d in ids]


def test_a_busy_port_is_a_one_line_error(workers: WorkersServer, tmp_path: Path) -> None:
    """A second two-worker server would otherwise join the first one's SO_REUSEPORT group."""
    result = subprocess.run(
        [METAREG, "serve", "--workers", str(WORKERS), "--port", str(workers.port),
         "--database-url", f"sqlite:///{tmp_path / 'other.db'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{workers.port} (is the port in use?)"
    ]
    assert not (tmp_path / "other.db").exists()  # refused before any database work


def test_sigterm_drains_every_worker_and_the_parent_exits_0(workers: WorkersServer) -> None:
    """Last in this module: it stops the module's server."""
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=30) == 0, workers.log.text
    log = workers.log.wait_for(lambda text: text if "metareg stopped" in text else None)
    for number in range(1, WORKERS + 1):
        worker_lines = [line for line in log.splitlines() if line.startswith(f"[worker {number}]")]
        assert any(re.search(r"received SIGTERM; draining for up to \d+s$", line)
                   for line in worker_lines), log  # fmt: skip
        assert worker_lines[-1].endswith("metareg.server: stopped"), log
    assert log.count("metareg stopped") == 1
    # The parent reaped its workers before exiting: none is left, not even a zombie.
    assert [pid for pid in workers.pids if is_running(pid)] == []


def test_a_worker_that_dies_stops_the_server(tmp_path: Path) -> None:
    """Nothing is respawned: the other workers drain and the parent exits 1."""
    with running_workers("sqlite", f"sqlite:///{tmp_path / 'metareg.db'}", tmp_path) as server:
        first, second = server.pids
        os.kill(first, signal.SIGKILL)
        assert server.process.wait(timeout=30) == 1
        log = server.log.wait_for(lambda text: text if "error: " in text else None)
    died = f"worker 1 (pid {first}) exited unexpectedly with signal SIGKILL"
    assert f"ERROR metareg.server: {died}; stopping the server" in log
    assert re.search(r"^\[worker 2\] .*received SIGTERM; draining", log, re.M), log
    assert log.splitlines()[-1] == f"error: {died}"
    assert "metareg stopped" not in log
    assert not is_running(second)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "0"], {}, "error: METAREG_WORKERS=0 is out of range: use 1..64 processes"),
        ([], {"METAREG_WORKERS": "65"}, "error: METAREG_WORKERS=65 is out of range"),
        ([], {"METAREG_WORKERS": "two"}, "error: METAREG_WORKERS='two' is not a valid int"),
    ],
    ids=["flag-0", "env-65", "env-not-a-number"],
)
def test_a_worker_count_out_of_range_is_a_one_line_error(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [METAREG, "serve", "--port", "0", *args], cwd=tmp_path,
        env={**os.environ, "METAREG_DATABASE_URL": "", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


def at_once(call: Callable[[int], T], count: int) -> list[T]:
    """`call(0)` … `call(count - 1)`, each in its own thread; their results in order."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = call(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results
