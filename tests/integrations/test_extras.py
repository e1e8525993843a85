"""Each integration is an extra: imported without it, it says in one line which one to install."""

from __future__ import annotations

import importlib
import sys

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main

CASES = [
    ("simsearch.integrations.haystack", "haystack", "haystack"),
    ("simsearch.integrations.haystack_retrievers", "haystack", "haystack"),
    ("simsearch.integrations.llamaindex", "llama_index", "llamaindex"),
    ("simsearch.integrations.mcp", "mcp", "mcp"),
    ("simsearch.integrations.langchain", "langchain_core", "langchain"),
]


def hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` (and the adapters) unimportable, as if the extra were not installed."""
    for name in list(sys.modules):
        if name == package or name.startswith(package + ".") or name.startswith("simsearch.integrations."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # None: "not installed"


@pytest.mark.parametrize(("module", "package", "extra"), CASES)
def test_missing_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str, extra: str
) -> None:
    hide(monkeypatch, package)
    with pytest.raises(ImportError) as raised:
        importlib.import_module(module)
    message = str(raised.value)
    assert "\n" not in message
    assert f"simsearch[{extra}] extra" in message and f"pip install -e '.[{extra}]'" in message


def test_mcp_command_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "mcp")
    result = CliRunner().invoke(main, ["mcp", "notes"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: this needs the simsearch[mcp] extra")
