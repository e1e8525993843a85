"""Issue 10, the server's entry points: a bad request fails alone, errors are JSON of one shape,
shutdown never hangs, half-open connections cannot hold it, writes beyond loopback need a token.

Each test here failed on the code before the fix (base commit 9411138).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.fakes import FakeEncoder
from tests.server.helpers import Server, call, read_reply, server_env, start_server

DOCS = [
    ("cat", "the cat sat on the mat"),
    ("bread", "how to keep bread fresh and not stale"),
    ("engine", "a fast search engine for long documents"),
    ("ko", "서울 지하철은 편리하다"),
]


@pytest.fixture(scope="module")
def home(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simsearch.encode.torch_encoder import Encoder
    from simsearch.index import Index
    from simsearch.readers import Document

    home = tmp_path_factory.mktemp("safety-home")
    Index.build([Document(i, t) for i, t in DOCS], "docs", Encoder(str(tiny_bert)), index_dir=home)
    return home


@pytest.fixture(scope="module")
def server(home: Path, tmp_path_factory: pytest.TempPathFactory):
    running = start_server(home, ["docs"], "--allow-writes", log=tmp_path_factory.mktemp("log") / "serve.log")
    yield running
    running.stop()


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def post_raw(server: Server, path: str, body: bytes) -> tuple[int, dict]:
    answer = call(server.url + path, "POST", raw=body, headers={"Content-Type": "application/json"})
    return answer.status, answer.json()


# --- Bug 6: one bad text never fails another request ---------------------------------------------


class Gated(FakeEncoder):
    """Holds the model's thread while it encodes "hold", until ``gate`` is set: the rest queue up."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def encode_counting(self, texts, **kwargs):
        if "hold" in texts:
            self.gate.wait(10)
        return super().encode_counting(texts, **kwargs)


class Picky(Gated):
    """Fails a whole batch when any text in it says "boom" (as a tokenizer fails on a surrogate)."""

    def encode(self, texts, **kwargs) -> np.ndarray:
        if any("boom" in text for text in texts):
            raise ValueError("cannot encode boom")
        return super().encode(texts, **kwargs)


def test_a_failing_batch_falls_back_to_one_encode_per_request() -> None:
    from simsearch.server.state import ModelWorker

    gate = threading.Event()
    worker = ModelWorker(Picky(gate))
    try:
        with ThreadPoolExecutor(8) as pool:
            busy = pool.submit(worker.encode_counting, ["hold"])  # the rest queue up behind it
            good = [pool.submit(worker.encode, [f"text number {n}"]) for n in range(5)]
            bad = pool.submit(worker.encode, ["boom"])
            deadline = time.monotonic() + 10
            while worker.queued < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            gate.set()
            busy.result(10)
            assert all(f.result(10).shape == (1, 16) for f in good)
            with pytest.raises(ValueError, match="boom"):
                bad.result(10)
    finally:
        worker.close()


def test_work_for_a_stopped_model_fails_instead_of_waiting_for_ever() -> None:
    """A write's next slice asked for after shutdown must not hang (and hold the lock)."""
    from simsearch.errors import SimsearchError
    from simsearch.server.state import ModelWorker

    gate = threading.Event()
    worker = ModelWorker(Gated(gate))
    with ThreadPoolExecutor(3) as pool:
        busy = pool.submit(worker.encode_counting, ["hold"])
        queued = pool.submit(worker.encode_counting, ["queued behind the stop"])
        deadline = time.monotonic() + 10
        while worker.queued < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        closing = pool.submit(worker.close)
        time.sleep(0.2)
        gate.set()
        closing.result(30)
        busy.result(10)
        assert queued.result(10)[0].shape == (1, 16)  # asked for before the stop: done
    outcome: list[BaseException] = []

    def later() -> None:  # a write's next slice, asked for after the stop
        try:
            worker.encode_counting(["after the stop"])
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=later, daemon=True)  # daemon: the old code hangs here for ever
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "work for a stopped model waited for ever"
    assert isinstance(outcome[0], SimsearchError) and "shutting down" in str(outcome[0])


@pytest.mark.parametrize(
    "body, where",
    [
        ('{"query": "a\\ud800"}', "query"),
        ('{"query": "\\udfff"}', "query"),
        ('{"queries": ["fine", "x\\ude00\\ud83d"]}', "queries[1]"),
    ],
)
def test_invalid_unicode_query_is_a_422(server: Server, body: str, where: str) -> None:
    status, answer = post_raw(server, "/indexes/docs/search", body.encode())
    assert status == 422 and answer["error"].startswith(f"{where}: invalid Unicode"), answer


def test_concurrent_searches_survive_a_bad_one(server: Server) -> None:
    good = json.dumps({"query": "the cat sat on the mat"}).encode()
    bad = b'{"query": "the cat \\ud800"}'
    with ThreadPoolExecutor(11) as pool:
        answers = list(
            pool.map(lambda body: post_raw(server, "/indexes/docs/search", body), [bad] + [good] * 10)
        )
    assert answers[0][0] == 422
    assert [status for status, _ in answers[1:]] == [200] * 10
    assert all(answer["hits"][0]["id"] == "cat" for _, answer in answers[1:])


# --- Bug 7 and strict types: the write API and search bodies -------------------------------------


@pytest.mark.parametrize(
    "path, body, words",
    [
        (
            "/indexes/docs/documents",
            '{"documents": [{"id": "n", "text": "t", "metadata": {"v": NaN}}]}',
            "NaN",
        ),
        (
            "/indexes/docs/documents",
            '{"documents": [{"id": "n", "text": "t", "metadata": {"v": [-Infinity]}}]}',
            "Infinity",
        ),
        (
            "/indexes/docs/documents",
            '{"documents": [{"id": "n", "text": "t", "metadata": {"v": 1e999}}]}',
            "inf",
        ),
        (
            "/indexes/docs/documents",
            '{"documents": [{"id": "n\\ud800", "text": "t"}]}',
            "nicode",
        ),  # pydantic's words or ours
        ("/indexes/docs/documents", '{"documents": [{"id": "n", "text": "t\\udc00"}]}', "nicode"),
        (
            "/indexes/docs/documents",
            '{"documents": [{"id": "n", "text": "t", "metadata": {"k\\ud800": 1}}]}',
            "nicode",
        ),
        ("/indexes/docs/search", '{"query": "cat", "k": true}', "k"),
        ("/indexes/docs/search", '{"query": "cat", "k": "5"}', "k"),
        ("/indexes/docs/search", '{"query": "cat", "k": 5.0}', "k"),
        ("/indexes/docs/search", '{"query": "cat", "min_score": "0.5"}', "min_score"),
        ("/indexes/docs/search", '{"query": "cat", "min_score": true}', "min_score"),
        ("/indexes/docs/search", '{"query": "cat", "min_score": NaN}', "min_score"),
    ],
)
def test_bad_bodies_are_422_and_change_nothing(server: Server, path: str, body: str, words: str) -> None:
    status, answer = post_raw(server, path, body.encode())
    assert status == 422 and words in answer["error"], answer
    assert call(server.url + "/indexes/docs").json()["count"] == len(DOCS)


def test_delete_with_invalid_unicode_id_is_a_422(server: Server) -> None:
    answer = call(
        server.url + "/indexes/docs/documents",
        "DELETE",
        raw=b'{"ids": ["cat\\ud800"]}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 422 and "nicode" in answer.json()["error"]


def test_k_as_a_number_still_works(server: Server) -> None:
    status, answer = post_raw(server, "/indexes/docs/search", b'{"query": "cat", "k": 2, "min_score": -1}')
    assert status == 200 and len(answer["hits"]) == 2


# --- one error shape --------------------------------------------------------------------------


def raw_request(server: Server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=30) as sock:
        sock.sendall(data)
        return read_reply(sock)


@pytest.mark.parametrize(
    "data, status",
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 40000, b"400"),  # a head past 16 KiB
        (b"PUT /indexes/docs/search HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"405"),
        (b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"404"),
    ],
)
def test_every_error_is_json(server: Server, data: bytes, status: bytes) -> None:
    reply = raw_request(server, data)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status), reply[:200]
    assert b"content-type: application/json" in head.lower()
    assert isinstance(json.loads(body)["error"], str)


def test_half_open_connections_are_dropped_and_the_limit_answers_json(home: Path, tmp_path: Path) -> None:
    from simsearch.server.protocol import HEAD_TIMEOUT

    server = start_server(home, ["docs"], log=tmp_path / "serve.log")
    held = []
    try:
        for _ in range(130):  # more than limit_concurrency (128), each stuck mid-head
            sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(sock)
        busy = call(server.url + "/health")
        assert busy.status == 503 and "limit" in busy.json()["error"]
        time.sleep(HEAD_TIMEOUT + 2)
        assert call(server.url + "/health").status == 200
        timed_out = read_reply(held[0])
        assert timed_out.startswith(b"HTTP/1.1 408") and b'"error"' in timed_out
    finally:
        for sock in held:
            sock.close()
        server.stop()


# --- Bug 9: one model at two precisions --------------------------------------------------------


@pytest.mark.parametrize("precisions", [("fp32", "int8"), ("int8", "bf16")])
def test_one_model_at_two_precisions_is_served(tiny_bert: Path, tmp_path: Path, precisions) -> None:
    from simsearch.encode.torch_encoder import Encoder
    from simsearch.index import Index
    from simsearch.readers import Document
    from simsearch.server.state import Served

    for precision in precisions:
        Index.build(
            [Document(i, t) for i, t in DOCS],
            precision,
            Encoder(str(tiny_bert), precision=precision),
            index_dir=tmp_path,
        )
    served = Served(list(precisions), str(tmp_path))
    try:
        assert len(served.encoders) == 2
        for precision in precisions:
            target = served.indexes[precision]
            assert target.encoder.precision == precision
            assert target.search(["the cat sat on the mat"], 1, None)[0][0].id == "cat"
    finally:
        served.close()


# --- Bug 8: SIGTERM during a long write ---------------------------------------------------------


def test_sigterm_during_a_long_write_exits_and_releases_the_lock(tiny_bert: Path, tmp_path: Path) -> None:
    from simsearch.encode.torch_encoder import Encoder
    from simsearch.index import Index
    from simsearch.readers import Document

    home = tmp_path / "indexes"
    Index.build([Document(i, t) for i, t in DOCS], "big", Encoder(str(tiny_bert)), index_dir=home)
    server = start_server(home, ["big"], "--allow-writes", log=tmp_path / "serve.log")
    words = "the cat sat on the mat with bread and a fast search engine for long documents".split()
    # Long enough to outlast the 10 s of graceful shutdown even on a fast machine (about 7 MB,
    # ~2 min of encoding on 2 busy cores): only then does a cancelled write matter.
    documents = [
        {"id": f"new-{n}", "text": " ".join(words[(n + j) % len(words)] for j in range(250))}
        for n in range(6000)
    ]
    writing = threading.Thread(
        target=call,
        args=(server.url + "/indexes/big/documents", "POST", {"documents": documents}),
        daemon=True,
    )
    writing.start()
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") for p in (home / "big").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the write has staged its files: it is in flight
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(90)  # 10 s of grace for the write, then it is cancelled
    except subprocess.TimeoutExpired:
        server.process.kill()
        pytest.fail("serve hung after SIGTERM during a write:\n" + server.stderr()[-3000:])
    assert code == 0, server.stderr()[-3000:]
    index = Index.open("big", index_dir=home)
    assert len(index) in (len(DOCS), len(DOCS) + len(documents))  # the old generation or the new one
    assert index.verify().ok
    stats = index.add([Document("after", "another writer proceeds")])  # the lock was released
    assert stats.added == 1


# --- weaknesses: writes beyond loopback, Host check ---------------------------------------------


def test_writes_beyond_loopback_need_a_token(home: Path) -> None:
    from simsearch.cli.main import main

    result = CliRunner().invoke(
        main, ["serve", "docs", "--index-dir", str(home), "--host", "0.0.0.0", "--allow-writes"]
    )
    assert result.exit_code == 2 and "needs a token" in result.output
    from simsearch.errors import SimsearchError
    from simsearch.server import ServeConfig, serve

    with pytest.raises(SimsearchError, match="needs a token"):
        serve(ServeConfig(("docs",), "0.0.0.0", 0, str(home), allow_writes=True))


def test_the_host_check_stays_on_beyond_loopback(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "simsearch",
        "serve",
        "docs",
        "--index-dir",
        str(home),
        "--port",
        "0",
        "--host",
        "0.0.0.0",
        "--allow-host",
        "search.example",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink, env=server_env())
    server = Server(process, "", log)
    try:
        deadline = time.monotonic() + 120
        while (
            not (found := re.search(r"at http://0\.0\.0\.0:(\d+)/", server.stderr()))
            or "startup complete" not in server.stderr()
        ):
            assert process.poll() is None and time.monotonic() < deadline, server.stderr()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{found.group(1)}/health"
        assert call(url, headers={"Host": "rebound.attacker.example"}).status == 400
        for host in (
            "127.0.0.1",
            "192.0.2.7:8000",
            "[2001:db8::1]:80",
            "search.example",
            socket.gethostname(),
        ):
            assert call(url, headers={"Host": host}).status == 200, host
    finally:
        server.stop()


# --- issue 23 item 7: a request cancelled by the shutdown answers JSON 503, not text/plain 500 ---


def _serve_in_thread(app, graceful: int):  # (signals are left alone off the main thread)
    import uvicorn

    from simsearch.server import protocol
    from simsearch.server.guard import Guard

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    guarded = Guard(app, max_body=1 << 20, max_write_body=1 << 20, hosts=None)
    server = uvicorn.Server(
        uvicorn.Config(
            guarded,
            lifespan="off",
            log_level="critical",
            http=protocol.GuardedH11Protocol,
            timeout_graceful_shutdown=graceful,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_request_cancelled_by_the_shutdown_is_a_json_503() -> None:
    import asyncio

    async def slow_write(scope, receive, send) -> None:
        await asyncio.sleep(60)  # a write still encoding when the graceful shutdown runs out

    server, thread, url = _serve_in_thread(slow_write, graceful=1)
    answers: list = []
    client = threading.Thread(
        target=lambda: answers.append(call(url + "/indexes/x/documents", "POST", {"documents": []}))
    )
    client.start()
    time.sleep(0.5)  # the request is in flight
    server.should_exit = True  # what SIGTERM does
    client.join(30)
    thread.join(30)
    (answer,) = answers
    assert answer.status == 503
    assert answer.headers["content-type"] == "application/json"
    assert "shutting down" in answer.json()["error"]


def test_an_app_that_never_answers_gets_a_json_500() -> None:
    async def silent(scope, receive, send) -> None:
        return None  # uvicorn's own fallback answer must be JSON too

    server, thread, url = _serve_in_thread(silent, graceful=1)
    try:
        answer = call(url + "/v1/embeddings", "POST", {"input": "x"})
    finally:
        server.should_exit = True
        thread.join(30)
    assert answer.status == 500 and answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["type"] == "server_error"
