"""The rating page's endpoints against a server the test starts on 127.0.0.1, and rank agreement."""

from __future__ import annotations

import json
import re
import socket
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


def _token(url: str) -> str:
    """The CSRF token the rating page hands its own script (a meta tag), as a browser would read it."""
    page = _get(url.split("api/")[0])[2].decode()
    found = re.search(r'<meta name=csrf-token content="([^"]+)">', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def _post(url: str, body, *, token: str | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", "X-CSRF-Token": _token(url) if token is None else token,
            **(headers or {})}
    req = urllib.request.Request(url, data=data, method="POST", headers=sent)
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


# ------------------------------------------------------------------ issue 16: tried as a user and an attacker would


def _raw(srv, request: bytes, *, wait_s: float = 10.0) -> bytes:
    """Send raw bytes and read until the server closes the connection (or ``wait_s`` passes)."""
    with socket.create_connection(srv.server_address, timeout=wait_s) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<held open>")
    return b"".join(chunks)


def test_200_concurrent_connections_are_all_answered(server):
    """85 of 200 concurrent connections got no reply from the stdlib server (listen queue of 5)."""
    from benchmarks.serve import hammer, http_request

    srv, rows, _ = server
    host, port = srv.server_address
    replies = hammer(host, port, http_request("GET", "/api/levels", host=f"{host}:{port}"), 200, timeout_s=20)
    assert [r.error for r in replies if r.status is None] == []
    assert all(r.status == 200 and len(json.loads(r.body)) == len(rows) for r in replies)


def test_a_cross_origin_post_with_a_foreign_host_is_refused_and_nothing_is_stored(server):
    """A page on evil.example (DNS-rebound to 127.0.0.1) posted text/plain and got 201 with a 60,000-char rater."""
    srv, rows, store = server
    body = json.dumps({"level_id": rows[0]["level_id"], "fun": 1, "structure": 1, "constraints": 1,
                       "rater": "x" * 60_000}).encode()
    port = srv.server_address[1]
    reply = _raw(srv, (f"POST /api/ratings HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example\r\n"
                       f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                 + body)
    assert reply.split(b" ", 2)[1] in (b"400", b"403"), reply[:200]
    # the right Host but another page's Origin, or no token, or the page's own token from a form (text/plain)
    api = srv.url + "api/ratings"
    good = {"level_id": rows[0]["level_id"], "fun": 2}
    assert _post(api, good, headers={"Origin": "http://evil.example"})[0] == 403
    assert _post(api, good, token="")[0] == 403
    assert _post(api, good, token="forged-token")[0] == 403
    assert _post(api, good, headers={"Content-Type": "text/plain"})[0] == 415
    assert store.list_ratings() == []
    assert _post(api, good, headers={"Origin": srv.url.rstrip("/")})[0] == 201  # the page itself may post


def test_oversized_fields_are_refused(server):
    srv, rows, store = server
    api = srv.url + "api/ratings"
    gid = rows[0]["level_id"]
    status, body = _post(api, {"level_id": gid, "fun": 3, "rater": "x" * 60_000})
    assert status == 400 and "rater" in body["error"]
    assert _post(api, {"level_id": gid, "fun": 3, "comment": "x" * 5000})[0] == 400
    assert _post(api, {"level_id": "x" * 60_000, "fun": 3})[0] == 400
    assert store.list_ratings() == []
    assert _post(api, {"level_id": gid, "fun": 3, "rater": "Ann"})[0] == 201


def test_deeply_nested_json_is_a_400_and_the_server_keeps_serving(server):
    """60 KB of '[' got no reply and a RecursionError in the log."""
    srv, _, store = server
    status, body = _post(srv.url + "api/ratings", b"[" * 60_000)
    assert status == 400 and "JSON" in body["error"]
    assert _get(srv.url + "api/levels")[0] == 200
    assert store.list_ratings() == []


def test_a_stalled_body_is_closed_within_the_timeout(server):
    """A body announced but never sent held the connection for minutes."""
    srv, _, _ = server
    srv.io_timeout_s = 0.5
    host, port = srv.server_address
    reply = _raw(srv, (f"POST /api/ratings HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                       f"X-CSRF-Token: {_token(srv.url + 'api/ratings')}\r\nContent-Length: 100\r\n\r\n"
                       '{"level_id"').encode(), wait_s=5)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]  # within _raw's 5 s wait, 0.5 s timeout
    assert _get(srv.url + "api/levels")[0] == 200
