"""Helpers for the server tests: build small indexes, run `simsearch serve` in a subprocess, HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCS = [
    ("cat", "the cat sat on the mat", {"lang": "en", "topic": "animals"}),
    ("bread", "how to keep bread fresh and not stale", {"lang": "en", "topic": "cooking"}),
    ("engine", "a fast search engine for long documents", {"lang": "en", "topic": "tech"}),
    ("dog", "the dog is good and the cat is bad", {"lang": "en", "topic": "animals"}),
    ("ko-subway", "서울 지하철은 편리하다", {"lang": "ko", "topic": "transit"}),
    ("ko-stew", "김치찌개를 끓이는 법", {"lang": "ko", "topic": "cooking"}),
    ("ko-weather", "오늘 날씨가 좋고 내일 비 올까요", {"lang": "ko", "topic": "weather"}),
    # Markup in a document must reach the page as text, never as HTML.
    (
        "xss",
        "the cat <img src=x onerror=\"document.title='pwned'\"> sat <script>document.title='pwned'"
        "</script> on the mat",
        {"lang": "en", "note": "<b>not bold</b>"},
    ),
]


def build_indexes(home: Path, encoder: Any) -> None:
    """Two indexes over the same model (so the server shares one encoder between them).

    The bundled real model, not the tiny random one: these tests check rankings, and a random
    BERT maps texts of one length to nearly the same vector.
    """
    from simsearch.index import Index
    from simsearch.readers import Document

    Index.build([Document(i, t, m) for i, t, m in DOCS], "docs", encoder, index_dir=home)
    Index.build(
        [Document(i, t, m) for i, t, m in DOCS if m["lang"] == "ko"], "korean", encoder, index_dir=home
    )


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def server_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("SIMSEARCH_INDEX_DIR", None)
    return env


def start_server(
    home: Path,
    names: list[str],
    *options: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Server:
    """Runs `python -m simsearch serve` on a free loopback port and waits until it answers."""
    command = [
        sys.executable,
        "-m",
        "simsearch",
        "serve",
        *names,
        "--index-dir",
        str(home),
        "--port",
        "0",
        *options,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink, env=env or server_env())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", text)
        if found and "startup complete" in text:
            return Server(process, found.group(1), log)
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{text}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server did not start in {timeout} s:\n{log.read_text()}")


def read_reply(sock: Any) -> bytes:
    """Everything the server sends until it closes the connection."""
    parts = []
    try:
        while chunk := sock.recv(65536):
            parts.append(chunk)
    except ConnectionResetError:
        pass  # a server that answered before reading the whole body resets; its answer came first
    return b"".join(parts)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def call(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request with urllib; error statuses are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
