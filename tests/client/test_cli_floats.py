"""Embeddings are float32 on the wire: the CLI (and the client) show each as the shortest
decimal that is the same float32, 0.12 rather than 0.11999999731779099."""

from __future__ import annotations

import json
import random
import struct
from array import array
from pathlib import Path

import pytest

from metareg.client._values import shortest_floats

from ..conftest import RunningServer
from .test_cli import SCHEMA, jsonl, metareg, record

CLIP = [0.12, 0.5, -1.25, 1e-07, 123456.79, 0.33333334, -0.0]


@pytest.fixture
def cams(server: RunningServer, tmp_path: Path) -> RunningServer:
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    done = metareg(server, "schema", "import", "cams", "schema.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return server


def test_get_and_query_print_embeddings_in_their_shortest_form(
    cams: RunningServer, tmp_path: Path
) -> None:
    jsonl(tmp_path / "data.jsonl", record("u1", clip=CLIP[:3]), record("u2", clip=CLIP[3:6]))
    applied = metareg(cams, "metadata", "apply", "cams", "data.jsonl", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    got = metareg(cams, "metadata", "get", "cams", "u1", "u2", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert '"clip": [0.12, 0.5, -1.25]' in got.stdout
    assert '"clip": [1e-07, 123456.79, 0.33333334]' in got.stdout
    found = metareg(cams, "metadata", "query", "cams", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert [json.loads(line)["metadata"]["clip"] for line in found.stdout.splitlines()] == [
        CLIP[:3],
        CLIP[3:6],
    ]
    assert "0.11999999" not in found.stdout


def test_the_shortest_form_round_trips_and_is_never_longer_than_needed() -> None:
    rng = random.Random(7)
    values = [struct.unpack("f", struct.pack("f", rng.gauss(0, 1)))[0] for _ in range(3000)]
    values += [round(v, rng.randrange(1, 8)) for v in values]
    vector = array("f", values)
    shown = shortest_floats(vector)
    assert array("f", shown) == vector  # the same float32 values
    for value, short in zip(vector, shown, strict=True):
        digits = len(repr(short).lstrip("-").split("e")[0].replace(".", "").strip("0"))
        if digits > 1:  # one digit fewer does not come back
            fewer = float(f"{value:.{digits - 1}g}")
            assert struct.pack("f", fewer) != struct.pack("f", value), (value, short)
    assert shortest_floats(array("f", CLIP)) == CLIP
    assert repr(shortest_floats(array("f", [-0.0]))[0]) == "-0.0"
    assert shortest_floats(array("f")) == []
