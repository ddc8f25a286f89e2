"""`metareg auth` and `metareg audit`, and the safe defaults of `metareg serve`, through
the real executable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from metareg.client import Client, PermissionDeniedError, UnauthenticatedError

from .conftest import RunningServer
from .pgcluster import free_port
from .test_app import wait_serving

METAREG = str(Path(sys.executable).with_name("metareg"))


def metareg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METAREG_")}
    return subprocess.run([METAREG, *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})  # fmt: skip


def create_key(url: str, name: str, role: str, *globs: str) -> str:
    flags = [flag for glob in globs for flag in ("--schemas", glob)]
    done = metareg("auth", "create-key", "--name", name, "--role", role, *flags,
                   "--database-url", url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token
    assert token.startswith("mrk_")
    assert "shown only now" in done.stderr
    assert token not in done.stderr
    return token


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_keys_made_listed_and_revoked_from_the_cli(server: RunningServer) -> None:
    url = server.database_url
    with Client(server.address) as anonymous:  # no key yet: loopback calls are anonymous
        anonymous.import_schema_from_dict("cams", {"a": "text"})
    admin = create_key(url, "ops", "admin")
    reader = create_key(url, "dashboards", "reader", "cams,team-*")
    listing = metareg("auth", "list-keys", "--database-url", url)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "SCHEMAS", "CREATED", "REVOKED"]
    assert lines[1].split()[:3] == ["dashboards", "reader", "cams,team-*"]
    assert lines[2].split()[:3] == ["ops", "admin", "*"]
    assert admin not in listing.stdout
    assert reader not in listing.stdout

    with Client(server.address) as client, pytest.raises(UnauthenticatedError):
        client.list_schemas()
    with Client(server.address, token=reader) as client:
        assert [s.name for s in client.list_schemas()] == ["cams"]
        with pytest.raises(PermissionDeniedError):
            client.import_schema_from_dict("cams", {"a": "text", "b": "number"})

    again = metareg("auth", "create-key", "--name", "ops", "--role", "reader",
                    "--database-url", url)  # fmt: skip
    assert again.returncode == 1
    assert (
        again.stderr.strip() == 'error: an API key named "ops" exists already; choose another name'
    )
    bad = metareg("auth", "create-key", "--name", "x", "--role", "reader", "--schemas", "CAMS",
                  "--database-url", url)  # fmt: skip
    assert bad.returncode == 1
    assert "schema glob 'CAMS' is invalid" in bad.stderr

    revoked = metareg("auth", "revoke-key", "dashboards", "--database-url", url)
    assert revoked.returncode == 0, revoked.stderr
    with Client(server.address, token=reader) as client, pytest.raises(UnauthenticatedError):
        client.list_schemas()
    missing = metareg("auth", "revoke-key", "nobody", "--database-url", url)
    assert (missing.returncode, missing.stderr.strip()) == (
        1, 'error: there is no API key named "nobody"'
    )  # fmt: skip

    log = metareg("audit", "--token", admin, "--format", "jsonl", "--address", server.address)
    assert log.returncode == 0, log.stderr
    summaries = log.stdout.splitlines()
    assert len(summaries) == 4  # newest first: revoke, create x2, the schema
    assert '"revoke key \\"dashboards\\""' in summaries[0]
    assert '"rpc": "ImportSchema"' in summaries[3]
    assert '"key_name": "anonymous"' in summaries[3]
    for token in (admin, reader):
        assert token not in log.stdout
    denied = metareg("audit", "--address", server.address)
    assert denied.returncode == 1
    assert "authorization: Bearer" in denied.stderr


def serve(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METAREG_")}
    process = subprocess.Popen(
        [METAREG, "serve", "--port", str(port), *flags],
        cwd=tmp_path, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, port


def test_a_public_bind_with_no_key_refuses_to_start(tmp_path: Path) -> None:
    process, _ = serve(tmp_path, "--host", "0.0.0.0")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "metareg auth create-key" in lines[0]
    assert "--allow-anonymous" in lines[0]


@pytest.mark.parametrize("how", ["--allow-anonymous", "a key"])
def test_a_public_bind_starts_with_a_key_or_when_allowed(tmp_path: Path, how: str) -> None:
    flags = ["--host", "0.0.0.0"]
    if how == "a key":
        create_key(f"sqlite:///{tmp_path / 'metareg.db'}", "ops", "admin")
    else:
        flags.append(how)
    process, port = serve(tmp_path, *flags)
    try:
        wait_serving(f"127.0.0.1:{port}")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
