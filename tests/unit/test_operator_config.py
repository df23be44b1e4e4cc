"""The operator's configuration and its one retry delay."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gctuner_operator.backoff import JITTER, backoff
from gctuner_operator.config import ENVIRONMENT, ConfigError, OperatorConfig


def test_every_field_has_an_environment_variable() -> None:
    assert [f.name for f in dataclasses.fields(OperatorConfig)] == list(ENVIRONMENT)


def test_the_environment_sets_every_field() -> None:
    environ = {
        "GCTUNER_VERIFY_INTERVAL": "30", "GCTUNER_PUSH_TIMEOUT": "2.5", "GCTUNER_MAX_PARALLEL": "8",
        "GCTUNER_RETRY_BASE": "0.5", "GCTUNER_RETRY_MAX": "10", "GCTUNER_STATUS_INTERVAL": "2",
        "GCTUNER_RELEASE_TIMEOUT": "5", "GCTUNER_METRICS_ADDRESS": ":9090", "GCTUNER_TOKEN": "s3cr3t",
        "GCTUNER_TELEMETRY_INTERVAL": "3", "GCTUNER_TELEMETRY_PARALLEL": "2",
    }
    config = OperatorConfig.from_env(environ)
    assert config == OperatorConfig(verify_interval=30, push_timeout=2.5, max_parallel=8, retry_base=0.5, retry_max=10,
                                    telemetry_interval=3, telemetry_parallel=2, status_interval=2, release_timeout=5,
                                    metrics_address=":9090", token="s3cr3t")
    assert config.metrics_bind == ("0.0.0.0", 9090)
    assert "s3cr3t" not in repr(config)


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    environ = {"GCTUNER_METRICS_ADDRESS": "127.0.0.1:1", "GCTUNER_TOKEN_FILE": str(token)}
    config = OperatorConfig.from_env(environ, overrides={"metrics_address": "127.0.0.1:2"})
    assert (config.metrics_address, config.token) == ("127.0.0.1:2", "from-file")
    assert OperatorConfig.from_env(environ, overrides={"metrics_address": None}).metrics_address == "127.0.0.1:1"


@pytest.mark.parametrize("environ,words", [
    ({"GCTUNER_PUSH_TIMEOUT": "soon"}, "GCTUNER_PUSH_TIMEOUT must be a number, got 'soon'"),
    ({"GCTUNER_MAX_PARALLEL": "2.5"}, "GCTUNER_MAX_PARALLEL must be an integer"),
    ({"GCTUNER_STATUS_INTERVAL": "0"}, "GCTUNER_STATUS_INTERVAL must be greater than 0"),
    ({"GCTUNER_RETRY_BASE": "90"}, "GCTUNER_RETRY_BASE (90) must not exceed GCTUNER_RETRY_MAX (60)"),
    ({"GCTUNER_METRICS_ADDRESS": "9090x"}, "must be HOST:PORT"),
])
def test_a_bad_setting_says_which_and_why(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as error:
        OperatorConfig.from_env(environ)
    assert words in str(error.value)


def test_backoff_doubles_up_to_the_cap_and_is_jittered_below() -> None:
    assert [backoff(n, 1.0, 10.0, rng=lambda: 0.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff(3, 1.0, 10.0, rng=lambda: 1.0) == pytest.approx(4 * (1 - JITTER))
    delays = {backoff(2, 1.0, 10.0) for _ in range(50)}
    assert len(delays) > 1 and all(2 * (1 - JITTER) <= d <= 2 for d in delays)
