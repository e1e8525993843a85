"""``simsearch add --device``: same meaning and checks as ``build --device``; nothing written on error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.encode.torch_encoder import Encoder
from simsearch.errors import ModelError
from simsearch.index import Index


@pytest.fixture
def notes(index_dir: Path, tiny_bert: Path) -> Path:
    Index.build(
        ["the cat sat on the mat", "keep bread fresh"], "notes", Encoder(str(tiny_bert)), index_dir=index_dir
    )
    return index_dir / "notes"


def _files(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if not p.name.endswith(".lock")
    }


def test_add_on_the_cpu_device(notes: Path, tmp_path: Path) -> None:
    source = tmp_path / "more.txt"
    source.write_text("a brand new note\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["add", "notes", str(source), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.stdout and "3 documents" in result.stdout


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("warp-drive", "unknown device 'warp-drive'; use cpu or cuda"),
        pytest.param(
            "cuda",
            "no CUDA GPU is available; use --device cpu",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_a_bad_device_fails_like_build_and_writes_nothing(
    notes: Path, tmp_path: Path, tiny_bert: Path, device: str, message: str
) -> None:
    source = tmp_path / "more.txt"
    source.write_text("a brand new note\n", encoding="utf-8")
    before = _files(notes)
    runner = CliRunner()
    added = runner.invoke(main, ["add", "notes", str(source), "--device", device])
    built = runner.invoke(
        main, ["build", str(source), "--name", "other", "--model", str(tiny_bert), "--device", device]
    )
    for result in (added, built):
        assert result.exit_code == 1, result.output
        assert result.stderr.strip().splitlines() == [f"Error: {result.stderr.strip()[7:]}"]
        assert message in result.stderr and "Traceback" not in result.output
    assert _files(notes) == before


def test_the_library_checks_the_device_before_reading_any_input(notes: Path) -> None:
    def never_read():
        raise AssertionError("input read before the device was checked")
        yield "unreachable"

    with pytest.raises(ModelError, match="unknown device"):
        Index.open(notes).add(never_read(), device="warp-drive")
