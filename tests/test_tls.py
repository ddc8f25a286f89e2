"""TLS and mTLS on a real server; the client's certificates and token; the CLI over TLS.

Certificates come from trustme, made afresh for this module: a CA for the server's
certificate, a CA for client certificates (mTLS), and an unrelated CA that the server
and the clients must both refuse.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme

from metareg.client import Client, InsecureTokenWarning, RetryPolicy, UnavailableError
from metareg.server.app import Config
from metareg.server.app.tls import server_credentials
from metareg.v1 import schema_registry_pb2 as rpb
from metareg.v1 import schema_registry_pb2_grpc

from .conftest import RunningServer, start_server
from .test_workers import OWN_CONNECTION, ServerLog, WorkersServer, connected_worker

METAREG = str(Path(sys.executable).with_name("metareg"))
ONCE = RetryPolicy(max_attempts=1)  # a refused handshake is final: no need to wait for retries
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
SCHEMA = "camera_id: varchar\nscore: number\n"


@dataclass(frozen=True)
class Pki:
    """PEM files: the server's CA and certificate, client certificates, a stranger CA."""

    ca: Path  # signed the server's certificate
    server_cert: Path
    server_key: Path
    client_ca: Path  # signs the client certificates the mTLS server accepts
    client_cert: Path
    client_key: Path
    other_ca: Path  # signed nothing of this server's
    stranger_cert: Path  # a client certificate signed by other_ca
    stranger_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    issued = {
        "server": ca.issue_cert("127.0.0.1", "localhost"),
        "client": client_ca.issue_cert("client@example.com"),
        "stranger": other_ca.issue_cert("stranger@example.com"),
    }
    for name, authority in (("ca", ca), ("client_ca", client_ca), ("other_ca", other_ca)):
        authority.cert_pem.write_to_path(str(directory / f"{name}.pem"))
    for name, cert in issued.items():
        for index, blob in enumerate(cert.cert_chain_pems):
            blob.write_to_path(str(directory / f"{name}.pem"), append=index > 0)
        cert.private_key_pem.write_to_path(str(directory / f"{name}.key"))
    return Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_ca=directory / "client_ca.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other_ca.pem",
        stranger_cert=directory / "stranger.pem",
        stranger_key=directory / "stranger.key",
    )


@contextmanager
def running(database_url: str, **tls: Path) -> Iterator[RunningServer]:
    server = start_server(database_url, **{name: str(path) for name, path in tls.items()})
    try:
        yield server
    finally:
        server.channel.close()  # plaintext: of no use on this port
        server.server.stop(grace=None)


@pytest.fixture
def tls_server(database_url: str, pki: Pki) -> Iterator[RunningServer]:
    with running(database_url, tls_cert=pki.server_cert, tls_key=pki.server_key) as server:
        yield server


@pytest.fixture
def mtls_server(database_url: str, pki: Pki) -> Iterator[RunningServer]:
    with running(
        database_url, tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.client_ca
    ) as server:
        yield server


def refused(address: str, **options: Any) -> UnavailableError:
    with (
        Client(address, timeout=10, retry=ONCE, **options) as client,
        pytest.raises(UnavailableError) as caught,
    ):
        client.list_schemas()
    return caught.value


def works(address: str, name: str = "cams", **options: Any) -> None:
    """Save a new schema, apply a bundle and read both back through `options`."""
    with Client(address, timeout=30, **options) as client:
        schema = client.schema(name)
        schema.add_scalar("camera_id", data_type="varchar")
        schema.save()
        client.apply(name, {"frame-1": {"camera_id": "cam-1"}})
        assert client.schema(name).version == 1
        assert client.get_metadata(name, ["frame-1"]) == {"frame-1": {"camera_id": "cam-1"}}


# --- the Python client and an in-process server --------------------------------------


@SQLITE
def test_a_tls_client_that_trusts_the_servers_ca_works(tls_server: RunningServer, pki: Pki) -> None:
    works(tls_server.address, "by-path", tls=True, ca_cert=pki.ca)
    works(tls_server.address, "by-pem", ca_cert=pki.ca.read_bytes())  # a CA implies TLS
    works(f"localhost:{tls_server.port}", "by-name", ca_cert=str(pki.ca))  # its DNS name


@SQLITE
def test_a_plaintext_client_and_a_client_of_another_ca_are_refused(
    tls_server: RunningServer, pki: Pki
) -> None:
    assert refused(tls_server.address).code == grpc.StatusCode.UNAVAILABLE
    assert "handshake" in refused(tls_server.address, ca_cert=pki.other_ca).message.lower()
    refused(tls_server.address, tls=True)  # the system's roots know nothing of trustme's CA


@SQLITE
def test_mtls_refuses_a_client_without_a_certificate(mtls_server: RunningServer, pki: Pki) -> None:
    refused(mtls_server.address, ca_cert=pki.ca)


@SQLITE
def test_mtls_accepts_a_certificate_signed_by_the_client_ca(
    mtls_server: RunningServer, pki: Pki
) -> None:
    works(mtls_server.address, ca_cert=pki.ca, client_cert=pki.client_cert,
          client_key=pki.client_key)  # fmt: skip


@SQLITE
def test_mtls_refuses_a_certificate_signed_by_another_ca(
    mtls_server: RunningServer, pki: Pki
) -> None:
    refused(mtls_server.address, ca_cert=pki.ca, client_cert=pki.stranger_cert,
            client_key=pki.stranger_key)  # fmt: skip


class HeaderRecorder(schema_registry_pb2_grpc.SchemaRegistryServicer):
    """A stand-in registry that records each GetSchema call's metadata (no such schema)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.headers.append(dict(context.invocation_metadata()))
        context.abort(grpc.StatusCode.NOT_FOUND, f"no schema {request.name}")


@contextmanager
def recording_server(credentials: grpc.ServerCredentials | None) -> Iterator[tuple[str, Any]]:
    recorder = HeaderRecorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    schema_registry_pb2_grpc.add_SchemaRegistryServicer_to_server(recorder, server)
    port = (
        server.add_secure_port("127.0.0.1:0", credentials)
        if credentials
        else server.add_insecure_port("127.0.0.1:0")
    )
    server.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext-loopback", "tls"])
def test_the_token_reaches_the_server_as_a_bearer_header(pki: Pki, tls: bool) -> None:
    config = Config(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    with recording_server(server_credentials(config) if tls else None) as (address, recorder):
        with warnings.catch_warnings():
            warnings.simplefilter("error", InsecureTokenWarning)  # loopback: no warning
            client = Client(address, token="s3cret.token-1", ca_cert=pki.ca if tls else None)
        with client:
            assert client.schema("cams").version == 0  # NOT_FOUND: a schema yet to create
            client.schema("other")
    assert len(recorder.headers) == 2
    for headers in recorder.headers:
        assert headers["authorization"] == "Bearer s3cret.token-1"


def test_from_env_reads_the_token_and_the_tls_settings(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    with recording_server(server_credentials(config)) as (address, recorder):
        monkeypatch.setenv("METAREG_ADDRESS", address)
        monkeypatch.setenv("METAREG_TOKEN", "from-the-env")
        monkeypatch.setenv("METAREG_TLS", "true")
        monkeypatch.setenv("METAREG_CA_CERT", str(pki.ca))
        with Client.from_env() as client:
            client.schema("cams")
        with Client.from_env(token="given", retry=ONCE) as client:  # options win
            client.schema("cams")
        monkeypatch.setenv("METAREG_TLS", "0")
        monkeypatch.delenv("METAREG_CA_CERT")
        with pytest.raises(UnavailableError), Client.from_env(retry=ONCE) as client:
            client.schema("cams")  # plaintext to a TLS port
        monkeypatch.setenv("METAREG_TLS", "maybe")
        with pytest.raises(ValueError, match="METAREG_TLS='maybe' is not a boolean"):
            Client.from_env()
    assert [h["authorization"] for h in recorder.headers] == [
        "Bearer from-the-env", "Bearer given",
    ]  # fmt: skip


def test_a_token_in_clear_to_another_machine_warns_without_showing_it() -> None:
    with pytest.warns(InsecureTokenWarning) as caught:
        Client("203.0.113.7:50051", token="s3cret-token").close()
    (warning,) = caught
    assert "203.0.113.7:50051" in str(warning.message)
    assert "s3cret" not in str(warning.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for local in ("127.0.0.1:1", "localhost:1", "[::1]:1", "dns:///localhost:1",
                      "ipv4:127.0.0.2:1", "unix:/tmp/metareg.sock"):  # fmt: skip
            Client(local, token="t").close()
        Client("203.0.113.7:50051", token="t", tls=True).close()
        Client("203.0.113.7:50051").close()  # no token, nothing to leak


def test_unusable_certificates_and_tokens_are_value_errors(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=re.escape(f"the CA certificate {missing}: No such")):
        Client("127.0.0.1:1", ca_cert=missing)
    with pytest.raises(ValueError, match=r"client certificate .* is not PEM holding a certif"):
        Client("127.0.0.1:1", client_cert=pki.client_key, client_key=pki.client_key)
    with pytest.raises(ValueError, match="give both or neither"):
        Client("127.0.0.1:1", client_cert=pki.client_cert)
    with pytest.raises(ValueError, match="pass them as bytes"):
        Client("127.0.0.1:1", ca_cert=pki.ca.read_text())
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        Client("127.0.0.1:1", token="s3cret token")
    assert "s3cret" not in str(caught.value)


# --- the CLI --------------------------------------------------------------------------


def metareg(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METAREG_")}
    return subprocess.run(
        [METAREG, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**clean, **(env or {})},
    )  # fmt: skip


@SQLITE
def test_the_cli_over_tls_and_mtls(
    tls_server: RunningServer, mtls_server: RunningServer, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    on = ("--address", tls_server.address)
    imported = metareg("schema", "import", "cams", "schema.yaml", *on, "--tls",
                       "--ca-cert", str(pki.ca), cwd=tmp_path)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    env = {"METAREG_ADDRESS": tls_server.address, "METAREG_TLS": "1",
           "METAREG_CA_CERT": str(pki.ca)}  # fmt: skip
    shown = metareg("schema", "show", "cams", cwd=tmp_path, env=env)
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout.startswith('schema "cams" version 1')

    mutual = ("--address", mtls_server.address, "--ca-cert", str(pki.ca))
    listed = metareg("schema", "list", *mutual, "--client-cert", str(pki.client_cert),
                     "--client-key", str(pki.client_key), cwd=tmp_path)  # fmt: skip
    assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
    no_cert = metareg("schema", "list", *mutual, cwd=tmp_path)
    assert no_cert.returncode == 3
    assert "--client-cert" in no_cert.stderr


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the command wrote on stderr, without gRPC's own log lines (`I1202 18:00:00…`:
    it logs each failed TLS handshake unless GRPC_VERBOSITY says otherwise)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    return [line for line in lines if not re.match(r"[DIWEF]\d{4} \d\d:", line)]


@SQLITE
def test_the_cli_without_the_ca_or_without_tls_is_unreachable_with_a_tls_hint(
    tls_server: RunningServer, tmp_path: Path
) -> None:
    untrusted = metareg("schema", "list", "--address", tls_server.address, "--tls", cwd=tmp_path)
    assert untrusted.returncode == 3
    first, hint = error_lines(untrusted)
    assert first.startswith(f"error: cannot reach a metareg server at {tls_server.address}")
    assert hint.startswith("  hint: the TLS handshake failed")
    assert "--ca-cert" in hint

    plaintext = metareg("schema", "list", "--address", tls_server.address, cwd=tmp_path)
    assert plaintext.returncode == 3
    assert error_lines(plaintext)[-1] == (
        "  hint: if the server uses TLS, connect with --tls (and --ca-cert PEM for a private CA)"
    )


def test_the_cli_says_nothing_of_tls_when_nothing_listens(tmp_path: Path) -> None:
    result = metareg("schema", "list", "--address", "127.0.0.1:1", "--tls", cwd=tmp_path)
    assert result.returncode == 3
    assert len(error_lines(result)) == 1


def test_the_cli_sends_the_token_and_warns_when_it_would_travel_in_clear(
    pki: Pki, tmp_path: Path
) -> None:
    with recording_server(None) as (address, recorder):
        flag = metareg("schema", "show", "cams", "--address", address, "--token", "t-flag",
                       cwd=tmp_path)  # fmt: skip
        env = metareg("schema", "show", "cams", "--address", address, cwd=tmp_path,
                      env={"METAREG_TOKEN": "t-env"})  # fmt: skip
    assert "warning" not in flag.stderr + env.stderr  # loopback
    assert [h["authorization"] for h in recorder.headers] == ["Bearer t-flag", "Bearer t-env"]
    remote = metareg("schema", "show", "cams", "--address", "203.0.113.7:50051", "--timeout",
                     "0.5", "--token", "s3cret", cwd=tmp_path)  # fmt: skip
    assert remote.returncode == 3
    warning = error_lines(remote)[0]
    assert warning.startswith("warning: the API token is sent without TLS to 203.0.113.7:50051")
    assert "s3cret" not in remote.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--ca-cert", "error: cannot read the CA certificate {missing}: No such file or directory"),
        ("--client-cert", "error: a client certificate and its private key go together"),
    ],
)
def test_the_cli_refuses_an_unusable_certificate_in_one_line(
    tmp_path: Path, option: str, message: str
) -> None:
    missing = tmp_path / "missing.pem"
    result = metareg("schema", "list", option, str(missing), cwd=tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert line.startswith(message.format(missing=missing))


# --- metareg serve ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--tls-cert", "{server_cert}"], {},
         "error: METAREG_TLS_CERT is set but METAREG_TLS_KEY is not: TLS needs both"),
        ([], {"METAREG_TLS_KEY": "{server_key}"},
         "error: METAREG_TLS_KEY is set but METAREG_TLS_CERT is not"),
        (["--tls-cert", "{missing}", "--tls-key", "{server_key}"], {},
         "error: METAREG_TLS_CERT='{missing}' cannot be read: No such file or directory"),
        (["--tls-cert", "{server_cert}", "--tls-key", "{server_cert}"], {},
         "error: METAREG_TLS_KEY='{server_cert}' is not a PEM private key"),
        (["--tls-cert", "{server_cert}", "--tls-key", "{client_key}"], {},
         "error: METAREG_TLS_CERT='{server_cert}' and METAREG_TLS_KEY='{client_key}' do not "
         "make a certificate and its private key: key values mismatch"),
        (["--tls-cert", "{server_cert}", "--tls-key", "{server_key}", "--tls-client-ca",
          "{missing}"], {}, "error: METAREG_TLS_CLIENT_CA='{missing}' cannot be read"),
        (["--tls-client-ca", "{client_ca}"], {},
         "error: METAREG_TLS_CLIENT_CA requires METAREG_TLS_CERT and METAREG_TLS_KEY"),
    ],
)  # fmt: skip
def test_serve_refuses_unusable_tls_settings_in_one_line(
    pki: Pki, tmp_path: Path, flags: list[str], env: dict[str, str], message: str
) -> None:
    paths = {**{name: str(path) for name, path in vars(pki).items()},
             "missing": str(tmp_path / "missing.pem")}  # fmt: skip
    result = metareg(
        "serve", "--port", "0", *(flag.format(**paths) for flag in flags), cwd=tmp_path,
        env={name: value.format(**paths) for name, value in env.items()}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = error_lines(result)
    assert line.startswith(message.format(**paths))
    assert not (tmp_path / "metareg.db").exists()  # refused before touching the database


@contextmanager
def serving(*args: str, cwd: Path, ready: re.Pattern[str]) -> Iterator[tuple[ServerLog, Any]]:
    """`metareg serve ARGS --port 0` until it logs `ready`, SIGTERM on the way out."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METAREG_")}
    process = subprocess.Popen(
        [METAREG, "serve", "--port", "0", "--database-url", f"sqlite:///{cwd / 'x.db'}", *args],
        cwd=cwd, env={**clean, "METAREG_MAX_WORKERS": "4"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = ServerLog(process)
    try:
        yield log, log.wait_for(ready.search)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.text


def test_serve_logs_tls_and_serves_it(pki: Pki, tmp_path: Path) -> None:
    ready = re.compile(r"metareg listening on 127\.0\.0\.1:(\d+) \(TLS\) \(database ")
    tls = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    with serving(*tls, cwd=tmp_path, ready=ready) as (_, found):
        address = f"127.0.0.1:{found[1]}"
        works(address, ca_cert=pki.ca)
        refused(address)


def test_every_worker_serves_mtls(pki: Pki, tmp_path: Path) -> None:
    ready = re.compile(
        r"metareg listening on 127\.0\.0\.1:(\d+) \(mTLS\) \(database .*\) with 2 workers, "
        r"pids (\d+), (\d+)"
    )
    mutual = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
              "--tls-client-ca", str(pki.client_ca))  # fmt: skip
    with serving("--workers", "2", *mutual, cwd=tmp_path, ready=ready) as (log, found):
        port, pids = int(found[1]), [int(found[2]), int(found[3])]
        assert log.text.count(f"serving on 127.0.0.1:{port} (mTLS)") == 2
        workers = WorkersServer("sqlite", None, log, port, pids)  # only its port and pids matter
        credentials = grpc.ssl_channel_credentials(
            pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
        )
        answered: set[int] = set()
        client_ports: set[int] = set()
        channels = []
        while answered != set(pids):  # one connection per channel, until both workers answered
            assert len(channels) < 64, answered
            channels.append(grpc.secure_channel(workers.address, credentials, OWN_CONNECTION))
            registry = schema_registry_pb2_grpc.SchemaRegistryStub(channels[-1])
            registry.ListSchemas(rpb.ListSchemasRequest(), timeout=10)
            answered.add(connected_worker(workers, client_ports))
        for channel in channels:
            channel.close()
        for _ in range(4):
            refused(workers.address, ca_cert=pki.ca)  # no client certificate
