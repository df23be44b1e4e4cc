"""The operator never takes an agent's 'not applied everywhere' answer (a 202) for success."""

from __future__ import annotations

import pytest

from gctuner_operator.agent_client import _all_processes
from gctuner_operator.errors import AgentError


@pytest.mark.parametrize(
    "processes",
    [{"applied": 0, "total": 0, "lagging": []}, {"applied": 3, "total": 4, "lagging": [{"pid": 7}]}],
    ids=["nobody follows", "one lags"],
)
def test_a_202_is_not_applied(processes: dict) -> None:
    answer = {"message": "Not applied everywhere: generation 2 is published, but no process follows /x",
              "processes": processes}  # fmt: skip
    with pytest.raises(AgentError) as raised:
        _all_processes(answer)
    assert raised.value.reason == "NotApplied"
    assert "Not applied everywhere" in str(raised.value)


def test_every_process_is_applied() -> None:
    answer = {"processes": {"applied": 4, "total": 4}}
    assert _all_processes(answer) is answer
