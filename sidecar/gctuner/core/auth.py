"""Who may change the collector: the bearer-token check.

The token is compared in constant time and never logged, echoed or put in an
error message. Fails closed: a configured token file that cannot be read
refuses every change rather than letting them all through.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import time

from gctuner.core.config import NAMES, Config

_ENCODING = ("utf-8", "surrogatepass")  # injective, so no two headers compare equal

REREAD_SECONDS = 5.0
"""The token file is read again at least this often even if ``stat`` shows no
change (a file system whose timestamps are too coarse to tell two writes apart)."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a request may not change anything, as an HTTP status and words."""

    status: int
    message: str
    challenge: bool = False
    """Send ``WWW-Authenticate: Bearer`` (a 401)."""


class TokenCheck:
    """Checks the ``Authorization`` header of requests that change settings."""

    def __init__(self, config: Config) -> None:
        self._token = (config.token or "").strip().encode(*_ENCODING) or None
        self._file = config.token_file
        self._allow_unauthenticated = config.allow_unauthenticated
        self._cached: tuple[tuple[int, ...], bytes] | None = None
        self._read_at = 0.0

    def check(self, authorization: str | None) -> Refusal | None:
        """None if the request may proceed, else the refusal to answer with."""
        try:
            expected = self._expected()
        except OSError as error:
            return Refusal(
                503,
                f"the token file named by {NAMES['token_file']} cannot be read "
                f"({error.strerror or error}); changes are refused until it can",
            )
        if expected is None:
            if self._allow_unauthenticated:
                return None
            return Refusal(
                403,
                "no token is configured, so changes are refused: set "
                f"{NAMES['token']} or {NAMES['token_file']}, or "
                f"{NAMES['allow_unauthenticated']}=1 for local development",
            )
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        given = credentials.strip().encode(*_ENCODING)
        if scheme.lower() != "bearer" or not given:
            return Refusal(
                401,
                "this request changes the garbage collector and needs an "
                "'Authorization: Bearer <token>' header",
                challenge=True,
            )
        if not hmac.compare_digest(hashlib.sha256(given).digest() if self._file else given, expected):
            return Refusal(401, "the bearer token is not valid", challenge=True)
        return None

    def _expected(self) -> bytes | None:
        """The token now in force; the file is read again only when it changed."""
        if self._file is None:
            return self._token
        info = os.stat(self._file)  # follows the symlink a Secret volume swaps
        # ctime too: a rewrite in place that restores the size and the mtime cannot restore it
        key = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)
        now = time.monotonic()
        if self._cached is None or self._cached[0] != key or now - self._read_at >= REREAD_SECONDS:
            with open(self._file, "rb") as handle:
                token = handle.read(64 * 1024).strip()
            if not token:
                raise OSError("the file is empty")
            self._cached = (key, hashlib.sha256(token).digest())
            self._read_at = now
        return self._cached[1]
