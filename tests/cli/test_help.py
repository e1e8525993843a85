"""Every command answers --help, and docs/cli.md is what the commands say today."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli import docgen
from simsearch.cli.main import main

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
COMMANDS = docgen.commands()


def test_every_command_is_listed() -> None:
    names = {" ".join(path[1:]) for path in COMMANDS}
    assert {
        "",
        "build",
        "query",
        "info",
        "list",
        "add",
        "delete",
        "compact",
        "verify",
        "serve",
        "export",
        "reindex-lexical",
        "eval",
        "eval sts",
        "eval retrieval",
        "eval korquad",
        "eval paraphrase",
        "eval ann",
    } <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path[1:], "--help"], prog_name="simsearch")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(path)}")
    assert "Traceback" not in result.output


def test_docs_cli_md_is_current() -> None:
    assert CLI_DOC.read_text(encoding="utf-8") == docgen.render(), "docs/cli.md is stale: run `make docs`"


def test_docs_check_says_how_to_fix_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("old\n", encoding="utf-8")
    assert docgen.main(["--check", str(stale)]) == 1
    assert "make docs" in capsys.readouterr().err
    stale.write_text(docgen.render(), encoding="utf-8")
    assert docgen.main(["--check", str(stale)]) == 0


def test_docs_library_md_lists_every_setting() -> None:
    library = (CLI_DOC.parent / "library.md").read_text(encoding="utf-8")
    assert docgen.settings_table() in library, "docs/library.md's settings table is stale"
