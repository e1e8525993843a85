"""The one exception family of simsearch.

Every error a user can cause or fix is a :class:`SimsearchError` whose message says what went
wrong, where (file and line when there is one) and what to do. The CLI maps them to ``Error: ...``
and exit code 1; nothing here imports click.
"""

from __future__ import annotations


def install_hint(extra: str) -> str:
    """How to install an extra: from the checkout (simsearch is not on a package index)."""
    return f"pip install -e '.[{extra}]' in the simsearch checkout"


class SimsearchError(Exception):
    """Base class: a user-facing error with an actionable one-line message."""


class InputError(SimsearchError):
    """A source file or stdin could not be read as documents (names file and line)."""


class ModelError(SimsearchError):
    """A model could not be resolved or loaded, or does not fit the request."""


class IndexNotFoundError(SimsearchError):
    """No index of that name or path exists."""


class IndexExistsError(SimsearchError):
    """An index of that name exists and ``--force`` was not given."""


class IndexCorruptError(SimsearchError):
    """An index directory is missing files, holds damaged ones, or is of a foreign format."""


class QueryError(SimsearchError):
    """A query request is invalid (empty query, k < 1, ...)."""


class UnknownFieldError(QueryError):
    """A metadata filter names a field no document of the index has (``field``)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[type[UnknownFieldError], tuple[str, str]]:
        return type(self), (str(self), self.field)  # pickled (Ray) with its field


class LockTimeoutError(SimsearchError):
    """Another process holds the index's write lock for longer than we were willing to wait."""


class ShardUnavailableError(SimsearchError):
    """A shard's worker (a Ray actor) died or did not answer; it is restarted, so retry later."""


class StoreWriteError(SimsearchError):
    """The disk refused a write (full, read-only, no permission); the index was left as it was."""
