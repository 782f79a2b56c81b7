"""One settings model for forge.toml and the environment: precedence, conversion, located errors."""

from __future__ import annotations

import pytest

from generator import settings
from generator.errors import ConfigError
from generator.settings import GeneratorConfig, RoutingPolicy


def _toml(home, text):
    (home / "forge.toml").write_text(text, encoding="utf-8")


def test_file_then_environment_then_arguments(_forge_home):
    _toml(_forge_home, "[generator]\nbackends = ['procedural']\nmax_attempts = 2\nrecord = true\n"
                       "[routing]\nmin_shadow_samples = 7\n[teacher]\nmodel = 'openai/x'\n")
    env = {"FORGE_MAX_ATTEMPTS": "4", "FORGE_RECORD": "off", "FORGE_BACKENDS": "llm, procedural"}
    s = settings.load(env=env)
    assert (s.generator.backends, s.generator.max_attempts, s.generator.record) == (("llm", "procedural"), 4, False)
    assert s.routing == RoutingPolicy(min_shadow_samples=7)  # other tables ([teacher]) are left to their readers
    assert GeneratorConfig.load(env=env, max_attempts=6, deadline_s=None).max_attempts == 6


def test_an_error_in_the_file_names_the_file_and_the_key(_forge_home):
    _toml(_forge_home, "[routing]\nspot_check_rate = 'often'\n")
    with pytest.raises(ConfigError, match=r"forge\.toml: Expected `float`, got `str` - at `\$\.routing\.spot_check_rate`"):
        RoutingPolicy.from_data_dir()


def test_a_bad_argument_is_located_too(_forge_home):
    with pytest.raises(ConfigError, match=r"arguments: Expected `int`, got `str` - at `\$\.generator\.max_attempts`"):
        GeneratorConfig.load(env={}, max_attempts="three")


def test_a_config_built_in_code_is_checked_as_well():
    with pytest.raises(ConfigError, match="deadline_s must be > 0"):
        GeneratorConfig(deadline_s=0)
    with pytest.raises(ConfigError, match="max_attempts must be >= 1"):
        GeneratorConfig().replace(max_attempts=0)


def test_teacher_and_student_server_tables_share_the_model(_forge_home):
    from generator.settings import RemoteStudentConfig, TeacherConfig

    _toml(_forge_home, "[teacher]\nmodel = 'openai/qwen'\ntimeout_s = 9\n[student_server]\nurl = 'http://box:8088/v1'\n")
    s = settings.load(env={"FORGE_TEACHER_RETRIES": "3"})
    assert s.teacher == TeacherConfig(model="openai/qwen", timeout_s=9.0, max_retries=3)
    assert s.student_server == RemoteStudentConfig(url="http://box:8088/v1")
    with pytest.raises(ConfigError, match=r"at `\$\.teacher\.timeout_s` \(set by FORGE_TEACHER_TIMEOUT\)"):
        settings.load(env={"FORGE_TEACHER_TIMEOUT": "soon"})


def test_a_bad_store_url_in_the_file_is_a_located_error(_forge_home, monkeypatch):
    from generator.store import Store, configured_url

    monkeypatch.delenv("FORGE_DB_URL", raising=False)
    _toml(_forge_home, "[store]\nurl = 5432\n")
    with pytest.raises(ConfigError, match=r"forge\.toml: Expected `str`, got `int` - at `\$\.store\.url`"):
        configured_url()
    with pytest.raises(ConfigError, match=r"at `\$\.store\.url`"):
        Store.open()
    _toml(_forge_home, "[store]\nurll = 'postgresql://x@db/forge'\n")
    with pytest.raises(ConfigError, match=r"unknown field `urll` - at `\$\.store`; known: url"):
        settings.store_settings()


def test_the_store_table_is_part_of_the_model_and_the_environment_wins(_forge_home):
    secret = "hunter2-canary"
    _toml(_forge_home, f"[store]\nurl = 'postgresql://forge:{secret}@db.example/forge'\n")
    s = settings.load(env={})
    assert s.store.url == f"postgresql://forge:{secret}@db.example/forge"
    assert secret not in repr(s) and secret not in repr(s.store)
    env_url = "sqlite:///elsewhere/forge.db"
    assert settings.load(env={"FORGE_DB_URL": env_url}).store.url == env_url
    assert settings.store_settings(env={"FORGE_DB_URL": env_url}).url == env_url
    # FORGE_DB_URL wins outright: a broken [store] table is not read then; a blank value counts as unset
    _toml(_forge_home, "[store]\nurl = 1\n")
    assert settings.store_settings(env={"FORGE_DB_URL": env_url}).url == env_url
    with pytest.raises(ConfigError, match=r"\$\.store\.url"):
        settings.store_settings(env={"FORGE_DB_URL": "  "})


def test_the_store_reads_its_table_alone_and_never_shows_the_password(_forge_home, monkeypatch):
    from generator.store import configured_url

    monkeypatch.delenv("FORGE_DB_URL", raising=False)
    secret = "hunter2-canary"
    _toml(_forge_home, f"[routing]\nspot_check_rate = 'often'\n[store]\nurl = 'mysql://forge:{secret}@db/forge'\n")
    with pytest.raises(ConfigError, match="neither postgresql") as err:  # [routing] is not the store's concern
        configured_url()
    assert secret not in str(err.value) and "forge.toml" in str(err.value)


def test_a_bad_judge_value_in_the_file_is_a_located_error(_forge_home):
    from generator.evaluate.agreement import JudgeConfig

    _toml(_forge_home, "[judge]\nfloat_tolerance = 0.05\n[judge.sites]\n'bounty_board:post_bounty' = 'exact'\n"
                       "[judge.sites.'recipes:haiku_for']\nmin_similarity = 1.5\n")
    located = r"forge\.toml: Expected `float` <= 1\.0 - at `\$\.judge\.sites\['recipes:haiku_for'\]\.min_similarity`"
    with pytest.raises(ConfigError, match=located):
        settings.load(env={})
    with pytest.raises(ConfigError, match=located):  # the judge reads the same model, not the file by hand
        JudgeConfig.load()
    _toml(_forge_home, "[judge.sites.'recipes:haiku_for']\nmdoe = 'similarity'\n")
    with pytest.raises(ConfigError, match=r"unknown field `mdoe` - at `\$\.judge\.sites\['recipes:haiku_for'\]`; "
                                          r"known: mode, float_tolerance, min_similarity"):
        settings.load(env={})
    _toml(_forge_home, "[judge]\nfloat_tolerance = 0.05\n[judge.sites.'recipes:haiku_for']\nmode = 'similarity'\n")
    judge = settings.load(env={}).judge
    assert judge.float_tolerance == 0.05 and judge.site("recipes:haiku_for") == settings.JudgeSiteSettings("similarity")
