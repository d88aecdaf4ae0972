import os
import re
from pathlib import Path

import pytest

from agenttui.core.config import SettingsError, config_file, data_dir, load_settings


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


# ---------------------------------------------------------------- the client's own few settings
def test_settings_has_exactly_the_schemas_settings():
    """Every setting is defined once, in the schema the client's loader reads too: none in Settings alone."""
    from agenttui.core.config import Settings
    from agenttui.core.settings_schema import SETTINGS

    assert list(Settings.model_fields) == list(SETTINGS)


def test_the_client_reads_what_settings_reads_from_the_same_sources(monkeypatch, tmp_path):
    """Every client setting from config.toml, some of them overridden by AGENTTUI_*, some of
    those by flags: both loaders end with the same values, and the same bad value is reported
    alike."""
    from agenttui.client.settings import load_client_settings
    from agenttui.core.settings_schema import CLIENT_SETTINGS

    assert all(getattr(load_client_settings(), name) == getattr(load_settings(), name) for name in CLIENT_SETTINGS)
    in_file = {
        "socket_path": f'"{tmp_path / "file.sock"}"', "in_process": "true", "default_cpus": "0.5",
        "default_memory_mb": "512", "default_pids": "64", "default_timeout_s": "30",
        "aws_session_duration_s": "900", "poll_s": "0.25", "backend": '"noop"', "default_egress": '"none"',
        "strict_preflight": "true", "package_dir": f'"{tmp_path / "zips"}"',
    }
    assert set(in_file) == set(CLIENT_SETTINGS)  # a new client setting needs a line here
    config_file().parent.mkdir(parents=True, exist_ok=True)
    config_file().write_text("".join(f"{name} = {value}\n" for name, value in in_file.items()))
    monkeypatch.setenv("AGENTTUI_DEFAULT_CPUS", "2")
    monkeypatch.setenv("agenttui_poll_s", "0.5")
    monkeypatch.setenv("AGENTTUI_IN_PROCESS", "no")
    monkeypatch.setenv("AGENTTUI_DEFAULT_EGRESS", "full")
    flags = dict(socket_path=tmp_path / "flag.sock", default_cpus=4.0, default_timeout_s=60)
    client, settings = load_client_settings(**flags), load_settings(**flags)
    values = {name: getattr(client, name) for name in CLIENT_SETTINGS}
    assert values == {name: getattr(settings, name) for name in CLIENT_SETTINGS}
    assert values == {
        "socket_path": tmp_path / "flag.sock", "in_process": False, "default_cpus": 4.0,
        "default_memory_mb": 512, "default_pids": 64, "default_timeout_s": 60,
        "aws_session_duration_s": 900, "poll_s": 0.5, "backend": "noop", "default_egress": "full",
        "strict_preflight": True, "package_dir": tmp_path / "zips",
    }
    monkeypatch.setenv("AGENTTUI_DEFAULT_MEMORY_MB", "10")
    where = f"setting 'default_memory_mb' (AGENTTUI_DEFAULT_MEMORY_MB or {config_file()}): "
    for load in (load_client_settings, load_settings):
        with pytest.raises(SettingsError, match=re.escape(where)):
            load()


def test_client_settings_precedence_and_errors(monkeypatch, tmp_path):
    from agenttui.client.settings import load_client_settings

    assert load_client_settings() == load_client_settings(socket_path=None)
    assert load_client_settings().resolved_socket_path == load_settings().resolved_socket_path
    config_file().parent.mkdir(parents=True, exist_ok=True)
    config_file().write_text("default_timeout_s = 30\npoll_s = 0.5\nmax_concurrent = 0\n")
    monkeypatch.setenv("agenttui_poll_s", "0.25")  # any case, as pydantic-settings reads it
    monkeypatch.setenv("AGENTTUI_IN_PROCESS", "yes")
    settings = load_client_settings(socket_path=tmp_path / "s.sock")
    assert (settings.default_timeout_s, settings.poll_s, settings.in_process) == (30, 0.25, True)
    assert settings.resolved_socket_path == tmp_path / "s.sock"
    # max_concurrent is the server's: the client neither reads nor checks it.
    monkeypatch.setenv("AGENTTUI_DEFAULT_MEMORY_MB", "10")
    monkeypatch.setenv("AGENTTUI_DEFAULT_CPUS", "lots")
    with pytest.raises(SettingsError) as err:
        load_client_settings()
    assert "'default_memory_mb' (AGENTTUI_DEFAULT_MEMORY_MB" in str(err.value) and "at least 64" in str(err.value)
    assert "'default_cpus'" in str(err.value) and "'lots'" in str(err.value)
    config_file().write_text("poll_s = [\n")
    monkeypatch.delenv("agenttui_poll_s")
    with pytest.raises(SettingsError, match="cannot read settings from"):
        load_client_settings()


def test_client_settings_choices(monkeypatch):
    """The TUI's backend and default_egress: the choices of Settings, an error naming them."""
    from agenttui.client.settings import load_client_settings

    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_DEFAULT_EGRESS", "none")
    settings = load_client_settings()
    assert (settings.backend, settings.default_egress) == ("noop", "none")
    monkeypatch.setenv("AGENTTUI_BACKEND", "kubernetes")
    with pytest.raises(SettingsError, match="'backend'.*one of docker, ecs, noop"):
        load_client_settings()
