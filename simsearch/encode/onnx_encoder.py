"""The fast query path: an ONNX export of the index's model, run by ONNX Runtime, no torch.

A query is one short text, so what it costs is mostly fixed overhead: importing torch and
transformers (about 2 s of every cold CLI call) and torch's per-operator dispatch (about 10 ms a
query). The model is exported once, with pooling and normalisation inside the graph, to a cache
directory keyed by the model files and encoder settings; it is kept only if its vectors match the
torch encoder's within 1e-5 cosine. Queries then need only ``tokenizers`` and ``onnxruntime``.
Without ONNX Runtime, or for precisions other than fp32, the torch encoder is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simsearch import config

#: Largest cosine distance to the torch encoder's vectors an export may show to be used.
TOLERANCE = 1e-5
FORMAT = 1
_CHECK_TEXTS = [
    "How do I keep bread from going stale?",
    "a",
    "서울 지하철은 편리하다.",
    "Vitamin D supplementation and bone mineral density in older adults: a randomised trial. " * 3,
    "The cat sat on the mat.",
    "truncated " * 600,
]


def available() -> bool:
    """ONNX Runtime and tokenizers are importable (without importing them)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("tokenizers") is not None


def enabled() -> bool:
    """Fast path on unless ``SIMSEARCH_QUERY_BACKEND=torch`` (benchmarks, debugging)."""
    return config.query_backend() != "torch" and available()


cache_home = config.cache_home  # ``$SIMSEARCH_CACHE``, else ``$XDG_CACHE_HOME/simsearch``, ...


def cache_dir(model_path: str | os.PathLike[str], pooling: str, max_length: int, precision: str) -> Path:
    """Where the export of this model and these settings lives; changes when the weights do."""
    path = Path(model_path)
    stamp = []
    for file in sorted(path.glob("*")):
        if file.is_file() and file.suffix in {".safetensors", ".bin", ".json", ".txt"}:
            stat = file.stat()
            stamp.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    key = json.dumps([FORMAT, str(path.resolve()), stamp, pooling, max_length, precision])
    return cache_home() / "onnx" / hashlib.sha256(key.encode()).hexdigest()[:24]


class OnnxEncoder:
    """Encodes texts with an exported model: same vectors as the torch :class:`Encoder`."""

    def __init__(self, directory: Path, model_id: str, model_path: str, *, spin: bool = True) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        self.model_id = model_id
        self.model_path = Path(model_path)
        self.pooling: str = meta["pooling"]
        self.max_length: int = meta["max_length"]
        self.precision: str = meta["precision"]
        self.dim: int = meta["dim"]
        self.batch_size = 32
        self._pad_id: int = meta["pad_id"]
        self._inputs: list[str] = meta["inputs"]
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if not spin:
            # After each run ONNX Runtime's threads spin waiting for more work. An exact index
            # scans its vectors next with multithreaded BLAS, which they then starve: measured on
            # 2 cores, 20k exact, one query end to end 7.5 ms spinning vs 2.6 ms not (the embedding
            # alone gets ~0.4 ms slower). HNSW/IVF search runs FAISS on one thread and keeps it.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def __repr__(self) -> str:
        return f"OnnxEncoder(model={self.model_id!r}, pooling={self.pooling!r}, dim={self.dim})"

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.encode_counting(texts, **kwargs)[0]

    def encode_counting(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Any = None
    ) -> tuple[np.ndarray, int]:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts)) if texts else []
        truncated = sum(1 for e in encodings if e.overflowing)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        size = batch_size or self.batch_size
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            out[rows] = self._forward([encodings[i].ids for i in rows])
            if progress is not None:
                progress(len(rows))
        return out, truncated

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(seq) for seq in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self._session.run(None, {name: feed[name] for name in self._inputs})[0]


def load(
    model_id: str, model_path: str, pooling: str, max_length: int | None, precision: str, *, spin: bool = True
) -> OnnxEncoder | None:
    """The cached export for these encoder settings, or None (not exported, or no runtime).

    ``spin=False`` when the caller searches an exact index next (see :class:`OnnxEncoder`).
    """
    if precision != "fp32" or max_length is None or not enabled():
        return None
    directory = cache_dir(model_path, pooling, max_length, "fp32")
    if not (directory / "meta.json").is_file():
        return None
    try:
        return OnnxEncoder(directory, model_id, model_path, spin=spin)
    except Exception:  # a damaged cache entry: drop it, the torch encoder takes over
        shutil.rmtree(directory, ignore_errors=True)
        return None


def prepare(encoder: Any) -> Path | None:
    """Export ``encoder``'s model to the cache unless there already; None where it cannot be.

    Best effort by design: the torch encoder stays correct whenever this returns None. Writes
    nothing when ``SIMSEARCH_ONNX_EXPORT=0`` (see :mod:`simsearch.config`).
    """
    if getattr(encoder, "precision", None) != "fp32" or not hasattr(encoder, "_loaded") or not enabled():
        return None
    if not config.onnx_export():
        return None
    if not getattr(encoder._loaded.tokenizer, "is_fast", False) or encoder.device != "cpu":
        return None
    directory = cache_dir(encoder.model_path, encoder.pooling, encoder.max_length, "fp32")
    if (directory / "meta.json").is_file():
        return directory
    staging = directory.with_name(f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)  # a read-only or full cache only means the slower path
    except OSError:
        return None
    try:
        inputs = _export(encoder, staging / "model.onnx")
        encoder._loaded.tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        pad_id = encoder._loaded.tokenizer.pad_token_id or 0
        meta = {
            "format": FORMAT,
            "pooling": encoder.pooling,
            "max_length": encoder.max_length,
            "precision": "fp32",
            "dim": encoder.dim,
            "pad_id": pad_id,
            "inputs": inputs,
            "model": encoder.model_id,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        fast = OnnxEncoder(staging, encoder.model_id, str(encoder.model_path))
        worst = 1.0 - float(np.min(np.sum(fast.encode(_CHECK_TEXTS) * encoder.encode(_CHECK_TEXTS), axis=1)))
        if worst > TOLERANCE:
            return None
        meta["checked_cosine_distance"] = worst
        (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.replace(staging, directory)
        except OSError:  # another process exported it first
            pass
        return directory if (directory / "meta.json").is_file() else None
    except Exception:  # exporter limits for an unusual architecture: stay on torch
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export(encoder: Any, file: Path) -> list[str]:
    """Trace model + pooling + normalisation into ``file``; returns the graph's input names."""
    import torch

    from simsearch.encode.pooling import POOLERS, l2_normalize

    model, pool = encoder._loaded.model, POOLERS[encoder.pooling]
    takes_types = encoder._takes_token_types

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, *rest: Any) -> Any:
            extra = {"token_type_ids": rest[0]} if rest else {}
            outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
            return l2_normalize(pool(outputs, attention_mask).float())

    ids = torch.tensor([[encoder._loaded.tokenizer.cls_token_id or 0, 5, 6, 7]], dtype=torch.long)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])
    args = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if takes_types else ())
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about Python control flow in HF code
        torch.onnx.export(
            Embed().eval(),
            args,
            str(file),
            dynamo=False,
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=17,
        )
    return names
