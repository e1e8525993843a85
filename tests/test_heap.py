"""The heap freeze (simsearch.config): processes simsearch runs move what an encoder set up out of
the garbage collector's full passes; a library user's process is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simsearch import config
from simsearch.encode import torch_encoder
from simsearch.encode.torch_encoder import Encoder

TEXTS = [f"sentence number {i} about {'bread ' * (i % 7)}" for i in range(40)]


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """gc.freeze calls, recorded instead of made; the process-wide switch off to begin with."""
    import gc

    calls: list[str] = []
    monkeypatch.setattr(config, "_freeze_heap", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    return calls


def test_only_a_process_that_asked_is_frozen(freezes: list[str]) -> None:
    config.heap_ready()
    assert freezes == []  # a library user's process: untouched
    config.freeze_heap_when_ready()
    assert freezes == []  # asking freezes nothing yet
    config.heap_ready()
    assert freezes == ["freeze"]


def test_an_encoder_settles_around_each_new_path_s_first_large_call(
    tiny_bert, monkeypatch: pytest.MonkeyPatch, freezes: list[str]
) -> None:
    """Before the first large call of a forward path (what it loaded) and after it (what its
    first batches set up, a compiled graph say); never for small calls, nor again on that path."""
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")  # the torch model's own forward first
    config.freeze_heap_when_ready()
    encoder = Encoder(str(tiny_bert), max_length=64)
    encoder.encode(TEXTS[:3])  # a query-sized call
    assert freezes == []
    first = encoder.encode(TEXTS)
    assert len(freezes) == 2 and encoder._onnx is None
    assert np.array_equal(encoder.encode(TEXTS), first)  # the same path again: nothing more
    assert len(freezes) == 2
    monkeypatch.delenv("SIMSEARCH_QUERY_BACKEND")
    encoder._onnx = torch_encoder._UNSET  # next large call: the fp32 export's session, a new path
    encoder.encode(TEXTS)
    assert encoder._onnx is not None
    # two more around the call (the export's own checks run ONNX encoders, which settle too)
    assert len(freezes) >= 4
    settled = len(freezes)
    encoder.encode(TEXTS)
    assert len(freezes) == settled


def test_an_onnx_encoder_settles_after_its_first_call(
    tiny_bert, monkeypatch: pytest.MonkeyPatch, freezes: list[str]
) -> None:
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    session = Encoder(str(tiny_bert), max_length=64)._onnx_session()
    assert session is not None
    config.freeze_heap_when_ready()
    session.encode(TEXTS[:2])
    session.encode(TEXTS)
    assert freezes == ["freeze"]


def test_ray_encoder_actors_ask_for_it(tiny_bert, freezes: list[str]) -> None:
    import torch

    from simsearch.scale.pipeline import EncodeActor, EncoderSpec

    threads = torch.get_num_threads()
    try:
        actor = EncodeActor(EncoderSpec(str(tiny_bert), max_length=64), threads)
    finally:
        torch.set_num_threads(threads)
    assert config._freeze_heap and actor.encoder is not None


_PROBE = """
import atexit, gc, sys
import importlib
cli = importlib.import_module("simsearch.cli.main")
atexit.register(lambda: print("frozen", gc.get_freeze_count(), file=sys.stderr))
entry = sys.argv.pop(1)
sys.argv[0] = "simsearch"
getattr(cli, entry)()
"""


@pytest.mark.parametrize(("entry", "frozen"), [("run", True), ("main", False)])
def test_the_simsearch_command_freezes_once_its_encoder_is_set_up(
    tiny_bert, tmp_path: Path, entry: str, frozen: bool
) -> None:
    """``simsearch`` (``run``) freezes its heap during a build; the click group itself, which
    tests invoke in their own process, does not."""
    source = tmp_path / "corpus.txt"
    source.write_text("\n".join(f"line {i} about {'bread ' * (i % 5)}" for i in range(300)), encoding="utf-8")
    env = dict(os.environ, SIMSEARCH_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-c", _PROBE, entry, "build", str(source), "--name", "heap"]
    command += ["--model", str(tiny_bert), "--max-length", "64", "--index-dir", str(tmp_path / "indexes")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Built index 'heap'" in done.stdout
    count = int(done.stderr.strip().splitlines()[-1].split()[-1])
    assert (count > 0) is frozen, done.stderr
