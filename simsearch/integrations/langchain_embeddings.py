"""LangChain embeddings both ways: simsearch's encoder as LangChain ``Embeddings``
(:class:`SimsearchEmbeddings`), and any LangChain ``Embeddings`` seen as a simsearch encoder
(unit float32 rows, and the manifest section that records where the vectors come from).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from simsearch.integrations.external import ExternalEncoder, unit_rows

if TYPE_CHECKING:
    from simsearch.encode import Encoder

__all__ = ["EmbeddingEncoder", "SimsearchEmbeddings", "unit_rows"]


class SimsearchEmbeddings(Embeddings):
    """simsearch's encoder as LangChain ``Embeddings``: unit float vectors, cosine = dot product.

    Arguments as for :class:`~simsearch.encode.torch_encoder.Encoder` (``model`` defaults to the
    bundled all-MiniLM-L6-v2), or an already loaded ``encoder``.
    """

    def __init__(
        self,
        model: str | None = None,
        pooling: str = "auto",
        *,
        max_length: int | None = None,
        precision: str = "fp32",
        batch_size: int = 32,
        device: str = "cpu",
        encoder: Encoder | None = None,
    ) -> None:
        if encoder is None:
            from simsearch.encode.torch_encoder import Encoder as TorchEncoder

            encoder = TorchEncoder(
                model,
                pooling,
                max_length=max_length,
                batch_size=batch_size,
                device=device,
                precision=precision,
            )
        self.encoder: Encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(list(texts)).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text])[0].tolist()


class EmbeddingEncoder(ExternalEncoder):
    """A LangChain ``Embeddings`` seen as a simsearch encoder: unit float32 rows, and the
    manifest section that says where the vectors come from."""

    def __init__(self, embedding: Embeddings, dim: int | None = None) -> None:
        self.embedding = embedding
        kind = type(embedding)
        super().__init__(
            embedding.embed_documents, "langchain", f"{kind.__module__}.{kind.__qualname__}", dim
        )
