"""LangChain embeddings both ways: simsearch's encoder as LangChain ``Embeddings``
(:class:`SimsearchEmbeddings`), and any LangChain ``Embeddings`` seen as a simsearch encoder
(unit float32 rows, and the manifest section that records where the vectors come from).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from simsearch.errors import install_hint

try:  # without the extra, say how to install it rather than a bare ModuleNotFoundError
    import langchain_core  # noqa: F401
except ModuleNotFoundError as _missing:
    raise ModuleNotFoundError(
        f"simsearch.integrations.langchain needs langchain-core ({_missing.name} is missing): "
        + install_hint("langchain"),
        name=_missing.name,
    ) from None

from langchain_core.embeddings import Embeddings

from simsearch.errors import InputError


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
        encoder: Any = None,
    ) -> None:
        if encoder is None:
            from simsearch.encode.torch_encoder import Encoder

            encoder = Encoder(
                model,
                pooling,
                max_length=max_length,
                batch_size=batch_size,
                device=device,
                precision=precision,
            )
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(list(texts)).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text])[0].tolist()


class EmbeddingEncoder:
    """A LangChain ``Embeddings`` seen as a simsearch encoder: unit float32 rows, and the
    manifest section that says where the vectors come from."""

    pooling = "external"
    max_length: int | None = None  # no token limit of ours applies
    precision = "external"

    def __init__(self, embedding: Embeddings, dim: int | None = None) -> None:
        self.embedding = embedding
        kind = type(embedding)
        self.class_name = f"{kind.__module__}.{kind.__qualname__}"
        self.model_id = self.model_path = f"langchain:{self.class_name}"
        self.dim: int | None = dim

    @property
    def embedding_section(self) -> dict[str, Any]:
        return {"kind": "langchain", "class": self.class_name, "dim": self.dim}

    def encode_counting(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, int]:
        vectors = self.rows(self.embedding.embed_documents(list(texts)), len(texts))
        if progress is not None:
            progress(len(texts))
        return vectors, 0

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.encode_counting(texts, **kwargs)[0]

    def rows(self, raw: Any, count: int) -> np.ndarray:
        return unit_rows(raw, count, self)


def unit_rows(raw: Any, count: int, encoder: Any) -> np.ndarray:
    """Vectors as float32 unit rows of the encoder's dimension (set on first use)."""
    if not count:
        return np.zeros((0, encoder.dim or 0), np.float32)
    matrix = np.asarray(raw, dtype=np.float32).reshape(count, -1)
    if not np.isfinite(matrix).all():
        raise InputError("the embedding returned NaN or infinite values")
    if encoder.dim is None:
        encoder.dim = int(matrix.shape[1])
    if matrix.shape[1] != encoder.dim:
        raise InputError(
            f"the embedding returned {matrix.shape[1]}-dim vectors; the index holds {encoder.dim}-dim ones"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
