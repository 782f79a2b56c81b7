"""Faults the HTTP client's retries absorbed are on record (issue 15, item 7).

The OpenAI client retries a 500, a 429 or a dropped connection on its own; a
call that ended well used to leave no trace of them.  Each call's record now
carries ``transport`` (requests, retries, faults by kind), and
``python -m generator.sites`` shows a site's real HTTP error rate.
"""

from __future__ import annotations

import json

import pytest

from tests.fakes import jac_support as support  # noqa: E402

fake = support.load_fake("openai_server")
Reply, FakeOpenAIServer = fake.Reply, fake.FakeOpenAIServer

from engine.core.level import LevelSpec  # noqa: E402
from generator import sites  # noqa: E402
from generator.backends.teacher import LLMTeacherBackend  # noqa: E402
from generator.store.callsite import LEVEL_SITE  # noqa: E402
from generator.facade import LevelGenerator  # noqa: E402
from generator.store import Store  # noqa: E402
from generator.settings import TeacherConfig  # noqa: E402

SPEC = LevelSpec(**support.SMALL_SPEC)
OK = Reply.ok(support.level_json())


def teacher(server, **cfg):
    return LLMTeacherBackend(TeacherConfig(model="gpt-4o-mini", base_url=server.url,
                                           **{"timeout_s": 5.0, "max_retries": 2, **cfg}))


def serve_once(script, _forge_home, **cfg):
    with FakeOpenAIServer(script) as server:
        with LevelGenerator([teacher(server, **cfg)], max_attempts=1, deadline_s=20, data_dir=_forge_home) as gen:
            got = gen.generate(SPEC, seed=1)
    with Store.open(_forge_home / "forge.db") as store:
        recs = [c.record for c in store.iter_calls(LEVEL_SITE)]
    return got, recs, server


@pytest.mark.parametrize(("script", "faults"), [
    ([Reply.error(500), Reply.error(500), OK], {"http_500": 2}),
    ([Reply.error(429, retry_after=0.1), OK], {"http_429": 1}),
    ([Reply.dropped(), OK], {"connection": 1}),
    ([Reply.error(503), Reply.dropped(), OK], {"connection": 1, "http_503": 1}),
])
def test_absorbed_faults_are_in_the_calls_record(_forge_home, script, faults):
    got, recs, server = serve_once(script, _forge_home)
    assert got.backend == "llm"  # the client's retries absorbed the faults
    (rec,) = recs
    n = sum(faults.values())
    assert rec.transport == {"requests": n + 1, "retries": n, "reasks": 0, "faults": faults}
    assert len(server.requests) == n + 1


def test_a_clean_call_records_one_request_and_no_faults(_forge_home):
    _, (rec, *_), _ = serve_once([OK], _forge_home)
    assert rec.transport == {"requests": 1, "retries": 0, "reasks": 0, "faults": {}}


def test_a_reask_for_unparsable_output_is_counted(_forge_home):
    _, (rec, *_), _ = serve_once([Reply.ok('{"name": 3, "rows": "x"}'), OK], _forge_home)
    assert rec.transport == {"requests": 2, "retries": 0, "reasks": 1, "faults": {}}


def test_procedural_attempts_make_no_requests(_forge_home):
    with LevelGenerator([], data_dir=_forge_home) as gen:
        gen.generate(SPEC, seed=1)
        (rec,) = [c.record for c in gen.store.iter_calls()]
    assert rec.transport is None


def test_sites_shows_the_http_error_rate(_forge_home, capsys):
    serve_once([Reply.error(500), Reply.error(500), OK], _forge_home)
    serve_once([OK], _forge_home)
    assert sites.main(["--json"]) == 0
    (site,) = json.loads(capsys.readouterr().out)["sites"]
    assert site["http"] == {"requests": 4, "retries": 2, "reasks": 0, "failed": 2, "error_rate": 0.5,
                            "faults": {"http_500": 2}, "calls_with_faults": 1}
    assert sites.main([]) == 0
    out = capsys.readouterr().out
    assert "http err" in out and "50%" in out and "http_500 2" in out
