"""Thin adapters for other ecosystems (LangChain, Haystack, LlamaIndex, MCP), each installed as
an extra: ``pip install 'simsearch[haystack]'`` (from a checkout: ``pip install -e '.[haystack]'``)."""

from __future__ import annotations


def missing_extra(extra: str, error: ImportError) -> ImportError:
    """The one-line error for an integration imported without its extra."""
    from simsearch.errors import install_hint

    return ModuleNotFoundError(
        f"this needs the simsearch[{extra}] extra ({error.name or 'a package'} is not installed): "
        + install_hint(extra),
        name=error.name,
    )
