"""The ASGI middleware, driven by hand-written ASGI events.

Plain test functions around ``asyncio.run``: they need no pytest plugin, so
they run under every interpreter of the matrix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import stand_in_follower

from gctuner.asgi import GCTunerMiddleware
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir
from polling import until

pytestmark = pytest.mark.timeout(60)

TOKEN = "asgi-test-token"
AUTH = (b"authorization", f"Bearer {TOKEN}".encode())
JSON = (b"content-type", b"application/json")


class Inner:
    """The wrapped app: records the scopes it was given."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope["type"])


@pytest.fixture
def inner() -> Inner:
    return Inner()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    follower = stand_in_follower(tmp_path / "state")
    yield follower
    follower.stop()


@pytest.fixture
def middleware(shared: SharedState, inner: Inner) -> GCTunerMiddleware:
    return GCTunerMiddleware(inner, shared=shared, token=TOKEN, apply_timeout=0.5)


@dataclasses.dataclass
class Exchange:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    received: int
    """How many messages the middleware asked for."""


async def request(
    app: Any, method: str, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> Exchange:
    """One HTTP request; ``chunks`` are the body's messages."""
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks or [b""])]  # fmt: skip
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    await app(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return Exchange(sent[0]["status"], dict(sent[0]["headers"]), body, received)


def test_lifespan_websocket_and_other_paths_pass_through(
    middleware: GCTunerMiddleware, inner: Inner
) -> None:
    scopes = ({"type": "lifespan"}, {"type": "websocket", "path": "/tune_gc"}, {"type": "http", "path": "/"})
    for scope in scopes:
        asyncio.run(middleware(scope, None, None))  # type: ignore[arg-type]
    assert inner.scopes == ["lifespan", "websocket", "http"]


def test_post_in_several_chunks(middleware: GCTunerMiddleware, shared: SharedState) -> None:
    body = json.dumps({"thresholds": [50000, 20, 100]}).encode()
    answer = asyncio.run(request(middleware, "POST", "/tune_gc", [body[:5], body[5:]], [AUTH, JSON]))
    assert answer.status == 200 and answer.headers[b"content-type"] == b"application/json"
    assert json.loads(answer.body)["new_thresholds"] == [50000, 20, 100]
    assert shared.runtime.thresholds() == (50000, 20, 100)


def test_the_body_is_read_up_to_the_bound_only(middleware: GCTunerMiddleware) -> None:
    chunks = [b" " * 1000] * 100  # no Content-Length: streamed
    answer = asyncio.run(request(middleware, "POST", "/tune_gc", chunks, [AUTH, JSON]))
    assert answer.status == 413 and "larger than 4096 bytes" in json.loads(answer.body)["message"]
    assert answer.received == 5  # 5000 bytes are more than the bound: stop there


def test_a_refusal_reads_nothing(middleware: GCTunerMiddleware) -> None:
    answer = asyncio.run(request(middleware, "POST", "/tune_gc", [b"{}"], [JSON]))
    assert answer.status == 401 and answer.headers[b"www-authenticate"] == b"Bearer"
    assert answer.received == 0


def test_waiting_for_other_processes_never_blocks_the_loop(
    middleware: GCTunerMiddleware, shared: SharedState, tmp_path: Path
) -> None:
    stale = StateDir(tmp_path / "state")  # a live process that never applies anything
    slot = stale.register()
    stale.write_record(slot, {"pid": os.getpid() + 1, "generation": 0})

    async def watch_the_post() -> tuple[bool, Exchange]:
        body = json.dumps({"thresholds": [1234]}).encode()
        post = asyncio.ensure_future(request(middleware, "POST", "/tune_gc", [body], [AUTH, JSON]))
        # This process applies at once, then the POST waits for the stale one: the loop
        # polling here sees the first while the second is still going on.
        await until(lambda: shared.runtime.thresholds()[0] == 1234, timeout=10, what="this process to apply")
        return not post.done(), await post

    waiting, answer = asyncio.run(watch_the_post())
    stale.release(slot)
    assert waiting, "the POST answered before the loop ran again: it blocked the loop while it waited"
    assert answer.status == 202  # not every process applied it: not a 200 "updated"
    processes = json.loads(answer.body)["processes"]
    assert (processes["applied"], processes["total"]) == (1, 2)
    assert [lag["pid"] for lag in processes["lagging"]] == [os.getpid() + 1]


def test_a_client_gone_before_the_body_is_whole_changes_nothing(
    middleware: GCTunerMiddleware, shared: SharedState
) -> None:
    """The JSON is whole, but the server then saw the client go (a reset, or
    its own 400 to broken chunked framing): never applied, no answer sent."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b'{"thresholds": [1234]}', "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/tune_gc", "headers": [AUTH, JSON]}
    asyncio.run(middleware(scope, receive, send))
    assert sent == []
    assert shared.runtime.thresholds() == (700, 10, 10)
    assert shared.desired() is None


def test_a_body_shorter_than_its_content_length_is_refused(
    middleware: GCTunerMiddleware, shared: SharedState
) -> None:
    body = b'{"thresholds": [1234]}'
    for declared in (len(body) + 10, len(body) - 1):
        headers = [AUTH, JSON, (b"content-length", str(declared).encode())]
        answer = asyncio.run(request(middleware, "POST", "/tune_gc", [body], headers))
        assert answer.status == 400 and "Content-Length" in json.loads(answer.body)["message"]
    assert shared.runtime.thresholds() == (700, 10, 10) and shared.desired() is None


def test_delete_with_a_body_is_refused(middleware: GCTunerMiddleware, shared: SharedState) -> None:
    for framing in ((b"content-length", b"2"), (b"transfer-encoding", b"chunked"), (b"content-length", b"x")):
        answer = asyncio.run(request(middleware, "DELETE", "/tune_gc", [b"{}"], [AUTH, JSON, framing]))
        assert answer.status == 400 and "DELETE takes no body" in json.loads(answer.body)["message"]
        assert answer.received == 0
    assert shared.desired() is None
    plain = asyncio.run(request(middleware, "DELETE", "/tune_gc", [], [AUTH, (b"content-length", b"0")]))
    assert plain.status == 200


def test_under_trio_get_and_post_answer(middleware: GCTunerMiddleware, shared: SharedState) -> None:
    """hypercorn -k trio: no asyncio loop, the wait runs in trio's worker thread."""
    import trio  # in the dev extra and in every interpreter's test virtualenv (tests/interpreters.py)

    async def both() -> tuple[Exchange, Exchange]:
        body = json.dumps({"thresholds": [4321]}).encode()
        post = await request(middleware, "POST", "/tune_gc", [body], [AUTH, JSON])
        return post, await request(middleware, "GET", "/tune_gc", [], [])

    post, get = trio.run(both)
    assert (post.status, get.status) == (200, 200), (post.body, get.body)
    assert shared.runtime.thresholds()[0] == 4321
    assert json.loads(get.body)["generation"] == 1
