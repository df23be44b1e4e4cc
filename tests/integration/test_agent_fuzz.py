"""Fuzzing the agent over raw HTTP, on real servers, against the workers' real collectors.

Four stacks, each with 2 worker processes and its own state directory: the
Flask extension and the WSGI middleware under gunicorn, the ASGI middleware
under uvicorn, and the sidecar server publishing to a gunicorn whose workers
follow through the hooks. Hypothesis (derandomized, so every run sends the
same requests) generates batches of requests: methods, paths, tokens, content
types, bodies (settings, broken settings, any JSON, bytes, too large) and
framings (Content-Length, chunked, a body shorter or longer than declared,
broken chunks, several or garbage Content-Length headers), sent as bytes on
a socket of their own, concurrently across the stacks.

Asserted, per request: never a 5xx; a well-framed request always gets an
answer (ill-framed ones may also be dropped). After every batch, per stack:
the generation moved by exactly the number of POSTs and DELETEs that were
accepted (plus at most those dropped unanswered, which the server may have
handed to the app before it found their framing broken), and every worker's
real ``gc.get_threshold()`` (its ``/`` page) is what it was before the batch
if nothing was published, else one the batch asked for (or the defaults),
the same in every worker. So a refused request
that changed anything anywhere fails the run.

50 batches of 200 requests (50 per stack) by default: 10,000 requests;
``GCTUNER_FUZZ_EXAMPLES`` sets the number of batches for a longer run. The
counts by status code are printed at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from agent_servers import BIN, TOKEN, agent_env, free_port, serving
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from polling import wait_for

EXAMPLES = int(os.environ.get("GCTUNER_FUZZ_EXAMPLES", "50"))
PER_STACK = 50
WORKERS = 2
STACKS = ("flask", "wsgi", "asgi", "sidecar")

pytestmark = pytest.mark.timeout(300 + 3 * EXAMPLES)


@dataclasses.dataclass
class Stack:
    name: str
    host: str
    port: int
    """Where the requests go (the sidecar's port for the sidecar)."""
    app_url: str
    """Where each worker reports its real collector."""
    generation: int = 0
    thresholds: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    defaults: list[int] = dataclasses.field(default_factory=list)


def _gunicorn(port: int, app: str, *options: str) -> list[str]:
    return [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5",
            "--timeout", "60", *options, app]  # fmt: skip


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    root = tmp_path_factory.mktemp("fuzz")
    ports = {name: free_port() for name in (*STACKS, "followers")}
    commands = {
        "flask": _gunicorn(ports["flask"], "flask_app:app"),
        "wsgi": _gunicorn(ports["wsgi"], "wsgi_app:application"),
        "asgi": [str(BIN / "uvicorn"), "--workers", str(WORKERS), "--host", "127.0.0.1", "--port",
                 str(ports["asgi"]), "--no-access-log", "starlette_app:app"],  # fmt: skip
        "followers": _gunicorn(ports["followers"], "plain_app:application", "-c", "python:gctuner.gunicorn"),
        "sidecar": [str(BIN / "gctuner"), "sidecar", "--host", "127.0.0.1", "--port", str(ports["sidecar"])],
    }
    state = {name: root / f"state-{name}" for name in STACKS}
    state["followers"] = state["sidecar"]
    with contextlib.ExitStack() as running:
        found: dict[str, Stack] = {}
        for name, command in commands.items():
            url = f"http://127.0.0.1:{ports[name]}"
            ready = f"{url}/healthz" if name == "sidecar" else f"{url}/"
            running.enter_context(serving(command, agent_env(state[name]), root / f"{name}.log", ready))
        for name in STACKS:
            app_port = ports["followers" if name == "sidecar" else name]
            stack = Stack(name, "127.0.0.1", ports[name], f"http://127.0.0.1:{app_port}/")
            tune = f"http://127.0.0.1:{ports[name]}/tune_gc"
            wait_for(lambda tune=tune: len(requests.get(tune, timeout=5).json()["processes"]) == WORKERS,  # type: ignore[misc]
                     60, f"{WORKERS} {name} processes to follow")  # fmt: skip
            stack.thresholds = workers_thresholds(stack)
            stack.defaults = next(iter(stack.thresholds.values()))
            found[name] = stack
        yield found


def workers_thresholds(stack: Stack) -> dict[int, list[int]]:
    """Every worker's real thresholds, once they all agree (a follower applies
    within its polling interval)."""
    seen: dict[int, list[int]] = {}

    def all_seen_and_agreeing() -> bool:
        with ThreadPoolExecutor(8) as pool:
            for answer in pool.map(lambda _: requests.get(stack.app_url, timeout=10).json(), range(12)):
                seen[answer["pid"]] = answer["thresholds"]
        return len(seen) >= WORKERS and len({tuple(t) for t in seen.values()}) == 1

    try:
        wait_for(all_seen_and_agreeing, 30, f"every {stack.name} worker to agree", interval=0.05)
    except AssertionError as error:
        status = requests.get(f"http://{stack.host}:{stack.port}/tune_gc", timeout=10).json()
        raise AssertionError(f"{error}: the workers report {seen}; GET /tune_gc: {status}") from None
    return dict(seen)


# --- What is sent ---------------------------------------------------------------------------

WELL_FRAMED = ("length", "chunked", "none")
FRAMINGS = (*WELL_FRAMED * 3, "short", "long", "garbage-length", "negative-length", "two-lengths",
            "bad-chunk-size", "bad-chunk-end", "chunked-and-length")  # fmt: skip

settings_body = st.fixed_dictionaries(
    {"thresholds": st.lists(st.integers(1, 200_000), min_size=1, max_size=3)},
    optional={"freeze": st.booleans()},
)
broken_settings = st.one_of(
    st.fixed_dictionaries({"thresholds": st.lists(st.one_of(st.integers(-5, 0), st.text(max_size=3), st.floats(),
                                                            st.none(), st.booleans()), min_size=1, max_size=4)}),
    st.fixed_dictionaries({"thresholds": st.lists(st.integers(1, 9), min_size=4, max_size=6)}),
    st.fixed_dictionaries({"thresholds": st.lists(st.integers(1, 200_000), min_size=1, max_size=3),
                           "surprise": st.integers()}),
    st.fixed_dictionaries({"goal": st.one_of(st.text(max_size=5), st.integers(), st.just({"gcTimePercent": -1}))}),
    st.fixed_dictionaries({"thresholds": st.integers()}),
    st.fixed_dictionaries({"freeze": st.text(max_size=4)}),
)  # fmt: skip
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    settings_body.map(lambda d: json.dumps(d).encode()),
    settings_body.map(lambda d: json.dumps(d).encode()),
    broken_settings.map(lambda d: json.dumps(d).encode()),
    any_json.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[" * 3000, b" " * 5000, b'{"thresholds": [1e999]}', b"\xff\xfe{}", b"null"]),
)


@dataclasses.dataclass(frozen=True)
class Fuzzed:
    method: str
    path: str
    auth: str | None
    content_type: str | None
    body: bytes
    framing: str

    @property
    def well_framed(self) -> bool:
        return self.framing in WELL_FRAMED

    def thresholds(self) -> list[int] | None:
        try:
            payload = json.loads(self.body)
            return [int(t) for t in payload["thresholds"]]
        except (ValueError, TypeError, KeyError):
            return None

    def to_bytes(self, host: str) -> bytes:
        body = b"" if self.framing == "none" else self.body
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        if self.auth is not None:
            lines.append(f"Authorization: {self.auth}")
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        framing = self.framing
        if framing == "length":
            lines.append(f"Content-Length: {len(body)}")
        elif framing == "short":
            lines.append(f"Content-Length: {len(body) + 7}")
        elif framing == "long":
            lines.append(f"Content-Length: {max(0, len(body) - 3)}")
        elif framing == "garbage-length":
            lines.append(f"Content-Length: +{len(body)}")
        elif framing == "negative-length":
            lines.append("Content-Length: -1")
        elif framing == "two-lengths":
            lines += ["Content-Length: -1", f"Content-Length: {len(body)}"]
        elif framing in ("chunked", "bad-chunk-size", "bad-chunk-end", "chunked-and-length"):
            lines.append("Transfer-Encoding: chunked")
            if framing == "chunked-and-length":
                lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if framing in ("chunked", "chunked-and-length"):
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in _split(body) if part)
            return head + chunks + b"0\r\n\r\n"
        if framing == "bad-chunk-size":
            return head + b"zz\r\n" + body + b"\r\n0\r\n\r\n"
        if framing == "bad-chunk-end":  # the whole body in a good chunk, then broken framing
            return head + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\nX"
        return head + body


def _split(body: bytes) -> list[bytes]:
    middle = len(body) // 2
    return [body[:middle], body[middle:]]


fuzzed = st.builds(
    Fuzzed,
    method=st.sampled_from(["GET", "POST", "POST", "POST", "POST", "DELETE", "DELETE", "PUT", "PATCH",
                            "OPTIONS", "HEAD", "TRACE", "get", "post", "BREW"]),
    path=st.sampled_from(["/tune_gc"] * 6 + ["/tune_gc?x=1", "/tune_gc/", "/TUNE_GC", "/metrics", "/healthz", "/"]),
    auth=st.sampled_from([f"Bearer {TOKEN}"] * 5 + [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"bearer {TOKEN}",
                          f"Bearer {TOKEN} extra"]),
    content_type=st.sampled_from(["application/json"] * 4 + ["application/json; charset=utf-8", "APPLICATION/JSON",
                                  "text/plain", None, "application/jsonx"]),
    body=bodies,
    framing=st.sampled_from(FRAMINGS),
)  # fmt: skip


# --- Sending and checking -------------------------------------------------------------------

COUNTS: Counter[str] = Counter()
BY_STACK: dict[str, Counter[str]] = {name: Counter() for name in STACKS}
ACCEPTED: Counter[str] = Counter()


def send(stack: Stack, request: Fuzzed) -> int | None:
    """The answer's status, or None if the server closed without one."""
    data = request.to_bytes(f"{stack.host}:{stack.port}")
    with socket.create_connection((stack.host, stack.port), timeout=30) as sock:
        try:
            sock.sendall(data)
            if not request.well_framed:
                sock.shutdown(socket.SHUT_WR)  # so that a short body ends, and is seen to
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            answer = b""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


def run_batch(stack: Stack, batch: list[Fuzzed], pool: ThreadPoolExecutor) -> None:
    before = dict(stack.thresholds)
    statuses = list(pool.map(lambda request: send(stack, request), batch))
    accepted: list[Fuzzed] = []
    # An ill-framed request may be dropped after the server handed its body
    # to the app (a broken chunk end, found once the body was read): the
    # client cannot tell whether it changed anything, so it may have.
    unknown: list[Fuzzed] = []
    for request, status in zip(batch, statuses):
        key = "dropped" if status is None else str(status)
        COUNTS[key] += 1
        BY_STACK[stack.name][key] += 1
        assert status is None or status < 500, f"{stack.name}: {status} for {request}"
        assert status is not None or not request.well_framed, f"{stack.name}: no answer to {request}"
        if request.method in ("POST", "DELETE") and request.path.startswith("/tune_gc") and request.path != "/tune_gc/":
            if status in (200, 202):
                accepted.append(request)
            elif status is None:
                unknown.append(request)
    ACCEPTED[stack.name] += len(accepted)

    tune = f"http://{stack.host}:{stack.port}/tune_gc"
    generation = requests.get(tune, timeout=10).json()["generation"]
    assert stack.generation + len(accepted) <= generation <= stack.generation + len(accepted) + len(unknown), (
        f"{stack.name}: generation {generation}, expected {stack.generation} + {len(accepted)} accepted "
        f"(+ at most {len(unknown)} dropped unanswered): a refused request was published")
    published, stack.generation = generation != stack.generation, generation
    now = workers_thresholds(stack)
    if not published:
        assert {pid: now[pid] for pid in before if pid in now} == {pid: before[pid] for pid in now if pid in before}, (
            f"{stack.name}: thresholds changed by refused requests")
    else:
        asked = [request.thresholds() for request in [*accepted, *unknown] if request.method == "POST"]
        firsts = {t[0] for t in asked if t} | {t[0] for t in before.values()} | {stack.defaults[0]}
        assert all(t[0] in firsts for t in now.values()), f"{stack.name}: {now} is nothing an accepted request asked"
    stack.thresholds = now


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a failing batch: the message names the request
def test_fuzzed_requests_change_nothing_unless_accepted(
    stacks: dict[str, Stack], pool: ThreadPoolExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    batches = st.fixed_dictionaries({name: st.lists(fuzzed, min_size=PER_STACK, max_size=PER_STACK)
                                     for name in STACKS})  # fmt: skip

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(batches)
    def fuzz(batch: dict[str, list[Fuzzed]]) -> None:
        with ThreadPoolExecutor(len(STACKS)) as per_stack:
            for done in [per_stack.submit(run_batch, stacks[name], batch[name], pool) for name in STACKS]:
                done.result()

    try:
        fuzz()
    finally:
        with capsys.disabled():
            print(f"\nfuzz: {sum(COUNTS.values())} requests; by status: {dict(sorted(COUNTS.items()))}")
            for name, counts in BY_STACK.items():
                print(f"fuzz:   {name}: {dict(sorted(counts.items()))}; POSTs and DELETEs accepted: {ACCEPTED[name]}")
    assert sum(COUNTS.values()) >= EXAMPLES * PER_STACK * len(STACKS)
