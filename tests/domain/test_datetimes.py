"""Date-time values: the accepted grammar and the normal form they are stored in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metareg.server.domain.values import (
    ValueViolation,
    _utc_datetime_text,
    check_datetime,
    format_datetime,
    parse_datetime,
)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000000Z"),
        ("2024-05-01t10:00:00z", "2024-05-01T10:00:00.000000Z"),  # RFC 3339 allows lower case
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00.000000Z"),  # naive means UTC
        ("2024-05-01T10:00:00.5", "2024-05-01T10:00:00.500000Z"),
        ("2024-05-01T10:00:00.123456789+02:00", "2024-05-01T08:00:00.123456Z"),  # truncated
        ("2024-05-01T01:00:00+05:30", "2024-04-30T19:30:00.000000Z"),
        ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000000Z"),
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z"),
    ],
)
def test_accepted_values_are_stored_in_utc(text: str, stored: str) -> None:
    assert check_datetime(text) == stored


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01",
        "2024-05-01T10:00",
        "2024-05-01 10:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:00:00+05:75",
        "2024-05-01T10:00:00+24:00",
        "2024-05-01T10:00:00.Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
        " 2024-05-01T10:00:00Z",
    ],
)
def test_rejected_values_name_the_rule(text: str) -> None:
    with pytest.raises(ValueViolation) as raised:
        check_datetime(text)
    assert raised.value.rule == "datetime"
    assert text.strip() in str(raised.value) or "…" in str(raised.value)


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(moments, offsets, st.sampled_from([0, 1, 3, 6, 9]), st.booleans())
def test_any_offset_and_precision_denote_the_same_instant(
    moment: datetime, offset: timezone, digits: int, lower_case: bool
) -> None:
    local = moment.astimezone(offset)
    fraction = f"{local.microsecond:06d}{'7' * 3}"[:digits]
    minutes = int(offset.utcoffset(None).total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    text = (
        local.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{fraction}" if digits else "")
        + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    if lower_case:
        text = text.replace("T", "t")
    expected = moment.replace(microsecond=int(fraction.ljust(6, "0")[:6]) if digits else 0)
    assert check_datetime(text) == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Text shaped like a date-time, with each part sometimes out of range or malformed.
_digits = st.text("0123456789", min_size=1, max_size=3)
datetime_like = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}".format,
    st.sampled_from(["2024", "1999", "0001", "9999", "0000", "20x4"]),
    st.sampled_from(["01", "02", "12", "13", "00", "1"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32", "00"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["00", "23", "24", "9"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["00", "59", "60", "61"]),
    st.one_of(
        st.just(""),
        _digits.map(".{}".format),
        st.just("."),
        st.text("0123456789", min_size=7, max_size=12).map(".{}".format),
    ),
    st.sampled_from(["", "Z", "z", "+00:00", "-05:30", "+24:00", "ZZ", "\n"]),
)


@given(datetime_like)
def test_the_utc_shortcut_agrees_with_the_general_path(text: str) -> None:
    """The sliced form of UTC and naive values is exactly the parsed-and-formatted one."""
    try:
        general: str | None = format_datetime(parse_datetime(text))
    except (ValueError, OverflowError):
        general = None
    shortcut = _utc_datetime_text(text)
    if shortcut is not None:
        assert shortcut == general
    try:
        checked = check_datetime(text)
    except ValueViolation:
        checked = None
    assert checked == general
