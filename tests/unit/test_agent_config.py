"""Configuration from the environment: names, types, defaults, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gctuner.core.config import NAMES, Config

pytestmark = pytest.mark.timeout(30)


def test_defaults() -> None:
    config = Config.from_env({})
    assert config == Config()
    assert (config.max_body_bytes, config.apply_timeout, config.path) == (4096, 2.0, "/tune_gc")
    assert config.token is None and config.allow_unauthenticated is False


def test_every_field_has_a_name() -> None:
    assert set(NAMES) == set(vars(Config()))
    assert all(name.startswith("GCTUNER_") for name in NAMES.values())


def test_from_env() -> None:
    config = Config.from_env(
        {
            "GCTUNER_TOKEN": "t",
            "GCTUNER_TOKEN_FILE": "/var/run/secrets/token",
            "GCTUNER_ALLOW_UNAUTHENTICATED": "yes",
            "GCTUNER_STATE_DIR": "/shared",
            "GCTUNER_MAX_BODY_BYTES": "100",
            "GCTUNER_APPLY_TIMEOUT": "0.5",
            "GCTUNER_RECORD_PAUSES": "0",
            "GCTUNER_PATH": "/gc",
        }
    )
    assert config == Config("t", "/var/run/secrets/token", True, "/shared", 100, 0.5, False, "/gc")


def test_the_token_stays_out_of_repr() -> None:
    assert "s3cret" not in repr(Config(token="s3cret"))


def test_empty_variables_are_unset() -> None:
    assert Config.from_env({"GCTUNER_TOKEN": "", "GCTUNER_ALLOW_UNAUTHENTICATED": ""}) == Config()


def test_typed_values_are_taken_as_they_are() -> None:
    config = Config.from_mapping({"GCTUNER_ALLOW_UNAUTHENTICATED": True, "GCTUNER_APPLY_TIMEOUT": 3})
    assert config.allow_unauthenticated is True and config.apply_timeout == 3.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GCTUNER_ALLOW_UNAUTHENTICATED": "maybe"}, "GCTUNER_ALLOW_UNAUTHENTICATED must be 1/true"),
        ({"GCTUNER_MAX_BODY_BYTES": "4k"}, "GCTUNER_MAX_BODY_BYTES must be a number"),
        ({"GCTUNER_MAX_BODY_BYTES": "0"}, "GCTUNER_MAX_BODY_BYTES must be at least 1"),
        ({"GCTUNER_APPLY_TIMEOUT": "-1"}, "GCTUNER_APPLY_TIMEOUT must not be negative"),
        ({"GCTUNER_PATH": "tune_gc"}, "GCTUNER_PATH must start with '/'"),
    ],
)
def test_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Config.from_env(environ)


def test_every_name_is_documented() -> None:
    page = (Path(__file__).parents[2] / "docs" / "agent.md").read_text()
    assert [name for name in NAMES.values() if f"| `{name}` |" not in page] == []
