"""`simsearch serve`'s OpenAI-compatible /v1 routes, called with the official `openai` client."""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.server.helpers import Server, call, read_reply, server_env, start_server

TOKEN = "s3cret-token"
TEXTS = ["the cat sat on the mat", "서울 지하철은 편리하다", "a fast search engine for long documents"]


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path):
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(str(tiny_bert))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, encoder) -> Iterator[Server]:
    from simsearch.index import Index

    home = tmp_path_factory.mktemp("openai-home")
    Index.build(TEXTS, "notes", encoder, index_dir=home)
    running = start_server(
        home,
        ["notes"],
        "--token-env",
        "SIMSEARCH_TEST_OPENAI_TOKEN",
        log=home / "server.log",
        env=server_env(SIMSEARCH_TEST_OPENAI_TOKEN=TOKEN),
    )
    yield running
    assert running.stop() == 0, running.stderr()


@pytest.fixture(scope="module")
def client(server: Server) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)


def cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return np.sum(got * want, axis=1)


def tokens(tiny_bert: Path, text: str) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(tiny_bert))(text)["input_ids"])


def body_of(error: openai.APIStatusError) -> dict[str, Any]:
    """The JSON error object of an answer (openai types ``body`` as any object)."""
    assert isinstance(error.body, dict), error.body
    return error.body


def test_single_input_as_floats(client: OpenAI, encoder, tiny_bert: Path) -> None:
    answer = client.embeddings.create(model=str(tiny_bert), input=TEXTS[0], encoding_format="float")
    assert answer.object == "list" and answer.model == str(tiny_bert)
    assert len(answer.data) == 1 and answer.data[0].object == "embedding" and answer.data[0].index == 0
    got = np.asarray([answer.data[0].embedding], dtype=np.float32)
    assert got.shape == (1, encoder.dim)
    assert cosines(got, encoder.encode([TEXTS[0]]))[0] >= 0.99999
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == tokens(tiny_bert, TEXTS[0])


def test_batch_with_the_clients_default_base64(client: OpenAI, encoder, tiny_bert: Path) -> None:
    # Without encoding_format the client asks for base64 and decodes it itself.
    answer = client.embeddings.create(model=str(tiny_bert), input=TEXTS)
    assert [item.index for item in answer.data] == [0, 1, 2]
    got = np.asarray([item.embedding for item in answer.data], dtype=np.float32)
    assert (cosines(got, encoder.encode(TEXTS)) >= 0.99999).all()
    assert answer.usage.prompt_tokens == sum(tokens(tiny_bert, text) for text in TEXTS)


def test_explicit_base64_is_little_endian_float32(client: OpenAI, encoder, tiny_bert: Path) -> None:
    answer = client.embeddings.create(model=str(tiny_bert), input=TEXTS[1:], encoding_format="base64")
    # openai types `embedding` as list[float]; with encoding_format="base64" it is the base64 text
    rows = [np.frombuffer(base64.b64decode(item.embedding), dtype="<f4") for item in answer.data]  # type: ignore[arg-type]
    assert (cosines(np.vstack(rows), encoder.encode(TEXTS[1:])) >= 0.99999).all()


def test_models_list_and_dimensions(client: OpenAI, encoder, tiny_bert: Path) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [str(tiny_bert)]
    assert models.data[0].object == "model" and models.data[0].owned_by == "simsearch"
    same = client.embeddings.create(model=str(tiny_bert), input="cat", dimensions=encoder.dim)
    assert len(same.data[0].embedding) == encoder.dim
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=str(tiny_bert), input="cat", dimensions=8)
    assert caught.value.status_code == 400 and body_of(caught.value)["param"] == "dimensions"
    assert "cannot shorten" in body_of(caught.value)["message"]


def test_wrong_model_is_a_404_in_openais_shape(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="cat")
    body = body_of(caught.value)
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error" and body["code"] == "model_not_found"
    assert "text-embedding-3-small" in body["message"]


def test_over_long_input_is_refused(client: OpenAI, encoder, tiny_bert: Path) -> None:
    long = " ".join(["cat"] * (encoder.max_length + 10))
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=str(tiny_bert), input=["short", long])
    body = body_of(caught.value)
    assert body["code"] == "context_length_exceeded" and body["param"] == "input"
    assert f"maximum context length is {encoder.max_length} tokens" in body["message"]
    assert "input[1] has 312 tokens" in body["message"]


def test_bad_inputs_answer_400(server: Server, tiny_bert: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for body, param in (
        ({"model": str(tiny_bert), "input": [[101, 102]]}, "input"),
        ({"model": str(tiny_bert), "input": []}, "input"),
        ({"model": str(tiny_bert), "input": ["ok", ""]}, "input"),
        ({"model": str(tiny_bert), "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x"}, "model"),
        ({"model": str(tiny_bert), "input": "x", "temperature": 1}, "temperature"),
    ):
        answer = call(server.url + "/v1/embeddings", "POST", body, headers=headers)
        assert answer.status == 400, body
        assert answer.json()["error"]["param"] == param
    garbage = call(
        server.url + "/v1/embeddings",
        "POST",
        raw=b"{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert garbage.status == 400 and "not valid JSON" in garbage.json()["error"]["message"]


def test_a_lone_surrogate_is_a_400_not_a_500(server: Server, tiny_bert: Path) -> None:
    """Issue 23 item 5: ``"\\ud800"`` in the JSON body is bad input, not a server error."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for field in ('"a\\ud800b"', '["fine", "x\\udfffy"]'):
        raw = f'{{"model": {json.dumps(str(tiny_bert))}, "input": {field}}}'.encode()
        answer = call(server.url + "/v1/embeddings", "POST", raw=raw, headers=headers)
        assert answer.status == 400, answer.json()
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "input"
        assert "lone surrogate" in error["message"]


def test_token_is_required(server: Server, tiny_bert: Path) -> None:
    missing = call(server.url + "/v1/embeddings", "POST", {"model": str(tiny_bert), "input": "x"})
    assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert call(server.url + "/v1/models").status == 401
    wrong = OpenAI(base_url=server.url + "/v1", api_key="not-the-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.embeddings.create(model=str(tiny_bert), input="cat")
    assert body_of(caught.value)["message"] == "Incorrect API key provided."


def test_size_limit_applies(server: Server, tiny_bert: Path) -> None:
    huge = json.dumps({"model": str(tiny_bert), "input": ["word " * 1000] * 300}).encode()  # ~1.5 MB
    assert len(huge) > 1 << 20  # the 1 MiB limit
    # By hand: the server answers 413 from the declared length and hangs up before the body is
    # all sent, so a client still sending (urllib) can fail with a broken pipe before it reads it.
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=60) as sock:
        head = (
            "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(huge)}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.sendall(head.encode() + huge)
        except OSError:
            pass  # the server answered and closed first: its answer is still there to read
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    error = json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]  # OpenAI's shape, as every /v1 error
    assert "larger than 1048576 bytes" in error["message"] and error["type"] == "invalid_request_error"


def test_errors_before_the_route_are_in_openais_shape_too(server: Server, tiny_bert: Path) -> None:
    """What the guard and the router refuse under /v1 parses as the openai client expects."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wrong_type = call(
        server.url + "/v1/embeddings",
        "POST",
        raw=json.dumps({"model": str(tiny_bert), "input": "x"}).encode(),
        headers={**headers, "Content-Type": "text/plain"},
    )
    unknown = call(server.url + "/v1/completions", "POST", {"prompt": "x"}, headers=headers)
    method = call(server.url + "/v1/embeddings", headers=headers)
    for answer, status in ((wrong_type, 415), (unknown, 404), (method, 405)):
        assert answer.status == status
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    gone = OpenAI(base_url=server.url + "/v1/nothing", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        gone.embeddings.create(model=str(tiny_bert), input="cat")
    assert body_of(caught.value)["type"] == "invalid_request_error"
    page = call(server.url + "/api/nothing")  # outside /v1 errors keep the server's own shape
    assert page.status == 404 and isinstance(page.json()["error"], str)


def test_without_a_token_the_routes_are_open(tmp_path: Path, encoder, tiny_bert: Path) -> None:
    from fastapi.testclient import TestClient

    from simsearch.index import Index
    from simsearch.server.app import create_app
    from simsearch.server.state import Served

    Index.build(TEXTS, "notes", encoder, index_dir=tmp_path)
    served = Served(["notes"], str(tmp_path))
    try:
        with TestClient(create_app(served)) as http:
            answer = http.post("/v1/embeddings", json={"model": str(tiny_bert), "input": "cat"})
            assert answer.status_code == 200 and len(answer.json()["data"][0]["embedding"]) == encoder.dim
    finally:
        served.close()
    assert os.environ.get("SIMSEARCH_TEST_OPENAI_TOKEN") is None


def test_error_shape_by_path_and_status() -> None:
    from simsearch.server.protocol import error_json

    assert error_json("/v1/embeddings", 413, "too big")["error"]["type"] == "invalid_request_error"
    assert error_json("/v1/embeddings", 500, "boom")["error"] == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert error_json("/v1", 404, "x")["error"]["message"] == "x"
    assert error_json("/v10/x", 404, "x") == {"error": "x"} == error_json("/indexes/a", 404, "x")
