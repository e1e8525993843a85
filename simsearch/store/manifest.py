"""The manifest: an index's commit point, read and validated here, written here.

``manifest.json`` is a JSON object. :class:`Manifest` is its typed, frozen view: the keys every
index has are typed attributes; every key, known or not, is kept in :attr:`Manifest.raw` and
written back unchanged, so a manifest written by a newer simsearch (or by a branch adding its own
section: a model fingerprint, a lexical index, shards, ...) round-trips without losing anything.

To add a typed field: add the attribute below and one line to
:func:`~simsearch.store.manifest_schema.typed_fields` (what each key must hold lives in
:mod:`simsearch.store.manifest_schema`). Until the rest of the code reads a key through an
attribute, ``manifest["key"]`` and ``manifest.get(key)`` still work (a Manifest is a read-only
Mapping over :attr:`raw`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping

from simsearch.errors import IndexCorruptError, IndexNotFoundError
from simsearch.store.files import write_json_atomic
from simsearch.store.fingerprint import KEY as FINGERPRINT
from simsearch.store.fingerprint import check_identity
from simsearch.store.manifest_schema import REQUIRED, FileEntry, check_types, files_section, typed_fields

if TYPE_CHECKING:
    from simsearch.encode import Encoder

FORMAT = "simsearch-index"
#: The newest index format this simsearch reads and writes. 1: the FAISS file is self-contained;
#: 2: the FAISS file leaves its exact vectors to SQLite (:data:`VECTORS_KEY`), so a simsearch that
#: reads only 1 refuses it instead of searching an index without vectors. A generation whose FAISS
#: file is self-contained (compressed index types) is still written as 1.
FORMAT_VERSION = 2
SELF_CONTAINED_FORMAT_VERSION = 1
#: Manifest key saying where the FAISS file's exact vectors are: "sqlite" (the documents table's
#: blobs, put back into FAISS when the index is opened); absent: in the FAISS file.
VECTORS_KEY = "faiss_vectors"
MANIFEST = "manifest.json"
EXACT_FACTORY = "IDMap2,Flat"  # the FAISS factory of an exact index (older manifests name none)


@dataclass(frozen=True)
class ModelIdentity:
    """The model a vector space comes from: vectors are comparable when model, pooling, dimension
    and precision agree (:func:`identity_mismatch`); ``max_length`` (where texts are cut) and
    ``model_files`` (the fingerprint of the model's files, where one is recorded) tell two
    encoders of one model id apart. The one spelling of "which model" that the manifest, the
    server (which indexes share an encoder), evaluation reports and exports use.
    """

    model: str
    pooling: str
    dim: int
    precision: str = "fp32"
    max_length: int | None = None
    model_files: str | None = None

    #: The manifest keys that say where an index's vectors come from, copied as written into a
    #: Parquet export's metadata (the whole ``fingerprint`` section; a foreign ``embedding``).
    MANIFEST_KEYS: ClassVar[tuple[str, ...]] = (
        "model",
        "fingerprint",
        "pooling",
        "precision",
        "dim",
        "max_length",
        "embedding",
    )

    @classmethod
    def of_manifest(cls, manifest: Mapping[str, Any]) -> ModelIdentity:
        """The identity a manifest records (a sharded index's top manifest too); defaults are
        what older manifests meant by a missing key."""
        section = manifest.get(FINGERPRINT)
        files = section.get("model") if isinstance(section, Mapping) else None
        max_length = manifest.get("max_length")
        return cls(
            str(manifest["model"]),
            str(manifest["pooling"]),
            int(manifest["dim"]),
            str(manifest.get("precision") or "fp32"),
            max_length if isinstance(max_length, int) else None,
            files if isinstance(files, str) else None,
        )

    def report_fields(self) -> dict[str, Any]:
        """What an evaluation report names about its model."""
        return {
            "model": self.model,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "precision": self.precision,
        }


@dataclass(frozen=True, eq=False)
class Manifest(Mapping[str, Any]):
    """A validated manifest. Build with :meth:`from_dict`; :meth:`to_dict` gives every key back."""

    format_version: int
    name: str
    model: str
    model_path: str
    pooling: str
    dim: int
    max_length: int | None
    precision: str
    index_type: str
    count: int
    generation: int
    truncated: int
    files: Mapping[str, FileEntry]
    ann: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "manifest") -> Manifest:
        """Validate ``data`` (a parsed manifest.json); ``source`` names it in error messages."""
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise IndexCorruptError(f"{source}: incomplete manifest (missing {', '.join(missing)})")
        files = files_section(source, data["files"])
        try:
            typed = typed_fields(data)
        except (TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{source}: malformed manifest ({exc}); rebuild the index") from None
        return cls(**typed, files=files, raw=MappingProxyType(dict(data)))

    def to_dict(self) -> dict[str, Any]:
        """Every key as read or written, unknown ones included (a deep-enough copy for JSON)."""
        copy: dict[str, Any] = json.loads(json.dumps(dict(self.raw)))
        return copy

    def replace(self, **changes: Any) -> Manifest:
        """A new Manifest with some keys changed (or added); the others kept."""
        return Manifest.from_dict({**self.raw, **changes})

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity.of_manifest(self)

    @property
    def factory(self) -> str:
        """The FAISS factory string the index was built with (older manifests: the exact one)."""
        return str(self.ann.get("factory") or EXACT_FACTORY)

    # Read-only Mapping over raw: keeps ``manifest["key"]`` working for code not yet typed.
    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and dict(self.raw) == dict(other.raw)

    __hash__ = None  # type: ignore[assignment]


def read_manifest(path: Path) -> Manifest:
    """Parse and check an index's manifest (not its data files)."""
    if not os.path.isdir(path):  # (never raises, not even for a name too long for the disk)
        raise IndexNotFoundError(f"index {path} not found; run `simsearch list` to see indexes")
    file = path / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise IndexCorruptError(f"{path} is not a simsearch index (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{file}: unreadable manifest ({exc}); rebuild the index") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexCorruptError(f"{file}: not a simsearch manifest (foreign file)")
    version = data.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} was written by a newer simsearch (index format {version}, this one reads "
            f"{FORMAT_VERSION}); upgrade simsearch"
        )
    if version not in (SELF_CONTAINED_FORMAT_VERSION, FORMAT_VERSION):
        raise IndexCorruptError(
            f"{file}: unsupported index format version {version!r} (this "
            f"simsearch reads {SELF_CONTAINED_FORMAT_VERSION} and {FORMAT_VERSION}); rebuild the index"
        )
    if data.get(VECTORS_KEY, "sqlite") != "sqlite" or version != format_version_of(data):
        raise IndexCorruptError(
            f"{file}: index format {version} does not match {VECTORS_KEY}={data.get(VECTORS_KEY)!r}; "
            "the manifest is damaged: restore it or rebuild the index"
        )
    manifest = Manifest.from_dict(data, str(file))
    check_types(file, data)
    check_identity(file, data)
    return manifest


def write_manifest(directory: Path, fields: Mapping[str, Any]) -> Manifest:
    """Validate ``fields`` as a manifest and swap it in atomically (the commit point of a write)."""
    manifest = Manifest.from_dict(
        {**fields, "format": FORMAT, "format_version": format_version_of(fields)}, str(directory / MANIFEST)
    )
    write_json_atomic(directory / MANIFEST, manifest.to_dict())
    return manifest


def vectors_in_sqlite(manifest: Mapping[str, Any]) -> bool:
    """Whether the FAISS file of this generation leaves its vectors to SQLite (format 2)."""
    return manifest.get(VECTORS_KEY) == "sqlite"


def format_version_of(fields: Mapping[str, Any]) -> int:
    """The format a generation with these manifest fields is written as: the oldest that reads it."""
    return FORMAT_VERSION if vectors_in_sqlite(fields) else SELF_CONTAINED_FORMAT_VERSION


def identity_of(encoder: Encoder) -> ModelIdentity:
    """The vector space an encoder writes into (its files are not fingerprinted here)."""
    # (getattr: encoders written before the Protocol named these keep working)
    return ModelIdentity(
        encoder.model_id,
        encoder.pooling,
        encoder.dim,
        getattr(encoder, "precision", "fp32"),
        getattr(encoder, "max_length", None),
    )


def identity_mismatch(built: ModelIdentity, given: ModelIdentity) -> str | None:
    """The one model-identity check: None when vectors of ``given`` may join an index of ``built``,
    else what differs, as a phrase for an error message."""
    if (built.model, built.pooling, built.dim) != (given.model, given.pooling, given.dim):
        return (
            f"built with model {built.model!r}, pooling {built.pooling!r}, dim {built.dim}; "
            f"the encoder is {given.model!r}, {given.pooling!r}, {given.dim}: "
            "vectors from different models cannot be mixed"
        )
    if built.precision != given.precision:
        return (
            f"built at precision {built.precision!r} but the encoder runs at "
            f"{given.precision!r}; use Encoder(..., precision={built.precision!r})"
        )
    return None
