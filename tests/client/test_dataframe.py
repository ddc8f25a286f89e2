"""Client.apply_dataframe against a real server: missing cells are absent keys, pandas and
numpy values round-trip, partial mode reports invalid rows; pandas is never imported by
the client itself."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pytest

from metareg.client import BundleError, Client
from metareg.client._results import Outcome

from .conftest import CallRecorder

SCHEMA = {
    "camera_id": {"type": "varchar", "max_length": 16},
    "score": "number",
    "frames": "number",
    "night": "boolean",
    "taken_at": "datetime",
    "clip": {"type": "embedding", "size": 3},
}


@pytest.fixture
def cams(client: Client) -> Client:
    client.import_schema_from_dict("cams", SCHEMA)
    return client


def test_missing_cells_are_absent_keys_not_nulls(cams: Client) -> None:
    cams.apply("cams", {"u1": {"camera_id": "cam-1", "score": 0.5, "night": True, "frames": 3}})
    frame = pd.DataFrame(
        {
            "data_unit_id": ["u1", "u2"],
            "camera_id": ["cam-9", None],
            "score": [np.nan, 0.25],
            "night": pd.array([pd.NA, False], dtype="boolean"),
            "frames": pd.array([None, 7], dtype="Int64"),
            "taken_at": pd.to_datetime([None, "2024-05-01T12:30:00"]),
        }
    )
    applied = cams.apply_dataframe("cams", frame)
    assert [r.outcome for r in applied.results] == [Outcome.APPLIED, Outcome.APPLIED]
    assert applied.counts == {Outcome.APPLIED: 2}
    assert applied.applied == 2
    assert cams.get_metadata("cams", ["u1", "u2"]) == {
        # merge: the NaN, NA and None cells left score, night and frames as they were
        "u1": {"camera_id": "cam-9", "score": 0.5, "night": True, "frames": 3.0},
        "u2": {"score": 0.25, "night": False, "frames": 7.0,
               "taken_at": "2024-05-01T12:30:00.000000Z"},
    }  # fmt: skip


def test_values_round_trip(cams: Client) -> None:
    frame = pd.DataFrame(
        {
            "data_unit_id": np.array(["a", "b", "c"], dtype=object),
            "camera_id": ["cam-1", "cam-2", "cam-3"],
            "frames": np.array([1, 2, 2**40], dtype=np.int64),
            "score": np.array([0.5, -1.25, 1e300], dtype=np.float64),
            "night": np.array([True, False, True]),
            "taken_at": [
                pd.Timestamp("2024-05-01 12:30:00.123456789"),  # nanoseconds are dropped
                pd.Timestamp("2024-05-01T14:30:00+02:00"),
                datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC),
            ],
            "clip": [
                [0.5, 0.25, -1.0],
                np.array([1.0, 2.0, 3.0], dtype=np.float32),
                np.array([0.125, 0.0, -0.5]),
            ],
        }
    )
    applied = cams.apply_dataframe("cams", frame)
    assert applied.counts[Outcome.APPLIED] == 3
    assert cams.get_metadata("cams", ["a", "b", "c"]) == {
        "a": {"camera_id": "cam-1", "frames": 1.0, "score": 0.5, "night": True,
              "taken_at": "2024-05-01T12:30:00.123456Z", "clip": [0.5, 0.25, -1.0]},
        "b": {"camera_id": "cam-2", "frames": 2.0, "score": -1.25, "night": False,
              "taken_at": "2024-05-01T12:30:00.000000Z", "clip": [1.0, 2.0, 3.0]},
        "c": {"camera_id": "cam-3", "frames": float(2**40), "score": 1e300, "night": True,
              "taken_at": "2023-01-02T03:04:05.000000Z", "clip": [0.125, 0.0, -0.5]},
    }  # fmt: skip


def test_numpy_datetimes_object_columns_and_an_id_index(cams: Client) -> None:
    frame = pd.DataFrame(
        {
            "taken_at": np.array(
                [np.datetime64("2024-02-03T04:05:06.789", "ns"), np.datetime64("NaT")],
                dtype=object,
            ),
            "night": np.array([np.bool_(True), None], dtype=object),
            "camera_id": np.array([np.str_("cam-x"), float("nan")], dtype=object),
        },
        index=pd.Index(["i1", "i2"], name="data_unit_id"),
    )
    applied = cams.apply_dataframe("cams", frame, mode="replace")
    assert applied.applied == 2
    assert cams.get_metadata("cams", ["i1", "i2"]) == {
        "i1": {"taken_at": "2024-02-03T04:05:06.789000Z", "night": True, "camera_id": "cam-x"},
        "i2": {},  # every cell missing: a record with no keys
    }


def test_partial_mode_reports_the_invalid_row(cams: Client) -> None:
    frame = pd.DataFrame(
        {"unit": ["ok-1", "bad", "ok-2"], "camera_id": ["a", "much-too-long-for-16", "b"]}
    )
    applied = cams.apply_dataframe("cams", frame, id_column="unit", partial=True)
    assert [(r.data_unit_id, r.outcome) for r in applied.results] == [
        ("ok-1", Outcome.APPLIED),
        ("bad", Outcome.REJECTED),
        ("ok-2", Outcome.APPLIED),
    ]
    (rejected,) = applied.rejected
    assert rejected.index == 1
    assert rejected.violations
    assert rejected.violations[0].key == "camera_id"
    assert set(cams.get_metadata("cams", ["ok-1", "bad", "ok-2"])) == {"ok-1", "ok-2"}

    with pytest.raises(BundleError) as raised:
        cams.apply_dataframe("cams", frame.assign(unit=["n1", "n2", "n3"]), id_column="unit")
    outcomes = [r.outcome for r in raised.value.results]
    assert outcomes == [Outcome.NOT_APPLIED, Outcome.REJECTED, Outcome.NOT_APPLIED]
    assert cams.get_metadata("cams", ["n1", "n2", "n3"]) == {}


def test_frame_errors_are_raised_before_anything_is_sent(
    cams: Client, recorder: CallRecorder
) -> None:
    frame = pd.DataFrame({"id": ["u1"], "score": [1.0]})
    with pytest.raises(ValueError, match=r'no column "data_unit_id".*its columns: id, score'):
        cams.apply_dataframe("cams", frame)
    with pytest.raises(ValueError, match='row 1 has no value in its "id" column'):
        cams.apply_dataframe("cams", pd.DataFrame({"id": ["u1", None], "score": [1.0, 2.0]}), "id")
    with pytest.raises(ValueError, match='data unit ids are strings; "id" holds 7'):
        cams.apply_dataframe("cams", pd.DataFrame({"id": [7], "score": [1.0]}), "id")
    doubled = pd.DataFrame([["u1", 1.0, 2.0]], columns=["id", "score", "score"])
    with pytest.raises(ValueError, match="more than one column named score"):
        cams.apply_dataframe("cams", doubled, "id")
    with pytest.raises(ValueError, match="the DataFrame has column 0"):
        cams.apply_dataframe("cams", pd.DataFrame({"id": ["u1"], 0: [1.0]}), "id")
    with pytest.raises(TypeError, match="needs a pandas DataFrame"):
        cams.apply_dataframe("cams", [{"data_unit_id": "u1"}])
    assert "ApplyBundle" not in recorder.methods()
    assert cams.get_metadata("cams", ["u1"]) == {}


def test_the_client_does_not_import_pandas() -> None:
    code = (
        "import sys\n"
        "import metareg.client\n"
        "from metareg.client import Client\n"
        "client = Client('127.0.0.1:1')\n"
        "client.apply_dataframe\n"
        "client.close()\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
