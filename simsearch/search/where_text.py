"""The text form of a ``where`` (the CLI's ``--where``, the search page's filter box).

::

    lang=ko and (year>=2020 or not source=wiki)
    title="a and b"        source in news, wiki       tag not in (x, y)       summary exists

Comparisons ``FIELD=VALUE``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``FIELD in a,b``,
``FIELD not in a,b`` (or ``(a, b)``) and ``FIELD exists``, joined by ``and``, ``or``, ``not``
and parentheses (``not`` binds tightest, then ``and``, then ``or``). A value runs to the next
``and``/``or``/``)``/``,``; quote it ("..." or '...', backslash escapes a quote) when it holds
those words, spaces at its ends, an operator or a parenthesis; quote a field name the same way.
Values stay text: :func:`~simsearch.search.where.compile_where` reads them as the field's types.
A syntax mistake is a one-line :class:`~simsearch.errors.QueryError` that names the syntax.
"""

from __future__ import annotations

import re
from typing import Any

from simsearch.errors import QueryError

SYNTAX = (
    "write FIELD=VALUE, FIELD!=VALUE, FIELD<VALUE (also <=, >, >=), 'FIELD in a,b', "
    "'FIELD not in a,b' or 'FIELD exists', joined by and, or, not and parentheses; "
    'quote values holding and/or, commas, operators or parentheses ("...")'
)
_TOKEN = re.compile(
    r"""\s*(?:(?P<op>==|!=|<=|>=|=|<|>)|(?P<punct>[(),])|(?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<word>(?:[^\s()=!<>,"']|!(?!=))(?:[^\s()=!<>,]|!(?!=))*))"""
)
_OPEN_QUOTE = re.compile(r"""\s*["']""")
_JOINERS = ("and", "or")
_KEYWORDS = ("and", "or", "not", "in", "exists")
_MAX_DEPTH = 32  # as the compiler's limit; and no RecursionError on "((((..."

Token = tuple[str, str, int, int]  # kind, text, start, end


def parse_cli(expressions: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Repeated ``--where`` expressions, AND-ed, as one ``where`` dict (fields merged into one
    dict where they do not clash, as the CLI always gave them)."""
    return and_all([parse_text(text, "--where") for text in expressions])


def and_all(wheres: list[dict[str, Any]]) -> dict[str, Any]:
    """Several ``where`` dicts that must all hold, as one."""
    merged: dict[str, Any] = {}
    for where in wheres:
        for field, spec in where.items():
            have = merged.get(field)
            if field.startswith("$") or (have is not None and set(have) & set(spec)):
                return {"$and": wheres} if len(wheres) > 1 else wheres[0]
            merged[field] = {**(have or {}), **spec}
    return merged


def parse_text(text: str, label: str = "where") -> dict[str, Any]:
    """One text expression -> a ``where`` dict; ``label`` names it in errors (``--where``)."""
    return _Parser(text, label).parse()


class _Parser:
    def __init__(self, text: str, label: str) -> None:
        self.text, self.label = text, label
        self.tokens = self._tokens()
        self.at = 0
        self.depth = 0

    def _tokens(self) -> list[Token]:
        tokens: list[Token] = []
        position = 0
        while self.text[position:].strip():
            match = _TOKEN.match(self.text, position)
            if match is None or match.lastgroup is None:
                start = len(self.text) - len(self.text[position:].lstrip())
                if _OPEN_QUOTE.match(self.text, position):
                    raise self._error("a quote is not closed", start)
                raise self._error(f"unexpected {self.text[start]!r}", start)
            kind = match.lastgroup
            tokens.append((kind, match.group(kind), match.start(kind), match.end(kind)))
            position = match.end()
        return tokens

    def _error(self, problem: str, position: int | None = None) -> QueryError:
        if position is None:
            position = self.tokens[self.at][2] if self.at < len(self.tokens) else len(self.text)
        return QueryError(f"{self.label} {self.text!r}: {problem} at character {position + 1}; {SYNTAX}")

    def _peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.at += 1
            return True
        return False

    def _punct(self, mark: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "punct" and token[1] == mark:
            self.at += 1
            return True
        return False

    def parse(self) -> dict[str, Any]:
        if not self.tokens:
            raise self._error("no filter given", 0)
        where = self._any()
        token = self._peek()
        if token is not None:
            raise self._error(f"unexpected {token[1]!r} (a missing and/or?)")
        return where

    def _any(self) -> dict[str, Any]:
        items = [self._all()]
        while self._keyword("or"):
            items.append(self._all())
        return items[0] if len(items) == 1 else {"$or": items}

    def _all(self) -> dict[str, Any]:
        items = [self._unary()]
        while self._keyword("and"):
            items.append(self._unary())
        return items[0] if len(items) == 1 else {"$and": items}

    def _unary(self) -> dict[str, Any]:
        if self.depth >= _MAX_DEPTH:
            raise self._error(f"nested more than {_MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            if self._keyword("not"):
                return {"$not": self._unary()}
            if self._punct("("):
                where = self._any()
                if not self._punct(")"):
                    raise self._error("a parenthesis is not closed")
                return where
            return self._comparison()
        finally:
            self.depth -= 1

    def _comparison(self) -> dict[str, Any]:
        token = self._peek()
        if token is None or token[0] not in ("word", "quoted") or token[1].lower() in _KEYWORDS:
            what = "the end" if token is None else repr(token[1])
            raise self._error(f"expected a field name, got {what}")
        self.at += 1
        field = _unquote(token[1]) if token[0] == "quoted" else token[1]
        operator = self._peek()
        if operator is not None and operator[0] == "op":
            self.at += 1
            if operator[1] == "==":
                raise self._error("'==' is not an operator (use = for equality)", operator[2])
            return {field: {operator[1]: self._value(operator[1])}}
        if self._keyword("in"):
            return {field: {"in": self._values("in")}}
        if self._keyword("not"):
            if not self._keyword("in"):
                raise self._error("expected 'in' after 'not'")
            return {field: {"not in": self._values("not in")}}
        if self._keyword("exists"):
            return {field: {"exists": True}}
        got = "the end" if operator is None else repr(operator[1])
        raise self._error(f"expected an operator after field {field!r}, got {got}")

    def _value(self, after: str) -> str:
        token = self._peek()
        if token is not None and token[0] == "quoted":
            self.at += 1
            return _unquote(token[1])
        first = last = None
        while (token := self._peek()) is not None and token[0] == "word" and token[1].lower() not in _JOINERS:
            first = token if first is None else first
            last = token
            self.at += 1
        if first is None or last is None:
            got = "the end" if token is None else repr(token[1])
            raise self._error(f"expected a value after {after!r}, got {got}")
        return self.text[first[2] : last[3]]

    def _values(self, after: str) -> list[str]:
        closed = self._punct("(")
        values = [self._value(after)]
        while self._punct(","):
            values.append(self._value(after))
        if closed and not self._punct(")"):
            raise self._error("a parenthesis is not closed")
        return values


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.S)
