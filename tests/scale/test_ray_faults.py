"""A Ray encoder worker SIGKILLed mid-build: the build completes with the right index (Ray restarts
the actor and retries its batch) or fails with one clear error leaving the previous index as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from simsearch import Index, SimsearchError
from simsearch.readers import ReadOptions, read_documents
from simsearch.scale.build import EncoderSpec, RayOptions, ray_build
from tests.scale.helpers import assert_same_index

WORDS = "the cat sat on mat dog is good bread fresh stale search engine query fast slow".split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model: str):
    root = tmp_path_factory.mktemp("kill")
    source = root / "big.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {"id": f"k{i}", "text": " ".join(WORDS[(i * k + i) % len(WORDS)] for k in range(1, 12))}
            )
            + "\n"
            for i in range(30000)  # long enough that the latest kill (3 s in) still finds encoding
            # under way (10,000 ended first on the 4-CPU test cluster, in a clean-clone CI run)
        ),
        encoding="utf-8",
    )
    from simsearch.encode.torch_encoder import Encoder

    options = ReadOptions(id_field="id")
    Index.build(read_documents([str(source)], options), root / "expected", Encoder(tiny_model), shards=2)
    return root, source, options


def encoder_worker_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "EncodeActor" in line]


@pytest.mark.parametrize("delay", [0.0, 1.0, 3.0])
def test_killed_encoder_worker_mid_build(ray_cluster, setup, tiny_model: str, delay: float) -> None:
    root, source, options = setup
    target = root / f"index-{delay}"
    previous = Index.build(["an older index"], target, _encoder(tiny_model), shards=2)
    before = (target / "manifest.json").read_bytes()
    outcome: dict[str, object] = {}

    def build() -> None:
        try:
            outcome["index"] = ray_build(
                [str(source)],
                target,
                EncoderSpec(tiny_model, batch_size=16),
                RayOptions("auto", workers=2),
                read_options=options,
                shards=2,
                force=True,
            )
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome["error"] = exc

    thread = threading.Thread(target=build)
    thread.start()
    deadline, killed = time.monotonic() + 180, None
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        pids = encoder_worker_pids()
        if pids:
            time.sleep(delay)
            try:
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            except ProcessLookupError:
                continue
        time.sleep(0.05)
    thread.join(600)
    assert not thread.is_alive()
    assert killed is not None, "no encoder worker was seen to kill"
    if "error" in outcome:  # a clear one-line error, and the previous index untouched
        error = outcome["error"]
        assert isinstance(error, SimsearchError) and "\n" not in str(error), repr(error)
        assert (target / "manifest.json").read_bytes() == before
        assert len(previous.search("older", k=3)) == 1
    else:
        assert_same_index(root / "expected", target)
    assert not list(target.parent.glob(f".{target.name}.tmp-*"))
    assert Index.open(target).verify().ok


def _encoder(model: str):
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(model)
