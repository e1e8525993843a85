"""`simsearch build --ray --tune-queries`: the tuning queries reach every shard, as locally."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from simsearch.cli.main import main


def test_ray_build_tunes_every_shard_on_the_queries(
    ray_cluster, index_dir: Path, tmp_path: Path, tiny_model: str
) -> None:
    source = tmp_path / "docs.txt"
    source.write_text(
        "".join(f"the cat number {i} sat on mat {i % 7}\n" for i in range(200)), encoding="utf-8"
    )
    asked = tmp_path / "asked.txt"
    asked.write_text("a cat on a mat\nwhere did the cat sit\n", encoding="utf-8")
    args = [str(source), "--model", tiny_model, "--index-type", "hnsw", "--index-dir", str(index_dir)]
    result = CliRunner().invoke(
        main,
        [
            "build",
            *args,
            "--name",
            "r",
            "--shards",
            "2",
            "--ray",
            "--workers",
            "1",
            "--tune-queries",
            str(asked),
        ],
    )
    assert result.exit_code == 0, result.output
    top = json.loads((index_dir / "r" / "manifest.json").read_text())
    parts = [index_dir / "r" / part["dir"] / "manifest.json" for part in top["shards"]["parts"]]
    assert len(parts) == 2
    for part in parts:
        assert json.loads(part.read_text())["ann"]["tuned_on"] == {"kind": "queries", "n": 2}
