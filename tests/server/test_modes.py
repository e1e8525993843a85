"""The HTTP API's mode switch and `where` filter (GET and POST), and the page's controls.

In-process: the FastAPI app is called as an ASGI function over indexes built with the fake
encoder (the model is not the point here; tests/test_server.py runs the real server)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from simsearch.index import Index
from simsearch.readers import Document
from tests.server.helpers import DOCS


def call(
    app: Any, method: str, path: str, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": urlencode(query or {}, doseq=True).encode(),
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
    }
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload) if payload.startswith((b"{", b"[")) else {"raw": payload.decode()}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    from simsearch.server.app import create_app
    from simsearch.server.state import ModelWorker, Served, ServedIndex
    from simsearch.store.manifest import identity_of
    from tests.fakes import FakeEncoder

    home = tmp_path_factory.mktemp("served")
    Index.build(
        [Document(i, t, {**m, "n": n}) for n, (i, t, m) in enumerate(DOCS)], home / "docs", FakeEncoder()
    ).close()
    worker = ModelWorker(FakeEncoder())
    served = Served.__new__(Served)
    served.indexes = {"docs": ServedIndex("docs", home / "docs", worker)}
    served.encoders = {(identity_of(worker), ""): worker}
    yield create_app(served)
    served.close()


def test_modes_over_get_and_post(app) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        status, got = call(app, "GET", "/indexes/docs/search", {"query": "서울 지하철", "mode": mode, "k": 3})
        assert status == 200, got
        status, posted = call(
            app, "POST", "/indexes/docs/search", body={"query": "서울 지하철", "mode": mode, "k": 3}
        )
        assert status == 200 and [h["id"] for h in posted["hits"]] == [h["id"] for h in got["hits"]]
        first = got["hits"][0]
        assert {"cosine", "bm25", "score"} <= set(first)
        assert (first["bm25"] is None) == (mode == "dense") and (first["cosine"] is None) == (
            mode == "lexical"
        )
    assert got["hits"][0]["id"] == "ko-subway"


def test_where_over_get_and_post(app) -> None:
    status, got = call(
        app, "GET", "/indexes/docs/search", {"query": "cat", "where": json.dumps({"lang": "ko"}), "k": 10}
    )
    assert status == 200 and {h["metadata"]["lang"] for h in got["hits"]} == {"ko"} and len(got["hits"]) == 3
    status, posted = call(
        app,
        "POST",
        "/indexes/docs/search",
        body={"queries": ["cat", "bread"], "where": {"topic": {"in": ["cooking"]}, "n": {">=": 2}}},
    )
    assert status == 200
    assert [[h["id"] for h in r["hits"]] for r in posted["results"]] and all(
        h["metadata"]["topic"] == "cooking" for r in posted["results"] for h in r["hits"]
    )


def test_boolean_and_text_where(app) -> None:
    def ids(where: Any, method: str = "GET") -> list[str]:
        if method == "GET":
            text = where if isinstance(where, str) else json.dumps(where)
            status, got = call(app, "GET", "/indexes/docs/search", {"query": "cat", "where": text, "k": 50})
        else:
            status, got = call(
                app, "POST", "/indexes/docs/search", body={"query": "cat", "where": where, "k": 50}
            )
        assert status == 200, got
        return sorted(h["id"] for h in got["hits"])

    docs = [(i, m.get("lang"), n) for n, (i, _, m) in enumerate(DOCS)]
    korean = sorted(i for i, lang, _ in docs if lang == "ko")
    either = sorted(i for i, lang, n in docs if lang == "ko" or n <= 1)
    assert ids("lang=ko") == ids({"lang": "ko"}) == ids("lang=ko", "POST") == korean
    assert ids("lang=ko or n<=1") == ids({"$or": [{"lang": "ko"}, {"n": {"<=": 1}}]}, "POST") == either
    others = sorted(i for i, lang, _ in docs if lang != "ko")
    assert ids({"$not": {"lang": "ko"}}) == ids("not lang=ko") == ids("lang not in ko", "POST") == others


def test_bad_filters_in_a_body_are_422(app) -> None:
    for where, words in [
        ({"n": float("nan")}, "not a finite number"),
        ({"n": 2**64}, "out of range"),
        ("n >", "expected a value"),
    ]:
        code, body = call(app, "POST", "/indexes/docs/search", body={"query": "cat", "where": where})
        assert code == 422 and words in json.dumps(body), body


@pytest.mark.parametrize(
    "query, status, words",
    [
        ({"where": "{not json"}, 422, "'where' must be a JSON object"),
        ({"where": "[1]"}, 422, "'where' must be a JSON object"),
        ({"where": json.dumps({"colour": "red"})}, 422, "unknown metadata field 'colour'"),
        ({"mode": "sparse"}, 422, ""),
        ({"where": "lang == ko"}, 422, "'==' is not an operator"),
        ({"where": "lang=ko and (n>1"}, 422, "a parenthesis is not closed"),
        ({"where": "n<inf"}, 422, "not a finite number"),
        ({"where": json.dumps({"n": {"<": 2**70}})}, 422, "out of range"),
        ({"where": '{"n": NaN}'}, 422, "not a finite number"),
        ({"where": '{"n": {"<": 1e400}}'}, 422, "not a finite number"),
        ({"where": json.dumps({"lang": "\ud800"})}, 422, "lone surrogate"),
        ({"where": json.dumps({"$or": []})}, 422, "non-empty list"),
        ({"where": '{"$not": ' * 100_000 + "{}" + "}" * 100_000}, 422, "'where' must be a JSON object"),
        ({"where": "(" * 3000 + "n=1" + ")" * 3000}, 422, "nested more than"),
    ],
)
def test_bad_mode_and_filters(app, query: dict[str, str], status: int, words: str) -> None:
    code, body = call(app, "GET", "/indexes/docs/search", {"query": "cat", **query})
    assert code == status and words in json.dumps(body)


def test_page_has_mode_switch_and_filter_box() -> None:
    static = Path(__file__).resolve().parents[2] / "simsearch" / "server" / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    script = (static / "app.js").read_text(encoding="utf-8")
    assert 'id="mode"' in html and 'id="where"' in html
    assert 'params.set("mode", mode)' in script and 'params.set("where", where)' in script
