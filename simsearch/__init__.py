"""simsearch: semantic similarity search over your text, from the shell and from Python.

    >>> from simsearch import Index
    >>> index = Index.build(["The cat sat on the mat.", "서울 지하철은 편리하다."], "demo")
    >>> index.search("where did the cat sit?", k=1)

The heavy modules (torch, transformers, faiss) load on first use of a name, so importing the
package, and the CLI's ``--help``, stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from simsearch.errors import (
    IndexCorruptError,
    IndexExistsError,
    IndexNotFoundError,
    InputError,
    LockTimeoutError,
    ModelError,
    QueryError,
    ShardUnavailableError,
    SimsearchError,
)

__version__ = "0.1.0"

_LAZY = {
    "Encoder": "simsearch.encode.torch_encoder",
    "Index": "simsearch.index",
    "Hit": "simsearch.index",
    "Document": "simsearch.readers",
    "ReadOptions": "simsearch.readers",
    "read_documents": "simsearch.readers",
}

__all__ = [
    "Document",
    "Encoder",
    "Hit",
    "Index",
    "IndexCorruptError",
    "IndexExistsError",
    "IndexNotFoundError",
    "InputError",
    "LockTimeoutError",
    "ModelError",
    "QueryError",
    "ReadOptions",
    "ShardUnavailableError",
    "SimsearchError",
    "__version__",
    "read_documents",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simsearch' has no attribute {name!r}")
