"""OpenAI-compatible ``POST /v1/embeddings`` and ``GET /v1/models`` over the served models.

The models offered are those of the served indexes (one entry per model id; where two indexes
share a model id, the first named on the command line decides pooling and precision). Requests
and answers follow the OpenAI API reference, so the official ``openai`` client works unchanged:
``input`` is a string or a list of strings (token-id arrays are refused with a 400),
``encoding_format`` is ``float`` or ``base64`` (little-endian float32, what the client decodes),
``dimensions`` is accepted only when it equals the model's, ``user`` is ignored. Errors have
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``. When the server has a token
(``--token-env``), these routes need it as ``Authorization: Bearer`` (the client's ``api_key``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from simsearch.encode.tokens import CHARS_PER_TOKEN  # a prefix is tokenized first, as the encoder does
from simsearch.server.state import ModelWorker, Served
from simsearch.validate import unicode_problem

MAX_INPUTS = 2048  # texts per request, OpenAI's own limit
_FIELDS = {"input", "model", "encoding_format", "dimensions", "user"}


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(
            {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}},
            status_code=self.status,
            headers=headers,
        )


@dataclass
class ServedModel:
    """One model offered at /v1: the worker that runs it and a tokenizer to count tokens."""

    id: str
    worker: ModelWorker
    model_path: str
    max_length: int
    created: int
    _tokenizer: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model reads it (special tokens included), uncut."""
        with self._lock:  # a fast tokenizer must not be driven from two threads at once
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                # the model's directory as the index recorded it, else its id (as Index.encoder does)
                source = self.model_path if Path(self.model_path).is_dir() else self.id
                self._tokenizer = AutoTokenizer.from_pretrained(source)
            budget = (self.max_length + 1) * CHARS_PER_TOKEN
            clipped = [text[:budget] for text in texts]
            counts = [len(ids) for ids in self._tokenizer(clipped, add_special_tokens=True)["input_ids"]]
            redo = [n for n, text in enumerate(texts) if len(text) > budget and counts[n] <= self.max_length]
            if redo:  # a clipped text that fits after all (a run of spaces, say): count it whole
                whole = self._tokenizer([texts[n] for n in redo], add_special_tokens=True)["input_ids"]
                for n, ids in zip(redo, whole):
                    counts[n] = len(ids)
            return counts


def served_models(served: Served) -> dict[str, ServedModel]:
    """Model id -> what serves it, in the order the indexes were named."""
    models: dict[str, ServedModel] = {}
    for target in served.indexes.values():
        manifest = target.manifest
        if manifest["model"] in models:
            continue
        created = manifest.get("created", "")
        try:
            from datetime import datetime

            stamp = int(datetime.fromisoformat(created).timestamp())
        except (TypeError, ValueError):
            stamp = 0
        models[manifest["model"]] = ServedModel(
            manifest["model"], target.encoder, str(manifest["model_path"]), int(manifest["max_length"]), stamp
        )
    return models


def add_openai_routes(app: FastAPI, served: Served, token: str | None) -> None:
    """Mount /v1/embeddings and /v1/models on ``app`` (``token``: the bearer token required)."""
    models = served_models(served)
    wanted = hashlib.sha256(token.encode()).digest() if token else None

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    def authorize(request: Request) -> None:
        if wanted is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise OpenAIError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer "
                "<token>' (the openai client's api_key).",
                code="invalid_api_key",
            )
        digest = hashlib.sha256(given.strip().encode()).digest()
        if not hmac.compare_digest(digest, wanted):
            raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")

    def model_entry(model: ServedModel) -> dict[str, Any]:
        return {"id": model.id, "object": "model", "created": model.created, "owned_by": "simsearch"}

    @app.get("/v1/models", summary="OpenAI-compatible: the embedding models served", tags=["openai"])
    def list_models(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse({"object": "list", "data": [model_entry(m) for m in models.values()]})

    @app.get("/v1/models/{model:path}", summary="OpenAI-compatible: one model", tags=["openai"])
    def get_model(model: str, request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse(model_entry(_model(models, model)))

    @app.post("/v1/embeddings", summary="OpenAI-compatible embeddings", tags=["openai"])
    async def embeddings(request: Request) -> JSONResponse:
        authorize(request)
        body = _parse(await request.body())
        model = _model(models, body.get("model"))
        texts = _inputs(body.get("input"))
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise OpenAIError(
                400, f"encoding_format must be 'float' or 'base64', got {fmt!r}", param="encoding_format"
            )
        dim = int(model.worker.dim)
        dimensions = body.get("dimensions")
        if dimensions is not None and (isinstance(dimensions, bool) or dimensions != dim):
            raise OpenAIError(
                400,
                f"model {model.id!r} gives {dim}-dimensional embeddings and cannot "
                f"shorten them; omit 'dimensions' or pass {dim}",
                param="dimensions",
            )
        return await run_in_threadpool(_embed, model, texts, fmt)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise OpenAIError(400, f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise OpenAIError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    return body


def _model(models: dict[str, ServedModel], name: Any) -> ServedModel:
    if not isinstance(name, str) or not name:
        raise OpenAIError(400, "you must provide a model parameter", param="model")
    if name not in models:
        offered = ", ".join(models) or "none"
        raise OpenAIError(
            404,
            f"The model `{name}` does not exist or is not served here (served: {offered})",
            param="model",
            code="model_not_found",
        )
    return models[name]


def _inputs(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise OpenAIError(
            400, "'input' must be a non-empty string or a non-empty list of strings", param="input"
        )
    if any(isinstance(item, int) or isinstance(item, list) for item in texts):
        raise OpenAIError(
            400, "'input' as token ids is not supported by this server; send text", param="input"
        )
    if len(texts) > MAX_INPUTS:
        raise OpenAIError(400, f"'input' holds {len(texts)} texts; the limit is {MAX_INPUTS}", param="input")
    for number, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise OpenAIError(400, f"input[{number}] must be a non-empty string", param="input")
        problem = unicode_problem(text)  # a lone surrogate: the tokenizer would fail with a 500
        if problem:
            raise OpenAIError(400, f"input[{number}]: {problem}", param="input")
    return texts


def _embed(model: ServedModel, texts: list[str], fmt: str) -> JSONResponse:
    counts = model.token_counts(texts)
    for number, count in enumerate(counts):
        if count > model.max_length:
            raise OpenAIError(
                400,
                f"This model's maximum context length is {model.max_length} tokens, "
                f"however input[{number}] has {count} tokens. Please reduce the length "
                "of the input.",
                param="input",
                code="context_length_exceeded",
            )
    vectors = np.asarray(model.worker.encode(texts), dtype="<f4")
    data = [
        {
            "object": "embedding",
            "index": n,
            "embedding": base64.b64encode(row.tobytes()).decode("ascii")
            if fmt == "base64"
            else [float(x) for x in row],
        }
        for n, row in enumerate(vectors)
    ]
    total = int(sum(counts))
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model.id,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
    )
