"""The fast query path: ONNX export checked against torch, used by queries without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from simsearch import Index
from simsearch.encode import onnx_encoder as onnx_backend
from simsearch.encode import onnx_export
from simsearch.encode.torch_encoder import Encoder

TEXTS = [
    "The cat sat on the mat.",
    "서울 지하철은 편리하다.",
    "a",
    "keep bread fresh " * 200,
    "how do I keep bread from going stale?",
]


def test_onnx_runtime_is_installed():
    """A core dependency (setup.cfg): the fast path is never silently off in the test run."""
    assert onnx_backend.available()


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_distilbert"])
def test_export_matches_torch(request, fixture):
    encoder = Encoder(str(request.getfixturevalue(fixture)), max_length=64)
    directory = onnx_export.prepare(encoder)
    assert directory is not None and (directory / "model.onnx").is_file()
    fast = onnx_backend.load(
        encoder.model_id, str(encoder.model_path), encoder.pooling, encoder.max_length, "fp32"
    )
    assert isinstance(fast, onnx_backend.OnnxEncoder)
    got, cut = fast.encode_counting(TEXTS, batch_size=2)
    expected, expected_cut = encoder.encode_counting(TEXTS)
    assert cut == expected_cut == 1
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.min(np.sum(got * expected, axis=1)) >= 1 - 1e-5


def test_bundled_model_export_within_tolerance(bundled_encoder):
    directory = onnx_export.prepare(bundled_encoder)
    assert directory is not None
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["checked_cosine_distance"] <= onnx_backend.TOLERANCE
    assert meta["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]


def test_queries_take_the_fast_path_and_fall_back(tiny_bert, index_dir, monkeypatch):
    Index.build(TEXTS, "f", Encoder(str(tiny_bert)), index_dir=index_dir)
    index = Index.open("f", index_dir=index_dir)
    assert isinstance(index.encoder, onnx_backend.OnnxEncoder)
    assert index.search("The cat sat on the mat.", k=1)[0].text == "The cat sat on the mat."
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")
    assert isinstance(Index.open("f", index_dir=index_dir).encoder, Encoder)


def test_exact_indexes_query_without_thread_spinning(tiny_bert, index_dir):
    """ONNX Runtime's spinning threads starve the exact index's BLAS scan; ANN search keeps them."""
    spinning = "session.intra_op.allow_spinning"
    Index.build(TEXTS, "exact", Encoder(str(tiny_bert)), index_dir=index_dir)
    options = Index.open("exact", index_dir=index_dir).encoder._session.get_session_options()
    assert options.get_session_config_entry(spinning) == "0"
    Index.build(TEXTS, "graph", Encoder(str(tiny_bert)), index_dir=index_dir, index_type="hnsw")
    options = Index.open("graph", index_dir=index_dir).encoder._session.get_session_options()
    with pytest.raises(RuntimeError):  # not set: ONNX Runtime's default (spinning)
        options.get_session_config_entry(spinning)


def test_damaged_cache_entry_falls_back_to_torch(tiny_bert, index_dir):
    encoder = Encoder(str(tiny_bert), max_length=32)
    directory = onnx_export.prepare(encoder)
    assert directory is not None
    (directory / "model.onnx").write_bytes(b"not a model")
    Index.build(TEXTS, "d", encoder, index_dir=index_dir)  # the cache entry exists: not re-exported
    index = Index.open("d", index_dir=index_dir)
    assert isinstance(index.encoder, Encoder)  # damaged entry dropped, torch used
    assert not directory.exists()  # reading Index.encoder writes nothing
    index.search("a", k=1)  # the first search re-exports, for the next process
    assert (directory / "meta.json").is_file()
    assert isinstance(Index.open("d", index_dir=index_dir).encoder, onnx_backend.OnnxEncoder)


def test_opening_and_loading_the_encoder_write_nothing_to_the_cache(
    tiny_bert, index_dir, monkeypatch, tmp_path
):
    Index.build(TEXTS, "n", Encoder(str(tiny_bert), max_length=48), index_dir=index_dir)
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "fresh-cache"))
    index = Index.open("n", index_dir=index_dir)
    assert isinstance(index.encoder, Encoder)  # no export in this cache yet
    assert not (tmp_path / "fresh-cache" / "onnx").exists()  # (model fingerprints may be cached)
    index.search("a", k=1)
    assert list((tmp_path / "fresh-cache" / "onnx").glob("*/meta.json"))


def test_the_export_can_be_turned_off(tiny_bert, index_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "off-cache"))
    monkeypatch.setenv("SIMSEARCH_ONNX_EXPORT", "0")
    Index.build(TEXTS, "o", Encoder(str(tiny_bert), max_length=40), index_dir=index_dir)
    Index.open("o", index_dir=index_dir).search("a", k=1)
    assert not (tmp_path / "off-cache" / "onnx").exists()


def test_cold_cli_query_imports_no_torch(tiny_bert, index_dir):
    Index.build(TEXTS, "cold", Encoder(str(tiny_bert)), index_dir=index_dir)
    probe = (
        "import sys\nfrom simsearch.cli.main import main\n"
        "sys.argv = ['simsearch', 'query', 'cold', 'The cat sat on the mat.', '-k', '1', '--json']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + probe],
        capture_output=True,
        text=True,
        env={**os.environ, "SIMSEARCH_INDEX_DIR": str(index_dir)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    hit_line, modules_line = result.stdout.strip().splitlines()
    assert json.loads(hit_line)["text"] == "The cat sat on the mat."
    assert json.loads(modules_line) == []


def test_help_imports_nothing_heavy():
    probe = (
        "import sys\nfrom simsearch.cli.main import main\nsys.argv = ['simsearch', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'transformers', 'faiss', 'onnxruntime', 'numpy') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_large_fp32_calls_encode_through_the_checked_export(tiny_bert, monkeypatch, tmp_path):
    """fp32 builds run the ONNX export (checked within 1e-5 of torch) once a call is large;
    small calls, the opt-out and bf16 stay on torch; int8 runs its own export where it passed
    its check (tests/encode/test_onnx_precisions.py has the int8 path itself)."""
    import torch

    from simsearch.encode import torch_encoder

    monkeypatch.setenv("SIMSEARCH_CACHE", str(tmp_path / "cache"))
    texts = [f"sentence number {i} about {'bread ' * (i % 7)}" for i in range(40)] + TEXTS
    reference = Encoder(str(tiny_bert), max_length=64)
    expected, expected_cut = reference.encode_counting(texts)  # below the threshold: torch
    assert reference._onnx is torch_encoder._UNSET
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    encoder = Encoder(str(tiny_bert), max_length=64)
    got, cut = encoder.encode_counting(texts)
    assert isinstance(encoder._onnx, onnx_backend.OnnxEncoder)  # exported now, and used
    # as many batches at once as torch has threads, each on a one-thread session (batching.run_batches)
    assert encoder._onnx._session.get_session_options().intra_op_num_threads == 1
    assert encoder._onnx.workers == torch.get_num_threads()
    assert cut == expected_cut == 1 and got.dtype == np.float32
    assert np.min(np.sum(got * expected, axis=1)) >= 1 - 1e-5
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")
    plain = Encoder(str(tiny_bert), max_length=64)
    plain.encode(texts)
    assert plain._onnx is None
    monkeypatch.delenv("SIMSEARCH_QUERY_BACKEND")
    int8 = Encoder(str(tiny_bert), max_length=64, precision="int8")
    int8.encode(texts)
    int8_meta = onnx_backend.cache_dir(int8.model_path, int8.pooling, 64, "int8") / "meta.json"
    rejected = bool(json.loads(int8_meta.read_text(encoding="utf-8")).get("rejected"))
    assert (int8._onnx is None) == rejected  # used exactly where kept
    assert int8._onnx is None or int8._onnx.precision == "int8"
    bf16 = Encoder(str(tiny_bert), max_length=64, precision="bf16")
    bf16.encode(texts)
    assert bf16._onnx is None  # no bf16 ONNX Runtime kernels on the CPU


def test_large_calls_run_one_batch_a_torch_thread_side_by_side(tiny_bert, monkeypatch):
    """A build on N torch threads runs N batches of a one-thread session at once: same vectors."""
    import torch

    from simsearch.encode import torch_encoder

    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    texts = [f"{word} " * (n % 23 + 1) for n, word in enumerate(["bread", "cat", "지하철", "mat"] * 10)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        encoder = Encoder(str(tiny_bert), max_length=64)
        side_by_side = encoder.encode(texts, batch_size=4)
        session = encoder._onnx_session()
        assert session is not None and session.workers == 2
        session.workers = 1
        one_at_a_time = encoder.encode(texts, batch_size=4)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(side_by_side, one_at_a_time)
    encoder._onnx = None  # the torch model itself
    assert np.min(np.sum(encoder.encode(texts) * side_by_side, axis=1)) > 1 - 1e-5
