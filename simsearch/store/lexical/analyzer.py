"""Text -> lexical tokens for the BM25 side of an index: English and CJK in one pass.

Two analyzers, chosen at build (:func:`choose`) and recorded in the manifest:

``simsearch-standard`` (no dependency beyond PyStemmer)
    * Unicode NFKC, then case folding (``str.casefold``).
    * Runs of Hangul, Han and Kana become overlapping character bigrams (a run of one character
      stays a unigram): the CJK approach of Lucene's ``CJKBigramFilter``, no dictionary needed.
    * Other runs of letters and digits (``_`` and punctuation split) are words: English stop
      words dropped (Lucene's 33-word list, the one bm25s ships), one-character words dropped,
      the rest stemmed with Snowball (PyStemmer).

``simsearch-korean`` (the ``korean`` extra: kiwipiepy)
    The standard tokens, then the content morphemes of each text holding Hangul (nouns, verb
    and adjective stems, determiners, adverbs, roots, Hanja; see :mod:`simsearch.store.lexical.morphemes`)
    as more terms: "서울에서" and "서울로" share "서울" whatever particle follows, and "먹었다"
    meets "먹는" at the stem "먹". Bigrams stay, so words Kiwi does not know (names, new coinages,
    spacing mistakes) still match. Text without Hangul is analysed exactly as the standard
    analyzer does (Kiwi never runs on it).

The settings are recorded in the index manifest (:meth:`Analyzer.settings`) and queries are
always analysed with the index's own settings (:meth:`Analyzer.from_settings`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Iterable, Sequence

from simsearch.store.lexical import morphemes as kiwi
from simsearch.errors import IndexCorruptError, SimsearchError

ANALYZER_NAME = "simsearch-standard"
KOREAN_NAME = "simsearch-korean"
ANALYZER_VERSION = 1
CHOICES = ("auto", "standard", "korean")  # what `--analyzer` accepts
SAMPLE = 1000  # documents `auto` looks at for Hangul
STOPWORD_LISTS = ("lucene-en", "none")

# Lucene's EnglishAnalyzer stop set (also bm25s' "en" list).
STOPWORDS_EN = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

# Hangul (syllables, jamo, compatibility jamo), Han (CJK unified + ext A + compatibility),
# Hiragana, Katakana (and its phonetic extensions and half-width forms).
_CJK = (
    "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
)
_RUNS = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")


@dataclass(frozen=True)
class Analyzer:
    """One analyzer configuration; call it on a text to get its tokens."""

    language: str = "english"  # Snowball stemmer for words ("none": no stemming)
    stopwords: str = "lucene-en"  # "lucene-en" or "none"
    cjk: str = "bigram"
    min_word_length: int = 2
    morphemes: str = "none"  # "kiwi": add Korean content morphemes (the Korean analyzer)

    def __post_init__(self) -> None:
        if (
            self.cjk != "bigram"
            or self.stopwords not in STOPWORD_LISTS
            or self.morphemes not in ("none", "kiwi")
        ):
            raise ValueError(f"unsupported analyzer settings: {self}")

    @property
    def name(self) -> str:
        return KOREAN_NAME if self.morphemes == "kiwi" else ANALYZER_NAME

    @cached_property
    def _stem(self) -> Any:
        if self.language == "none":
            return None
        import Stemmer  # PyStemmer

        return Stemmer.Stemmer(self.language).stemWord

    def _standard(self, text: str) -> list[str]:
        """The standard tokens of an already normalised text."""
        tokens: list[str] = []
        stop = STOPWORDS_EN if self.stopwords == "lucene-en" else frozenset()
        for cjk, word in _RUNS.findall(text):
            if cjk:
                tokens.extend([cjk] if len(cjk) == 1 else [cjk[i : i + 2] for i in range(len(cjk) - 1)])
            elif len(word) >= self.min_word_length and word not in stop:
                tokens.append(self._stem(word) if self._stem is not None else word)
        return tokens

    def __call__(self, text: str) -> list[str]:
        text = normalise(text)
        tokens = self._standard(text)
        if self.morphemes == "kiwi":
            tokens.extend(kiwi.content_morphemes(text))
        return tokens

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        """``[self(t) for t in texts]``, with the Korean morphemes analysed as one batch (faster)."""
        normal = [normalise(t) for t in texts]
        if self.morphemes != "kiwi":
            return [self._standard(t) for t in normal]
        extra = kiwi.content_morphemes_many(normal)
        return [self._standard(t) + more for t, more in zip(normal, extra)]

    def settings(self) -> dict[str, Any]:
        """What the manifest records: name, version and every option (plus, for the Korean
        analyzer, the kiwipiepy version that analysed the documents, for reports)."""
        options: dict[str, Any] = {
            "language": self.language,
            "stopwords": self.stopwords,
            "cjk": self.cjk,
            "min_word_length": self.min_word_length,
        }
        if self.morphemes == "kiwi":
            options.update(morphemes="kiwi", kiwipiepy=kiwi.version())
        return {"name": self.name, "version": ANALYZER_VERSION, **options}

    @classmethod
    def from_settings(cls, settings: Any) -> Analyzer:
        """The analyzer an index was built with; unknown or malformed ones fail loudly (tokens
        would differ), and a Korean one without kiwipiepy installed says how to install it."""
        analyzer = cls(**check_settings(settings))
        if analyzer.morphemes == "kiwi" and not kiwi.available():
            raise SimsearchError(f"this index's lexical part uses the Korean analyzer; {kiwi.INSTALL_HINT}")
        return analyzer


def check_settings(settings: Any) -> dict[str, Any]:
    """The analyzer options of the manifest's ``lexical.analyzer`` settings, each checked for
    its type and range (an :class:`IndexCorruptError` of one line otherwise)."""
    if not isinstance(settings, dict):
        raise IndexCorruptError(f"bad analyzer settings in the manifest: {settings!r} is not an object")
    name, version = settings.get("name"), settings.get("version")
    if name not in (ANALYZER_NAME, KOREAN_NAME) or type(version) is not int or version != ANALYZER_VERSION:
        raise IndexCorruptError(
            f"index built with analyzer {name!r} version {version!r}, unknown to this "
            "simsearch; upgrade simsearch or run `simsearch reindex-lexical` on the index"
        )
    korean = name == KOREAN_NAME
    defaults = Analyzer()
    options = {
        "language": settings.get("language", defaults.language),
        "stopwords": settings.get("stopwords", defaults.stopwords),
        "cjk": settings.get("cjk", defaults.cjk),
        "min_word_length": settings.get("min_word_length", defaults.min_word_length),
        "morphemes": "kiwi" if korean else "none",
    }
    problem = None
    if not isinstance(options["language"], str) or (
        options["language"] != "none" and options["language"] not in _stemmers()
    ):
        problem = f"language {options['language']!r} is not a Snowball stemmer"
    elif not isinstance(options["stopwords"], str) or options["stopwords"] not in STOPWORD_LISTS:
        problem = f"stopwords {options['stopwords']!r} is not one of {', '.join(STOPWORD_LISTS)}"
    elif not isinstance(options["cjk"], str) or options["cjk"] != "bigram":
        problem = f"cjk {options['cjk']!r} is not 'bigram'"
    elif type(options["min_word_length"]) is not int or not 1 <= options["min_word_length"] <= 100:
        problem = f"min_word_length {options['min_word_length']!r} is not a whole number from 1 to 100"
    elif korean and settings.get("morphemes", "kiwi") != "kiwi":
        problem = f"morphemes {settings.get('morphemes')!r} is not 'kiwi'"
    if problem:
        raise IndexCorruptError(
            f"bad analyzer settings in the manifest ({problem}); run `simsearch reindex-lexical` on the index"
        )
    return options


@cache
def _stemmers() -> frozenset[str]:
    import Stemmer

    return frozenset(Stemmer.algorithms())


def normalise(text: str) -> str:
    """NFKC and case folding: what every analyzer does first."""
    return unicodedata.normalize("NFKC", text).casefold()


def has_hangul(texts: Iterable[str]) -> bool:
    """Whether any of ``texts`` holds a Hangul letter."""
    return any(kiwi.HANGUL.search(t) for t in texts)


def choose(choice: str, sample: Iterable[str] = ()) -> Analyzer:
    """The analyzer for ``--analyzer CHOICE``: ``standard``; ``korean`` (kiwipiepy must be
    installed); ``auto``: Korean when kiwipiepy is installed and ``sample`` (a corpus' first
    :data:`SAMPLE` documents) holds Hangul, else standard."""
    check_choice(choice)
    if choice == "korean" or (choice == "auto" and kiwi.available() and has_hangul(sample)):
        return Analyzer(morphemes="kiwi")
    return Analyzer()


def check_choice(choice: str) -> None:
    """Refuse an unknown analyzer name, or ``korean`` without kiwipiepy (before any work)."""
    if choice not in CHOICES:
        raise SimsearchError(f"unknown analyzer {choice!r}; use one of {', '.join(CHOICES)}")
    if choice == "korean":
        kiwi.require()


def kind(settings: Any) -> str:
    """The ``--analyzer`` choice that rebuilds an analyzer of these manifest settings:
    ``standard``, ``korean``, or ``auto`` for settings it does not know."""
    name = settings.get("name") if isinstance(settings, dict) else None
    return {ANALYZER_NAME: "standard", KOREAN_NAME: "korean"}.get(name, "auto")  # type: ignore[arg-type]


def describe(settings: dict[str, Any]) -> str:
    """One line for reports: ``simsearch-standard v1 (english stems, lucene-en stop words, CJK bigrams)``."""
    line = (
        f"{settings.get('name')} v{settings.get('version')} ({settings.get('language')} stems, "
        f"{settings.get('stopwords')} stop words, CJK {settings.get('cjk')}s"
    )
    if settings.get("morphemes") == "kiwi":
        line += f" + kiwipiepy {settings.get('kiwipiepy')} morphemes"
    return line + ")"


def extend_sample(sample: list[str], documents: Sequence[Any]) -> None:
    """Keep the first :data:`SAMPLE` texts of a build's ``documents`` (objects with a ``text``)
    in ``sample``, the corpus that :func:`choose` looks at for ``auto``."""
    if len(sample) < SAMPLE:
        sample.extend(d.text for d in documents[: SAMPLE - len(sample)])
