"""The search page in a real browser: headless Chromium loads it, runs a query, and we read the DOM."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.server.helpers import build_indexes, start_server

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="module")
def browser() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium found (.ci/run installs Debian's `chromium`; `apt-get install chromium`)")


@pytest.fixture(scope="module")
def server(bundled_encoder, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("page") / "indexes"
    build_indexes(home, bundled_encoder)
    server = start_server(home, ["docs", "korean"], log=home.parent / "serve.log")
    yield server
    server.stop()


def render(browser: str, url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran (the page searches on load from ?q=&index=)."""
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8")


def hits(dom: str) -> list[tuple[str, str]]:
    """(id, text as shown) of each rendered hit, in order."""
    found = re.findall(r'<li class="hit" data-id="([^"]*)".*?<p class="text">(.*?)</p>', dom, re.S)
    assert found, dom[-3000:]
    return found


def test_page_searches_and_highlights(browser: str, server, tmp_path: Path) -> None:
    url = f"{server.url}/?" + urllib.parse.urlencode({"q": "the cat sat on the mat", "index": "docs", "k": 3})
    dom = render(browser, url, tmp_path / "profile")
    assert 'data-state="done"' in dom
    found = hits(dom)
    assert len(found) == 3 and found[0] == (
        "cat",
        "the <mark>cat</mark> <mark>sat</mark> on the <mark>mat</mark>",
    )
    assert re.search(r"3 results from docs in [\d.]+ ms \(server\), [\d.]+ ms round trip", dom)
    # the document repeating the query: relevance 1 (hybrid), the others below it
    scores = [
        float(s) for s in re.findall(r'<span class="score" title="relevance 0-1[^"]*">([\d.]+)</span>', dom)
    ]
    assert len(scores) == 3 and scores[0] == 1.0 > scores[1] >= scores[2] >= 0.0, dom[-3000:]
    assert '<option value="docs">docs (8 docs)</option><option value="korean">korean (3 docs)</option>' in dom


def test_lexical_scores_are_labelled_bm25_without_a_bar(browser: str, server, tmp_path: Path) -> None:
    """A BM25 score has no top: no bar (it showed full for every hit); the score says what it is."""
    query = {"q": "cat", "index": "docs", "k": 3, "mode": "lexical"}
    dom = render(browser, f"{server.url}/?" + urllib.parse.urlencode(query), tmp_path / "profile")
    assert 'data-state="done"' in dom and 'title="BM25 (lexical mode)"' in dom
    assert '<div class="bar">' not in dom and "relevance 0-1" not in dom


def test_document_markup_is_shown_as_text(browser: str, server, tmp_path: Path) -> None:
    url = f"{server.url}/?" + urllib.parse.urlencode({"q": "cat", "index": "docs", "k": 8})
    dom = render(browser, url, tmp_path / "profile")
    shown = dict(hits(dom))["xss"]
    assert "&lt;img src=x onerror=" in shown and "&lt;script&gt;" in shown
    assert "<img" not in dom and "pwned" not in re.sub(r'<p class="text">.*?</p>', "", dom, flags=re.S)
    assert "<title>simsearch</title>" in dom  # the document's script and handler never ran
    assert html.escape('{"lang":"en","note":"<b>not bold</b>"}', quote=False) in dom


def test_korean_renders_and_is_highlighted(browser: str, server, tmp_path: Path) -> None:
    url = f"{server.url}/?" + urllib.parse.urlencode({"q": "서울 지하철을", "index": "korean", "k": 2})
    dom = render(browser, url, tmp_path / "profile")
    found = hits(dom)
    assert found[0] == ("ko-subway", "<mark>서울</mark> <mark>지하철</mark>은 편리하다")


def test_page_reports_errors(browser: str, server, tmp_path: Path) -> None:
    url = f"{server.url}/?" + urllib.parse.urlencode({"q": "x" * 2001, "index": "docs"})
    dom = render(browser, url, tmp_path / "profile")
    assert 'data-state="error"' in dom and "Error: query has 2001 characters; the limit is 2000" in dom


# The layout measured in the browser: the page as the server rendered it (the DOM after its
# scripts ran), its stylesheet inlined, and a script reporting where things are.
_MEASURE = """<script>
addEventListener("load", () => {
  const box = (id) => document.querySelector(id === "go" ? "form button" : "#" + id).getBoundingClientRect();
  const font = (id) => getComputedStyle(document.getElementById(id)).fontSize;
  const lines = [...document.querySelectorAll("li.hit .meta span:not(.bar span)")]
    .map((span) => span.getClientRects().length);
  document.body.setAttribute("data-layout", JSON.stringify({
    rows: ["where", "k", "index", "mode", "go"].every((id) => Math.abs(box("q").bottom - box(id).bottom) < 12),
    fonts: [font("q"), font("where")], metaLines: lines, hits: lines.length,
  }));
});
</script>"""


def test_filter_box_shares_the_first_row_and_scores_do_not_wrap(browser: str, server, tmp_path: Path) -> None:
    """Issue 23 item 14: the filter box sat alone on a second row in a smaller font, and the
    score column wrapped "cos … · bm25 …" over several lines."""
    import json

    url = f"{server.url}/?" + urllib.parse.urlencode({"q": "the cat sat on the mat", "index": "docs", "k": 3})
    dom = render(browser, url, tmp_path / "profile")
    css = (Path(__file__).resolve().parents[2] / "simsearch" / "server" / "static" / "app.css").read_text()
    page = re.sub(r"<script\b.*?</script>|<link\b[^>]*>|<meta http-equiv[^>]*>", "", dom, flags=re.S)
    page = page.replace("</head>", f"<style>{css}</style></head>").replace("</body>", _MEASURE + "</body>")
    harness = tmp_path / "layout.html"
    harness.write_text(page, encoding="utf-8")
    done = subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'p2'}",
            "--window-size=1280,900",
            "--dump-dom",
            harness.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    found = re.search(r'data-layout="([^"]*)"', done.stdout.decode("utf-8"))
    assert found, done.stdout.decode("utf-8")[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["rows"], layout  # query, filter and the selects on one row
    assert layout["fonts"][0] == layout["fonts"][1], layout
    assert layout["hits"] >= 9 and set(layout["metaLines"]) == {1}, layout  # rank, score, cos · bm25
