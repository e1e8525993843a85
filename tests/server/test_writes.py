"""`simsearch serve --allow-writes --token-env VAR`: the write endpoints over real HTTP."""

from __future__ import annotations

import socket
import threading
import urllib.parse
from pathlib import Path

import pytest

from tests.server.helpers import DOCS, build_indexes, call, read_reply, server_env, start_server

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PENGUIN = "penguins waddle across the antarctic ice in long lines"


@pytest.fixture(scope="module")
def writable(bundled_encoder, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("writable") / "indexes"
    build_indexes(home, bundled_encoder)
    server = start_server(
        home,
        ["docs", "korean"],
        "--allow-writes",
        "--token-env",
        "SIMSEARCH_TEST_TOKEN",
        log=home.parent / "serve.log",
        env=server_env(SIMSEARCH_TEST_TOKEN=TOKEN),
    )
    yield server
    server.stop()


def documents(server) -> str:
    return f"{server.url}/indexes/docs/documents"


def top(server, query: str, k: int = 3) -> list[dict]:
    answer = call(
        f"{server.url}/indexes/docs/search?"
        + urllib.parse.urlencode({"query": query, "k": k, "mode": "dense"})
    )
    assert answer.status == 200, answer.body
    return answer.json()["hits"]


def count(server) -> int:
    return call(f"{server.url}/indexes/docs").json()["count"]


def test_writes_need_the_bearer_token(writable) -> None:
    body = {"documents": [{"id": "intruder", "text": "written without the token"}]}
    missing = call(documents(writable), "POST", body)
    assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["error"]
    wrong = call(
        documents(writable),
        "POST",
        body,
        headers={"Authorization": "Bearer not-it", "Content-Type": "application/json"},
    )
    assert wrong.status == 403 and wrong.json() == {"error": "wrong bearer token"}
    basic = call(
        documents(writable),
        "POST",
        body,
        headers={"Authorization": f"Basic {TOKEN}", "Content-Type": "application/json"},
    )
    assert basic.status == 401
    deleting = call(documents(writable), "DELETE", {"ids": ["cat"]})
    assert deleting.status == 401
    assert count(writable) == len(DOCS)
    assert all(hit["id"] != "intruder" for hit in top(writable, "written without the token", k=10))


def test_add_update_delete_are_seen_by_the_next_search(writable) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    added = call(
        documents(writable),
        "POST",
        {"documents": [{"id": "penguin", "text": PENGUIN, "metadata": {"lang": "en", "topic": "animals"}}]},
        headers=headers,
    )
    assert added.status == 200, added.body
    body = added.json()
    assert body["index"] == "docs" and body["count"] == len(DOCS) + 1
    assert body["stats"]["added"] == 1 and body["stats"]["updated"] == 0
    hit = top(writable, PENGUIN)[0]
    assert hit["id"] == "penguin" and hit["score"] == pytest.approx(1.0, abs=1e-4)
    assert hit["metadata"] == {"lang": "en", "topic": "animals"}

    changed = "emperor penguins huddle together through the polar winter"
    updated = call(
        documents(writable), "POST", {"documents": [{"id": "penguin", "text": changed}]}, headers=headers
    )
    assert updated.status == 200 and updated.json()["stats"]["updated"] == 1
    assert updated.json()["count"] == len(DOCS) + 1
    assert top(writable, changed)[0]["id"] == "penguin"
    assert top(writable, PENGUIN)[0]["score"] < 0.99  # the old text is gone

    again = call(
        documents(writable), "POST", {"documents": [{"id": "penguin", "text": changed}]}, headers=headers
    )
    assert again.json()["stats"]["unchanged"] == 1

    deleted = call(documents(writable), "DELETE", {"ids": ["penguin", "no-such-id"]}, headers=headers)
    assert deleted.status == 200, deleted.body
    stats = deleted.json()["stats"]
    assert stats["deleted"] == 1 and list(stats["unknown"]) == ["no-such-id"]
    assert deleted.json()["count"] == len(DOCS)
    assert all(hit["id"] != "penguin" for hit in top(writable, changed, k=len(DOCS)))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/indexes/docs/documents", {"documents": [{"id": "a"}]}, 422, "documents.0.text"),
        ("POST", "/indexes/docs/documents", {"documents": []}, 422, "documents"),
        ("POST", "/indexes/docs/documents", {"documents": [{"id": "", "text": "b"}]}, 422, "documents.0.id"),
        (
            "POST",
            "/indexes/docs/documents",
            {"documents": [{"id": "a", "text": "b", "metadata": [1]}]},
            422,
            "metadata",
        ),
        (
            "POST",
            "/indexes/docs/documents",
            {"documents": [{"id": "a", "text": "b"}, {"id": "a", "text": "c"}]},
            422,
            "duplicate",
        ),
        ("DELETE", "/indexes/docs/documents", {"ids": "cat"}, 422, "ids"),
        ("DELETE", "/indexes/docs/documents", {"ids": []}, 422, "ids"),
        ("POST", "/indexes/nope/documents", {"documents": [{"id": "a", "text": "b"}]}, 404, "not served"),
        ("DELETE", "/indexes/..bad/documents", {"ids": ["a"]}, 400, "invalid index name"),
    ],
)
def test_bad_writes_are_refused_and_change_nothing(writable, method, path, body, status, words) -> None:
    answer = call(writable.url + path, method, body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status == status, answer.body
    assert words in answer.json()["error"] and b"Traceback" not in answer.body
    assert count(writable) == len(DOCS)


def test_write_body_limit(writable) -> None:
    with socket.create_connection(("127.0.0.1", int(writable.url.rsplit(":", 1)[1])), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /indexes/docs/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {33 << 20}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 413") and b"larger than 33554432 bytes" in reply


def test_searches_stay_consistent_during_writes(writable) -> None:
    stop, seen, failures = threading.Event(), [], []

    def searcher() -> None:
        while not stop.is_set():
            answer = call(f"{writable.url}/indexes/docs/search?query=the+cat+sat+on+the+mat&k=3")
            if answer.status != 200:
                failures.append(answer.body)
                continue
            hits = answer.json()["hits"]
            seen.append((hits[0]["id"], [hit["rank"] for hit in hits]))

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for number in range(4):
            doc = {"id": f"tmp-{number}", "text": f"temporary note number {number} about the weather"}
            assert call(documents(writable), "POST", {"documents": [doc]}, headers=AUTH).status == 200
            assert call(documents(writable), "DELETE", {"ids": [doc["id"]]}, headers=AUTH).status == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures
    assert seen and all(entry == ("cat", [1, 2, 3]) for entry in seen)
    assert count(writable) == len(DOCS)


def test_openapi_describes_the_writes_and_their_token(writable) -> None:
    spec = call(f"{writable.url}/openapi.json").json()
    paths = spec["paths"]["/indexes/{name}/documents"]
    assert set(paths) == {"post", "delete"}
    assert paths["post"]["security"] == [{"HTTPBearer": []}]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" not in spec["paths"]["/indexes/{name}/search"]["get"]
    assert call(f"{writable.url}/health").json()["writes"] is True


def test_writes_without_a_token_variable(bundled_encoder, tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    build_indexes(home, bundled_encoder)
    server = start_server(home, ["korean"], "--allow-writes", log=tmp_path / "serve.log")
    try:
        added = call(
            f"{server.url}/indexes/korean/documents",
            "POST",
            {"documents": [{"id": "ko-new", "text": "한국어 문장 검색 엔진"}]},
        )
        assert added.status == 200 and added.json()["count"] == 4
        hits = call(
            f"{server.url}/indexes/korean/search?"
            + urllib.parse.urlencode({"query": "한국어 문장 검색 엔진", "k": 1})
        ).json()["hits"]
        assert hits[0]["id"] == "ko-new" and hits[0]["text"] == "한국어 문장 검색 엔진"
    finally:
        assert server.stop() == 0
