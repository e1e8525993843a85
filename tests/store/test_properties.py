"""Property-based tests (hypothesis): readers round-trip random text; random add/delete/compact
sequences keep FAISS and SQLite in agreement and match a plain dict model."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from contextlib import closing
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeEncoder
from simsearch.index import Index
from simsearch.readers import Document, ReadOptions, read_documents
from simsearch.store.generation import Store
from simsearch.store.verify import faiss_ids, verify_index

# Any character a UTF-8 text line can hold: no surrogates, no NUL, no line breaks.
_chars = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\n\r")
lines = st.lists(st.text(_chars, max_size=40), min_size=1, max_size=20)
_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_bytes(data: bytes, suffix: str, options: ReadOptions = ReadOptions()) -> list[Document]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        return list(read_documents([path], options))


def read_or_none(data: bytes, suffix: str, options: ReadOptions = ReadOptions()) -> list[Document] | None:
    """The documents, or None when the input holds none (which readers report as an error)."""
    from simsearch.errors import InputError

    try:
        return read_bytes(data, suffix, options)
    except InputError as exc:
        assert "nothing to index" in str(exc) or "empty file" in str(exc), exc
        return None


@_settings
@given(lines, st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_text_lines_round_trip(texts, newline, bom):
    data = ("\ufeff" if bom else "").encode() + newline.join(texts).encode("utf-8")
    expected = [t.strip() for t in texts if t.strip()]
    docs = read_or_none(data, ".txt")
    assert ([d.text for d in docs] if docs is not None else []) == expected
    if docs:
        assert len({d.id for d in docs}) == len(docs)


records = st.lists(
    st.tuples(
        st.text(_chars, min_size=1, max_size=12),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r"), max_size=60),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3),
            max_leaves=5,
        ),
    ),
    min_size=1,
    max_size=15,
    unique_by=lambda r: r[0],
)


@_settings
@given(records)
def test_jsonl_records_round_trip(rows):
    data = "\n".join(json.dumps({"id": i, "text": t, "extra": m}, ensure_ascii=False) for i, t, m in rows)
    docs = read_or_none(data.encode("utf-8"), ".jsonl", ReadOptions(id_field="id"))
    expected = [(i, t.strip(), {"extra": m}) for i, t, m in rows if t.strip()]
    assert ([(d.id, d.text, d.metadata) for d in docs] if docs is not None else []) == expected


@_settings
@given(records)
def test_csv_rows_round_trip(rows):
    out = io.StringIO()
    writer = csv.writer(out)  # quotes cells holding commas, quotes or line breaks
    writer.writerow(["id", "text", "tag"])
    for i, t, m in rows:
        writer.writerow([i, t, json.dumps(m)])
    docs = read_or_none(out.getvalue().encode("utf-8"), ".csv", ReadOptions(id_field="id"))
    expected = [(i, t.strip(), {"tag": json.dumps(m)}) for i, t, m in rows if t.strip()]
    assert ([(d.id, d.text, d.metadata) for d in docs] if docs is not None else []) == expected


_cell = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r\n\t"), max_size=30)


@_settings
@given(
    st.lists(
        st.tuples(_cell.filter(str.strip), _cell, _cell), min_size=1, max_size=15, unique_by=lambda r: r[0]
    )
)
def test_tsv_rows_round_trip(rows):
    """TSV does not quote: any cell without a tab or a line break is read back as written."""
    data = "\n".join(["id\ttext\ttag", *("\t".join(row) for row in rows)])
    docs = read_or_none(data.encode("utf-8"), ".tsv", ReadOptions(id_field="id"))
    expected = [(i, t.strip(), {"tag": g}) for i, t, g in rows if t.strip()]
    assert ([(d.id, d.text, d.metadata) for d in docs] if docs is not None else []) == expected


# -- store round trips ----------------------------------------------------------------------------

_ids = st.sampled_from([f"id{i}" for i in range(12)])  # a small pool: updates are frequent
_texts = st.sampled_from(["cat on mat", "fresh bread", "dog", "search engine", "서울 지하철", "x y z"])
_doc = st.tuples(_ids, _texts, st.integers(0, 2))
_batch = st.lists(_doc, min_size=1, max_size=8, unique_by=lambda d: d[0])
_op = st.one_of(
    st.tuples(st.just("add"), _batch),
    st.tuples(st.just("delete"), st.lists(_ids | st.just("ghost"), min_size=1, max_size=5)),
    st.tuples(st.just("compact"), st.none()),
)


def _as_docs(batch) -> list[Document]:
    return [Document(i, t, {"v": v}) for i, t, v in batch]


def _check_agreement(index: Index, model: dict[str, tuple[str, dict]]) -> None:
    assert {doc.id: (doc.text, doc.metadata) for doc in index.get(index.ids())} == model
    with closing(Store.open(index.path)) as store:  # the generation the index holds
        rowids = sorted(r[0] for r in store.db.execute("SELECT rowid FROM documents"))
        ids = faiss_ids(store.faiss.index)
        assert ids is not None and sorted(ids.tolist()) == rowids
        assert len(index) == len(model) == store.faiss.ntotal
        lexical_rowids = sorted(r[0] for r in store.db.execute("SELECT rowid FROM lexical"))
        assert lexical_rowids == rowids  # lexical in step
    for _doc_id, (text, _) in list(model.items())[:4]:
        hit = index.search(text, k=1, mode="dense")[0]
        assert hit.text == text and np.isclose(hit.score, 1.0, atol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batch, st.lists(_op, max_size=8))
def test_random_add_delete_compact_sequences_match_a_dict(initial, ops):
    encoder = FakeEncoder()
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.build(_as_docs(initial), Path(tmp) / "x", encoder)
        model = {i: (t, {"v": v}) for i, t, v in initial}
        for kind, arg in ops:
            if kind == "add":
                stats = index.add(_as_docs(arg))
                fresh = sum(i not in model for i, _, _ in arg)
                same = sum(model.get(i) == (t, {"v": v}) for i, t, v in arg)
                assert (stats.added, stats.unchanged, stats.updated) == (fresh, same, len(arg) - fresh - same)
                assert stats.encoded == sum(i not in model or model[i][0] != t for i, t, _ in arg)
                model.update({i: (t, {"v": v}) for i, t, v in arg})
            elif kind == "delete":
                deleted = index.delete(arg)
                known = {i for i in arg if i in model}
                assert deleted.deleted == len(known) and set(deleted.unknown) == set(arg) - known
                for i in known:
                    del model[i]
            else:
                index.compact()
            _check_agreement(index, model)
        reopened = Index.open(index.path, encoder=encoder)
        _check_agreement(reopened, model)
        assert verify_index(index.path, encoder=encoder, check_model=False).ok
        index.close()
        reopened.close()
