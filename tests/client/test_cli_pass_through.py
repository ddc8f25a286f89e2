"""JSONL pass-through: the CLI sends each line's metadata as the file's JSON bytes, bad
lines are still local rejects naming their line, and the records are those of the
decoded path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metareg.client import Client
from metareg.client._datafiles import _big_number, read_jsonl
from metareg.client._ingest import RejectsFile, apply_records, run_key
from metareg.client._progress import Progress
from metareg.client._source import SourceRecord

from ..conftest import RunningServer
from .conftest import CallRecorder, sent_updates
from .test_cli import jsonl, metareg, record

SCHEMA = {"camera_id": "varchar", "score": "number", "clip": {"type": "embedding", "size": 3}}
BIG_INT = "9" * 400
LINES: list[object] = [
    # 1: a line of a rejects file (extra fields), fixed and re-applied
    {"line": 7, "data_unit_id": "u1", "metadata": {"camera_id": "a", "score": 0.5},
     "outcome": "rejected", "violations": [{"rule": "type", "huge": 1e300}]},
    "{not json",  # 2
    '{"metadata": {"score": 1}}',  # 3: no data_unit_id
    '{"data_unit_id": "u4", "metadata": [1, 2]}',  # 4: metadata not an object
    '{"data_unit_id": "u5", "metadata": {"score": 1e400}}',  # 5: beyond a double
    '{"data_unit_id": "u6", "metadata": {"score": NaN}}',  # 6: not JSON, but Python reads it
    '{"data_unit_id": "u7", "metadata": {"score": ' + BIG_INT + "}}",  # 7: an int beyond
    '  {"data_unit_id": "u8",   "metadata": {"clip": [0.5, 1, 2e-3], "keyframes": [0, 4]}} ',
    '{"data_unit_id": "u9", "metadata": {"camera_id": "e1000 and 12e345 in text", "score": 2}}',
    '{"data_unit_id": "u10", "metadata": {"camera_id": "\\u00e9\\ud83d\\ude00", "score": 1E+2}}',
    '{"data_unit_id": "u11"}',  # 11: no metadata: an empty update
    "",
    '["u13", {"score": 1}]',  # 13: not an object
    '{"data_unit_id": 14, "metadata": {}}',  # 14: the id is not a string
    '{"data_unit_id": "u15", "metadata": {"score": "high"}}',  # 15: the server rejects it
]  # fmt: skip
LOCAL_REJECTS = [2, 3, 4, 5, 6, 7, 13, 14]


@pytest.fixture
def cams(client: Client) -> Client:
    client.import_schema_from_dict("cams", SCHEMA)
    client.import_schema_from_dict("decoded", SCHEMA)
    return client


def summary(records: list[SourceRecord]) -> list[tuple[Any, ...]]:
    return [(r.line, r.data_unit_id, r.error, r.decoded_metadata()) for r in records]


def test_lines_are_passed_through_or_read_exactly_as_the_decoded_path_reads_them(
    tmp_path: Path,
) -> None:
    path = jsonl(tmp_path / "data.jsonl", *LINES)
    passed = list(read_jsonl(path, pass_through=True))
    decoded = list(read_jsonl(path))
    # NaN and the 1e400 come out as Python floats on both paths: compare their text.
    assert repr(summary(passed)) == repr(summary(decoded))
    raw = {r.line: r.metadata_json for r in passed if r.metadata_json}
    assert sorted(raw) == [1, 8, 10, 11, 15]
    assert raw[8] == b'{"clip": [0.5, 1, 2e-3], "keyframes": [0, 4]}'  # as in the file
    assert raw[11] == b"{}"
    assert all(not r.metadata for r in passed if r.metadata_json)
    # Lines with a number a double may not hold take the decoded path; so does text
    # that looks like one (line 9: "12e345"), which costs only the decoding.
    assert {r.line for r in passed if not r.metadata_json and not r.error} == {5, 6, 7, 9}


def test_apply_sends_the_files_bytes_and_rejects_bad_lines_locally(
    cams: Client, recorder: CallRecorder, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "data.jsonl", *LINES)

    with RejectsFile(tmp_path / "rejects.jsonl") as rejects:
        done = apply_records(
            cams,
            "cams",
            lambda: read_jsonl(path, pass_through=True),
            rejects,
            lambda label: Progress(label, None, quiet=True),
            mode="merge",
            partial=True,
            coerce_strings=False,
            flatten_nested=False,
            run=run_key("cams", "merge", partial=True, coerce=False, flatten=False),
        )
    [request] = recorder.requests("ApplyBundle")
    assert b'"metadata":{"clip": [0.5, 1, 2e-3], "keyframes": [0, 4]}' in request.updates_json
    assert [u["data_unit_id"] for u in sent_updates(request)] == [
        "u1", "u8", "u9", "u10", "u11", "u15"
    ]  # fmt: skip
    assert (done.counts["applied"], done.counts["rejected"]) == (5, 1 + len(LOCAL_REJECTS))
    lines = [json.loads(line) for line in (tmp_path / "rejects.jsonl").open()]
    assert [r["line"] for r in lines] == [*LOCAL_REJECTS, 15]
    assert lines[-1]["metadata"] == {"score": "high"}  # decoded for the rejects file
    assert lines[-1]["violations"][0]["rule"] == "type"


def test_the_cli_applies_what_the_decoded_path_applies(
    server: RunningServer, cams: Client, tmp_path: Path
) -> None:
    jsonl(tmp_path / "data.jsonl", *LINES)
    runs = {}
    for schema, options in (("cams", ()), ("decoded", ("--flatten-nested",))):
        rejects = tmp_path / f"{schema}.rejects.jsonl"
        done = metareg(
            server, "metadata", "apply", schema, "data.jsonl", "--partial",
            "--rejects", str(rejects), *options, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout.startswith(f"applied 5, unchanged 0, rejected {1 + len(LOCAL_REJECTS)}")
        runs[schema] = [json.loads(line) for line in rejects.open()]
    passed, decoded = runs["cams"], runs["decoded"]
    assert passed == decoded  # --flatten-nested decodes every line (nothing here is nested)
    by_line = {r["line"]: r for r in passed}
    assert sorted(by_line) == [*LOCAL_REJECTS, 15]
    assert "not valid JSON" in by_line[2]["violations"][0]["description"]
    assert '"data_unit_id" must be a string' in by_line[3]["violations"][0]["description"]
    assert '"metadata" must be an object' in by_line[4]["violations"][0]["description"]
    for line in (5, 6):  # named by line and key, never a failed request
        [violation] = by_line[line]["violations"]
        assert violation["description"].startswith(f"data unit 'u{line}': key \"score\"")
        assert "not a finite number" in violation["description"]
        assert violation["key"] == "score"
    assert "too large for a number" in by_line[7]["violations"][0]["description"]
    ids = [f"u{i}" for i in range(1, 16)]
    with Client(server.address) as client:
        applied = client.get_metadata("cams", ids)
        assert applied == client.get_metadata("decoded", ids)
    assert applied == {
        "u1": {"camera_id": "a", "score": 0.5},
        "u8": {"clip": [0.5, 1.0, 0.002], "keyframes": [0, 4]},
        "u9": {"camera_id": "e1000 and 12e345 in text", "score": 2.0},
        "u10": {"camera_id": "\u00e9\U0001f600", "score": 100.0},
        "u11": {},
    }


def test_an_atomic_run_stops_at_a_bad_number_before_sending(
    server: RunningServer, cams: Client, tmp_path: Path
) -> None:
    jsonl(
        tmp_path / "data.jsonl",
        record("u1", score=1),
        '{"data_unit_id": "u2", "metadata": {"score": -1.5e309}}',
        record("u3", score=3),
    )
    done = metareg(server, "metadata", "apply", "cams", "data.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: 1 of 3 records are invalid, so nothing was applied")
    [reject] = [json.loads(line) for line in (tmp_path / "data.apply.rejects.jsonl").open()]
    assert reject["line"] == 2
    assert "not a finite number" in reject["violations"][0]["description"]
    with Client(server.address) as client:
        assert client.get_metadata("cams", ["u1", "u2", "u3"]) == {}


def test_validate_passes_lines_through_too(
    server: RunningServer, cams: Client, tmp_path: Path
) -> None:
    jsonl(tmp_path / "data.jsonl", *LINES)
    done = metareg(server, "metadata", "validate", "cams", "data.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith(f"valid 5, invalid {1 + len(LOCAL_REJECTS)}")
    rejects = [json.loads(line) for line in (tmp_path / "data.validate.rejects.jsonl").open()]
    assert sorted(r["line"] for r in rejects) == [*LOCAL_REJECTS, 15]
    [invalid] = [r for r in rejects if r["line"] == 15]
    assert (invalid["outcome"], invalid["metadata"]) == ("invalid", {"score": "high"})
    # Numbered as before: by the record's place among the page's readable lines.
    assert invalid["violations"][0]["field"] == 'records[8].metadata["score"]'


_DIGITS = st.text("0123456789", min_size=1, max_size=6)
_NUMBERS = st.builds(
    lambda sign, whole, fraction, e, e_sign, exponent: (
        f"{sign}{whole}{'.' + fraction if fraction else ''}"
        f"{e + e_sign + exponent if exponent else ''}"
    ),
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,4}", fullmatch=True)),
    st.one_of(st.just(""), _DIGITS),
    st.sampled_from(["e", "E"]),
    st.sampled_from(["", "+", "-"]),
    st.one_of(st.just(""), _DIGITS),
)
_STRINGS = st.text("0123456789abcdefeE-+. ", max_size=20)
_VALUES = st.recursive(
    st.one_of(_NUMBERS, _STRINGS.map(json.dumps)),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from("abc"), _VALUES, max_size=3), st.sampled_from(["", " "]))
def test_every_number_a_double_may_not_hold_is_found(items: dict[str, str], space: str) -> None:
    """No false negatives: a line whose metadata writes a number with an exponent of three
    digits or more is always sent down the decoded path (which reports it), whatever
    strings (UUID-like hex, text with "e") stand around it."""
    text = "{" + ",".join(f'"{key}":{space}{value}' for key, value in items.items()) + "}"
    literals: list[str] = []
    json.loads(text, parse_float=literals.append, parse_int=literals.append)
    big = any(
        len(literal.lower().partition("e")[2].lstrip("+-")) >= 3 or len(literal) > 200
        for literal in literals
    )
    if big:
        assert _big_number(text.encode())
    if not big and not any(ch in text for ch in "eE"):
        assert not _big_number(text.encode())


def test_uuid_hex_is_not_taken_for_a_number() -> None:
    metadata = b'{"session_id":"9e568d9f-3ab8-4e40-8f6e-1234a7c9e1b4","score":1.5e30}'
    assert not _big_number(metadata)
    assert _big_number(b'{"session_id":"9e568d9f","score":-1.5e300}')
    assert _big_number(b'{"clip":[0.5,\n2E+308]}')
