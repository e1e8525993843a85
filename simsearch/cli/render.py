"""Rendering results for people (tables cut to the terminal width) and programs (JSON lines)."""

from __future__ import annotations

import shutil
import unicodedata
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from simsearch.index import Hit

from simsearch.validate import dumps, json_ready

# Invisible characters that reorder or hide what a terminal shows (bidi overrides and isolates).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def display_width(text: str) -> int:
    """Terminal columns: East Asian wide characters (Hangul, CJK) take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ESC, BEL, C1 controls such as
    CSI...) and bidi overrides shown as escapes (``\\x1b``) instead of acting on the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(char: str) -> str:
    if char.isspace() and char not in "\x1c\x1d\x1e\x1f\x85":
        return " "  # newlines and tabs: a table row stays one line
    if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI:
        return char.encode("unicode_escape", "backslashreplace").decode("ascii")
    return char  # other format characters (zero-width joiners in emoji, soft hyphens) are harmless


def cut(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` columns with an ellipsis."""
    text = " ".join(printable(text).split())
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        w = display_width(char)
        if used + w > width - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + "…"


def cut_middle(text: str, width: int) -> str:
    """``text`` on one line in ``width`` columns, its middle replaced by an ellipsis.

    For ids: the ids of one index often share a long prefix (a directory, a URL) and differ at
    the end (a file name, a line number), so both ends stay visible; the tail gets the extra column.
    """
    text = " ".join(printable(text).split())
    if display_width(text) <= width:
        return text
    if width < 3:
        return cut(text, width)
    budget = width - 1
    tail_budget = budget - budget // 2
    tail: list[str] = []
    used = 0
    for char in reversed(text):
        w = display_width(char)
        if used + w > tail_budget:
            break
        tail.append(char)
        used += w
    head = cut(text, budget - used + 1)[:-1] if budget - used > 0 else ""
    return head + "…" + "".join(reversed(tail))


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def hits_table(hits: Sequence[Any], width: int | None = None) -> list[str]:
    """Lines of a rank / score / id / text table fitting ``width`` columns; when the hits carry
    both sides' scores (hybrid mode), the ``cosine`` and ``bm25`` columns follow the score (the
    page and the JSON show them too; ``-`` where a side is undefined)."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    sides = any(h.cosine is not None for h in hits) and any(h.bm25 is not None for h in hits)
    id_width = min(24, max([2] + [display_width(printable(h.id)) for h in hits]))
    text_width = max(10, width - 4 - 1 - 6 - (16 if sides else 0) - 2 - id_width - 2)
    head = f"{'rank':>4} {'score':>6}" + (f" {'cosine':>6} {'bm25':>8}" if sides else "")
    lines = [f"{head}  {pad('id', id_width)}  text"]
    for hit in hits:
        row = f"{hit.rank:>4} {hit.score:6.3f}"
        if sides:
            row += f" {_side(hit.cosine, 6, 3)} {_side(hit.bm25, 8, 2)}"
        lines.append(f"{row}  {pad(cut_middle(hit.id, id_width), id_width)}  {cut(hit.text, text_width)}")
    return lines


def _side(value: float | None, width: int, places: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{places}f}"


def hit_dict(query: str, hit: Hit) -> dict[str, Any]:
    """A hit as programs see it; the shape is the library's (:meth:`simsearch.index.Hit.to_dict`),
    always valid JSON."""
    return hit.to_dict(query)


def hit_json(query: str, hit: Hit) -> str:
    return dumps(hit.to_dict(query))


def json_line(value: Any, **options: Any) -> str:
    """Strict JSON of anything the CLI prints (manifests, reports): NaN/Infinity become null."""
    return dumps(json_ready(value)[0], **options)


def manifest_lines(manifest: dict[str, Any]) -> Iterable[str]:
    """``key: value`` lines of a manifest, nested dicts flattened with dots."""

    def walk(prefix: str, value: Any) -> Iterable[str]:
        if isinstance(value, dict):
            for key, inner in value.items():
                yield from walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            for number, item in enumerate(value):  # e.g. shards.parts: one line per shard
                yield printable(f"{prefix}[{number}]: {_inline(item)}")
        elif isinstance(value, list):
            yield printable(f"{prefix}: {', '.join(str(item) for item in value)}")
        else:
            yield printable(f"{prefix}: {value}")

    return walk("", manifest)


def _inline(value: Any) -> str:
    """A small dict on one line, ``key value, ...`` (no Python repr); checksums shortened."""
    if not isinstance(value, dict):
        return str(value)
    parts = []
    for key, inner in value.items():
        text = str(inner)
        if key.endswith("sha256") and len(text) > 12:
            text = text[:12] + "..."
        parts.append(f"{key} {text}")
    return ", ".join(parts)


def index_table(entries: Sequence[dict[str, Any]]) -> list[str]:
    """One line per index: name, count, model, pooling, dim, type (or the damage found)."""
    entries = [
        {key: printable(value) if isinstance(value, str) else value for key, value in e.items()}
        for e in entries
    ]
    name_width = max([4] + [display_width(e["name"]) for e in entries])
    lines = [f"{pad('name', name_width)}  {'count':>8}  {'dim':>4}  {'pooling':<7}  {'type':<5}  model"]
    for e in entries:
        if "error" in e:
            lines.append(f"{pad(e['name'], name_width)}  damaged: {e['error']}")
            continue
        lines.append(
            f"{pad(e['name'], name_width)}  {e['count']:>8}  {e['dim']:>4}  {e['pooling']:<7}  "
            f"{e.get('index_type', '?'):<5}  {e['model']}"
        )
    return lines


def ann_line(manifest: dict[str, Any]) -> str:
    """One line on the index type: exact, or the tuned parameter and the recall it measured."""
    shards = manifest.get("shards")
    if isinstance(shards, dict):
        kinds = sorted({str(part.get("index_type", "flat")) for part in shards.get("parts", [])})
        return (
            f"{shards.get('count')} shards routed by id hash ({shards.get('routing')}), index type "
            f"{'/'.join(kinds)}; each shard tuned on its own vectors (`simsearch info` lists them)"
        )
    ann = manifest.get("ann") or {}
    kind = manifest.get("index_type", "flat")
    if not ann.get("search_params"):
        exact = ann.get("recall_at_10") == 1.0 or kind == "flat"
        return f"Index type {kind} ({ann.get('factory', 'IDMap2,Flat')}): " + (
            "exact search" if exact else "no search parameter to tune"
        )
    params = ", ".join(f"{param}={value}" for param, value in ann["search_params"].items())
    met = "" if ann.get("target_met", True) else f" (below the target {ann['target_recall']})"
    return f"Index type {kind} ({ann['factory']}): {params} gives recall@10 {ann['recall_at_10']:.3f} on {tuned_on(ann)}{met}"


def tuned_on(ann: dict[str, Any]) -> str:
    """What the ANN parameters were tuned on (indexes from before ``tuned_on`` used stored vectors)."""
    sample = ann.get("tuned_on") or {"kind": "stored", "n": ann.get("tune_queries")}
    if sample.get("kind") == "queries":
        return f"{sample.get('n')} tuning queries (--tune-queries)"
    return f"{sample.get('n')} held-out stored vectors"
