"""ONNX Runtime query path for int8 and bf16 indexes: own exports, checked, cached apart, with fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from simsearch import Index
from simsearch.encode import onnx_encoder, onnx_export
from simsearch.encode.torch_encoder import Encoder

TEXTS = ["The cat sat on the mat.", "서울 지하철은 편리하다.", "a", "keep bread fresh " * 200]


def _ops(directory: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(directory / "model.onnx")).graph.node}


def _meta(directory: Path) -> dict:
    return json.loads((directory / "meta.json").read_text(encoding="utf-8"))


@pytest.fixture
def any_int8(monkeypatch, tmp_path: Path) -> None:
    """The tiny random BERT's int8 encoders differ far more than a trained model's (0.14 cosine
    distance against 0.03): the mechanics are tested on it with any distance accepted."""
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(onnx_encoder.TOLERANCES, "int8", 1.0)


def test_int8_index_queries_through_an_int8_quantised_export(
    tiny_bert: Path, index_dir: Path, any_int8
) -> None:
    encoder = Encoder(str(tiny_bert), precision="int8", max_length=40)
    Index.build(TEXTS, "q8", encoder, index_dir=index_dir)
    fast = Index.open("q8", index_dir=index_dir).encoder
    assert isinstance(fast, onnx_encoder.OnnxEncoder) and fast.precision == "int8"
    int8_dir = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 40, "int8")
    fp32_dir = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 40, "fp32")
    assert int8_dir != fp32_dir  # fp32 and int8 exports of one model never collide
    assert _meta(int8_dir)["precision"] == "int8" and _meta(fp32_dir)["precision"] == "fp32"
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= _ops(int8_dir)  # weights really int8
    assert "MatMulInteger" not in _ops(fp32_dir)
    got, cut = fast.encode_counting(TEXTS)
    expected, expected_cut = encoder.encode_counting(TEXTS)
    assert cut == expected_cut == 1
    assert np.mean(np.sum(got * expected, axis=1)) >= 0.8  # the same model (random tiny weights: far from 1)
    hit = Index.open("q8", index_dir=index_dir).search(TEXTS[0], k=1, mode="dense")[
        0
    ]  # ONNX query, torch docs
    query = fast.encode([TEXTS[0]])[0]
    assert hit.text == TEXTS[int(np.argmax(expected @ query))]
    assert abs(hit.score - float(np.max(expected @ query))) < 1e-5 and hit.cosine == hit.score


def test_the_bundled_model_int8_export_is_within_tolerance() -> None:
    """The real default model: ONNX Runtime's int8 vectors close to torch int8's (checked at export)."""
    encoder = Encoder(precision="int8")
    directory = onnx_export.prepare(encoder)
    assert directory is not None, _meta(
        onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, encoder.max_length, "int8")
    )
    assert _meta(directory)["checked_cosine_distance"] <= onnx_encoder.TOLERANCES["int8"]
    fast = onnx_encoder.load(
        encoder.model_id, str(encoder.model_path), encoder.pooling, encoder.max_length, "int8"
    )
    assert fast is not None
    texts = ["vitamin D and bone density", "how do I keep bread from going stale?", "A man plays a guitar."]
    assert (
        np.min(np.sum(fast.encode(texts) * encoder.encode(texts), axis=1))
        >= 1 - onnx_encoder.TOLERANCES["int8"]
    )


def test_torch_backend_still_queries_int8_with_torch(
    tiny_bert: Path, index_dir: Path, monkeypatch, any_int8
) -> None:
    Index.build(TEXTS, "t8", Encoder(str(tiny_bert), precision="int8"), index_dir=index_dir)
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")
    encoder = Index.open("t8", index_dir=index_dir).encoder
    assert isinstance(encoder, Encoder) and encoder.precision == "int8"


def test_bf16_uses_the_fp32_export_only_within_its_tolerance(
    tiny_bert: Path, index_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=24)
    monkeypatch.setitem(onnx_encoder.TOLERANCES, "bf16", 1.0)  # any vectors pass
    Index.build(TEXTS, "b", encoder, index_dir=index_dir)
    fast = Index.open("b", index_dir=index_dir).encoder
    assert isinstance(fast, onnx_encoder.OnnxEncoder) and fast.precision == "bf16"
    bf16_dir = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 24, "bf16")
    fp32_dir = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 24, "fp32")
    assert (bf16_dir / "model.onnx").read_bytes() == (fp32_dir / "model.onnx").read_bytes()


def test_an_export_outside_its_tolerance_is_rejected_once_and_remembered(
    tiny_bert: Path, index_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(onnx_encoder.TOLERANCES, "int8", 0.0)  # nothing passes
    encoder = Encoder(str(tiny_bert), precision="int8", max_length=28)
    Index.build(TEXTS, "r", encoder, index_dir=index_dir)
    directory = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 28, "int8")
    meta = _meta(directory)
    assert meta["rejected"] is True and meta["checked_cosine_distance"] > 0
    assert not (directory / "model.onnx").exists()
    index = Index.open("r", index_dir=index_dir)
    assert isinstance(index.encoder, Encoder)  # torch int8, as before

    def never(*args, **kwargs):
        raise AssertionError("a rejected export was made again")

    monkeypatch.setattr(onnx_export, "_derive", never)
    assert index.search("The cat sat on the mat.", k=1)[0].text == TEXTS[0]  # first search: no retry


def test_a_broken_int8_export_falls_back_to_torch(tiny_bert: Path, index_dir: Path, any_int8) -> None:
    encoder = Encoder(str(tiny_bert), precision="int8", max_length=20)
    Index.build(TEXTS, "x", encoder, index_dir=index_dir)
    directory = onnx_encoder.cache_dir(encoder.model_path, encoder.pooling, 20, "int8")
    (directory / "model.onnx").write_bytes(b"not a model")  # ONNX Runtime cannot load it
    index = Index.open("x", index_dir=index_dir)
    assert isinstance(index.encoder, Encoder) and index.encoder.precision == "int8"
    assert index.search("a", k=1)[0].text == "a"


def test_without_onnx_runtime_int8_stays_on_torch(
    tiny_bert: Path, index_dir: Path, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_encoder, "available", lambda: False)
    Index.build(TEXTS, "n", Encoder(str(tiny_bert), precision="int8"), index_dir=index_dir)
    assert isinstance(Index.open("n", index_dir=index_dir).encoder, Encoder)
    assert not (tmp_path / "cache" / "onnx").exists()


def test_large_int8_calls_encode_through_the_checked_int8_export(tiny_bert, monkeypatch, any_int8) -> None:
    """int8 builds run ONNX Runtime's int8 export once a call is large (as fp32 builds run
    theirs); texts, cut flags and row order are the torch encoder's."""
    import torch

    from simsearch.encode import torch_encoder

    texts = [f"sentence number {i} about {'bread ' * (i % 7)}" for i in range(30)] + TEXTS
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    encoder = Encoder(str(tiny_bert), precision="int8", max_length=40)
    small, small_cut = encoder.encode_counting(texts[:5])  # a query-sized call: torch int8
    assert encoder._onnx is torch_encoder._UNSET
    got, cut = encoder.encode_counting(texts)
    fast = encoder._onnx
    assert isinstance(fast, onnx_encoder.OnnxEncoder) and fast.precision == "int8"
    assert fast._session.get_session_options().intra_op_num_threads == 1  # a batch per thread
    assert fast.workers == torch.get_num_threads()
    assert cut == 1 and small_cut == 0 and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    direct = fast.encode(texts)  # the export on its own, batched the same way
    assert np.min(np.sum(got * direct, axis=1)) >= 1 - 1e-5
    assert np.mean(np.sum(got[:5] * small, axis=1)) >= 0.8  # the same model (random tiny weights)


def _optimized_ops(model: Path, precision: str, out: Path, disabled: list[str] | None = None) -> set[str]:
    """The operators of ONNX Runtime's optimised graph, as :func:`onnx_encoder.open_session`
    builds it (``disabled``: another list of left-out rewrites instead of ``precision``'s)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(out)
    if disabled is None:
        onnx_encoder.open_session(model, precision, options)
    else:
        onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )
    return {node.op_type for node in onnx.load(str(out)).graph.node}


def test_int8_sessions_keep_the_residual_add_apart_from_its_layer_norm(
    tiny_bert: Path, tmp_path: Path, any_int8
) -> None:
    """ONNX Runtime's fused SkipLayerNormalization was the int8 graph's slowest non-GEMM kernel:
    int8 sessions leave that rewrite out (and nothing else); fp32 ones are untouched."""
    encoder = Encoder(str(tiny_bert), precision="int8", max_length=40)
    directory = onnx_export.prepare(encoder)
    assert directory is not None
    model = directory / "model.onnx"
    fused = _optimized_ops(model, "int8", tmp_path / "fused.onnx", disabled=[])
    assert "SkipLayerNormalization" in fused  # what ONNX Runtime would do on its own
    kept = _optimized_ops(model, "int8", tmp_path / "kept.onnx")
    assert "SkipLayerNormalization" not in kept and "LayerNormalization" in kept
    assert {"DynamicQuantizeMatMul", "Gelu"} <= kept  # the other fusions still happen
    assert onnx_encoder.DISABLED_OPTIMIZERS.get("fp32", []) == []
    fast = onnx_encoder.OnnxEncoder(directory, encoder.model_id, str(encoder.model_path))
    got = fast.encode(TEXTS)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_exports_trace_plain_attention_and_leave_the_encoder_as_it_was(
    tiny_bert: Path, monkeypatch, tmp_path: Path
) -> None:
    """The export traces matmul + softmax attention (not SDPA's ONNX form, which adds an IsNaN
    and Where pass over each layer's scores); the encoder keeps its own attention, and the export
    still matches it within 1e-5."""
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    encoder = Encoder(str(tiny_bert), max_length=40)
    before = encoder._loaded.model.config._attn_implementation
    directory = onnx_export.prepare(encoder)
    assert directory is not None
    assert encoder._loaded.model.config._attn_implementation == before == "sdpa"
    nodes = [node.op_type for node in onnx.load(str(directory / "model.onnx")).graph.node]
    assert "IsNaN" not in nodes
    assert nodes.count("Softmax") == encoder._loaded.config.num_hidden_layers
    assert _meta(directory)["checked_cosine_distance"] <= onnx_encoder.TOLERANCES["fp32"]


def test_a_new_export_removes_exports_of_older_formats(tiny_bert: Path, monkeypatch, tmp_path: Path) -> None:
    """After an upgrade that changes the export format the old directories are never read again:
    the next export written removes them, and nothing else (current ones, staging directories)."""
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "onnx"
    old = root / "0123456789abcdef01234567"
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"format": onnx_encoder.FORMAT - 1, "precision": "fp32"}))
    (old / "model.onnx").write_bytes(b"x" * 1000)
    staging = root / ".abc.tmp-1234abcd"  # another process's export in progress: no meta.json yet
    staging.mkdir()
    current = onnx_export.prepare(Encoder(str(tiny_bert), max_length=40))
    assert current is not None and current.parent == root
    assert not old.exists() and staging.is_dir()
    other = onnx_export.prepare(Encoder(str(tiny_bert), max_length=24))  # a second current export
    assert other is not None and other != current
    assert current.is_dir() and (current / "model.onnx").is_file()
    assert onnx_export.sweep_older_formats(root) == 0


def test_bf16_builds_without_bf16_kernels_run_the_checked_fp32_export(
    tiny_bert, monkeypatch, tmp_path, caplog
) -> None:
    """On a CPU without bf16 matrix kernels (AVX2-only: torch's bf16 products run at a quarter of
    fp32's rate there) large bf16 calls run the fp32 export, kept for bf16 only within 1e-3 of the
    torch bf16 vectors, and say so once; with the kernels they stay on torch."""
    from simsearch.encode import torch_encoder

    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    texts = [f"sentence number {i} about {'bread ' * (i % 7)}" for i in range(30)] + TEXTS
    monkeypatch.setattr(torch_encoder, "cpu_runs_bf16", lambda: True)
    native = Encoder(str(tiny_bert), precision="bf16", max_length=40, compile=False)
    native.encode(texts)
    assert native._onnx is None  # bf16 kernels here: the torch bf16 paths

    monkeypatch.setattr(torch_encoder, "cpu_runs_bf16", lambda: False)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=40, compile=False)
    small = encoder.encode(texts[:5])  # a query-sized call: torch bf16
    with caplog.at_level("WARNING", logger="simsearch"):
        got, cut = encoder.encode_counting(texts)
        encoder.encode(texts)
    fast = encoder._onnx
    assert isinstance(fast, onnx_encoder.OnnxEncoder) and fast.precision == "bf16"
    directory = onnx_export.prepare(encoder)  # the export it runs, already made and checked
    assert directory is not None and _meta(directory)["precision"] == "bf16"
    assert _meta(directory)["checked_cosine_distance"] <= onnx_encoder.TOLERANCES["bf16"]
    assert cut == 1 and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(got[:5] * small, axis=1)) >= 1 - 1e-3  # bf16's own vectors, within bf16 rounding
    said = [r.getMessage() for r in caplog.records if "no bf16 matrix kernels" in r.getMessage()]
    assert len(said) == 1 and "checked fp32 export" in said[0] and "int8" in said[0]

    caplog.clear()
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")  # no export may stand in: torch bf16, said so
    alone = Encoder(str(tiny_bert), precision="bf16", max_length=40, compile=False)
    with caplog.at_level("WARNING", logger="simsearch"):
        slow = alone.encode(texts)
    assert alone._onnx is None and np.allclose(np.linalg.norm(slow, axis=1), 1.0, atol=1e-5)
    # torch's bf16 on this random 2-layer model (its long texts round furthest: 0.993 seen)
    assert np.min(np.sum(slow * got, axis=1)) >= 0.99
    said = [r.getMessage() for r in caplog.records if "no bf16 matrix kernels" in r.getMessage()]
    assert len(said) == 1 and "a quarter of fp32's speed" in said[0]
