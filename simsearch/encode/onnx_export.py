"""Writing the ONNX exports the fast query path runs (see :mod:`simsearch.encode.onnx_encoder`).

One export per model, settings and precision, each in its own cache directory:

- ``fp32``: the torch model traced with pooling and normalisation inside the graph, attention as
  plain ``matmul -> softmax -> matmul`` (torch's SDPA traces to extra ``IsNaN``/``Where`` passes
  over the scores: int8 +7%, fp32 +2% without them, 2,048 corpus sentences, 1 thread); kept if
  its vectors match the torch encoder's within 1e-5 cosine.
- ``int8``: the fp32 export quantised by ONNX Runtime's dynamic quantisation, as the torch int8
  encoder is: int8 weights with one symmetric scale per output channel for every MatMul with a
  constant weight (the Linear layers; attention products stay fp32), activations quantised per
  batch at run time; each layer's attention core as ONNX's ``Attention`` operator where that
  gives the same outputs (:mod:`simsearch.encode.onnx_attention`: +3-6%). Kept if its vectors
  match the torch int8 encoder's (which made the index's document vectors) within
  :data:`~simsearch.encode.onnx_encoder.TOLERANCES`.
- ``bf16``: the fp32 export itself, used for a bf16 index only where its vectors match the torch
  bf16 encoder's within the bf16 tolerance.

An export that misses its tolerance is remembered as rejected (a ``meta.json`` without a model),
so later processes go straight to torch instead of checking again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from simsearch import config
from simsearch.encode.onnx_encoder import FORMAT, TOLERANCES, OnnxEncoder, cache_dir, enabled

_CHECK_TEXTS = [
    "How do I keep bread from going stale?",
    "a",
    "서울 지하철은 편리하다.",
    "Vitamin D supplementation and bone mineral density in older adults: a randomised trial. " * 3,
    "The cat sat on the mat.",
    "truncated " * 600,
    "Which sugar substitute raises blood glucose the least?",
    "A man is playing a guitar on stage.",
]


def prepare(encoder: Any) -> Path | None:
    """Export ``encoder``'s model to the cache unless there already; None where it cannot be.

    Best effort by design: the torch encoder stays correct whenever this returns None. Writes
    nothing when ``SIMSEARCH_ONNX_EXPORT=0`` (see :mod:`simsearch.config`).
    """
    precision = getattr(encoder, "precision", None)
    if precision not in TOLERANCES or not hasattr(encoder, "_loaded") or not enabled():
        return None
    if not config.onnx_export():
        return None
    if not getattr(encoder._loaded.tokenizer, "is_fast", False) or encoder.device != "cpu":
        return None
    directory = cache_dir(encoder.model_path, encoder.pooling, encoder.max_length, precision)
    if (directory / "meta.json").is_file():
        return directory if _usable(directory) else None
    base = None if precision == "fp32" else _fp32_export(encoder)
    if precision != "fp32" and base is None:
        return None
    staging = directory.with_name(f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)  # a read-only or full cache only means the slower path
    except OSError:
        return None
    try:
        attention = "traced"
        if base is None:
            inputs = _export(encoder, staging / "model.onnx")
            encoder._loaded.tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        else:
            heads = getattr(encoder._loaded.model.config, "num_attention_heads", None)
            inputs, attention = _derive(base, staging / "model.onnx", precision, heads)
            shutil.copyfile(base / "tokenizer.json", staging / "tokenizer.json")
        meta = {
            "format": FORMAT,
            "pooling": encoder.pooling,
            "max_length": encoder.max_length,
            "precision": precision,
            "dim": encoder.dim,
            "pad_id": encoder._loaded.tokenizer.pad_token_id or 0,
            "inputs": inputs,
            "attention": attention,
            "model": encoder.model_id,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        fast = OnnxEncoder(staging, encoder.model_id, str(encoder.model_path))
        worst = 1.0 - float(np.min(np.sum(fast.encode(_CHECK_TEXTS) * encoder.encode(_CHECK_TEXTS), axis=1)))
        meta["checked_cosine_distance"] = worst
        meta["tolerance"] = TOLERANCES[precision]
        if worst > TOLERANCES[precision]:  # remembered, so no later process checks again
            meta["rejected"] = True
            (staging / "model.onnx").unlink()
        (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.replace(staging, directory)
        except OSError:  # another process exported it first
            pass
        sweep_older_formats(directory.parent)
        return directory if _usable(directory) else None
    except Exception:  # exporter limits for an unusual architecture: stay on torch
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sweep_older_formats(root: Path) -> int:
    """Remove the exports under ``root`` that an earlier simsearch wrote in an older format
    (this version never reads them: the format is part of each directory's key); returns how
    many went. Directories without a readable ``meta.json`` (another process's staging) stay."""
    removed = 0
    for entry in root.iterdir() if root.is_dir() else ():
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("format"), int) and meta["format"] < FORMAT:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _usable(directory: Path) -> bool:
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return not meta.get("rejected") and (directory / "model.onnx").is_file()


def _fp32_export(encoder: Any) -> Path | None:
    """The fp32 export of ``encoder``'s model and settings, made from a fresh fp32 copy of the
    model where missing (the int8 and bf16 exports start from it)."""
    base = cache_dir(encoder.model_path, encoder.pooling, encoder.max_length, "fp32")
    if (base / "meta.json").is_file():
        return base if _usable(base) else None
    from simsearch.encode.models import ModelSource

    try:
        # The encoder's own class, not an import of torch_encoder: that module exports through
        # this one (fp32 builds), and the two must not import each other.
        fp32 = type(encoder)(
            ModelSource(encoder.model_id, Path(encoder.model_path)),
            encoder.pooling,
            max_length=encoder.max_length,
        )
    except Exception:  # the model directory went away since: no fast path this time
        return None
    return prepare(fp32)


def _derive(base: Path, file: Path, precision: str, heads: int | None = None) -> tuple[list[str], str]:
    """The ``precision`` model from the fp32 export in ``base``; returns the graph's input names
    and how its attention runs (``traced``, or ``operator`` where int8's is ONNX's ``Attention``:
    :mod:`simsearch.encode.onnx_attention`, kept only where it gives the same outputs)."""
    inputs: list[str] = json.loads((base / "meta.json").read_text(encoding="utf-8"))["inputs"]
    if precision == "bf16":
        try:
            os.link(base / "model.onnx", file)  # same bytes: share them where the file system can
        except OSError:
            shutil.copyfile(base / "model.onnx", file)
        return inputs, "traced"
    _quantize(base / "model.onnx", file)
    if heads is None:
        return inputs, "traced"
    import onnx

    from simsearch.encode.onnx_attention import fuse_attention, same_outputs

    rewritten, fused = file.with_name("attention-fp32.onnx"), file.with_name("attention.onnx")
    try:
        model = fuse_attention(onnx.load(str(base / "model.onnx")), heads)
        if model is None:
            return inputs, "traced"
        onnx.save(model, str(rewritten))
        _quantize(rewritten, fused, {"DefaultTensorType": onnx.TensorProto.FLOAT})
        if not same_outputs(file, fused, inputs, precision):
            return inputs, "traced"
        os.replace(fused, file)
        return inputs, "operator"
    except Exception:  # an onnx without the opset, a graph the converter rejects: the plain one
        return inputs, "traced"
    finally:
        rewritten.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)


def _quantize(source: Path, target: Path, extra: dict[str, Any] | None = None) -> None:
    """ONNX Runtime's dynamic int8 quantisation of ``source`` into ``target`` (see the module)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs "consider pre-processing" advice through the root logger (whose first use also
    # installs a handler on it): off for this call only.
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                source,
                target,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                reduce_range=False,
                weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True, **(extra or {})},
            )
    finally:
        logging.disable(disabled)


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
    attention = getattr(model.config, "_attn_implementation", None)
    plain = attention not in (None, "eager") and hasattr(model, "set_attn_implementation")
    try:
        if plain:
            model.set_attn_implementation("eager")
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
    finally:
        if plain:
            model.set_attn_implementation(attention)  # the encoder's own forward is unchanged
    return names
