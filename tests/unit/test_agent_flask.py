"""The Flask extension, through Flask's test client."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import stand_in_follower
from flask import Flask

from gctuner.api.endpoint import TuneEndpoint
from gctuner.flask import EXTENSION, GCTuner
from gctuner.pod.shared import SharedState

pytestmark = pytest.mark.timeout(60)

TOKEN = "flask-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    """The state every app of a test answers for, with a stand-in collector."""
    follower = stand_in_follower(tmp_path / "state")
    yield follower
    follower.stop()


@pytest.fixture
def make_app(shared: SharedState) -> Any:
    apps: list[Flask] = []

    def make(tuner: GCTuner | None = None, **config: Any) -> Flask:
        app = Flask(f"app{len(apps)}")
        app.config.update(GCTUNER_TOKEN=TOKEN, **config)
        (tuner or GCTuner(shared=shared)).init_app(app)
        apps.append(app)
        return app

    return make


def test_post_get_delete(make_app: Any, shared: SharedState) -> None:
    client = make_app().test_client()
    response = client.post("/tune_gc", json={"thresholds": [50000, 20, 100]}, headers=AUTH)
    assert response.status_code == 200
    assert response.json["processes"] == {"applied": 1, "total": 1}
    assert shared.runtime.thresholds() == (50000, 20, 100)

    status = client.get("/tune_gc").json
    assert status["thresholds"] == [50000, 20, 100]
    assert status["in_sync"] is True

    response = client.delete("/tune_gc", headers=AUTH)
    assert response.status_code == 200
    assert response.json["new_thresholds"] == status["defaults"]


@pytest.mark.parametrize(
    ("method", "kwargs", "status"),
    [
        ("POST", {"json": {"thresholds": [-1, "a"]}, "headers": AUTH}, 400),
        ("POST", {"json": {"thresholds": [1]}}, 401),
        ("POST", {"data": b"{}", "headers": AUTH}, 415),
        ("POST", {"data": b" " * 5000, "headers": {**AUTH, "Content-Type": "application/json"}}, 413),
        ("PUT", {}, 405),
        ("HEAD", {}, 405),
        ("OPTIONS", {}, 405),
        ("PROPFIND", {}, 405),
    ],
)
def test_every_refusal_is_json(
    make_app: Any, shared: SharedState, method: str, kwargs: dict[str, Any], status: int
) -> None:
    before = shared.runtime.thresholds()
    response = make_app().test_client().open("/tune_gc", method=method, **kwargs)
    assert response.status_code == status
    assert response.content_type == "application/json"
    if method != "HEAD":
        assert response.json["message"]
    assert shared.runtime.thresholds() == before


def test_init_app_twice_is_refused(make_app: Any, shared: SharedState) -> None:
    tuner = GCTuner(shared=shared)
    app = make_app(tuner)
    with pytest.raises(RuntimeError, match="already registered on the app 'app0'"):
        tuner.init_app(app)


def test_one_extension_serves_an_app_factory(make_app: Any, shared: SharedState) -> None:
    tuner = GCTuner(shared=shared)
    first, second = make_app(tuner), make_app(tuner, GCTUNER_PATH="/admin/gc")
    assert isinstance(first.extensions[EXTENSION].endpoint, TuneEndpoint)
    assert first.extensions[EXTENSION] is not second.extensions[EXTENSION]
    assert not hasattr(tuner, "endpoint")
    assert first.test_client().get("/tune_gc").status_code == 200
    assert second.test_client().get("/admin/gc").status_code == 200
    assert second.test_client().get("/tune_gc").status_code == 404


def test_options_beat_app_config_which_beats_the_environment(
    make_app: Any, shared: SharedState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCTUNER_APPLY_TIMEOUT", "7")
    monkeypatch.setenv("GCTUNER_MAX_BODY_BYTES", "100")
    app = make_app(GCTuner(shared=shared, max_body_bytes=200), GCTUNER_MAX_BODY_BYTES=150)
    config = app.extensions[EXTENSION].endpoint.config
    assert (config.apply_timeout, config.max_body_bytes, config.token) == (7.0, 200, TOKEN)
    assert app.config["GCTUNER_APPLY_TIMEOUT"] == 7.0


def test_without_shared_state_init_app_follows(tmp_path: Path) -> None:
    app = Flask("followed")
    app.config.update(GCTUNER_STATE_DIR=str(tmp_path / "state"))
    GCTuner(app)
    follower = app.extensions[EXTENSION].shared
    try:
        assert isinstance(follower, SharedState) and follower._thread.is_alive()
        assert [record["pid"] for record in follower.state_dir.records()] == [os.getpid()]
    finally:
        follower.stop()


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown GCTuner option 'tokn'"):
        GCTuner(tokn="x")


def test_importing_gctuner_does_not_import_flask() -> None:
    code = "import sys, gctuner; print([m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')])"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert output.stdout.strip() == "[]"


class BrokenChunks(io.BytesIO):
    """What gunicorn's chunked reader does on bad framing: raise its own
    ``InvalidChunkSize``, a plain ``Exception``."""

    def read(self, size: int | None = -1) -> bytes:
        raise type("InvalidChunkSize", (Exception,), {})("Invalid chunk size: 'zz'")

    readline = read  # type: ignore[assignment]


@pytest.mark.parametrize(
    "environ",
    [
        {"wsgi.input": BrokenChunks(), "wsgi.input_terminated": True},  # gunicorn, chunked
        {"wsgi.input": io.BytesIO(b'{"thresholds": [1]}'), "CONTENT_LENGTH": "100"},  # Werkzeug: short
    ],
    ids=["gunicorn-bad-chunks", "short-body"],
)
def test_a_body_that_cannot_be_read_is_a_json_400(
    make_app: Any, shared: SharedState, environ: dict[str, Any]
) -> None:
    client = make_app().test_client()
    headers = {**AUTH, "Content-Type": "application/json"}
    response = client.post("/tune_gc", data=b"", headers=headers, environ_overrides=environ)
    assert response.status_code == 400 and response.content_type == "application/json"
    assert "nothing was applied" in response.json["message"] or "Content-Length" in response.json["message"]
    assert shared.desired() is None
