"""Splitting a document's text into smaller documents: lines, paragraphs or sentences.

The sentence splitter is rule based and works for English and Korean alike: Korean sentences end
with the same marks (``다.``, ``요?``, ``까!``), and Korean has no letter case, so the English
guards (abbreviations, a following lower-case word) never fire on it.
"""

from __future__ import annotations

import re
from typing import Callable

# A boundary: terminal punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"(?<=[.!?。！？…])[\"'”’»)\]]*\s+|\s*\n\s*")
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "no",
    "fig",
    "al",
    "inc",
    "ltd",
    "co",
    "corp",
    "mt",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "u.s",
    "u.k",
    "approx",
    "cf",
}
_LAST_WORD = re.compile(r"([\w.]+)\.$")


def split_lines(text: str) -> list[str]:
    """Non-empty lines, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines, inner line breaks folded to spaces."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [" ".join(block.split()) for block in blocks if block.strip()]


# A list marker alone ("1.", "2)", "(3)", "[4]", "a.", "iv."): it begins the next sentence.
_LIST_MARKER = re.compile(r"(?:\(?\d{1,3}[.)]|\(\d{1,3}\)|\[\d{1,3}\]|[A-Za-z][.)]|[ivxlcIVXLC]{1,6}[.)])")
# Numbered references inside a sentence: [1], [2, 3], [4-6].
_REFERENCE = re.compile(r"\[\d{1,4}(?:\s*[,–-]\s*\d{1,4})*\]")
# A bare citation as a whole piece: "(Smith et al., 2020).", "[Lee 2019]".
_CITATION = re.compile(r"[(\[][^()\[\]]*(?:\bet al\b|\b(?:1[89]|20)\d{2}[a-z]?\b)[^()\[\]]*[)\]][.,;:]*")


def split_sentences(text: str) -> list[str]:
    """Sentences of English or Korean text (line breaks also end a sentence).

    A list number alone (``1.``, ``[2]``, ``a)``) starts the sentence after it, and pieces that
    hold no words (numbers, references, a bare citation such as ``(Smith et al., 2020).``) are
    dropped: they are no documents anyone searches for."""
    sentences: list[str] = []
    marker = ""
    for piece in _sentence_pieces(text):
        if _LIST_MARKER.fullmatch(piece):
            marker = f"{marker} {piece}".strip()
            continue
        if _has_words(piece):
            sentences.append(f"{marker} {piece}" if marker else piece)
        marker = ""  # a marker before a piece without words goes with it
    return sentences


def _has_words(piece: str) -> bool:
    if _CITATION.fullmatch(piece):
        return False
    return any(ch.isalpha() for ch in _REFERENCE.sub(" ", piece))


def _sentence_pieces(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.start() + len(match.group(0).rstrip())].strip()
        following = text[match.end() : match.end() + 1]
        if "\n" not in match.group(0) and _is_false_boundary(candidate, following):
            continue
        if candidate:
            pieces.append(candidate)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def _is_false_boundary(sentence: str, following: str) -> bool:
    """A period after an abbreviation or an initial, or one followed by a lower-case word."""
    if following.islower():
        return True
    found = _LAST_WORD.search(sentence)
    if not found:
        return False
    word = found.group(1).lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word.isascii())


SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    "lines": split_lines,
    "paragraphs": split_paragraphs,
    "sentences": split_sentences,
}
