"""``docs/cli.md``, generated from every command's ``--help``.

python -m simsearch.cli.docgen > docs/cli.md          (make docs)
python -m simsearch.cli.docgen --check docs/cli.md    (make docs-check; exit 1 when stale)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from simsearch.cli.main import main as cli

_HEADER = """# simsearch command reference

Generated from each command's `--help` by `python -m simsearch.cli.docgen` (`make docs`);
`make docs-check` and the test suite fail when this page is stale. Do not edit by hand.
"""


def commands(group: click.Group = cli, path: tuple[str, ...] = ("simsearch",)) -> list[tuple[str, ...]]:
    """Every command path, the group itself first, then its commands in name order."""
    found = [path]
    ctx = click.Context(group, info_name=path[-1])
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
        elif command is not None:
            found.append((*path, name))
    return found


def help_text(path: tuple[str, ...]) -> str:
    """``--help`` of one command, at a fixed width so the page does not depend on the terminal."""
    command: click.Command = cli
    parent: click.Context | None = None
    for name in path:
        if parent is not None:
            assert isinstance(command, click.Group)
            sub = command.get_command(parent, name)
            assert sub is not None, path
            command = sub
        settings = {"terminal_width": 100, "max_content_width": 100, **command.context_settings}
        parent = click.Context(command, info_name=name, parent=parent, **settings)
    assert parent is not None
    return command.get_help(parent)


def settings_table() -> str:
    """The table of :data:`simsearch.config.SETTINGS` that docs/library.md carries."""
    from simsearch.config import SETTINGS

    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.default} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


def render() -> str:
    parts = [_HEADER]
    for path in commands():
        parts.append(f"\n## {' '.join(path)}\n\n```\n{help_text(path).rstrip()}\n```\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    page = render()
    if argv[:1] == ["--check"]:
        file = Path(argv[1] if len(argv) > 1 else "docs/cli.md")
        if not file.is_file() or file.read_text(encoding="utf-8") != page:
            print(
                f"{file} is stale; run `make docs` (python -m simsearch.cli.docgen > {file})", file=sys.stderr
            )
            return 1
        return 0
    sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
