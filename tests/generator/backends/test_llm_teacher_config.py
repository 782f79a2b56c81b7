"""Teacher settings: defaults < forge.toml [teacher] < environment; keys never part of it."""

from __future__ import annotations

import pytest

from generator.errors import ConfigError
from generator.store.redact import scrub
from generator.settings import TeacherConfig


def test_defaults_are_explicit_limits_not_library_defaults():
    cfg = TeacherConfig.load(env={}, toml_path=None)
    assert cfg.model == "gpt-4o-mini"
    assert cfg.timeout_s == 60.0 and cfg.max_retries == 1 and cfg.max_output_retries == 1
    assert cfg.transient_retries == 0


def test_toml_in_the_data_dir_then_environment_wins(_forge_home):
    (_forge_home / "forge.toml").write_text(
        '[teacher]\nmodel = "anthropic/claude-3-5-haiku-latest"\ntimeout_s = 20\nmax_output_retries = 2\n'
    )
    cfg = TeacherConfig.load(env={"FORGE_HOME": str(_forge_home)})
    assert cfg.model == "anthropic/claude-3-5-haiku-latest" and cfg.timeout_s == 20.0
    assert cfg.max_output_retries == 2 and cfg.key_env() == "ANTHROPIC_API_KEY"
    env = {"FORGE_HOME": str(_forge_home), "FORGE_TEACHER": "gemini/gemini-2.0-flash", "FORGE_TEACHER_TIMEOUT": "7.5"}
    cfg = TeacherConfig.load(env=env)
    assert cfg.model == "gemini/gemini-2.0-flash" and cfg.timeout_s == 7.5 and cfg.key_env() == "GEMINI_API_KEY"


def test_openai_compatible_endpoint_from_env_needs_no_key():
    cfg = TeacherConfig.load(env={"FORGE_TEACHER": "openai/qwen2.5-7b", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}, toml_path=None)
    assert cfg.base_url == "http://127.0.0.1:8080/v1"
    assert cfg.usable(env={}) and cfg.placeholder_key(env={}) == "unused"
    assert cfg.placeholder_key(env={"OPENAI_API_KEY": "sk-real-key-abcdefghijklmnop"}) is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[teacher]\nmodle = "x"\n', r"unknown field `modle` - at `\$\.teacher`; known: model, base_url,"),
        ('[teacher]\ntimeout_s = "soon"\n', r"Expected `float`, got `str` - at `\$\.teacher\.timeout_s`"),
        ('[teacher]\ntimeout_s = 0\n', r"Expected `float` > 0\.0 - at `\$\.teacher\.timeout_s`"),
        ("[teacher\n", "is not valid TOML"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path, toml, message):
    path = tmp_path / "forge.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        TeacherConfig.load(env={}, toml_path=path)


def test_describe_and_redact_hold_no_secret(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ant-key-value-that-is-long")
    cfg = TeacherConfig(model="anthropic/claude-3-5-haiku-latest")
    assert "ant-key-value" not in repr(cfg.describe())
    assert scrub("auth failed for ant-key-value-that-is-long") == "auth failed for [redacted]"
