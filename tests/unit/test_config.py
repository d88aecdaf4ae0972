import os
from pathlib import Path

import pytest

from agenttui.config import SettingsError, config_file, data_dir, load_settings


def test_defaults_follow_xdg(isolated_env):
    settings = load_settings()
    assert settings.max_concurrent == 10
    assert str(data_dir()).startswith(os.environ["XDG_DATA_HOME"])
    assert settings.resolved_db_url == f"sqlite+aiosqlite:///{data_dir() / 'agenttui.db'}"


def test_precedence_flags_over_env_over_toml(monkeypatch):
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('max_concurrent = 4\nbase_image = "from-toml"\ndefault_pids = 500\n')
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "6")
    monkeypatch.delenv("AGENTTUI_BASE_IMAGE")
    settings = load_settings()
    assert (settings.max_concurrent, settings.base_image, settings.default_pids) == (6, "from-toml", 500)
    assert load_settings(max_concurrent=2).max_concurrent == 2


def test_bad_setting_names_the_setting_and_where_to_fix_it(monkeypatch):
    monkeypatch.setenv("AGENTTUI_MAX_CONCURRENT", "0")
    with pytest.raises(SettingsError, match="max_concurrent.*AGENTTUI_MAX_CONCURRENT"):
        load_settings()


def test_missing_ca_bundle_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTTUI_EXTRA_CA_BUNDLE", str(tmp_path / "nope.pem"))
    with pytest.raises(SettingsError, match="extra_ca_bundle.*does not exist"):
        load_settings()


def test_malformed_toml_is_a_clear_error():
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("max_concurrent = = 3\n")
    with pytest.raises(SettingsError, match=str(Path(path).name)):
        load_settings()
