"""Encoder: texts -> float32 (n, dim) unit vectors with a Hugging Face transformers model.

Pipeline: tokenize once (truncating at the model's real limit) -> sort by token length so each
batch carries little padding (:mod:`simsearch.encode.batching`) -> forward under ``torch.inference_mode`` -> pool -> L2-normalise ->
restore the caller's order.

Large calls (:data:`ONNX_MIN_TEXTS` texts or more: builds, not queries) run faster paths, each
checked against this class's own vectors:

- fp32 and int8 on the CPU run the forward pass through the model's checked ONNX export (see
  :mod:`simsearch.encode.onnx_export`: the fp32 export is kept only where its vectors lie within
  1e-5 cosine of this encoder's, the int8 one within the int8 tolerance of torch's int8). fp32:
  torch's matrix products go through MKL, which takes its AVX2 path on AMD CPUs and reaches about
  half of what ONNX Runtime's AVX-512 kernels do (2048^3 GEMM, 1 thread, AMD EPYC: 109 against
  235 GFLOP/s; whole encoder ~2.5x). int8: ONNX Runtime's dynamically quantised MatMuls with its
  non-GEMM kernels are a little faster than torch's dynamic-quantised Linear layers (+0-13%) and
  closer to fp32 (on VNNI CPUs both quantise activations to 8 bits per batch; without VNNI torch
  uses 7 bits and the export was already the better one for int8 queries; benchmarks/README.md).
- bf16 on the CPU switches to a ``torch.compile``'d copy of the model once it has encoded enough
  texts to repay compiling (:mod:`simsearch.encode.compiled`); until then its large calls use a
  plain attention in place of SDPA's kernel (:mod:`simsearch.encode.attention`) and Linear
  weights prepacked for oneDNN (:mod:`simsearch.encode.packed`), each where the model gives the
  same hidden states with it. On a CPU without bf16 matrix kernels (AVX2-only: torch's bf16
  products there run at a quarter of fp32's rate) they run the fp32 export instead, where its
  vectors lie within 1e-3 cosine of this encoder's.

Tokenisation, truncation and batching stay this class's, so the texts and their cut flags are the
same either way. ``SIMSEARCH_QUERY_BACKEND=torch`` keeps the ONNX paths off;
``SIMSEARCH_COMPILE=0`` the compiled one.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch

from simsearch import config as settings
from simsearch.errors import ModelError
from simsearch.encode.attention import use_plain_attention
from simsearch.encode.batching import padded_ids, run_batches
from simsearch.encode.compiled import Compiled, wanted
from simsearch.encode.packed import use_packed_linears
from simsearch.encode.models import (
    LoadedModel,
    ModelSource,
    load_model,
    resolve_model,
    sentence_transformers_max_length,
    sentence_transformers_pooling,
)
from simsearch.encode.pooling import POOLERS, POOLING_CHOICES, l2_normalize
from simsearch.encode.precision import apply_precision, autocast, check_precision, cpu_runs_bf16
from simsearch.encode.tokens import token_ids

log = logging.getLogger("simsearch")

# Models whose position table reserves padding_idx + 1 leading slots (fairseq heritage).
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}

Progress = Callable[[int], None]
#: Smallest call that runs fp32 and int8 through the ONNX export (and counts towards compiling
#: bf16): making one (trace + check) takes a few seconds once per model, repaid by a build, not
#: by a query.
ONNX_MIN_TEXTS = 256
_UNSET = object()


class Encoder:
    """Turns texts into L2-normalised float32 vectors; inner product of two rows is their cosine.

    ``model`` is a Hugging Face id, a local directory, or None for the bundled default
    (sentence-transformers/all-MiniLM-L6-v2). ``pooling`` is ``auto``, ``pooler``, ``cls`` or
    ``mean``; ``auto`` follows the model's sentence-transformers config when it ships one, else
    uses BERT's pooler when the checkpoint has trained pooler weights, else mean pooling.
    ``precision`` is ``fp32`` (exact, the default), ``bf16`` or ``int8`` (faster, approximate;
    see :mod:`simsearch.encode.precision`). ``compile`` (bf16 on the CPU only): True compiles the
    model on the first large call, False never, None leaves it to ``SIMSEARCH_COMPILE`` (by
    default after :func:`~simsearch.encode.compiled.compile_after` texts).

    >>> enc = Encoder()
    >>> enc.encode(["a sentence"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelSource | None = None,
        pooling: str = "auto",
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        precision: str = "fp32",
        compile: bool | None = None,
    ) -> None:
        if pooling not in POOLING_CHOICES:
            raise ModelError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLING_CHOICES)}")
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, got {batch_size}")
        self.device = _check_device(device)
        self.precision = check_precision(precision)
        self._loaded: LoadedModel = load_model(resolve_model(model), self.device)
        self._loaded.model = apply_precision(self._loaded.model, self.precision, self.device)
        self.model_id = self._loaded.source.id
        self.model_path = self._loaded.source.path
        self.pooling = self._choose_pooling(pooling)
        self.max_length = self._choose_max_length(max_length)
        self.batch_size = batch_size
        self.dim = int(self._loaded.config.hidden_size)
        forward = inspect.signature(self._loaded.model.forward).parameters
        self._takes_token_types = "token_type_ids" in forward
        self._onnx: Any = _UNSET  # the fp32/int8 export's session, loaded on first large call
        self._compile = compile
        self._compiled: Compiled | None = None  # bf16: made once enough large calls came
        self._large_texts = 0  # texts encoded in large calls so far
        self._plain: bool | None = None  # bf16: plain attention for large eager calls, once decided
        self._packed: bool | None = None  # bf16: Linear weights prepacked for oneDNN, once decided
        self._settled: str | None = None  # the forward path of the last large call (settings.heap_ready)

    def __repr__(self) -> str:
        return (
            f"Encoder(model={self.model_id!r}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, dim={self.dim}, precision={self.precision!r})"
        )

    @property
    def model_positions(self) -> int:
        """How many tokens the model's position table can take."""
        config = self._loaded.config
        positions = getattr(config, "max_position_embeddings", None) or 512
        return int(positions) - _POSITION_OFFSET.get(config.model_type, 0)

    def _choose_pooling(self, pooling: str) -> str:
        if pooling == "pooler" and not self._loaded.has_pooler:
            raise ModelError(f"model {self.model_id!r} has no trained pooler; use --pooling mean or cls")
        if pooling != "auto":
            return pooling
        from_config = sentence_transformers_pooling(self.model_path)
        if from_config is not None:
            return from_config
        return "pooler" if self._loaded.has_pooler else "mean"

    def _choose_max_length(self, requested: int | None) -> int:
        if requested is not None:
            if requested < 2:
                raise ModelError(f"max length must be at least 2 tokens, got {requested}")
            return min(requested, self.model_positions)
        trained = sentence_transformers_max_length(self.model_path)
        if trained is not None:
            return min(trained, self.model_positions)
        tokenizer_limit = getattr(self._loaded.tokenizer, "model_max_length", None) or 10**9
        return int(min(tokenizer_limit, self.model_positions))

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape ``(len(texts), dim)`` with unit rows."""
        return self.encode_counting(texts, batch_size=batch_size, progress=progress)[0]

    def encode_counting(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, int]:
        """Like :meth:`encode`, also returning how many texts were cut at ``max_length``."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out, 0
        ids, truncated = self.tokenize(texts)
        large = len(texts) >= ONNX_MIN_TEXTS
        onnx = self._onnx_session() if large else None
        forward = onnx.embed_ids if onnx is not None else self._forward
        if large and onnx is None:
            self._large_texts += len(texts)
            if self._compiled is None and wanted(
                self.precision, self.device, self._large_texts, self._compile
            ):
                self._compiled = Compiled(self._loaded.model)
            if self._compiled is not None and self._compiled.active:
                forward = self._compiled_forward
            elif self.precision == "bf16" and self.device == "cpu":  # eager, or compiling failed
                self._speed_up_eager(ids)
        workers = onnx.workers if onnx is not None else 1
        fresh = large and forward.__name__ != self._settled  # a path's first large call
        if fresh:
            settings.heap_ready()  # what this path loaded (model, session) lives on
        with torch.inference_mode(), autocast(self.precision, self.device):
            run_batches(ids, batch_size or self.batch_size, forward, out, progress, workers)
        if fresh:
            self._settled = forward.__name__
            settings.heap_ready()  # and what its first batches set up (a compiled graph)
        return out, truncated

    def _speed_up_eager(self, ids: Sequence[Sequence[int]]) -> None:
        """On the first large eager bf16 call: switch the model to :mod:`simsearch.encode.attention`'s
        plain attention and to :mod:`simsearch.encode.packed`'s Linear layers, each only where
        it gives the same hidden states on a few of ``ids`` (of different lengths: padded)."""
        if self._plain is not None and self._packed is not None:
            return
        picks = sorted({0, len(ids) // 3, (2 * len(ids)) // 3, len(ids) - 1})
        inputs = self._inputs([ids[i] for i in picks])
        with torch.inference_mode(), autocast(self.precision, self.device):
            if self._plain is None:
                self._plain = use_plain_attention(self._loaded.model, inputs)
            if self._packed is None:
                self._packed = use_packed_linears(self._loaded.model, inputs)

    def _onnx_session(self) -> Any:
        """The checked fp32 or int8 ONNX export (made now if missing), or None where there is none."""
        if self._onnx is _UNSET:
            self._onnx = None
            stand_in = self._bf16_without_kernels()
            if self.device == "cpu" and (self.precision in ("fp32", "int8") or stand_in):
                from simsearch.encode import onnx_encoder, onnx_export

                if onnx_encoder.enabled() and onnx_export.prepare(self) is not None:
                    self._onnx = onnx_encoder.load(
                        self.model_id,
                        str(self.model_path),
                        self.pooling,
                        self.max_length,
                        self.precision,
                        threads=1,  # a session thread per batch, batches side by side: faster
                        workers=torch.get_num_threads(),
                    )
            if stand_in:
                log.warning(
                    "simsearch: this CPU has no bf16 matrix kernels (they need AVX-512 or AMX): %s "
                    "(--precision int8 is the faster one here)",
                    "bf16 builds run the checked fp32 export, at fp32's speed"
                    if self._onnx is not None
                    else "bf16 builds run at about a quarter of fp32's speed, with no fp32 export to "
                    "stand in (ONNX Runtime off or missing, or the export outside bf16's tolerance)",
                )
        return self._onnx

    def _bf16_without_kernels(self) -> bool:
        """A bf16 encoder on a CPU without bf16 matrix kernels (:func:`cpu_runs_bf16`): its large
        calls run the fp32 export, which is kept for bf16 only within 1e-3 cosine of this
        encoder's own vectors (the check that lets a bf16 index answer queries through it), at
        fp32's speed instead of a quarter of it. :meth:`_onnx_session` says which, once."""
        return self.precision == "bf16" and self.device == "cpu" and not cpu_runs_bf16()

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """Token ids of each text, cut at ``max_length``, and the number of texts that were cut."""
        ids, cut = self._tokenize(texts)
        return ids, len(cut)

    def cut_flags(self, texts: Sequence[str]) -> list[bool]:
        """Whether :meth:`encode` cuts each text at ``max_length`` (tokenizes, runs no model)."""
        cut = set(self._tokenize(texts)[1])
        return [i in cut for i in range(len(texts))]

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        return token_ids(self._loaded.tokenizer, texts, self.max_length)

    def _inputs(self, batch: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        ids, mask = padded_ids(batch, self._loaded.tokenizer.pad_token_id or 0)
        inputs = {
            "input_ids": torch.from_numpy(ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }
        if self._takes_token_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        return inputs

    def _forward(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        inputs = self._inputs(batch)
        outputs = self._loaded.model(**inputs)
        pooled = POOLERS[self.pooling](outputs, inputs["attention_mask"])
        return l2_normalize(pooled.float()).cpu().numpy()

    def _compiled_forward(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        assert self._compiled is not None
        outputs, mask = self._compiled(**self._inputs(batch))
        pooled = POOLERS[self.pooling](outputs, mask)[: len(batch)]  # a doubled row's copy dropped
        return l2_normalize(pooled.float()).cpu().numpy()


def _check_device(device: str) -> str:
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"unknown device {device!r}; use cpu or cuda") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but no CUDA GPU is available; use --device cpu")
    return str(parsed)
