"""The rating page's endpoints against a server the test starts on 127.0.0.1, and rank agreement."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from engine.core.level import Level, rows_to_grid
from generator.evaluate.rating import RatingServer, open_store, rating_agreement
from generator.evaluate.rubrics import level_id


def _rows(n: int = 4) -> list[dict]:
    rows = []
    for i in range(n):
        grid = ["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16]
        grid[5] = grid[5][: 2 + i] + "#" + grid[5][3 + i:]
        level = Level(name=f"l{i}", grid=rows_to_grid(grid), spawn=(1, 1), exit=(14, 10), theme="crypt")
        rows.append({"level_id": level_id(level), "backend": "b", "level": level.to_dict(),
                     "spec": {"width": 16, "height": 12, "difficulty": 2, "enemies": 0, "items": 0, "theme": "crypt"},
                     "scores": {"fun": i / 10, "structure": 1.0, "constraints": 0.5 + i / 10}})
    return rows


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as res:
        return res.status, res.headers.get("Content-Type"), res.read()


def _post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture()
def server(tmp_path):
    store = open_store(tmp_path)
    rows = _rows()
    with RatingServer(rows, store) as srv:
        yield srv, rows, store
    store.close()


def test_page_levels_and_pictures_are_served(server):
    srv, rows, _ = server
    assert srv.url.startswith("http://127.0.0.1:")
    status, ctype, body = _get(srv.url)
    assert status == 200 and ctype.startswith("text/html")
    page = body.decode()
    assert page.count("<select name=fun>") == 4 and "comment" in page
    assert "backend" not in page.split("<div id=levels>")[1]  # ratings are blind
    status, _, body = _get(srv.url + "api/levels")
    levels = json.loads(body)
    assert {lv["level_id"] for lv in levels} == {r["level_id"] for r in rows}
    status, ctype, png = _get(f"{srv.url}levels/{rows[0]['level_id']}.png")
    assert ctype == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(srv.url + "levels/nope.png")
    assert err.value.code == 404


def test_post_stores_ratings_and_rejects_bad_input(server):
    srv, rows, store = server
    api = srv.url + "api/ratings"
    gid = rows[1]["level_id"]
    status, body = _post(api, {"level_id": gid, "fun": 4, "structure": 5, "constraints": 3, "comment": "nice loop"})
    assert status == 201 and body["scores"] == {"fun": 4, "structure": 5, "constraints": 3}
    stored = store.list_ratings()
    assert len(stored) == 1 and stored[0].generation_id == gid and stored[0].comment == "nice loop"
    assert _post(api, {"level_id": gid, "fun": 7})[0] == 400
    assert _post(api, {"level_id": gid, "fun": "4"})[0] == 400
    assert _post(api, {"level_id": gid})[0] == 400
    assert _post(api, {"level_id": "unknown", "fun": 3})[0] == 404
    assert _post(api, b"not json")[0] == 400
    assert _post(api, [1, 2])[0] == 400
    _, _, listed = _get(api)
    assert [r["scores"]["fun"] for r in json.loads(listed)] == [4]
    _, _, levels = _get(srv.url + "api/levels")
    assert {lv["level_id"]: lv["ratings"] for lv in json.loads(levels)}[gid] == 1


def test_agreement_is_spearman_over_rated_levels():
    rows = _rows()
    ratings = [{"generation_id": r["level_id"], "scores": {"fun": 1 + i, "constraints": 5 - i, "structure": 3}}
               for i, r in enumerate(rows)]
    agree = rating_agreement(rows, ratings)
    assert agree["fun"] == {"rho": pytest.approx(1.0), "p": pytest.approx(0.0, abs=1e-6), "n": 4}
    assert agree["constraints"]["rho"] == pytest.approx(-1.0)
    assert agree["structure"]["rho"] is None  # automatic structure scores do not vary
    assert rating_agreement(rows[:2], ratings[:2])["fun"]["rho"] is None  # too few levels
