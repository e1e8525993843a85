"""Regression tests of issue 23 ("edges, round 3"): bad input at the new doors and friendlier
messages. Each test names the issue item it covers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.index import Index
from simsearch.readers import Document

DOCS = [
    Document("d1", "the cat sat on the mat", {"lang": "en"}),
    Document("d2", "how to keep bread fresh", {"lang": "en"}),
    Document("d3", "서울 지하철은 편리하다", {"lang": "ko"}),
]


def run(*args: object, input: str | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def plain(index_dir: Path, fake_encoder) -> Path:
    return Index.build(DOCS, "plain", fake_encoder, index_dir=index_dir).path


@pytest.fixture
def sharded(index_dir: Path, fake_encoder) -> Path:
    return Index.build(DOCS, "sharded", fake_encoder, index_dir=index_dir, shards=2).path


# -- item 1: an export never lands inside an index ------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_refuses_every_destination_inside_an_index(
    plain: Path, sharded: Path, index_dir: Path, fmt: str
) -> None:
    shard = next(p for p in sharded.iterdir() if p.is_dir())
    before = files_of(index_dir)
    for name, target in [
        ("plain", plain / "manifest.json"),
        ("plain", next(plain.glob("docs-*.sqlite"))),
        ("plain", plain / "index-000009.faiss"),
        ("plain", plain / "new.parquet"),
        ("sharded", sharded / "manifest.json"),
        ("sharded", shard / "manifest.json"),
        ("plain", sharded / "export.jsonl"),  # another index's directory
        ("plain", index_dir / "plain"),  # the index directory's own name
        ("plain", index_dir / ".plain.tmp-12345678"),  # the home's staging names
    ]:
        done = run("export", name, "--format", fmt, "--output", target, "--force")
        assert done.exit_code == 1, (target, done.output)
        assert "Error: refusing to export to" in done.output and "outside the index home" in done.output
        assert done.output.count("\n") == 1 and "Traceback" not in done.output
    assert files_of(index_dir) == before  # nothing overwritten, nothing added
    assert len(Index.open("plain").ids()) == 3


def test_export_beside_the_index_home_still_works(plain: Path, index_dir: Path, tmp_path: Path) -> None:
    done = run("export", "plain", "--format", "jsonl", "--output", tmp_path / "out.jsonl")
    assert done.exit_code == 0, done.output
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3


# -- item 2: a file as parent directory; no pyarrow ----------------------------------------------


def test_export_under_a_regular_file_is_one_line(plain: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for fmt in ("parquet", "jsonl"):
        done = run("export", "plain", "--format", fmt, "--output", tmp_path / "afile" / "x.out")
        assert done.exit_code == 1, done.output
        assert done.output.startswith("Error: cannot write") and "Not a directory" in done.output
        assert done.output.count("\n") == 1


def test_export_without_pyarrow_is_one_line(plain: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    done = run("export", "plain", "--output", tmp_path / "x.parquet")
    assert done.exit_code == 1
    assert done.output.startswith("Error: Parquet and Arrow need pyarrow") and done.output.count("\n") == 1
    assert not list(tmp_path.glob("*x.parquet*"))


# -- item 12: export's file as a second argument ---------------------------------------------------


def test_export_with_the_file_as_an_argument_points_to_output(plain: Path, tmp_path: Path) -> None:
    done = run("export", "plain", "x.parquet")
    assert done.exit_code == 2
    assert "give --output x.parquet" in done.output


# -- item 3: --vectors-field compares the model files' fingerprint ----------------------------------


def test_vectors_of_other_weights_of_the_same_model_id_are_refused(
    tiny_bert: Path, index_dir: Path, tmp_path: Path
) -> None:
    import shutil

    model = shutil.copytree(tiny_bert, tmp_path / "model")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in DOCS))
    assert run("build", corpus, "--name", "a", "--model", model, "--id-field", "id").exit_code == 0
    out = tmp_path / "a.parquet"
    assert run("export", "a", "--vectors", "--output", out).exit_code == 0
    same = run("build", out, "--name", "same", "--model", model, "--vectors-field", "vector")
    assert same.exit_code == 0, same.output  # the same files: accepted
    config = model / "config.json"  # the same model id (its path), other files
    config.write_text(json.dumps(json.loads(config.read_text()), indent=1))
    other = run(
        "build", out, "--name", "b", "--model", model, "--vectors-field", "vector", "--id-field", "id"
    )
    assert other.exit_code == 1, other.output
    assert "other files of model" in other.output and "without --vectors-field" in other.output
    assert not (index_dir / "b").exists()


# -- item 8: sharded write errors name the index the user typed ------------------------------------


def test_a_failed_sharded_write_names_the_index_not_a_fork(
    sharded: Path, index_dir: Path, fake_encoder, monkeypatch
) -> None:
    import errno

    from simsearch.store.write import writer
    from simsearch.store.manifest import read_manifest
    from simsearch.store.write.sharded import add_sharded, compact_sharded, delete_sharded

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.StoreWriter, "_commit", full_disk)
    shard = next(p for p in sharded.iterdir() if p.is_dir())
    writes = [
        lambda: add_sharded(sharded, [Document("d1", "changed")], read_manifest(shard), lambda: fake_encoder),
        lambda: delete_sharded(sharded, ["d1", "d2", "d3"]),
        lambda: compact_sharded(sharded),
    ]
    for write in writes:
        with pytest.raises(Exception) as caught:
            write()
        message = str(caught.value)
        assert "cannot write index 'sharded' (shard " in message, message
        assert "shard-0" not in message  # no fork directory: it is gone once the write failed
    assert {p.name for p in sharded.iterdir() if p.is_dir()} == {
        p.name for p in sharded.iterdir() if p.is_dir() and p.name.endswith(".g000001")
    }


def test_a_renamed_index_is_named_as_typed_when_its_model_changed(index_dir: Path, fake_encoder) -> None:
    from simsearch.store.manifest import read_manifest
    from simsearch.store.write.updates import check_same_model

    path = Index.build(DOCS, "typed", fake_encoder, index_dir=index_dir).path
    stored = read_manifest(path)
    other = stored.replace(name="old-name", pooling="cls")
    with pytest.raises(Exception, match="index 'typed' is now"):
        check_same_model(other, stored, path.name)


# -- item 9: an add that would store every text twice stops -----------------------------------------


@pytest.mark.parametrize("shards", [None, 2])
def test_add_without_id_field_after_a_build_with_one_stops(
    tiny_bert: Path, index_dir: Path, tmp_path: Path, shards: int | None
) -> None:
    corpus = tmp_path / "sample.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in DOCS))
    extra = ["--shards", shards] if shards else []
    assert (
        run("build", corpus, "--name", "s", "--model", tiny_bert, "--id-field", "id", *extra).exit_code == 0
    )
    again = run("add", "s", corpus)
    assert again.exit_code == 1, again.output
    assert "3 of the first 3 documents repeat texts index 's' already holds" in again.output
    assert "--id-field" in again.output and "--allow-duplicates" in again.output
    assert again.output.count("\n") == 1
    assert len(Index.open("s")) == 3
    assert run("add", "s", corpus, "--id-field", "id").exit_code == 0  # the right way: all unchanged
    assert len(Index.open("s")) == 3
    forced = run("add", "s", corpus, "--allow-duplicates")
    assert forced.exit_code == 0, forced.output
    assert len(Index.open("s")) == 6


def test_adding_a_renamed_copy_of_a_text_file_stops(tiny_bert: Path, index_dir: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the cat sat on the mat\nkeep bread fresh\nthe dog is good\n")
    assert run("build", notes, "--name", "n", "--model", tiny_bert).exit_code == 0
    copy = tmp_path / "notes-copy.txt"
    copy.write_text(notes.read_text() + "one new line\n")
    done = run("add", "n", copy)
    assert done.exit_code == 1 and "3 of the first 4 documents repeat texts" in done.output
    assert len(Index.open("n")) == 3
    (tmp_path / "new.txt").write_text("a new line\nthe cat sat on the mat\nanother one\n")
    fine = run("add", "n", tmp_path / "new.txt")  # one repeated text among new ones: added
    assert fine.exit_code == 0, fine.output
    assert len(Index.open("n")) == 6
    assert run("add", "n", notes).exit_code == 0  # the same file again: ids match, nothing added
    assert len(Index.open("n")) == 6


# -- item 11: progress with a total, and a line while the model loads --------------------------------


def test_progress_counts_the_input_and_says_the_model_is_loading(
    tiny_bert: Path, index_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from simsearch.cli import options

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"x{n}", "text": f"text {n}"}) + "\n\n" for n in range(7)))
    totals: list = []
    real = options.progress_bar.__init__

    def spy(self, label, total=None):
        totals.append(total)
        real(self, label, total)

    monkeypatch.setattr(options.progress_bar, "__init__", spy)
    monkeypatch.setattr(options, "interactive", lambda: True)  # as on a terminal
    done = CliRunner().invoke(main, ["build", str(corpus), "--name", "p", "--model", str(tiny_bert)])
    assert done.exit_code == 0, done.output
    assert f"loading model {tiny_bert} ..." in done.stderr
    assert "encoding:   0%|" in done.stderr and "0/7 [" in done.stderr  # a total: percent, count, ETA
    assert "loading model" not in done.stdout and "%" not in done.stdout
    more = tmp_path / "more.txt"
    more.write_text("one\n\ntwo\nthree\n")
    assert CliRunner().invoke(main, ["add", "p", str(more)]).exit_code == 0
    assert totals == [7, 3]


def test_documents_are_counted_where_that_is_cheap(tmp_path: Path) -> None:
    from simsearch.readers.counting import count_documents
    from simsearch.readers import ReadOptions

    (tmp_path / "a.txt").write_text("one\n\n two \n")
    (tmp_path / "b.csv").write_text('text,id\n"multi\nline",1\nplain,2\n')
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.md").write_text("# x")
    (tmp_path / "d" / "y.bin").write_text("no")
    files = [tmp_path / "a.txt", tmp_path / "b.csv", tmp_path / "d"]
    assert count_documents(files) == 2 + 2 + 1
    assert count_documents([tmp_path / "a.txt"], ReadOptions(split="lines")) == 2
    assert count_documents([tmp_path / "a.txt"], ReadOptions(split="sentences")) is None
    assert count_documents(["-"]) is None


# -- item 12: messages that say what to do ------------------------------------------------------------


def test_a_pdf_is_named_as_such(index_dir: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\x00\x00endobj\n")
    for extra in ([], ["--format", "txt"]):
        done = run("build", pdf, "--name", "p", *extra)
        assert done.exit_code == 1, done.output
        assert "PDF files are not read" in done.output and "convert it to a UTF-8 text file" in done.output
        assert "pdftotext" in done.output and "--format txt" not in done.output
    renamed = tmp_path / "paper.bin"  # the first bytes tell, whatever the name
    renamed.write_bytes(pdf.read_bytes())
    assert "PDF files are not read" in run("build", renamed, "--name", "p", "--format", "txt").output
    assert not index_dir.exists() or not list(index_dir.iterdir())


def test_a_missing_index_suggests_the_closest_name_and_build(plain: Path) -> None:
    for command in (
        ["query", "plian", "x"],
        ["info", "plian"],
        ["verify", "plian"],
        ["export", "plian"],
        ["delete", "plian", "d1"],
        ["add", "plian", "x.txt"],
        ["compact", "plian"],
    ):
        done = run(*command)
        assert done.exit_code == 1, (command, done.output)
        assert "index 'plian' not found" in done.output and "did you mean 'plain'?" in done.output
        assert "simsearch build SOURCE --name plian" in done.output
    far = run("query", "zzz", "x")
    assert "did you mean" not in far.output and "simsearch build SOURCE --name zzz" in far.output


def test_the_langchain_module_without_its_extra_says_how_to_install(monkeypatch) -> None:
    for module in [m for m in sys.modules if m.startswith(("langchain_core", "simsearch.integrations.lang"))]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    with pytest.raises(
        ModuleNotFoundError, match=r"pip install -e '\.\[langchain\]' in the simsearch checkout"
    ):
        import simsearch.integrations.langchain  # noqa: F401


def test_an_existing_name_is_refused_before_a_ray_cluster_starts(
    plain: Path, tmp_path: Path, monkeypatch
) -> None:
    import simsearch.scale.cluster as cluster

    def no_ray(*args, **kwargs):
        raise AssertionError("the name must be checked before Ray is touched")

    monkeypatch.setattr(cluster, "import_ray", no_ray)
    (tmp_path / "a.txt").write_text("hello\n")
    done = run("build", tmp_path / "a.txt", "--name", "plain", "--ray=local")
    assert done.exit_code == 1, done.output
    assert "index 'plain' already exists" in done.output and "--force" in done.output


# -- item 13: info, --help summaries and option words -------------------------------------------------


def test_info_prints_shard_parts_readably(sharded: Path) -> None:
    done = run("info", "sharded")
    assert done.exit_code == 0, done.output
    parts = [line for line in done.output.splitlines() if line.startswith("shards.parts")]
    assert len(parts) == 2 and parts[0].startswith("shards.parts[0]: dir shard-000.g000001, count ")
    assert "{" not in done.output and "'dir'" not in done.output


def test_help_summaries_are_whole_sentences() -> None:
    from simsearch.cli.options import summary

    import click

    for group in (main, main.commands["eval"]):
        assert isinstance(group, click.Group)
        listing = run(*([] if group is main else ["eval"]), "--help").output
        for name, command in group.commands.items():
            words = summary(command)
            assert words.endswith((".", ")")) and "..." not in words[-3:], (name, words)
            assert " ".join(words.split()[-2:]) in " ".join(listing.split()), (name, listing)
    assert "serve            Serve indexes NAME... over HTTP" in run("--help").output


@pytest.mark.parametrize("option", ["--pooling", "--format", "--split", "--batch-size"])
def test_build_options_have_words(option: str) -> None:
    command = main.commands["build"]
    (param,) = [p for p in command.params if option in getattr(p, "opts", ())]
    assert param.help and len(param.help.split()) >= 8, option
