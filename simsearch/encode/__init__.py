"""Text -> unit float32 vectors: model resolution, pooling, precision, the torch encoder and the ONNX query encoder.

:class:`Encoder` is the Protocol every encoder satisfies (the torch
:class:`~simsearch.encode.torch_encoder.Encoder`, the ONNX
:class:`~simsearch.encode.onnx_encoder.OnnxEncoder`, the tests' fake); the rest of the library
types its encoders with it. Importing this package loads neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

#: Called with the number of texts just encoded (progress bars).
Progress = Callable[[int], None]


@runtime_checkable
class Encoder(Protocol):
    """Texts -> float32 ``(n, dim)`` unit rows; the inner product of two rows is their cosine.

    ``model_id``, ``pooling``, ``dim`` and ``precision`` identify the vector space: an index
    accepts only an encoder whose identity matches the one it was built with.
    """

    @property
    def model_id(self) -> str: ...
    @property
    def model_path(self) -> Path: ...
    @property
    def pooling(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_length(self) -> int | None:
        """Tokens a text is cut at; None where no token limit of ours applies (an embedding
        outside simsearch)."""
        ...

    @property
    def precision(self) -> str: ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Progress | None = None
    ) -> np.ndarray: ...

    def encode_counting(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Progress | None = None
    ) -> tuple[np.ndarray, int]:
        """Like :meth:`encode`, also returning how many texts were cut at ``max_length``."""
        ...
