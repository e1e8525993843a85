"""int8 exports run ONNX's Attention operator where it gives the plain graph's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from simsearch.encode import onnx_attention, onnx_encoder, onnx_export
from simsearch.encode.torch_encoder import Encoder

TEXTS = ["The cat sat on the mat.", "서울 지하철은 편리하다.", "a", "keep bread fresh " * 40]


@pytest.fixture
def cache(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(onnx_encoder.TOLERANCES, "int8", 1.0)  # random tiny weights: see test_onnx_precisions
    return tmp_path


def _ops(directory: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(directory / "model.onnx")).graph.node]


def _int8(tiny_bert: Path) -> tuple[Encoder, Path]:
    encoder = Encoder(str(tiny_bert), precision="int8", max_length=40)
    directory = onnx_export.prepare(encoder)
    assert directory is not None
    return encoder, directory


def test_the_int8_export_runs_the_attention_operator_with_the_plain_graphs_vectors(
    tiny_bert: Path, cache: Path
) -> None:
    encoder, directory = _int8(tiny_bert)
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    ops = _ops(directory)
    assert meta["attention"] == "operator" and ops.count("Attention") == 2  # one per layer
    assert "Softmax" not in ops and "Transpose" not in ops
    # the plain quantised graph, derived again beside it, gives the same vectors
    base = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 40, "fp32")
    plain = cache / "plain"
    plain.mkdir()
    for name in ("meta.json", "tokenizer.json"):
        (plain / name).write_bytes((directory / name).read_bytes())
    inputs, attention = onnx_export._derive(base, plain / "model.onnx", "int8")  # no heads: not fused
    assert attention == "traced" and "Softmax" in _ops(plain)
    fused = onnx_encoder.OnnxEncoder(directory, encoder.model_id, str(tiny_bert))
    traced = onnx_encoder.OnnxEncoder(plain, encoder.model_id, str(tiny_bert))
    assert np.max(np.abs(fused.encode(TEXTS) - traced.encode(TEXTS))) <= onnx_attention.SAME
    assert onnx_attention.same_outputs(plain / "model.onnx", directory / "model.onnx", inputs, "int8")


def test_a_rewrite_with_other_outputs_is_not_kept(tiny_bert: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_attention, "same_outputs", lambda *args: False)
    _, directory = _int8(tiny_bert)
    assert json.loads((directory / "meta.json").read_text(encoding="utf-8"))["attention"] == "traced"
    assert "Attention" not in _ops(directory) and "Softmax" in _ops(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["meta.json", "model.onnx", "tokenizer.json"]


def test_only_the_exact_attention_pattern_is_rewritten(tiny_bert: Path, cache: Path) -> None:
    encoder, _ = _int8(tiny_bert)
    base = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 40, "fp32")
    model = onnx.load(str(base / "model.onnx"))
    inputs = json.loads((base / "meta.json").read_text(encoding="utf-8"))["inputs"]
    for heads, same in ((2, True), (4, False)):  # the tiny model has 2 heads
        fused = onnx_attention.fuse_attention(onnx.load(str(base / "model.onnx")), heads)
        assert fused is not None
        onnx.save(fused, str(cache / f"fused-{heads}.onnx"))
        assert (
            onnx_attention.same_outputs(base / "model.onnx", cache / f"fused-{heads}.onnx", inputs, "fp32")
            is same
        )
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    scores = next(node for node in model.graph.node if softmax.input[0] in node.output)
    scores.op_type = "Sub"  # the mask no longer added: not the pattern
    assert onnx_attention.fuse_attention(model, 2) is None


def test_a_graph_onnx_runtime_cannot_run_counts_as_different(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert not onnx_attention.same_outputs(broken, broken, ["input_ids", "attention_mask"], "int8")
