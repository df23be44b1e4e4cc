"""Validation of settings payloads: what is accepted, and the words of each refusal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gctuner.core.settings import MAX_THRESHOLD, InvalidSettings, Settings, parse_settings

pytestmark = pytest.mark.timeout(60)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"thresholds": [50000, 20, 100]}, Settings((50000, 20, 100))),
        ({"thresholds": [700]}, Settings((700,))),
        ({"thresholds": [1, 0]}, Settings((1, 0))),
        ({"thresholds": [MAX_THRESHOLD, 0, MAX_THRESHOLD]}, Settings((MAX_THRESHOLD, 0, MAX_THRESHOLD))),
        ({"thresholds": [5000, 10, 10], "freeze": True}, Settings((5000, 10, 10), freeze=True)),
        ({"thresholds": [0], "allow_disable": True}, Settings((0,), allow_disable=True)),
        ({"thresholds": [10], "freeze": False, "allow_disable": False}, Settings((10,))),
    ],
)
def test_accepted(payload: object, expected: Settings) -> None:
    assert parse_settings(payload) == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([50000, 20, 100], "settings must be a JSON object such as"),
        ("thresholds", "settings must be a JSON object such as"),
        (None, "got null"),
        ({}, "thresholds is required"),
        ({"thresholds": [1], "fraeze": True}, "unknown field 'fraeze'; the fields are thresholds"),
        ({"thresholds": "50000"}, "thresholds must be a list of 1 to 3 integers, got '50000'"),
        ({"thresholds": 700}, "thresholds must be a list of 1 to 3 integers, got 700"),
        ({"thresholds": []}, "thresholds must have 1 to 3 items, got 0"),
        ({"thresholds": [1, 2, 3, 4]}, "thresholds must have 1 to 3 items, got 4"),
        ({"thresholds": [-1, "a"]}, "thresholds[0] must be an integer between 0 and 1000000, got -1"),
        ({"thresholds": [1, "a"]}, "thresholds[1] must be an integer between 0 and 1000000, got 'a'"),
        ({"thresholds": [1, 2, 1_000_001]}, "thresholds[2] must be an integer between 0 and 1000000"),
        ({"thresholds": [700.0]}, "thresholds[0] must be an integer between 0 and 1000000, got 700.0"),
        ({"thresholds": [True]}, "thresholds[0] must be an integer between 0 and 1000000, got True"),
        ({"thresholds": [None]}, "got None"),
        ({"thresholds": [0]}, 'disables automatic garbage collection; send "allow_disable": true'),
        ({"thresholds": [0], "allow_disable": False}, "disables automatic garbage collection"),
        ({"thresholds": [1], "freeze": "yes"}, "freeze must be true or false, got 'yes'"),
        ({"thresholds": [1], "freeze": 1}, "freeze must be true or false, got 1"),
        ({"thresholds": [0], "allow_disable": "true"}, "allow_disable must be true or false"),
    ],
)
def test_refused(payload: object, message: str) -> None:
    with pytest.raises(InvalidSettings) as refused:
        parse_settings(payload)
    assert message in str(refused.value)


def test_long_values_are_cut_short_in_messages() -> None:
    with pytest.raises(InvalidSettings) as refused:
        parse_settings({"thresholds": ["x" * 5000]})
    assert len(str(refused.value)) < 120


@given(json_values)
def test_anything_is_accepted_or_refused_with_invalid_settings(payload: object) -> None:
    try:
        settings = parse_settings(payload)
    except InvalidSettings as error:
        assert str(error)
    else:
        assert parse_settings(settings.to_json()) == settings


@given(
    st.lists(st.integers(0, MAX_THRESHOLD), min_size=1, max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_wire_form_round_trips(thresholds: list[int], freeze: bool, allow_disable: bool) -> None:
    payload = {"thresholds": thresholds, "freeze": freeze, "allow_disable": allow_disable}
    if thresholds[0] == 0 and not allow_disable:
        with pytest.raises(InvalidSettings):
            parse_settings(payload)
    else:
        assert parse_settings(payload).to_json() == payload
