"""Issue #10, the store half: each bug's regression test (they fail on 9411138, before the fixes).

Bug 1 the write lock is the real directory's; bug 2 a failed ``build --force`` touches nothing;
bug 3 writes refuse damaged files they would carry forward; bug 4 vectors are finite; bug 5 the
model fingerprint; bug 10 failing disks, long names, damaged manifest types, a bad lock timeout.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from simsearch.errors import (
    IndexCorruptError,
    InputError,
    LockTimeoutError,
    ModelError,
    SimsearchError,
    StoreWriteError,
)
from simsearch.index import Index, load_encoder
from simsearch.readers import Document
from simsearch.store.locking import write_lock
from simsearch.store.verify import verify_index
from tests.fakes import FakeEncoder

DOCS = [Document(f"d{i}", f"document number {i} about bread and cats", {"i": i}) for i in range(40)]


def build(home: Path, name: str = "life", docs: list[Document] = DOCS, **kwargs) -> Index:
    return Index.build(docs, home / name, FakeEncoder(), **kwargs)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes (the lock file is not content)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def leftovers(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name
    )


def manifest_of(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def flip_byte(file: Path, where: float = 0.5) -> None:
    data = bytearray(file.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    file.write_bytes(bytes(data))


# -- bug 1: one lock per directory, whatever the spelling --------------------------------------------


def _spellings(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    (home / "current").symlink_to("life")
    other_home = home.parent / "home-alias"
    other_home.symlink_to(home)
    monkeypatch.chdir(home)
    return {
        "symlink": home / "current",
        "dot-slash": Path("./life"),
        "trailing-slash": Path("life/"),
        "absolute": (home / "life").resolve(),
        "home-alias": other_home / "life",
        "dotdot": home / "current" / ".." / "life",
    }


@pytest.mark.parametrize(
    "spelling", ["symlink", "dot-slash", "trailing-slash", "absolute", "home-alias", "dotdot"]
)
def test_two_spellings_of_one_directory_share_the_write_lock(spelling, index_dir, monkeypatch):
    build(index_dir)
    alias = _spellings(index_dir, monkeypatch)[spelling]
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "0.2")
    before = snapshot(index_dir / "life")
    with write_lock(index_dir / "life"):
        with pytest.raises(LockTimeoutError, match="is being written by another process"):
            Index.open(alias, encoder=FakeEncoder()).add([Document("new", "a new document", {})])
    assert snapshot(index_dir / "life") == before


def test_concurrent_writers_through_two_names_lose_nothing(index_dir, monkeypatch):
    build(index_dir)
    (index_dir / "current").symlink_to("life")
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "60")
    errors: list[BaseException] = []

    def churn(name: str) -> None:
        try:
            index = Index.open(index_dir / name, encoder=FakeEncoder())
            for j in range(6):
                index.add([Document(f"{name}-{j}", f"{name} document number {j}", {})])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(name,)) for name in ("life", "current")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    index = Index.open(index_dir / "life", encoder=FakeEncoder())
    ids = set(index.ids())
    assert len(index) == 52 and {f"{n}-{j}" for n in ("life", "current") for j in range(6)} <= ids
    assert verify_index(index_dir / "life", check_model=False).ok


def test_failed_builds_leave_no_lock_files_in_the_index_home(index_dir):
    index_dir.mkdir()
    for name in ("ghost", "phantom"):
        with pytest.raises(InputError):
            Index.build([], index_dir / name, FakeEncoder())
    assert list(index_dir.iterdir()) == []


# -- bug 2: a failed build --force touches nothing ----------------------------------------------------


def _newer(manifest: dict) -> dict:
    return {**manifest, "format_version": 99}


UNREADABLE = {
    "newer": lambda text: json.dumps(_newer(json.loads(text))),
    "garbage": lambda text: text[: len(text) // 2],
    "no-files": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "files"}),
    "ann-not-object": lambda text: json.dumps({**json.loads(text), "ann": "IVF"}),
}


@pytest.mark.parametrize("damage", sorted(UNREADABLE))
def test_failed_force_build_over_an_unreadable_index_touches_nothing(damage, index_dir):
    build(index_dir)
    path = index_dir / "life"
    (path / "manifest.json").write_text(UNREADABLE[damage]((path / "manifest.json").read_text()))
    before = snapshot(path)
    with pytest.raises(InputError):
        Index.build(["   "], path, FakeEncoder(), force=True)  # no documents: fails after staging
    assert snapshot(path) == before

    class Failing(FakeEncoder):
        def encode_counting(self, texts, **kwargs):
            raise ModelError("the model fell over")

    with pytest.raises(ModelError):
        Index.build(DOCS, path, Failing(), force=True)
    assert snapshot(path) == before and leftovers(index_dir) == []
    rebuilt = Index.build(DOCS[:5], path, FakeEncoder(), force=True)
    assert len(rebuilt) == 5 and verify_index(path, check_model=False).ok
    names = {p.name for p in path.iterdir()} - {".simsearch.lock"}
    assert names == {"manifest.json"} | {e["name"] for e in manifest_of(path)["files"].values()}


def test_force_build_never_reuses_the_file_names_of_an_unreadable_index(index_dir):
    build(index_dir)
    path = index_dir / "life"
    old = manifest_of(path)
    (path / "manifest.json").write_text(json.dumps(_newer(old)))
    rebuilt = Index.build(DOCS[:3], path, FakeEncoder(), force=True)
    assert rebuilt.manifest["generation"] > old["generation"]


# -- bug 3: writes verify what they carry forward --------------------------------------------------


def _damage(path: Path, what: str) -> None:
    files = manifest_of(path)["files"]
    if what == "sqlite-bytes":
        flip_byte(path / files["sqlite"]["name"])
    elif what == "faiss-bytes":
        flip_byte(path / files["faiss"]["name"], 0.9)
    elif what == "faiss-missing":
        (path / files["faiss"]["name"]).unlink()
    elif what == "sqlite-missing":
        (path / files["sqlite"]["name"]).unlink()


WRITES = {
    "add": lambda index: index.add([Document("new", "a brand new document", {}), *DOCS[:3]]),
    "add-unchanged": lambda index: index.add(DOCS),
    "delete": lambda index: index.delete(["d1"]),
    "compact": lambda index: index.compact(),
}


@pytest.mark.parametrize("what", ["sqlite-bytes", "faiss-bytes", "faiss-missing", "sqlite-missing"])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_writes_refuse_to_carry_damaged_files_forward(write, what, index_dir):
    index = build(index_dir)
    path = index_dir / "life"
    _damage(path, what)
    before = snapshot(path)
    with pytest.raises(IndexCorruptError) as caught:
        WRITES[write](index)
    message = str(caught.value)
    assert "\n" not in message and "nothing was written" in message
    assert f"simsearch verify life{' --repair' if what.startswith('faiss') else ''}`" in message
    if what.startswith("sqlite"):
        assert "--repair" not in message  # repair cannot fix the documents' file
    assert snapshot(path) == before
    assert not verify_index(path, check_model=False).ok  # the damage was not laundered


# -- bug 4: stored and incoming vectors are finite ------------------------------------------------


class NanEncoder(FakeEncoder):
    """Gives NaN for texts mentioning 'poison'."""

    def encode_counting(self, texts, **kwargs):
        vectors, cut = super().encode_counting(texts, **kwargs)
        for row, text in enumerate([texts] if isinstance(texts, str) else texts):
            if "poison" in text:
                vectors[row, 0] = np.nan
        return vectors, cut


def test_non_finite_vectors_are_refused_at_write_time(index_dir):
    with pytest.raises(ModelError, match="NaN or infinity"):
        Index.build(DOCS + [Document("p", "poison pill", {})], index_dir / "x", NanEncoder())
    assert not (index_dir / "x").exists() and leftovers(index_dir) == []
    index = Index.build(DOCS, index_dir / "x", NanEncoder())
    before = snapshot(index_dir / "x")
    with pytest.raises(ModelError, match="NaN or infinity"):
        index.add([Document("p", "poison pill", {})])
    assert snapshot(index_dir / "x") == before


def _store_nan(path: Path, doc_id: str) -> None:
    """What an older simsearch could commit: a NaN vector, in SQLite and FAISS, under valid checksums."""
    import faiss

    from simsearch.store.files import file_sha256

    manifest = manifest_of(path)
    files = manifest["files"]
    db = sqlite3.connect(path / files["sqlite"]["name"])
    nan = np.full((1, FakeEncoder.dim), np.nan, dtype=np.float32)
    db.execute("UPDATE documents SET vector = ? WHERE id = ?", (nan.astype("<f4").tobytes(), doc_id))
    rowid = db.execute("SELECT rowid FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
    db.commit()
    db.close()
    if manifest.get("faiss_vectors") != "sqlite":  # (else FAISS reads SQLite's vector when opened)
        index = faiss.read_index(str(path / files["faiss"]["name"]))
        index.remove_ids(np.array([rowid], dtype=np.int64))  # type: ignore[arg-type]  # faiss's stubs leave out remove_ids(id array)
        index.add_with_ids(nan, np.array([rowid], dtype=np.int64))
        faiss.write_index(index, str(path / files["faiss"]["name"]))
    for entry in files.values():
        entry.update(size=(path / entry["name"]).stat().st_size, sha256=file_sha256(path / entry["name"]))
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_stored_nan_is_found_refused_and_repaired(index_dir):
    build(index_dir, index_type="flat")
    path = index_dir / "life"
    _store_nan(path, "d3")
    index = Index.open(path, encoder=FakeEncoder())
    hits = index.search("bread", k=50, mode="dense")  # the damaged vector never matches by cosine
    assert all(np.isfinite(h.score) for h in hits) and "d3" not in {h.id for h in hits}
    with pytest.raises(IndexCorruptError, match="NaN or infinity.*verify --repair"):
        index.compact()
    report = verify_index(path, check_model=False)
    finite = next(c for c in report.checks if c.name == "stored vectors finite")
    assert not finite.ok and "'d3'" in finite.detail and not finite.repairable
    assert "delete those documents" in finite.detail
    assert verify_index(path, repair=True, check_model=False).repaired == []  # says, never loops
    repaired = verify_index(path, encoder=FakeEncoder(), repair=True)
    assert repaired.ok and repaired.repaired, [(c.name, c.detail) for c in repaired.problems]
    index = Index.open(path, encoder=FakeEncoder())
    assert index.search("document number 3 about bread and cats", k=1)[0].id == "d3"
    index.compact()  # nothing non-finite is left to refuse


# -- bug 5: the model fingerprint -------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    from tests.conftest import make_tiny_model

    return make_tiny_model(tmp_path / "model")


def _build_real(index_dir: Path, model_dir: Path, name: str = "m") -> Path:
    from simsearch.encode.torch_encoder import Encoder

    Index.build(DOCS[:8], index_dir / name, Encoder(str(model_dir)))
    return index_dir / name


def _replace_weights(model_dir: Path) -> None:
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(model_dir)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5)
    model.save_pretrained(model_dir)


def test_changed_model_files_are_refused_on_query_add_and_verify(index_dir, model_dir):
    path = _build_real(index_dir, model_dir)
    assert manifest_of(path)["fingerprint"]["model"]
    assert Index.open(path).search("bread", k=1)
    _replace_weights(model_dir)
    with pytest.raises(ModelError, match="not those index 'm' was built with"):
        Index.open(path).search("bread", k=1)
    before = snapshot(path)
    with pytest.raises(ModelError, match="not those index 'm' was built with"):
        Index.open(path).add(["a new text to encode"])
    assert snapshot(path) == before
    report = verify_index(path, load_encoder=load_encoder)
    fingerprint = next(c for c in report.checks if c.name == "model fingerprint")
    assert not fingerprint.ok and not fingerprint.repairable and "rebuild" in report.summary()


def test_fingerprint_cache_is_not_fooled_by_a_restored_mtime(index_dir, model_dir):
    path = _build_real(index_dir, model_dir)
    weights = next(model_dir.glob("*.safetensors"))
    stat = weights.stat()
    flip_byte(weights, 0.99)  # same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ModelError, match="not those"):
        Index.open(path).search("bread", k=1)


@pytest.mark.parametrize(
    "field,value", [("pooling", "cls"), ("precision", "int8"), ("max_length", 16), ("model", "other/model")]
)
def test_edited_model_settings_in_the_manifest_are_refused(field, value, index_dir):
    build(index_dir)
    path = index_dir / "life"
    manifest = manifest_of(path)
    (path / "manifest.json").write_text(json.dumps({**manifest, field: value}))
    with pytest.raises(IndexCorruptError, match="manifest was edited"):
        Index.open(path)
    report = verify_index(path, check_model=False)
    assert not report.ok and report.problems[0].name == "manifest"


def test_an_index_without_fingerprint_works_and_records_one_on_request(index_dir, model_dir):
    path = _build_real(index_dir, model_dir)
    manifest = manifest_of(path)
    del manifest["fingerprint"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert Index.open(path).search("bread", k=1)
    report = verify_index(path, load_encoder=load_encoder)
    check = next(c for c in report.checks if c.name == "model fingerprint")
    assert report.ok and "no fingerprint recorded" in check.detail
    recorded = verify_index(path, load_encoder=load_encoder, record_fingerprint=True)
    assert recorded.ok and manifest_of(path)["fingerprint"]["model"]
    _replace_weights(model_dir)
    assert not verify_index(path, load_encoder=load_encoder).ok


# -- bug 10: failing disks, long names, damaged manifest types --------------------------------------


def _fail_on(monkeypatch: pytest.MonkeyPatch, where: str, code: int) -> None:
    # os and sqlite3 are patched where the store calls them (the same module objects)
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if where == "fsync":
        monkeypatch.setattr(os, "fsync", refuse)
    elif where == "rename":
        monkeypatch.setattr(os, "replace", refuse)
        monkeypatch.setattr(os, "rename", refuse)
    elif where == "faiss":  # FAISS reports a failed fwrite without errno; the writer finds why
        import faiss

        from simsearch.store import faiss_file

        def faiss_refuses(*args, **kwargs):
            raise RuntimeError("Error in faiss::FileIOWriter: fwrite failed")

        monkeypatch.setattr(faiss, "write_index", faiss_refuses)
        monkeypatch.setattr(faiss_file, "_write_errno", lambda file: code)
    elif where == "sqlite":
        real = sqlite3.connect

        def tiny(*args, **kwargs):
            db = real(*args, **kwargs)
            db.execute("PRAGMA max_page_count = 3")  # SQLite's own "database or disk is full"
            return db

        monkeypatch.setattr(sqlite3, "connect", tiny)


REFUSALS = [
    (where, code)
    for where in ("fsync", "rename", "faiss")
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES)
] + [("sqlite", errno.ENOSPC)]


@pytest.mark.parametrize("where,code", REFUSALS)
@pytest.mark.parametrize("op", ["add", "build", "rebuild"])
def test_a_refused_write_is_one_line_and_leaves_the_index_as_it_was(op, where, code, index_dir, monkeypatch):
    if op != "build":
        index = build(index_dir, name="x")
    index_dir.mkdir(exist_ok=True)
    before = snapshot(index_dir)
    _fail_on(monkeypatch, where, code)
    with pytest.raises(StoreWriteError) as caught:
        if op == "add":
            index.add(
                [Document("new", "a brand new document " * 50, {}) for _ in range(1)]
                + [Document(f"n{i}", "more text " * 40, {}) for i in range(60)]
            )
        else:
            Index.build(DOCS, index_dir / "x", FakeEncoder(), force=op == "rebuild")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cannot write index 'x'")
    assert os.strerror(code) in message or "disk is full" in message
    monkeypatch.undo()
    assert snapshot(index_dir) == before and leftovers(index_dir) == []
    if op != "build":
        assert verify_index(index_dir / "x", check_model=False).ok


def test_the_faiss_write_error_names_a_full_disk(tmp_path, monkeypatch):
    import faiss

    from simsearch.store import faiss_file

    def fails(*args):
        raise RuntimeError("Error in faiss::FileIOWriter: fwrite failed")

    class Full:
        f_flag, f_bavail, f_frsize = 0, 0, 4096

    monkeypatch.setattr(faiss, "write_index", fails)
    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    with pytest.raises(OSError) as caught:
        faiss_file.FaissFile(faiss.IndexFlatIP(4), "Flat").write(tmp_path / "x.faiss")
    assert caught.value.errno == errno.ENOSPC


def test_names_too_long_for_the_file_system_are_refused_clearly(index_dir):
    name = "가" * 100  # 100 characters, 300 bytes in UTF-8
    with pytest.raises(SimsearchError, match="300 bytes in UTF-8"):
        Index.build(DOCS, name, FakeEncoder(), index_dir=index_dir)
    assert not index_dir.exists() or leftovers(index_dir) == []
    Index.build(DOCS[:2], "가" * 80, FakeEncoder(), index_dir=index_dir)  # 240 bytes fit


@pytest.mark.parametrize(
    "field,value",
    [
        ("ann", "IVF"),
        ("ann", ["x"]),
        ("dim", "384"),
        ("dim", True),
        ("count", -1),
        ("generation", "2"),
        ("model", 5),
        ("ann", {"search_params": {"nprobe": "x"}}),
        ("fingerprint", "abc"),
    ],
)
def test_type_damaged_manifest_fields_are_one_line_errors(field, value, index_dir):
    build(index_dir)
    path = index_dir / "life"
    (path / "manifest.json").write_text(json.dumps({**manifest_of(path), field: value}))
    for attempt in (
        lambda: Index.open(path),
        lambda: Index.open(path).add(["x"]),
        lambda: Index.open(path).compact(),
    ):
        with pytest.raises(IndexCorruptError) as caught:
            attempt()
        assert "\n" not in str(caught.value) and "manifest" in str(caught.value)
    assert verify_index(path, check_model=False).problems[0].name == "manifest"


def test_a_lock_timeout_that_is_not_a_number_is_a_clear_error(index_dir, monkeypatch):
    index = build(index_dir)
    for text in ("abc", "-1", "nan"):
        monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", text)
        with pytest.raises(SimsearchError, match=f"SIMSEARCH_LOCK_TIMEOUT='{text}' is not a number"):
            index.delete(["d1"])
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "5")
    assert index.delete(["d1"]).deleted == 1
