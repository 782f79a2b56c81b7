"""GeneratorConfig: defaults < forge.toml < FORGE_* < arguments; the default cascade."""

from __future__ import annotations

import pytest

from generator.settings import GeneratorConfig, teacher_configured
from generator.errors import ConfigError


def write_toml(home, text):
    (home / "forge.toml").write_text(text, encoding="utf-8")


def test_defaults_offline_are_procedural_only(_forge_home):
    cfg = GeneratorConfig.load()
    assert cfg == GeneratorConfig()
    assert cfg.cascade() == ("procedural",)
    assert not teacher_configured()


def test_a_key_or_an_endpoint_turns_the_teacher_on(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-notreal-0000000000000000")
    assert GeneratorConfig().cascade() == ("llm", "procedural")
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert GeneratorConfig().cascade() == ("llm", "procedural")
    assert "sk-test" not in str(GeneratorConfig().describe())


def test_toml_then_env_then_arguments(_forge_home, monkeypatch):
    write_toml(_forge_home, '[generator]\nbackends = ["student", "llm"]\ndeadline_s = 12\nmax_attempts = 2\n'
                            '[teacher]\nmodel = "gpt-4o-mini"\n')
    cfg = GeneratorConfig.load()
    assert (cfg.backends, cfg.deadline_s, cfg.max_attempts) == (("student", "llm"), 12.0, 2)
    assert cfg.cascade() == ("student", "llm", "procedural")
    monkeypatch.setenv("FORGE_BACKENDS", "procedural")
    monkeypatch.setenv("FORGE_DEADLINE_S", "3.5")
    monkeypatch.setenv("FORGE_RECORD", "off")
    cfg = GeneratorConfig.load(max_attempts=5, deadline_s=None)
    assert (cfg.backends, cfg.deadline_s, cfg.max_attempts, cfg.record) == (("procedural",), 3.5, 5, False)
    assert cfg.cascade() == ("procedural",)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[generator]\nbogus = 1\n", r"forge\.toml: Object contains unknown field `bogus` - at `\$\.generator`; known: backends,"),
        ("[generator]\nbackends = ['gpt']\n", r"Invalid enum value 'gpt' - at `\$\.generator\.backends\[0\]`"),
        ("[generator]\ndeadline_s = 0\n", r"Expected `float` > 0\.0 - at `\$\.generator\.deadline_s`"),
        ("[generator]\nmax_attempts = 'many'\n", r"Expected `int`, got `str` - at `\$\.generator\.max_attempts`"),
        ("[generator\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_clear_errors(_forge_home, text, match):
    write_toml(_forge_home, text)
    with pytest.raises(ConfigError, match=match):
        GeneratorConfig.load()


def test_bad_env_value(monkeypatch):
    monkeypatch.setenv("FORGE_MAX_ATTEMPTS", "2.5")
    with pytest.raises(ConfigError, match=r"at `\$\.generator\.max_attempts` \(set by FORGE_MAX_ATTEMPTS\)"):
        GeneratorConfig.load()
