"""The record of who asked for a pod's settings: it travels with the push, the agent keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_agent_endpoint import TUNED, answer, make_endpoint, post

from gctuner.api.endpoint import Request, TuneEndpoint

RECORD = {"policy": "shop/web", "generation": 3}


@pytest.fixture
def endpoint(tmp_path: Path) -> TuneEndpoint:
    return make_endpoint(tmp_path / "state")


def get(endpoint: TuneEndpoint) -> dict[str, object]:
    return answer(endpoint.handle(Request("GET", {})))


def test_a_push_with_its_record_is_applied_and_get_reports_the_record(endpoint: TuneEndpoint) -> None:
    response = post(endpoint, {**TUNED, "applied_by": RECORD})
    assert response.status == 200 and answer(response)["new_thresholds"] == TUNED["thresholds"]
    state = get(endpoint)
    assert state["desired"] == {**TUNED, "allow_disable": False}
    record = state["applied_by"]
    assert isinstance(record, dict) and {k: record[k] for k in RECORD} == RECORD
    assert isinstance(record["time"], str) and record["time"].endswith("Z")  # stamped by the agent


def test_a_push_without_a_record_clears_it_and_delete_too(endpoint: TuneEndpoint) -> None:
    post(endpoint, {**TUNED, "applied_by": RECORD})
    post(endpoint, {"thresholds": [1234, 5, 6]})  # someone by hand: not the operator's any more
    assert "applied_by" not in get(endpoint)
    post(endpoint, {**TUNED, "applied_by": RECORD})
    assert endpoint.handle(Request("DELETE", {"Authorization": "Bearer s3cr3t-Token-0123456789"})).status == 200
    assert "applied_by" not in get(endpoint)


@pytest.mark.parametrize("record,words", [
    ("shop/web", "applied_by must be an object"),
    ({"policy": "", "generation": 1}, "applied_by.policy"),
    ({"policy": "shop/web", "generation": -1}, "applied_by.generation"),
    ({"policy": "shop/web", "generation": True}, "applied_by.generation"),
    ({"policy": "shop/web", "generation": 1, "extra": 1}, "unknown field applied_by.extra"),
])
def test_a_bad_record_is_refused_and_changes_nothing(endpoint: TuneEndpoint, record: object, words: str) -> None:
    response = post(endpoint, {**TUNED, "applied_by": record})
    assert response.status == 400 and words in answer(response)["message"]
    assert get(endpoint)["generation"] == 0


def test_an_unknown_field_is_still_refused(endpoint: TuneEndpoint) -> None:
    response = post(endpoint, {**TUNED, "applied": RECORD})
    assert response.status == 400 and "unknown field 'applied'" in answer(response)["message"]


def test_a_tampered_record_on_disk_is_dropped_not_fatal(endpoint: TuneEndpoint, tmp_path: Path) -> None:
    post(endpoint, {**TUNED, "applied_by": RECORD})
    desired = tmp_path / "state" / "desired.json"
    data = json.loads(desired.read_text())
    desired.write_text(json.dumps({**data, "applied_by": {"policy": 7}}))
    state = get(endpoint)
    assert "applied_by" not in state and state["desired"] == {**TUNED, "allow_disable": False}
