"""`simsearch serve` end to end: a real server in a subprocess, spoken to over loopback HTTP."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from tests.server.helpers import DOCS, build_indexes, call, read_reply, server_env, start_server

HIT_FIELDS = {"query", "rank", "id", "score", "text", "metadata", "cosine", "bm25"}


@pytest.fixture(scope="module")
def home(bundled_encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("served") / "indexes"
    build_indexes(home, bundled_encoder)
    return home


@pytest.fixture(scope="module")
def server(home: Path, tmp_path_factory: pytest.TempPathFactory):
    server = start_server(home, ["docs", "korean"], log=tmp_path_factory.mktemp("log") / "serve.log")
    yield server
    server.stop()


def search_url(server, name: str = "docs", **params) -> str:
    return f"{server.url}/indexes/{name}/search?" + urllib.parse.urlencode(params, doseq=True)


def test_health_and_index_list(server) -> None:
    health = call(f"{server.url}/health")
    assert health.status == 200
    assert health.json() == {
        "status": "ok",
        "version": health.json()["version"],
        "indexes": 2,
        "writes": False,
    }
    listed = call(f"{server.url}/indexes").json()["indexes"]
    assert [entry["name"] for entry in listed] == ["docs", "korean"]
    assert listed[0]["count"] == len(DOCS) and listed[1]["count"] == 3
    assert all("model_path" not in entry and entry["dim"] == 384 for entry in listed)
    one = call(f"{server.url}/indexes/korean")
    assert one.status == 200 and one.json()["count"] == 3


def test_search_returns_the_same_hits_as_query_json(server, home: Path) -> None:
    answer = call(search_url(server, query="how to keep bread fresh and not stale", k=3))
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["index"] == "docs" and isinstance(body["took_ms"], float) and body["took_ms"] > 0
    hits = body["hits"]
    assert [set(hit) for hit in hits] == [HIT_FIELDS] * 3
    assert hits[0]["id"] == "bread" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert [hit["rank"] for hit in hits] == [1, 2, 3]
    cli = CliRunner().invoke(
        main,
        [
            "query",
            "docs",
            "how to keep bread fresh and not stale",
            "-k",
            "3",
            "--json",
            "--index-dir",
            str(home),
        ],
    )
    assert cli.exit_code == 0, cli.output
    expected = [json.loads(line) for line in cli.output.splitlines()]
    assert [h["id"] for h in hits] == [e["id"] for e in expected]
    for got, want in zip(hits, expected):
        assert got == {
            **want,
            "score": pytest.approx(want["score"], abs=1e-5),
            "cosine": pytest.approx(want["cosine"], abs=1e-5),
        }


def test_post_batch_matches_single_searches(server) -> None:
    queries = ["서울 지하철은 편리하다", "the cat sat on the mat", "김치찌개"]
    answer = call(f"{server.url}/indexes/docs/search", "POST", {"queries": queries, "k": 2})
    assert answer.status == 200, answer.body
    results = answer.json()["results"]
    assert [r["query"] for r in results] == queries
    assert results[0]["hits"][0]["id"] == "ko-subway"
    assert results[0]["hits"][0]["text"] == "서울 지하철은 편리하다"  # UTF-8 both ways
    for text, result in zip(queries, results):
        single = call(f"{server.url}/indexes/docs/search", "POST", {"query": text, "k": 2}).json()
        assert [h["id"] for h in single["hits"]] == [h["id"] for h in result["hits"]]
        assert all(hit["query"] == text for hit in result["hits"])
    repeated = call(search_url(server, queries=queries[:2], k=1)).json()["results"]
    assert [r["hits"][0]["id"] for r in repeated] == ["ko-subway", "cat"]


def test_k_and_min_score(server) -> None:
    everything = call(search_url(server, query="the cat sat on the mat", k=100)).json()["hits"]
    assert len(everything) == len(DOCS)
    strict = call(search_url(server, query="the cat sat on the mat", k=100, min_score=0.999)).json()["hits"]
    assert [hit["id"] for hit in strict] == ["cat"]
    korean = call(search_url(server, "korean", query="김치찌개를 끓이는 법", k=5)).json()["hits"]
    assert len(korean) == 3 and korean[0]["id"] == "ko-stew"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/indexes/nope/search?query=x", None, 404, "not served here"),
        ("GET", "/indexes/.hidden/search?query=x", None, 400, "invalid index name"),
        ("GET", "/indexes/docs/search?query=x&k=101", None, 422, "k:"),
        ("GET", "/indexes/docs/search?query=x&k=0", None, 422, "k:"),
        ("GET", "/indexes/docs/search?query=x&k=ten", None, 422, "k:"),
        ("GET", "/indexes/docs/search?query=x&min_score=nan", None, 422, "min_score"),
        ("GET", "/indexes/docs/search", None, 422, "exactly one of"),
        ("GET", "/indexes/docs/search?query=%20%20", None, 422, "empty query"),
        ("POST", "/indexes/docs/search", b'{"query": ', 400, "not valid JSON"),
        ("POST", "/indexes/docs/search", {"query": "a", "queries": ["b"]}, 422, "exactly one of"),
        ("POST", "/indexes/docs/search", {"queries": []}, 422, "empty"),
        ("POST", "/indexes/docs/search", {"query": 3}, 422, "query"),
        ("POST", "/indexes/docs/search", {"query": "a", "limit": 3}, 422, "limit"),
        ("POST", "/indexes/docs/search", {"query": "x" * 2001}, 413, "limit is 2000"),
        ("POST", "/indexes/docs/search", {"queries": ["x"] * 65}, 413, "limit is 64"),
        ("GET", "/nothing/here", None, 404, "Not Found"),
        ("POST", "/indexes/docs/documents", {"documents": [{"id": "a", "text": "b"}]}, 403, "--allow-writes"),
        ("DELETE", "/indexes/docs/documents", {"ids": ["cat"]}, 403, "--allow-writes"),
    ],
)
def test_errors_are_json_with_the_right_status(server, method, path, body, status, words) -> None:
    raw = body if isinstance(body, bytes) else None
    answer = call(
        server.url + path,
        method,
        None if raw else body,
        raw=raw,
        headers={"Content-Type": "application/json"} if raw else None,
    )
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert words in answer.json()["error"]
    assert b"Traceback" not in answer.body


def raw_post(server, headers: str, chunks: list[bytes]) -> bytes:
    """A hand-written request: the server may answer and hang up before the body is all sent."""
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=30) as sock:
        sock.sendall(
            (
                "POST /indexes/docs/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nConnection: close\r\n" + headers + "\r\n"
            ).encode()
        )
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass
        return read_reply(sock)


def test_body_limits_and_content_type(server) -> None:
    declared = raw_post(server, f"Content-Length: {2 << 20}\r\n", [b"{"])
    assert declared.startswith(b"HTTP/1.1 413") and b"larger than 1048576 bytes" in declared
    # Chunked (no Content-Length) is counted as it streams.
    chunk = b"x" * 65536
    streamed = raw_post(
        server, "Transfer-Encoding: chunked\r\n", [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20
    )
    assert streamed.startswith(b"HTTP/1.1 413")
    small = raw_post(server, "Transfer-Encoding: chunked\r\n", [b'e\r\n{"query": "x"}\r\n0\r\n\r\n'])
    assert small.startswith(b"HTTP/1.1 200")
    form = call(
        f"{server.url}/indexes/docs/search",
        "POST",
        raw=b'{"query": "x"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 415 and "application/json" in form.json()["error"]


def test_host_header_is_checked_on_loopback(server) -> None:
    evil = call(f"{server.url}/health", headers={"Host": "attacker.example"})
    assert evil.status == 400 and "Host" in evil.json()["error"]
    assert call(f"{server.url}/health", headers={"Host": "localhost:1234"}).status == 200


def test_page_and_assets_are_served_with_safe_headers(server) -> None:
    page = call(f"{server.url}/")
    assert page.status == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert b'<meta charset="utf-8">' in page.body and b"http" not in page.body.replace(b"http-equiv", b"")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    script = call(f"{server.url}/static/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    assert b"innerHTML" not in script.body  # documents only ever go in as text
    assert call(f"{server.url}/static/../cli.py").status == 404
    assert call(f"{server.url}/static/nope.js").status == 404


def test_openapi_describes_the_read_only_api(server) -> None:
    spec = call(f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/indexes/{name}/search"]) == {"get", "post"}
    assert "/indexes/{name}/documents" not in paths  # no writes on this server
    get = paths["/indexes/{name}/search"]["get"]
    assert {p["name"] for p in get["parameters"]} == {
        "name",
        "query",
        "queries",
        "k",
        "min_score",
        "mode",
        "where",
    }
    hit = spec["components"]["schemas"]["HitOut"]
    assert set(hit["properties"]) == HIT_FIELDS
    assert call(f"{server.url}/docs").status == 404  # Swagger UI would load assets from a CDN


def test_sigterm_stops_gracefully(home: Path, tmp_path: Path) -> None:
    server = start_server(home, ["korean"], log=tmp_path / "serve.log")
    assert call(search_url(server, "korean", query="서울")).status == 200
    assert server.stop() == 0
    log = server.stderr()
    assert "Application shutdown complete" in log and "Traceback" not in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=2)


@pytest.fixture
def keep_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve() sets OMP_WAIT_POLICY when unset; in-process runs must not leak it to later tests."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")


@pytest.mark.usefixtures("keep_env")
def test_startup_fails_clearly_for_a_missing_index(home: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "docs", "missing", "--index-dir", str(home), "--port", "0"])
    assert result.exit_code == 1
    assert "Error: index 'missing' not found" in result.output and "Traceback" not in result.output


def test_startup_fails_clearly_for_a_damaged_index(home: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "indexes"
    shutil.copytree(home / "korean", damaged / "korean")
    faiss_file = next((damaged / "korean").glob("index-*.faiss"))
    faiss_file.write_bytes(faiss_file.read_bytes()[:-7])
    done = subprocess.run(
        [sys.executable, "-m", "simsearch", "serve", "korean", "--index-dir", str(damaged), "--port", "0"],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and "truncated or replaced" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.usefixtures("keep_env")
def test_startup_fails_clearly_for_bad_options(home: Path, server) -> None:
    runner = CliRunner()
    port = server.url.rsplit(":", 1)[1]
    taken = runner.invoke(main, ["serve", "korean", "--index-dir", str(home), "--port", port])
    assert taken.exit_code == 1 and "cannot listen on 127.0.0.1:" in taken.output
    # --token-env without --allow-writes guards the /v1 routes (the variable must still be set)
    token = runner.invoke(
        main, ["serve", "korean", "--index-dir", str(home), "--token-env", "SIMSEARCH_TEST_UNSET_TOKEN"]
    )
    assert token.exit_code == 1 and "SIMSEARCH_TEST_UNSET_TOKEN is not set" in token.output
    unset = runner.invoke(
        main,
        [
            "serve",
            "korean",
            "--index-dir",
            str(home),
            "--allow-writes",
            "--token-env",
            "SIMSEARCH_TEST_UNSET_TOKEN",
        ],
    )
    assert unset.exit_code == 1 and "SIMSEARCH_TEST_UNSET_TOKEN is not set" in unset.output
    twice = runner.invoke(main, ["serve", "korean", "korean", "--index-dir", str(home), "--port", "0"])
    assert twice.exit_code == 1 and "named twice" in twice.output
    bad = runner.invoke(main, ["serve", "../x", "--index-dir", str(home), "--port", "0"])
    assert bad.exit_code == 1 and "not found" in bad.output


def test_indexes_with_one_model_share_one_encoder(home: Path) -> None:
    from simsearch.server.state import Served

    served = Served(["docs", "korean"], str(home))
    try:
        assert len(served.encoders) == 1
        assert served.indexes["docs"].encoder is served.indexes["korean"].encoder
        hits = served.indexes["korean"].search(["서울 지하철은 편리하다"], 1, None)
        assert hits[0][0].id == "ko-subway"
    finally:
        served.close()


def test_concurrent_searches_get_their_own_answers(server) -> None:
    """Requests that arrive together share a forward pass and a FAISS search; each gets its share."""
    from concurrent.futures import ThreadPoolExecutor

    asks = [
        (text, k, min_score) for text in [t for _, t, _ in DOCS][:6] for k, min_score in ((1, None), (4, 0.3))
    ]
    asks += [("김치찌개", 3, None), ("서울 지하철", 2, None)]

    def ask(item):
        text, k, min_score = item
        params = {
            "query": text,
            "k": k,
            "mode": "dense",  # the batched dense path; scores are cosines
            **({"min_score": min_score} if min_score is not None else {}),
        }
        answer = call(search_url(server, **params))
        assert answer.status == 200, answer.body
        return [(hit["rank"], hit["id"], hit["score"]) for hit in answer.json()["hits"]]

    alone = [ask(item) for item in asks]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, asks * 3))
    for got, want in zip(together, alone * 3):
        assert [(rank, id_) for rank, id_, _ in got] == [(rank, id_) for rank, id_, _ in want]
        assert [score for *_, score in got] == pytest.approx([score for *_, score in want], abs=1e-5)
    for (_, k, min_score), hits in zip(asks, alone):
        assert len(hits) <= k and [rank for rank, _, _ in hits] == list(range(1, len(hits) + 1))
        assert min_score is None or all(score >= min_score for _, _, score in hits)


def test_a_rebuild_by_another_process_is_picked_up(home: Path, tmp_path: Path, bundled_encoder) -> None:
    from simsearch.index import Index
    from simsearch.readers import Document

    copy = tmp_path / "indexes"
    shutil.copytree(home / "korean", copy / "korean")
    server = start_server(copy, ["korean"], log=tmp_path / "serve.log")
    try:
        assert call(search_url(server, "korean", query="서울")).json()["hits"][0]["id"].startswith("ko-")
        Index.build(
            [Document("fresh", "오늘 날씨가 좋고"), Document("other", "김치찌개")],
            copy / "korean",
            bundled_encoder,
            force=True,
        )
        assert call(f"{server.url}/indexes/korean").json()["count"] == 2
        hits = call(search_url(server, "korean", query="오늘 날씨가 좋고", k=5)).json()["hits"]
        assert [hit["id"] for hit in hits] == ["fresh", "other"]
    finally:
        assert server.stop() == 0


def test_searches_run_between_the_slices_of_a_large_write() -> None:
    import threading
    import time

    import numpy as np

    from simsearch.server.state import WRITE_SLICE, ModelWorker
    from tests.fakes import FakeEncoder

    log: list[str] = []
    started = threading.Event()

    class Recording(FakeEncoder):
        def encode_counting(self, texts, **kwargs):
            log.append(f"{'write' if len(texts) > 1 else 'query'} {len(texts)}")
            started.set()
            time.sleep(0.05)
            return super().encode_counting(texts, **kwargs)

    worker = ModelWorker(Recording())
    try:
        texts = [f"document number {n}" for n in range(WRITE_SLICE * 3 + 5)]
        result: list = []
        writer = threading.Thread(target=lambda: result.append(worker.encode_counting(texts)))
        writer.start()
        started.wait(10)
        query = worker.encode(["a query"])
        writer.join(30)
        vectors, truncated = result[0]
        assert vectors.shape == (len(texts), 16) and truncated == 0
        assert np.allclose(vectors, FakeEncoder().encode(texts))
        assert query.shape == (1, 16)
        assert log.index("query 1") < len(log) - 1  # answered before the write's last slice
        assert [entry for entry in log if entry.startswith("write")] == [f"write {WRITE_SLICE}"] * 3 + [
            "write 5"
        ]
    finally:
        worker.close()
