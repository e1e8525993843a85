"""Vectors that come from outside simsearch, seen as a simsearch encoder.

The integrations (LangChain, Haystack, LlamaIndex) store vectors that a foreign embedding made:
an :class:`ExternalEncoder` gives them as unit float32 rows and names their origin in the
manifest's ``embedding`` section (``{"kind", "class", "dim"}``), so the CLI can list, export or
verify such an index but refuses queries, which need that embedding. :class:`GivenVectors` is
the encoder for documents that carry their own vectors (Haystack documents, LlamaIndex nodes):
it hands back, text by text, the vectors the caller gave for the current write or query.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from simsearch.encode import Encoder, Progress
from simsearch.errors import InputError, SimsearchError


class ExternalEncoder:
    """Texts -> unit float32 rows through ``embed_documents``, an embedding outside simsearch.

    It satisfies the :class:`~simsearch.encode.Encoder` Protocol: ``model_id`` and ``model_path``
    name the embedding (``"<kind>:<class>"``, no directory: no model files to fingerprint),
    ``pooling`` and ``precision`` are ``"external"``, ``max_length`` is None (no token limit of
    ours applies) and ``dim`` is the one given, read from the index, or learnt from the first
    vectors (0 until then).
    """

    pooling = "external"
    max_length: int | None = None
    precision = "external"

    def __init__(
        self, embed_documents: Callable[[list[str]], Any], kind: str, class_name: str, dim: int | None = None
    ) -> None:
        self.embed_documents = embed_documents
        self.kind, self.class_name = kind, class_name
        self.model_id = f"{kind}:{class_name}"
        self._dim = dim

    @property
    def model_path(self) -> Path:
        """The embedding's name as a path the manifest records; it names no directory."""
        return Path(self.model_id)

    @property
    def dim(self) -> int:
        return self._dim or 0

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    @property
    def embedding_section(self) -> dict[str, Any]:
        return {"kind": self.kind, "class": self.class_name, "dim": self._dim}

    def encode_counting(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Progress | None = None
    ) -> tuple[np.ndarray, int]:
        vectors = self.rows(self.embed_documents(list(texts)), len(texts))
        if progress is not None:
            progress(len(texts))
        return vectors, 0

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Progress | None = None
    ) -> np.ndarray:
        return self.encode_counting(texts, batch_size=batch_size, progress=progress)[0]

    def rows(self, raw: Any, count: int) -> np.ndarray:
        return unit_rows(raw, count, self)


class GivenVectors(ExternalEncoder):
    """The vectors a caller hands over with its texts: inside :meth:`giving`, encoding a text
    returns the vector given with it (texts asked for in the order given; the index skips
    unchanged documents, so a subsequence). One write or query at a time (a lock)."""

    def __init__(self, kind: str, class_name: str, dim: int | None = None) -> None:
        super().__init__(self._take, kind, class_name, dim)
        self._lock = threading.RLock()
        self._pending: list[tuple[str, Any]] = []

    @contextmanager
    def giving(self, texts: Sequence[str], vectors: Sequence[Any]) -> Iterator[None]:
        """Within the block, ``texts[i]`` encodes to ``vectors[i]``."""
        with self._lock:
            self._pending = list(zip(texts, vectors))
            try:
                yield
            finally:
                self._pending = []

    def _take(self, texts: list[str]) -> list[Any]:
        out = []
        for text in texts:
            while self._pending and self._pending[0][0] != text:
                self._pending.pop(0)
            if not self._pending:
                raise SimsearchError(
                    f"no vector was given for the text {text[:40]!r}: this index holds vectors "
                    f"from the {self.kind} embedding {self.class_name!r}; give them with the text"
                )
            out.append(self._pending.pop(0)[1])
        return out


def unit_rows(raw: Any, count: int, encoder: Encoder) -> np.ndarray:
    """Vectors as float32 unit rows of the encoder's dimension (an :class:`ExternalEncoder`
    learns it from the first vectors)."""
    if not count:
        return np.zeros((0, encoder.dim), np.float32)
    matrix = np.asarray(raw, dtype=np.float32).reshape(count, -1)
    if not np.isfinite(matrix).all():
        raise InputError("the embedding returned NaN or infinite values")
    if not encoder.dim and isinstance(encoder, ExternalEncoder):
        encoder.dim = int(matrix.shape[1])
    if matrix.shape[1] != encoder.dim:
        raise InputError(
            f"the embedding returned {matrix.shape[1]}-dim vectors; the index holds {encoder.dim}-dim ones"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
