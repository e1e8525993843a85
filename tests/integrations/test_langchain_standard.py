"""LangChain's own standard vector-store suite (sync and async) against SimsearchVectorStore."""

from __future__ import annotations

from pathlib import Path
from typing import Generator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from simsearch.integrations.langchain import SimsearchVectorStore


class TestSimsearchVectorStoreStandard(VectorStoreIntegrationTests):
    """Empty store on disk per test, with the suite's DeterministicFakeEmbedding (a foreign one)."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Generator[VectorStore, None, None]:
        store = SimsearchVectorStore(self.get_embeddings(), tmp_path / "lc-index", index_type="flat")
        try:
            yield store
        finally:
            store.delete()


class TestSimsearchVectorStoreInTemporaryDirectory(VectorStoreIntegrationTests):
    """The same suite with no path: the store lives in a temporary directory of its own."""

    @pytest.fixture()
    def vectorstore(self) -> Generator[VectorStore, None, None]:
        yield SimsearchVectorStore(self.get_embeddings())
