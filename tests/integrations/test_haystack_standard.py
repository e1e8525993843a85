"""Haystack's own document-store suite (``haystack.testing.document_store``) against
:class:`SimsearchDocumentStore`: count, write with duplicate policies, delete, filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("haystack", reason="needs simsearch[haystack]")

from haystack import Document  # noqa: E402
from haystack.document_stores.types import DocumentStore  # noqa: E402
from haystack.testing.document_store import DocumentStoreBaseTests  # noqa: E402

from simsearch.integrations.haystack import SimsearchDocumentStore  # noqa: E402


def _unit(embedding: list[float]) -> list[float]:
    row = np.asarray(embedding, dtype=np.float32)
    return (row / max(float(np.linalg.norm(row)), 1e-12)).tolist()


class TestSimsearchDocumentStore(DocumentStoreBaseTests):
    @pytest.fixture
    def document_store(self, tmp_path: Path) -> SimsearchDocumentStore:
        return SimsearchDocumentStore(tmp_path / "haystack")

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        # The store keeps embeddings as float32 unit rows (cosine): compare them so; the rest exactly.
        assert [d.id for d in received] == [d.id for d in expected]
        for got, want in zip(received, expected):
            assert (got.content, got.meta, got.score) == (want.content, want.meta, want.score)
            if want.embedding is None:
                assert got.embedding is None
            else:
                assert got.embedding is not None
                assert np.allclose(got.embedding, _unit(want.embedding), atol=1e-6)

    def test_write_documents(self, document_store: DocumentStore) -> None:
        # The default policy (NONE) is FAIL, as in Haystack's in-memory store.
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(Exception, match="already in the store"):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])
