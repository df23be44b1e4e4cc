"""The WSGI middleware, called as a WSGI server would call it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from agent_support import stand_in_follower

from gctuner.pod.shared import SharedState
from gctuner.wsgi import GCTunerMiddleware, request_headers

pytestmark = pytest.mark.timeout(60)

TOKEN = "wsgi-test-token"


class Unreadable(io.BytesIO):
    """A body the middleware must not read (it refuses before reading)."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read")


def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the app"]


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    follower = stand_in_follower(tmp_path / "state")
    yield follower
    follower.stop()


@pytest.fixture
def middleware(shared: SharedState) -> GCTunerMiddleware:
    return GCTunerMiddleware(inner, shared=shared, token=TOKEN)


def call(
    app: Any, path: str, method: str = "GET", body: bytes | io.BytesIO = b"", **environ: Any
) -> tuple[str, dict[str, str], bytes]:
    stream = body if isinstance(body, io.BytesIO) else io.BytesIO(body)
    env: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": stream, **environ}
    setup_testing_defaults(env)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    data = b"".join(app(env, start_response))
    return answer["status"], answer["headers"], data


def post_environ(body: bytes, **extra: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)), **extra}  # fmt: skip


def test_other_paths_reach_the_app(middleware: GCTunerMiddleware) -> None:
    assert call(middleware, "/") == ("200 OK", {"Content-Type": "text/plain"}, b"the app")
    assert call(middleware, "/tune_gc/x")[2] == b"the app"


def test_post_get_delete(middleware: GCTunerMiddleware, shared: SharedState) -> None:
    body = json.dumps({"thresholds": [50000, 20, 100]}).encode()
    status, headers, data = call(middleware, "/tune_gc", "POST", body, **post_environ(body))
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert json.loads(data)["processes"] == {"applied": 1, "total": 1}
    assert shared.runtime.thresholds() == (50000, 20, 100)
    assert json.loads(call(middleware, "/tune_gc")[2])["thresholds"] == [50000, 20, 100]
    status, _, data = call(middleware, "/tune_gc", "DELETE", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert status == "200 OK"


def test_an_oversized_body_is_refused_unread(middleware: GCTunerMiddleware) -> None:
    status, _, data = call(middleware, "/tune_gc", "POST", Unreadable(), **post_environ(b"x" * 5000))
    assert status.startswith("413 ")  # the phrase changed in 3.13
    assert "larger than 4096 bytes" in json.loads(data)["message"]


def test_a_chunked_body_is_read_up_to_the_bound(middleware: GCTunerMiddleware, shared: SharedState) -> None:
    environ = post_environ(b"", **{"wsgi.input_terminated": True})  # type: ignore[arg-type]
    del environ["CONTENT_LENGTH"]
    status, _, _ = call(middleware, "/tune_gc", "POST", b" " * 10_000, **environ)
    assert status.startswith("413")
    body = json.dumps({"thresholds": [1234]}).encode()
    status, _, _ = call(middleware, "/tune_gc", "POST", body, **environ)
    assert status == "200 OK" and shared.runtime.thresholds()[0] == 1234


def test_metrics_can_be_switched_off(tmp_path: Path) -> None:
    """Served or not, never at the app's expense when off (test_agent_metrics: served).
    Without ``shared=``, the middleware makes this process follow."""
    without = GCTunerMiddleware(inner, state_dir=str(tmp_path / "b"), metrics=False)
    assert call(without, "/metrics")[2] == b"the app"
    without.routes.shared.stop()  # type: ignore[attr-defined]


def test_headers_from_the_environ() -> None:
    environ = {"HTTP_AUTHORIZATION": "Bearer x", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": "", "HTTP_X_FORWARDED_FOR": "a", "PATH_INFO": "/"}  # fmt: skip
    assert request_headers(environ) == {
        "authorization": "Bearer x", "content-type": "application/json", "x-forwarded-for": "a",
    }  # fmt: skip


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown GCTunerMiddleware option 'tokn'"):
        GCTunerMiddleware(inner, tokn="x")


class BrokenChunks(io.BytesIO):
    """gunicorn's chunked reader on bad framing: raises its own exception class
    (``InvalidChunkSize`` is a plain ``Exception``, not an ``OSError``)."""

    def read(self, size: int | None = -1) -> bytes:
        raise type("InvalidChunkSize", (Exception,), {})("Invalid chunk size: 'zz'")


def test_a_body_shorter_than_its_content_length_is_refused(
    middleware: GCTunerMiddleware, shared: SharedState
) -> None:
    body = b'{"thresholds": [1234]}'
    environ = post_environ(body, CONTENT_LENGTH=str(len(body) + 10))  # the client stopped early
    status, headers, data = call(middleware, "/tune_gc", "POST", body, **environ)
    assert status.startswith("400") and headers["Content-Type"] == "application/json"
    assert "Content-Length" in json.loads(data)["message"]
    assert shared.runtime.thresholds() == (700, 10, 10) and shared.desired() is None


def test_a_body_the_server_cannot_read_is_a_json_400(
    middleware: GCTunerMiddleware, shared: SharedState
) -> None:
    environ = post_environ(b"", CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    environ["wsgi.input_terminated"] = True  # type: ignore[assignment]
    status, headers, data = call(middleware, "/tune_gc", "POST", BrokenChunks(), **environ)
    assert status.startswith("400") and headers["Content-Type"] == "application/json"
    assert "InvalidChunkSize" in json.loads(data)["message"]
    assert shared.desired() is None


@pytest.mark.parametrize("framing", [{"CONTENT_LENGTH": "2"}, {"HTTP_TRANSFER_ENCODING": "chunked"},
                                     {"CONTENT_LENGTH": "-1"}])  # fmt: skip
def test_delete_with_a_body_is_refused_unread(
    middleware: GCTunerMiddleware, shared: SharedState, framing: dict[str, str]
) -> None:
    environ = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", **framing}
    status, _, data = call(middleware, "/tune_gc", "DELETE", Unreadable(b"{}"), **environ)
    assert status.startswith("400") and "DELETE takes no body" in json.loads(data)["message"]
    assert shared.desired() is None


def test_content_length_is_digits_only(middleware: GCTunerMiddleware, shared: SharedState) -> None:
    body = b'{"thresholds": [1234]}'
    for declared in ("+22", "2_2", "\u0662\u0662", "22, 22"):
        status, _, data = call(middleware, "/tune_gc", "POST", Unreadable(body),
                               **post_environ(body, CONTENT_LENGTH=declared))  # fmt: skip
        assert status.startswith("400"), declared
    assert shared.desired() is None
