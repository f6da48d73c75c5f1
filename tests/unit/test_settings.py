"""Settings come from FINSCALE_* variables; keywords outrank them; typos are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from finscale.errors import SettingsError
from finscale.settings import RENAMED, Settings, load_settings, unknown_variables


def test_environment_sets_and_keywords_outrank(env: pytest.MonkeyPatch) -> None:
    env.setenv("FINSCALE_DATA_DIR", "/srv/data")
    env.setenv("FINSCALE_LOG_LEVEL", "DEBUG")
    assert Settings().data_dir == Path("/srv/data")
    assert Settings().log_level == "DEBUG"
    assert Settings(data_dir=Path("elsewhere")).data_dir == Path("elsewhere")


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.data_dir == Path("data")
    assert settings.sample_dir is None
    assert settings.log_level == "INFO"


def test_a_bad_value_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("FINSCALE_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


def test_unknown_variables_are_found() -> None:
    environ = {
        "FINSCALE_DATA_DIR": "x",
        "FINSCALE_DATADIR": "typo",
        "FINSCALE_TEST_DATABASE_URL": "postgresql://…",
        "HOME": "/root",
    }
    assert unknown_variables(environ) == ["FINSCALE_DATADIR"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"FINSCALE_HEARTBEAT_INTERVAL_S": "30", "FINSCALE_HEARTBEAT_GRACE_S": "59"},
            r"^FINSCALE_HEARTBEAT_GRACE_S \(59\) must be at least twice "
            r"FINSCALE_HEARTBEAT_INTERVAL_S \(30\): with less, one late heartbeat lets a peer "
            r"fail a live trial$",
        ),
        (
            {"FINSCALE_STORAGE_DEADLINE_S": "soon"},
            r"^FINSCALE_STORAGE_DEADLINE_S='soon': Input should be a valid number",
        ),
        (
            {"FINSCALE_STORAGE_URL": "mysql://u:hunter2@db/x"},
            r"^FINSCALE_STORAGE_URL='mysql://u:\*\*\*@db/x': unsupported storage URL scheme",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    env: pytest.MonkeyPatch, values: dict[str, str], message: str
) -> None:
    for name, value in values.items():
        env.setenv(name, value)
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings()
    assert "\n" not in str(raised.value) and "hunter2" not in str(raised.value)
    assert raised.value.exit_code == 2


def test_a_grace_of_twice_the_interval_is_accepted(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(heartbeat_interval_s=30, heartbeat_grace_s=60)
    assert settings.heartbeat_grace_s == 60
    assert load_settings().storage_deadline_s == 300


def test_a_renamed_variable_is_named_as_such() -> None:
    assert unknown_variables({"FINSCALE_STORAGE_ATTEMPTS": "6"}) == ["FINSCALE_STORAGE_ATTEMPTS"]
    assert RENAMED["FINSCALE_STORAGE_ATTEMPTS"] == "FINSCALE_STORAGE_DEADLINE_S"
