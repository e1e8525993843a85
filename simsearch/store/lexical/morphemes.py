"""Korean content morphemes for the lexical side, by the kiwipiepy morphological analyzer.

The optional extra ``simsearch[korean]`` (kiwipiepy, Apache-2.0, with its bundled model). Kiwi
takes ~3 s and ~100 MB to load its model, so one instance is made per process, on the first
Korean text, under a lock; kiwipiepy >= 0.22 makes a ``Kiwi`` object safe to call from several
threads at once (its changelog: "nogil Python에 대응하여 Kiwi 객체가 멀티스레드에 안전하도록 코드
개선"), which the server's search threads rely on. A batch (:func:`content_morphemes_many`)
runs on Kiwi's own worker threads, which release the GIL.

Kept: the morphemes that carry meaning (see :data:`CONTENT_TAGS`); dropped: particles, endings,
affixes, copulas, auxiliary verbs and symbols (they are what differs between "서울에서" and
"서울로"). Latin words and digits are left to the word path of :mod:`simsearch.store.lexical.analyzer`.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from typing import Any, Iterable

from simsearch.errors import SimsearchError

INSTALL_HINT = (
    "the Korean analyzer needs kiwipiepy, which is not installed: from the simsearch checkout run "
    "`pip install -e '.[korean]'` (or `pip install kiwipiepy`)"
)

# Sejong tags (kiwipiepy's): nouns (common, proper, bound), numerals, pronouns, verb and
# adjective stems, determiners, adverbs, conjunctive adverbs, interjections, roots, Hanja.
# Irregular stems come tagged "VV-I", "VA-R", ...: the part before "-" is compared.
CONTENT_TAGS = frozenset("NNG NNP NNB NR NP VV VA MM MAG MAJ IC XR SH".split())
# Derived words split into their base ("고마움" -> 고맙, "건강히" -> 건강), so that a noun
# or adverb made from a word meets that word: KorQuAD 96.04 -> 96.09, the KorSTS paraphrase
# sets (test, dev, train) level or better (docs/evaluation.md).
SPLIT_COMPLEX = True
HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff]")

_lock = threading.Lock()
_kiwi: Any = None


def available() -> bool:
    """Whether kiwipiepy is installed (without importing it)."""
    return importlib.util.find_spec("kiwipiepy") is not None


def version() -> str | None:
    """kiwipiepy's version (recorded in the manifest for reports), None when not installed."""
    if not available():
        return None
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("kiwipiepy")
    except PackageNotFoundError:  # importable but not installed as a distribution
        return "unknown"


def require() -> None:
    """Raise the one-line install hint when kiwipiepy is missing."""
    if not available():
        raise SimsearchError(INSTALL_HINT)


def _analyzer() -> Any:
    """The process's one Kiwi, made and warmed on first use."""
    global _kiwi
    if _kiwi is None:
        with _lock:
            if _kiwi is None:
                require()
                from kiwipiepy import Kiwi

                kiwi = Kiwi(num_workers=-1)  # its pool serves batches; single calls run in the caller
                kiwi.tokenize("")  # Kiwi loads its model lazily: do it here, under the lock
                _kiwi = kiwi
    return _kiwi


def _content(tokens: Iterable[Any]) -> list[str]:
    return [
        t.form
        for t in tokens
        if t.tag.split("-", 1)[0] in CONTENT_TAGS and (t.tag == "SH" or HANGUL.search(t.form))
    ]


def content_morphemes(text: str) -> list[str]:
    """The content morphemes of ``text`` in order (empty, and Kiwi never loaded, without Hangul)."""
    if not HANGUL.search(text):
        return []
    return _content(_analyzer().tokenize(text, split_complex=SPLIT_COMPLEX))


def content_morphemes_many(texts: list[str]) -> list[list[str]]:
    """:func:`content_morphemes` of each text, the Korean ones analysed as one parallel batch."""
    out: list[list[str]] = [[] for _ in texts]
    korean = [n for n, text in enumerate(texts) if HANGUL.search(text)]
    if korean:
        batch = [texts[n] for n in korean]
        for n, tokens in zip(korean, _analyzer().tokenize(batch, split_complex=SPLIT_COMPLEX)):
            out[n] = _content(tokens)
    return out
