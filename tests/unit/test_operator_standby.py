"""Whether this replica may act: kopf's peering rule, read from the peering object."""

from __future__ import annotations

import datetime

from gctuner_operator.standby import leads

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)


def peer(priority: int, seconds_ago: float = 1, lifetime: int = 60) -> dict[str, object]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_the_highest_live_priority_leads() -> None:
    assert leads({"me": peer(200), "other": peer(100)}, "me", 200, NOW)
    assert not leads({"me": peer(100), "other": peer(200)}, "me", 100, NOW)


def test_equal_priorities_both_stand_by_as_kopf_pauses_both() -> None:
    assert not leads({"me": peer(100), "other": peer(100)}, "me", 100, NOW)


def test_a_dead_peer_does_not_count_and_we_must_be_listed() -> None:
    assert leads({"me": peer(100), "other": peer(200, seconds_ago=61)}, "me", 100, NOW)
    assert not leads({"other": peer(1)}, "me", 100, NOW)  # kopf has not announced us yet
    assert leads({"me": peer(100), "junk": "not a peer"}, "me", 100, NOW)
