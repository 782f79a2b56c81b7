"""A store URL's password never reaches a message, whatever else is wrong with the URL."""

from __future__ import annotations

import json

import pytest

from generator.store.__main__ import main
from generator.store.dialect import redact_url

SECRET = "hunter2-canary"


@pytest.mark.parametrize("url", [
    f"postgresql://forge:{SECRET}@db.example:abc/forge",       # a port that is not a number
    f"postgresql://forge:{SECRET}@db.example:99999/forge",     # a port out of range
    f"postgresql://db.example/forge?password={SECRET}",        # libpq's password parameter
    f"postgresql://db.example/forge?sslmode=require&password={SECRET}&user=forge",
    f"postgresql://forge:{SECRET}@[::1/forge",                 # not parseable at all
])
def test_redact_url_hides_the_password_of_any_url(url):
    shown = redact_url(url)
    assert SECRET not in shown
    assert shown.startswith("postgresql://") or shown == "<unparseable store URL>"


def test_redact_url_keeps_the_rest():
    assert redact_url("postgresql://forge:pw@db:5432/forge?sslmode=require&password=pw") == \
        "postgresql://forge:***@db:5432/forge?sslmode=require&password=***"
    assert redact_url("postgresql://forge@db/forge") == "postgresql://forge@db/forge"


def test_migrate_to_something_not_a_url_does_not_echo_it(capsys, tmp_path):
    code = main(["migrate", "--to", f"forge:{SECRET}@db/forge", "--data-dir", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert json.loads(out)["error"].startswith("--to must be a postgresql:// URL")
    assert SECRET not in out + err


def test_status_with_a_bad_port_in_the_configured_url_is_a_clear_error(capsys, tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    monkeypatch.setenv("FORGE_DB_URL", f"postgresql://forge:{SECRET}@127.0.0.1:abc/forge")
    code = main(["status", "--data-dir", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "malformed" in json.loads(out)["error"] and "port" in json.loads(out)["error"].lower()
    assert SECRET not in out + err


def test_the_password_of_the_configured_store_url_is_scrubbed_like_a_key(monkeypatch):
    from generator.store.redact import scrub

    monkeypatch.setenv("FORGE_DB_URL", f"postgresql://forge:{SECRET}@db.example/forge")
    assert SECRET not in scrub(f"psycopg said: password {SECRET} rejected")
    monkeypatch.setenv("FORGE_DB_URL", f"postgresql://db.example/forge?password={SECRET}")
    assert SECRET not in scrub(f"psycopg said: password {SECRET} rejected")


@pytest.mark.parametrize("argv", [["status", "--url", "{d}/typo.db"], ["status", "--url", "sqlite:///{d}/typo.db"],
                                  ["export", "{d}/out.db", "--from", "{d}/typo.db"]])
def test_a_misspelt_source_store_is_an_error_not_a_new_empty_store(argv, tmp_path, capsys):
    code = main([a.format(d=tmp_path) for a in argv] + ["--data-dir", str(tmp_path / "home"), "--json"])
    out, _ = capsys.readouterr()
    assert code == 2 and "typo.db does not exist" in json.loads(out)["error"]
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "out.db").exists()
