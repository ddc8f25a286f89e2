"""A server address whose port is no port number is a usage error naming it, not a
"connection refused" at whatever port gRPC made of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from metareg.client import Client

from .test_cli import metareg


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1:99999",
        "127.0.0.1:0",
        "localhost:65536",
        "[::1]:70000",
        "ipv4:127.0.0.1:1,127.0.0.1:99999",
    ],
)
def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path, address: str) -> None:
    done = metareg(None, "schema", "show", "cams", "--address", address, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: bad server address {address!r}: port {address.rpartition(':')[2]} is not a "
        "port number (use host:port with a port 1..65535)"
    ]
    with pytest.raises(ValueError, match="bad server address"):
        Client(address)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:65535", "localhost:1", "[::1]:50051", "::1", "example.com", "unix:/tmp/s"],
)
def test_good_addresses_are_accepted(address: str) -> None:
    Client(address).close()
