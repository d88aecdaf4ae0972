import os
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
def test_client_settings_have_the_settings_defaults_and_bounds():
    """The lean loader (no pydantic) must agree with Settings on every field it reads."""
    import annotated_types

    from agenttui.client.settings import FIELDS
    from agenttui.core.config import Settings

    for name, (_kind, default, gt, ge, le) in FIELDS.items():
        field = Settings.model_fields[name]
        assert field.default == default, name
        bounds = {kind.__name__: getattr(m, attr) for m in field.metadata
                  for kind, attr in ((annotated_types.Gt, "gt"), (annotated_types.Ge, "ge"), (annotated_types.Le, "le"))
                  if isinstance(m, kind)}
        assert bounds == {k: v for k, v in (("Gt", gt), ("Ge", ge), ("Le", le)) if v is not None}, name


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


def test_client_settings_choices_are_the_settings_literals(monkeypatch):
    """The TUI's backend and default_egress: same choices as Settings, same error when wrong."""
    import typing

    from agenttui.client.settings import CHOICES, load_client_settings
    from agenttui.core.config import Settings

    for name, choices in CHOICES.items():
        assert typing.get_args(Settings.model_fields[name].annotation) == choices, name
    monkeypatch.setenv("AGENTTUI_BACKEND", "noop")
    monkeypatch.setenv("AGENTTUI_DEFAULT_EGRESS", "none")
    settings = load_client_settings()
    assert (settings.backend, settings.default_egress) == ("noop", "none")
    monkeypatch.setenv("AGENTTUI_BACKEND", "kubernetes")
    with pytest.raises(SettingsError, match="'backend'.*one of docker, ecs, noop"):
        load_client_settings()
