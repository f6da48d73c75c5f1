"""Settings come from FINSCALE_* variables; keywords outrank them; typos are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from finscale.settings import Settings, unknown_variables


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
