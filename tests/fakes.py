"""The one fake encoder of the test suite (tests/conftest.py and tests/store/crash_driver.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class FakeEncoder:
    """Deterministic bag-of-words hashing encoder: same words -> close vectors; no model needed.

    Stands in where the model is not the point (store, readers, CLI plumbing).
    """

    model_id = "fake/bag-of-words"
    model_path = Path("/nonexistent/fake-model")
    pooling = "mean"
    max_length = 64
    dim = 16
    precision = "fp32"

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.encode_counting(texts, **kwargs)[0]

    def encode_counting(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Any = None
    ) -> tuple[np.ndarray, int]:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        truncated = 0
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            truncated += len(words) > self.max_length
            for word in words[: self.max_length]:
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % self.dim] += 1.0 + digest[1] / 255.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm > 0 else out[row]
        if progress is not None:
            progress(len(texts))
        return out, truncated
