"""The request core: the wire contract, auth, and properties over arbitrary requests."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from agent_support import FakeGC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gctuner.api.endpoint import Request, Response, TuneEndpoint
from gctuner.core.config import Config
from gctuner.core.pauses import PauseRecorder
from gctuner.core.runtime import GCRuntime
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cr3t-Token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
TUNED = {"thresholds": [50000, 20, 100], "freeze": False}


def make_endpoint(directory: Path, **config: Any) -> TuneEndpoint:
    fake = FakeGC((700, 10, 10))
    recorder = PauseRecorder(fake)
    recorder.install()
    shared = SharedState(StateDir(directory), GCRuntime(fake), recorder=recorder)
    return TuneEndpoint(Config(**{"token": TOKEN, **config}), shared=shared)


@pytest.fixture
def endpoint(tmp_path: Path) -> TuneEndpoint:
    return make_endpoint(tmp_path / "state")


def post(endpoint: TuneEndpoint, body: object, headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return endpoint.handle(Request("POST", {**AUTH, **JSON, **(headers or {})}, data))


def answer(response: Response) -> dict[str, Any]:
    assert ("Content-Type", "application/json") in response.headers
    data = json.loads(response.body)
    assert isinstance(data, dict)
    return data


def thresholds(endpoint: TuneEndpoint) -> tuple[int, ...]:
    return endpoint.shared.runtime.thresholds()


# --- the contract --------------------------------------------------------------


def test_constructing_it_starts_nothing(tmp_path: Path) -> None:
    """The adapter follows and passes the state in; the endpoint only answers."""
    shared = SharedState(StateDir(tmp_path / "state"), GCRuntime(FakeGC()))
    TuneEndpoint(Config(token=TOKEN), shared=shared)
    assert shared._thread is None
    assert not (tmp_path / "state").exists()


def test_post_applies_and_counts_processes(endpoint: TuneEndpoint) -> None:
    response = post(endpoint, TUNED)
    assert response.status == 200
    assert answer(response) == {
        "message": "Garbage collection thresholds updated.",
        "new_thresholds": [50000, 20, 100],
        "freeze": False,
        "generation": 1,
        "processes": {"applied": 1, "total": 1},
        "frozen": {"processes": 0, "of": 1, "note": "nothing is frozen"},
    }
    assert thresholds(endpoint) == (50000, 20, 100)


def test_get_reports_process_and_pod(endpoint: TuneEndpoint) -> None:
    post(endpoint, TUNED)
    response = endpoint.handle(Request("GET", {}))  # no token needed
    data = answer(response)
    assert response.status == 200
    assert data["thresholds"] == [50000, 20, 100]
    assert data["defaults"] == [700, 10, 10]
    assert data["desired"] == {"thresholds": [50000, 20, 100], "freeze": False, "allow_disable": False}
    assert data["generation"] == 1
    assert data["in_sync"] is True
    pauses = data["processes"][0]["pauses"]  # this process's, in brief
    assert data["processes"] == [
        {"pid": os.getpid(), "generation": 1, "thresholds": [50000, 20, 100], "frozen": 0, "pauses": pauses}
    ]
    assert set(pauses) == {"collections", "pause_ns_total", "pause_ns_max"}
    assert data["pauses"]["enabled"] is True
    assert set(data) >= {"pid", "python", "flavour", "counts", "frozen", "stats"}


def test_delete_restores_startup_defaults(endpoint: TuneEndpoint) -> None:
    post(endpoint, {"thresholds": [5000], "freeze": True})
    response = endpoint.handle(Request("DELETE", AUTH))
    assert response.status == 200
    assert answer(response) == {
        "message": "Garbage collection thresholds restored to startup defaults.",
        "new_thresholds": [700, 10, 10],
        "generation": 2,
        "processes": {"applied": 1, "total": 1},
        "frozen": {"processes": 0, "of": 1, "note": "nothing is frozen"},
    }
    assert endpoint.shared.runtime.frozen() == 0
    assert answer(endpoint.handle(Request("GET", {})))["desired"] is None


def test_the_answer_says_what_stays_frozen(endpoint: TuneEndpoint) -> None:
    """freeze: false never unfreezes, and a DELETE keeps what the app froze
    first (GCTUNER_FREEZE_AFTER_PRELOAD): the answer says so."""
    endpoint.shared.runtime._gc.freeze()  # the app's own, before any POST
    frozen = answer(post(endpoint, {"thresholds": [5000], "freeze": True}))["frozen"]
    assert frozen == {"processes": 1, "of": 1, "note": "objects are frozen in 1 of 1 processes"}
    frozen = answer(post(endpoint, {"thresholds": [5000], "freeze": False}))["frozen"]
    assert frozen["processes"] == 1 and "freeze: false does not unfreeze" in frozen["note"]
    frozen = answer(endpoint.handle(Request("DELETE", AUTH)))["frozen"]
    assert frozen["processes"] == 1 and "the app (or GCTUNER_FREEZE_AFTER_PRELOAD)" in frozen["note"]
    assert endpoint.shared.runtime.frozen() == 200  # the app's and ours: unfreeze cannot part them


def test_pauses_can_be_switched_off(tmp_path: Path) -> None:
    shared = SharedState(StateDir(tmp_path), GCRuntime(FakeGC()))
    endpoint = TuneEndpoint(Config(token=TOKEN, record_pauses=False), shared=shared)
    assert answer(endpoint.handle(Request("GET", {})))["pauses"] is None


@pytest.mark.parametrize(
    ("method", "headers", "body", "status", "message"),
    [
        ("PUT", AUTH, b"", 405, "only GET, POST, DELETE are supported here"),
        ("get", {}, b"", 405, "only GET, POST, DELETE"),
        ("POST", {}, b"{}", 401, "needs an 'Authorization: Bearer <token>' header"),
        ("POST", {"authorization": "Basic dXNlcjpwYXNz"}, b"{}", 401, "needs an"),
        ("POST", {"Authorization": "Bearer"}, b"{}", 401, "needs an"),
        ("POST", {"Authorization": "Bearer wrong"}, b"{}", 401, "the bearer token is not valid"),
        ("DELETE", {}, b"", 401, "needs an"),
        ("POST", {**AUTH, **JSON, "Content-Length": "5000"}, b"", 413, "larger than 4096 bytes"),
        ("POST", {**AUTH, **JSON}, b" " * 4097, 413, "larger than 4096 bytes"),
        ("POST", {**AUTH, **JSON, "Content-Length": "-1"}, b"", 400, "Content-Length"),
        ("POST", {**AUTH, **JSON, "Content-Length": "ten"}, b"", 400, "Content-Length"),
        ("POST", AUTH, b"{}", 415, "Content-Type: application/json"),
        ("POST", {**AUTH, "Content-Type": "text/plain"}, b"{}", 415, "application/json"),
        ("POST", {**AUTH, **JSON}, b"", 400, "the body is not valid JSON"),
        ("POST", {**AUTH, **JSON}, b"\xff\xfe{", 400, "not valid JSON"),
        ("POST", {**AUTH, **JSON}, b"[" * 4000, 400, "not valid JSON"),
        ("POST", {**AUTH, **JSON}, b'{"thresholds": [-1, "a"]}', 400, "thresholds[0] must be"),
        ("POST", {**AUTH, **JSON}, b'{"thresholds": [0]}', 400, "allow_disable"),
        ("POST", {**AUTH, **JSON}, b'{"thresholds": [1e400]}', 400, "got inf"),
    ],
)
def test_refusals(
    endpoint: TuneEndpoint, method: str, headers: dict[str, str], body: bytes, status: int, message: str
) -> None:
    before = thresholds(endpoint)
    response = endpoint.handle(Request(method, headers, body))
    assert response.status == status
    assert message in answer(response)["message"]
    assert thresholds(endpoint) == before
    assert endpoint.shared.state_dir.read_desired() is None
    if status == 405:
        assert ("Allow", "GET, POST, DELETE") in response.headers
    if status == 401:
        assert ("WWW-Authenticate", "Bearer") in response.headers


def test_content_type_parameters_and_header_case(endpoint: TuneEndpoint) -> None:
    headers = {"AUTHORIZATION": f"bearer {TOKEN}", "content-type": "Application/JSON; charset=utf-8"}
    response = endpoint.handle(Request("POST", headers, json.dumps(TUNED).encode()))
    assert response.status == 200


def test_precheck_refuses_before_the_body_is_read(endpoint: TuneEndpoint) -> None:
    refusal = endpoint.precheck("POST", {**AUTH, **JSON, "Content-Length": "999999"})
    assert refusal is not None and refusal.status == 413
    assert endpoint.precheck("POST", {**AUTH, **JSON, "Content-Length": "20"}) is None
    assert endpoint.precheck("GET", {}) is None


def test_a_broken_state_directory_is_a_503(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    endpoint = make_endpoint(tmp_path / "file" / "state")
    response = post(endpoint, TUNED)
    assert response.status == 503
    assert "cannot be used" in answer(response)["message"]


# --- auth configuration ------------------------------------------------------


def test_no_token_configured_refuses_changes(tmp_path: Path) -> None:
    endpoint = make_endpoint(tmp_path, token=None)
    response = post(endpoint, TUNED)
    assert response.status == 403
    message = answer(response)["message"]
    for name in ("GCTUNER_TOKEN", "GCTUNER_TOKEN_FILE", "GCTUNER_ALLOW_UNAUTHENTICATED=1"):
        assert name in message
    assert endpoint.handle(Request("GET", {})).status == 200


def test_allow_unauthenticated(tmp_path: Path) -> None:
    endpoint = make_endpoint(tmp_path, token=None, allow_unauthenticated=True)
    assert endpoint.handle(Request("POST", JSON, json.dumps(TUNED).encode())).status == 200


def test_a_configured_token_wins_over_allow_unauthenticated(tmp_path: Path) -> None:
    endpoint = make_endpoint(tmp_path, allow_unauthenticated=True)
    assert endpoint.handle(Request("POST", JSON, json.dumps(TUNED).encode())).status == 401


def test_a_rotated_token_file_applies_without_restart(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    endpoint = make_endpoint(tmp_path / "state", token=None, token_file=str(token_file))
    assert post(endpoint, TUNED, {"Authorization": "Bearer first-token"}).status == 200
    token_file.write_text("second-token-longer\n")
    assert post(endpoint, TUNED, {"Authorization": "Bearer first-token"}).status == 401
    assert post(endpoint, TUNED, {"Authorization": "Bearer second-token-longer"}).status == 200


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_an_unreadable_token_file_fails_closed(tmp_path: Path, content: str | None) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    endpoint = make_endpoint(tmp_path / "state", token=None, token_file=str(token_file),
                             allow_unauthenticated=True)
    response = post(endpoint, TUNED, {"Authorization": "Bearer "})
    assert response.status == 503
    assert "GCTUNER_TOKEN_FILE cannot be read" in answer(response)["message"]
    assert endpoint.shared.state_dir.read_desired() is None


# --- properties over arbitrary requests -----------------------------------------

methods = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "post"]) | st.text(
    max_size=8
)
header_names = st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"])
authorizations = st.one_of(
    st.just(f"Bearer {TOKEN}"), st.just(f"bearer  {TOKEN} "), st.just(f"Bearer {TOKEN}x"),
    st.just("Bearer " + TOKEN[:-1]), st.text(max_size=40),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
content_lengths = st.integers(-2, 10_000).map(str) | st.text(max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 2_000_000) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=14), inner, max_size=4),
    max_leaves=10,
)
settings_like = st.fixed_dictionaries(
    {"thresholds": st.lists(st.integers(-1, 1_000_001), min_size=0, max_size=4)},
    optional={"freeze": st.booleans() | st.integers(0, 1), "allow_disable": st.booleans()},
)
bodies = st.one_of(
    st.binary(max_size=5000),
    json_values.map(lambda value: json.dumps(value).encode()),
    settings_like.map(lambda value: json.dumps(value).encode()),
)


@st.composite
def arbitrary_requests(draw: st.DrawFn) -> Request:
    headers: dict[str, str] = draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3))
    if draw(st.booleans()):
        headers[draw(header_names)] = draw(authorizations)
    if draw(st.booleans()):
        headers["Content-Type"] = draw(content_types)
    if draw(st.booleans()):
        headers["Content-Length"] = draw(content_lengths)
    return Request(draw(methods), headers, draw(bodies))


@st.composite
def plausible_requests(draw: st.DrawFn) -> Request:
    """Well-formed up to the body, so that the body's checks are reached too."""
    body = draw(bodies)
    headers = {draw(header_names): f"Bearer {TOKEN}", "Content-Type": "application/json"}
    if draw(st.booleans()):
        headers["Content-Length"] = str(len(body))
    return Request(draw(st.sampled_from(["POST", "POST", "DELETE", "GET"])), headers, body)


requests = arbitrary_requests() | plausible_requests()


@pytest.mark.parametrize("token", [TOKEN, None])
def test_any_request_gets_a_json_answer_and_a_refusal_changes_nothing(token: str | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        endpoint = make_endpoint(Path(directory), token=token)
        desired_file = Path(directory) / "desired.json"

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(requests)
        def check(request: Request) -> None:
            before = (thresholds(endpoint), endpoint.shared.runtime.frozen())
            desired = desired_file.read_bytes() if desired_file.exists() else None
            response = endpoint.handle(request)
            data = answer(response)
            assert response.status in {200, 400, 401, 403, 405, 413, 415}
            assert TOKEN not in response.body.decode() + repr(response.headers)
            if response.status != 200:
                assert isinstance(data["message"], str) and data["message"]
                assert (thresholds(endpoint), endpoint.shared.runtime.frozen()) == before
                assert (desired_file.read_bytes() if desired_file.exists() else None) == desired
            elif request.method != "GET":
                assert token is not None and TOKEN in request.header("authorization")
                assert data["processes"] == {"applied": 1, "total": 1}

        check()


def test_thresholds_left_out_keep_what_the_last_post_published(endpoint: TuneEndpoint) -> None:
    post(endpoint, TUNED)
    assert answer(post(endpoint, {"thresholds": [6000]}))["new_thresholds"] == [6000, 20, 100]
    assert endpoint.shared.desired().settings.thresholds == (6000, 20, 100)  # type: ignore[union-attr]
    endpoint.handle(Request("DELETE", AUTH))
    assert answer(post(endpoint, {"thresholds": [7000]}))["new_thresholds"] == [7000, 10, 10]
