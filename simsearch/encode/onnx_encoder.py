"""The fast query path: an ONNX export of the index's model, run by ONNX Runtime, no torch.

A query is one short text, so what it costs is mostly fixed overhead: importing torch and
transformers (about 2 s of every cold CLI call) and torch's per-operator dispatch (about 10 ms a
query). The model is exported once, with pooling and normalisation inside the graph, to a cache
directory keyed by the model files, encoder settings and precision (see
:mod:`simsearch.encode.onnx_export`); it is kept only if its vectors match the torch encoder's of
the index's precision within :data:`TOLERANCES`. Queries then need only ``tokenizers`` and
``onnxruntime``. Without ONNX Runtime, or without a kept export, the torch encoder is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simsearch import config
from simsearch.encode.batching import padded_ids, run_batches

#: Largest cosine distance to the torch encoder's vectors of the same precision an export may
#: show (worst of a fixed set of check texts) to be used. fp32: the same computation. int8: each
#: int8 encoder errs on its own (torch's, without VNNI, quantises activations to 7 bits and lies
#: up to 0.04 from fp32; ONNX Runtime's to 8 bits, ~0.01 from fp32), so the two may differ by
#: about the sum; retrieval and STS quality through this path are measured in
#: benchmarks/README.md. bf16: the fp32 export answers for a bf16 index only where it is this
#: close to the index's torch bf16 vectors (bf16 lies ~1.5e-4 from fp32).
TOLERANCES = {"fp32": 1e-5, "int8": 0.06, "bf16": 1e-3}
TOLERANCE = TOLERANCES["fp32"]
#: 2: traced with the plain matmul + softmax attention (1: torch's SDPA, whose ONNX form adds
#: ``IsNaN``/``Where`` passes over every score matrix). 3: int8 exports run ONNX's ``Attention``
#: operator where it gives the same outputs (:mod:`simsearch.encode.onnx_attention`); a format 2
#: int8 export would otherwise be kept as it was.
FORMAT = 3
#: ONNX Runtime graph rewrites left out, per precision. ``SkipLayerNormFusion`` joins each
#: residual add to the layer norm after it; in the int8 graph (where the add follows a
#: ``DynamicQuantizeMatMul``) the fused CPU kernel took 17% of the encoder's time, against ~4%
#: for the add and layer norm apart: 2,048 corpus sentences, 1 thread, AMD EPYC (Zen 5),
#: ONNX Runtime 1.32, 745 against 859 sentences/s with the same vectors (mean cosine to fp32
#: 0.99187 either way). The fp32 graph has no such fusion to leave out.
DISABLED_OPTIMIZERS: dict[str, list[str]] = {"int8": ["SkipLayerNormFusion"]}


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

    def __init__(
        self,
        directory: Path,
        model_id: str,
        model_path: str,
        *,
        spin: bool = True,
        threads: int | None = None,
        workers: int = 1,
    ) -> None:
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
        self.workers = max(1, workers)  # batches run at once (batching.run_batches)
        self._settled = False  # config.heap_ready() called after the first call
        self._pad_id: int = meta["pad_id"]
        self._inputs: list[str] = meta["inputs"]
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:  # the torch encoder's setting (a Ray actor keeps to its core)
            options.intra_op_num_threads = threads
        if not spin:
            # After each run ONNX Runtime's threads spin waiting for more work. An exact index
            # scans its vectors next with multithreaded BLAS, which they then starve: measured on
            # 2 cores, 20k exact, one query end to end 7.5 ms spinning vs 2.6 ms not (the embedding
            # alone gets ~0.4 ms slower). HNSW/IVF search runs FAISS on one thread and keeps it.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = open_session(directory / "model.onnx", self.precision, options)

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
        ids = [e.ids for e in encodings]
        run_batches(ids, batch_size or self.batch_size, self.embed_ids, out, progress, self.workers)
        if not self._settled:  # the session was set up in __init__ and has now run
            self._settled = True
            config.heap_ready()
        return out, truncated

    def cut_flags(self, texts: Sequence[str]) -> list[bool]:
        """Whether :meth:`encode` cuts each text at ``max_length`` (tokenizes, runs no model)."""
        return [bool(e.overflowing) for e in self._tokenizer.encode_batch(list(texts))]

    def embed_ids(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors of already tokenized texts (special tokens included, within ``max_length``)."""
        ids, mask = padded_ids(batch, self._pad_id)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self._session.run(None, {name: feed[name] for name in self._inputs})[0]


def open_session(model: Path, precision: str, options: Any) -> Any:
    """An ONNX Runtime CPU session of ``model`` with ``precision``'s rewrites left out."""
    import onnxruntime

    return onnxruntime.InferenceSession(
        str(model),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS.get(precision, []),
    )


def load(
    model_id: str,
    model_path: str,
    pooling: str,
    max_length: int | None,
    precision: str,
    *,
    spin: bool = True,
    threads: int | None = None,
    workers: int = 1,
) -> OnnxEncoder | None:
    """The cached export for these encoder settings, or None (not exported, or no runtime).

    ``spin=False`` when the caller searches an exact index next (see :class:`OnnxEncoder`);
    ``threads`` caps ONNX Runtime's threads (its default: one per core); ``workers``: batches
    of a call run at once (:func:`~simsearch.encode.batching.run_batches`).
    """
    if precision not in TOLERANCES or max_length is None or not enabled():
        return None
    directory = cache_dir(model_path, pooling, max_length, precision)
    if not (directory / "model.onnx").is_file():  # not exported, or rejected (meta.json only)
        return None
    try:
        return OnnxEncoder(directory, model_id, model_path, spin=spin, threads=threads, workers=workers)
    except Exception:  # a damaged cache entry: drop it, the torch encoder takes over
        shutil.rmtree(directory, ignore_errors=True)
        return None
