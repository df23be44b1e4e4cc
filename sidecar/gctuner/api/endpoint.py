"""The ``/tune_gc`` endpoint as a function from request data to response data.

No web framework here: Flask, WSGI, ASGI and the sidecar server each wrap
:class:`TuneEndpoint` in a few lines, so they cannot drift apart. The order of
checks is fixed and cheap first: method (405), token (401/403/503), size (413),
content type (415), JSON and settings (400). A refused request changes
nothing; client mistakes are 4xx with a message saying what to do, never 500.

GET needs no token: it is read-only, like ``/metrics``, and tells an operator
what the processes really run.
"""

from __future__ import annotations

import dataclasses
import http
import json
from collections.abc import Mapping
from typing import Any

from gctuner.autopilot.goal import Goal, parse_goal
from gctuner.core.applied_by import AppliedBy, split_applied_by
from gctuner.core.auth import TokenCheck
from gctuner.core.config import Config
from gctuner.core.settings import InvalidSettings, Settings, parse_settings
from gctuner.pod.publisher import Publisher, Rollout, record_generation

METHODS = ("GET", "POST", "DELETE")
_EXAMPLE = '{"thresholds": [50000, 20, 100], "freeze": false}'


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclasses.dataclass(frozen=True)
class Request:
    """One request: method, headers (looked up case-insensitively), body."""

    method: str
    headers: Mapping[str, str]
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _lower(self.headers))

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclasses.dataclass(frozen=True)
class Response:
    """One answer, ready for any server: status, headers, JSON body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status_line(self) -> str:
        """``"200 OK"``, as WSGI's ``start_response`` wants it."""
        return f"{self.status} {http.HTTPStatus(self.status).phrase}"


def json_response(
    status: int, data: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
        body,
    )


class TuneEndpoint:
    """``GET``/``POST``/``DELETE`` on the collector settings of every process.

    It is given the shared state it answers for and starts nothing: an
    adapter passes this process's follower (see
    :func:`gctuner.pod.agent.follow_config`), the sidecar a
    :class:`~gctuner.pod.publisher.Publisher`, which changes the state without
    being one of the processes, and tests their own.
    """

    def __init__(self, config: Config, *, shared: Publisher) -> None:
        self.config = config
        self.shared = shared
        self._tokens = TokenCheck(self.config)

    def precheck(self, method: str, headers: Mapping[str, str]) -> Response | None:
        """The refusal that needs no body, or None: lets an adapter refuse an
        oversized or unauthorised request before reading a byte of its body."""
        return self._refuse(method, _lower(headers))

    def handle(self, request: Request) -> Response:
        """Answer one request (re-runs :meth:`precheck`: calling it is optional)."""
        refusal = self._refuse(request.method, request.headers)
        if refusal is not None:
            return refusal
        try:
            if request.method == "GET":
                return json_response(200, self.shared.describe())
            if request.method == "DELETE":
                return self._changed(None, "restored to startup defaults")
            if len(request.body) > self.config.max_body_bytes:
                return self._too_large()
            declared = request.header("content-length")
            if declared is not None and len(request.body) != _content_length(request.headers):
                return json_response(
                    400,
                    {"message": f"the body has {len(request.body)} bytes, not its Content-Length "
                     f"of {declared.strip()}: nothing was applied; send the whole body"},
                )
            return self._post(request.body)
        except OSError as error:  # the state directory, not the client
            where = self.shared.state_dir.path
            return json_response(
                503, {"message": f"the shared state in {where} cannot be used: {error}"}
            )

    def _refuse(self, method: str, headers: Mapping[str, str]) -> Response | None:
        if method not in METHODS:
            return json_response(
                405,
                {"message": f"only {', '.join(METHODS)} are supported here"},
                (("Allow", ", ".join(METHODS)),),
            )
        if method == "GET":
            return None
        refusal = self._tokens.check(headers.get("authorization"))
        if refusal is not None:
            challenge = (("WWW-Authenticate", "Bearer"),) if refusal.challenge else ()
            return json_response(refusal.status, {"message": refusal.message}, challenge)
        length = _content_length(headers)
        if method == "DELETE":
            if length != 0 or "transfer-encoding" in headers:  # refused, never read nor ignored
                return json_response(400, {"message": "DELETE takes no body: send it without one"})
            return None
        if length is None:
            return json_response(400, {"message": "Content-Length must be a whole number"})
        if length > self.config.max_body_bytes:
            return self._too_large()
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return json_response(
                415, {"message": "send the settings as JSON with Content-Type: application/json"}
            )
        return None

    def _too_large(self) -> Response:
        limit = self.config.max_body_bytes
        return json_response(
            413, {"message": f"the body is larger than {limit} bytes; send {_EXAMPLE}"}
        )

    def _post(self, body: bytes) -> Response:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:
            return json_response(
                400, {"message": f"the body is not valid JSON ({error}); send {_EXAMPLE}"}
            )
        try:
            payload, applied_by = split_applied_by(payload)  # who asks: kept and reported, not applied
            if isinstance(payload, dict) and "goal" in payload:
                return self._steer(parse_request_goal(payload), applied_by)
            settings = parse_settings(payload)
        except InvalidSettings as error:
            return json_response(400, {"message": str(error)})
        return self._changed(self._complete(settings), "updated", applied_by)

    def _complete(self, settings: Settings) -> Settings:
        """Thresholds left out keep the values the last POST published, written
        into this one: not each process's current values, which differ when a
        process skipped a generation (a follower applies only the latest)."""
        current = self.shared.desired()
        previous = () if current is None or current.settings is None else current.settings.thresholds
        if len(settings.thresholds) >= len(previous):
            return settings
        thresholds = tuple(settings.thresholds) + tuple(previous[len(settings.thresholds):])
        return dataclasses.replace(settings, thresholds=thresholds)

    def _steer(self, goal: Goal, applied_by: AppliedBy | None = None) -> Response:
        rollout = self.shared.steer(goal, self.config.apply_timeout, applied_by=applied_by)
        data: dict[str, Any] = {
            "message": "Autopilot on: every process steers towards the goal.",
            "goal": goal.to_json(),
            "new_thresholds": self.shared.thresholds(rollout),
            "generation": rollout.generation,
            "processes": rollout.to_json(),
        }
        return self._answer(rollout, data)

    def _changed(
        self, settings: Settings | None, what: str, applied_by: AppliedBy | None = None
    ) -> Response:
        rollout = self.shared.publish(settings, self.config.apply_timeout, applied_by=applied_by)
        data: dict[str, Any] = {
            "message": f"Garbage collection thresholds {what}.",
            "new_thresholds": self.shared.thresholds(rollout),
        }
        if settings is not None:
            data["freeze"] = settings.freeze
        data["generation"] = rollout.generation
        data["processes"] = rollout.to_json()
        data["frozen"] = frozen_state(self.shared.records(), rollout.generation, settings)
        return self._answer(rollout, data)

    def _answer(self, rollout: Rollout, data: dict[str, Any]) -> Response:
        """200 only when every process applied it and there is one; else 202
        (published, it may still arrive), saying which processes lag and why."""
        if rollout.complete:
            return json_response(200, data)
        if rollout.total == 0:
            where = self.shared.state_dir.path
            why = (f"no process follows {where}, so none applied it: is the app running, "
                   "with the same GCTUNER_STATE_DIR?")  # fmt: skip
        else:
            why = (f"only {rollout.applied} of {rollout.total} processes applied it within "
                   f"{self.config.apply_timeout:g} s; processes.lagging says which and why")  # fmt: skip
        data["message"] = f"Not applied everywhere: generation {rollout.generation} is published, but {why}."
        return json_response(202, data)


def frozen_state(
    records: list[dict[str, Any]], generation: int, settings: Settings | None
) -> dict[str, Any]:
    """What stays frozen after a POST or DELETE (``gc.freeze`` is an action, so
    ``freeze: false`` never unfreezes, and a DELETE unfreezes only what gctuner
    froze, never what the app froze first): in how many of the processes that
    applied it objects are frozen, and what that means."""
    counts = [record["frozen"] for record in records
              if record_generation(record) >= generation and type(record.get("frozen")) is int]  # fmt: skip
    frozen = sum(1 for count in counts if count > 0)
    where = f"{frozen} of {len(counts)} processes"
    if frozen == 0:
        note = "nothing is frozen"
    elif settings is None:
        note = (f"objects stay frozen in {where}: DELETE unfreezes only what gctuner froze, and "
                "not even that when the app (or GCTUNER_FREEZE_AFTER_PRELOAD) froze objects "
                "first, since gc.unfreeze cannot tell them apart")  # fmt: skip
    elif settings.freeze:
        note = f"objects are frozen in {where}"
    else:
        note = (f"objects stay frozen in {where}: freeze: false does not unfreeze "
                "(DELETE unfreezes what gctuner froze)")  # fmt: skip
    return {"processes": frozen, "of": len(counts), "note": note}


def parse_request_goal(payload: dict[str, Any]) -> Goal:
    """``{"goal": {...}}``: the goal alone, since thresholds are the autopilot's to choose."""
    others = sorted(key for key in payload if key != "goal")
    if others:
        raise InvalidSettings(
            f"a goal comes alone (the autopilot chooses the thresholds); remove {', '.join(others)}"
        )
    return parse_goal(payload["goal"])


def _content_length(headers: Mapping[str, str]) -> int | None:
    """The declared body size (0 if not declared), or None if it is garbage:
    only ASCII digits (``int`` would take ``+5``, ``5_0`` or ``٥``, which a
    server's own reader may count differently)."""
    value = headers.get("content-length", "0").strip(" \t")
    if not (value.isascii() and value.isdigit()):
        return None
    return int(value)
