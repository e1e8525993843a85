"""Text -> lexical tokens for the BM25 side of an index: English and CJK in one pass.

* Unicode NFKC, then case folding (``str.casefold``).
* Runs of Hangul, Han and Kana become overlapping character bigrams (a run of one character
  stays a unigram): the CJK approach of Lucene's ``CJKBigramFilter``, no dictionary needed.
* Other runs of letters and digits (``_`` and punctuation split) are words: English stop words
  dropped (Lucene's 33-word list, the one bm25s ships), one-character words dropped, the rest
  stemmed with Snowball (PyStemmer).

The settings are recorded in the index manifest (:meth:`Analyzer.settings`) and queries are
always analysed with the index's own settings (:meth:`Analyzer.from_settings`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from simsearch.errors import IndexCorruptError

ANALYZER_NAME = "simsearch-standard"
ANALYZER_VERSION = 1

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

    def __post_init__(self) -> None:
        if self.cjk != "bigram" or self.stopwords not in ("lucene-en", "none"):
            raise ValueError(f"unsupported analyzer settings: {self}")

    @cached_property
    def _stem(self) -> Any:
        if self.language == "none":
            return None
        import Stemmer  # PyStemmer

        return Stemmer.Stemmer(self.language).stemWord

    def __call__(self, text: str) -> list[str]:
        tokens: list[str] = []
        stop = STOPWORDS_EN if self.stopwords == "lucene-en" else frozenset()
        for cjk, word in _RUNS.findall(unicodedata.normalize("NFKC", text).casefold()):
            if cjk:
                tokens.extend([cjk] if len(cjk) == 1 else [cjk[i : i + 2] for i in range(len(cjk) - 1)])
            elif len(word) >= self.min_word_length and word not in stop:
                tokens.append(self._stem(word) if self._stem is not None else word)
        return tokens

    def settings(self) -> dict[str, Any]:
        """What the manifest records: name, version and every option."""
        return {"name": ANALYZER_NAME, "version": ANALYZER_VERSION, **asdict(self)}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Analyzer:
        """The analyzer an index was built with; unknown ones fail loudly (tokens would differ)."""
        if settings.get("name") != ANALYZER_NAME or settings.get("version") != ANALYZER_VERSION:
            raise IndexCorruptError(
                f"index built with analyzer {settings.get('name')!r} version "
                f"{settings.get('version')!r}, unknown to this simsearch; upgrade "
                "simsearch or run `simsearch reindex-lexical` on the index"
            )
        options = {
            key: settings[key]
            for key in ("language", "stopwords", "cjk", "min_word_length")
            if key in settings
        }
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            raise IndexCorruptError(f"bad analyzer settings in the manifest ({exc})") from None


def describe(settings: dict[str, Any]) -> str:
    """One line for reports: ``simsearch-standard v1 (english stems, lucene-en stop words, CJK bigrams)``."""
    return (
        f"{settings.get('name')} v{settings.get('version')} ({settings.get('language')} stems, "
        f"{settings.get('stopwords')} stop words, CJK {settings.get('cjk')}s)"
    )
