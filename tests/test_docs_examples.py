"""Every ```bash / ```sh / ```python example of README.md and docs/*.md runs as written.

Blocks are found anew on every run, so an example added to any page is tested without touching
this file. The blocks of one page run in order in one working directory (a page's examples build
on each other): a copy of ``examples/``, an index home of its own (``SIMSEARCH_INDEX_DIR``), and
``simsearch`` / ``.venv/bin/simsearch`` / ``.venv/bin/python`` mapped to this interpreter and
checkout. ``simsearch serve`` starts the server in the background on a free port (the
page's ``127.0.0.1:8000`` is pointed at it) and stops it when the page is done; ``curl`` fails
on an error status. ``$DATA`` is the shared evaluation data when present.

A block that cannot run here (a network, a cluster, a GPU, a long benchmark) is marked in the
markdown just before it, and reported as skipped with that reason::

    <!-- docs-test: skip (needs a Ray cluster) -->

``<!-- docs-test: twice -->`` runs a block twice (an example a reader will run again).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHARED_DATA = REPO.parent / "shared" / "data"
_FENCE = re.compile(r"^```(bash|sh|shell|python)\s*$")
_MARK = re.compile(r"^<!--\s*docs-test:\s*(skip|twice)\s*(?:\((.*)\))?\s*-->$")
_DOCS_PORT = "127.0.0.1:8000"

# Runs before each shell block: tools a page uses, made safe and strict for the test.
_PRELUDE = r"""
set -eo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
pip() { echo "docs-test: this block runs pip; mark it <!-- docs-test: skip (...) -->" >&2; return 1; }
make() { echo "docs-test: this block runs make; mark it <!-- docs-test: skip (...) -->" >&2; return 1; }
"""

# `simsearch`: the checkout's CLI; `simsearch serve` in the background, answering when it returns.
_SIMSEARCH = r"""#!/usr/bin/env bash
if [ "$1" != serve ]; then exec "$DOCS_PYTHON" -m simsearch "$@"; fi
if [ -f "$DOCS_WORK/.serve.pid" ]; then  # one server per page at a time, as a reader would
  kill -TERM -- "-$(cat "$DOCS_WORK/.serve.pid")" 2>/dev/null || true
  while kill -0 -- "-$(cat "$DOCS_WORK/.serve.pid")" 2>/dev/null; do sleep 0.2; done
fi
setsid "$DOCS_PYTHON" -m simsearch "$@" --port "$DOCS_PORT" >"$DOCS_WORK/serve.log" 2>&1 &
echo $! >"$DOCS_WORK/.serve.pid"
for _ in $(seq 1 600); do
  if command curl --silent --output /dev/null "http://127.0.0.1:$DOCS_PORT/"; then exit 0; fi
  if ! kill -0 $! 2>/dev/null; then cat "$DOCS_WORK/serve.log" >&2; exit 1; fi
  sleep 0.2
done
echo "docs-test: the server did not answer within 120 s" >&2; cat "$DOCS_WORK/serve.log" >&2; exit 1
"""


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    skip: str | None = None
    twice: bool = False

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The shell and Python blocks of a markdown page, with the marks just above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, number = [], 0
    while number < len(lines):
        fence = _FENCE.match(lines[number])
        if lines[number].startswith("```") and not fence:  # another language: step over it
            number = _closing(lines, number) + 1
            continue
        if not fence:
            number += 1
            continue
        end = _closing(lines, number)
        skip, twice = None, False
        above = number - 1
        while above >= 0 and (not lines[above].strip() or _MARK.match(lines[above].strip())):
            mark = _MARK.match(lines[above].strip())
            if mark and mark.group(1) == "skip":
                skip = mark.group(2) or "marked skip"
            elif mark:
                twice = True
            above -= 1
        code = "\n".join(lines[number + 1 : end]) + "\n"
        found.append(Block(page, number + 1, fence.group(1), code, skip, twice))
        number = end + 1
    return found


def _closing(lines: list[str], start: int) -> int:
    for number in range(start + 1, len(lines)):
        if lines[number].strip() == "```":
            return number
    raise AssertionError(f"unclosed code block at line {start + 1}")


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


@dataclass
class Workspace:
    """One page's working directory, environment and background server."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> str:
        return self.env["DOCS_PORT"]

    def stop_server(self) -> None:
        pid_file = self.root / ".serve.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
            pid_file.unlink()


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _workspace(root: Path) -> Workspace:
    shutil.copytree(REPO / "examples", root / "examples")
    bin_dir = root / ".docs-bin"
    venv_bin = root / ".venv" / "bin"
    bin_dir.mkdir()
    venv_bin.mkdir(parents=True)
    for target in (bin_dir / "simsearch", venv_bin / "simsearch"):
        target.write_text(_SIMSEARCH)
        target.chmod(0o755)
    python = venv_bin / "python"
    python.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "SIMSEARCH_INDEX_DIR": str(root / "indexes"),
        "DOCS_PYTHON": sys.executable,
        "DOCS_WORK": str(root),
        "DOCS_PORT": _free_port(),
    }
    if SHARED_DATA.is_dir():
        env["DATA"] = str(SHARED_DATA)
    return Workspace(root, env)


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Workspace]]:
    made: dict[Path, Workspace] = {}

    class Lazy(dict[Path, Workspace]):
        def __missing__(self, page: Path) -> Workspace:
            made[page] = self[page] = _workspace(tmp_path_factory.mktemp(page.stem))
            return made[page]

    yield Lazy()
    for workspace in made.values():
        workspace.stop_server()


def run_block(block: Block, workspace: Workspace) -> subprocess.CompletedProcess[str]:
    code = block.code.replace(_DOCS_PORT, f"127.0.0.1:{workspace.port}")
    if block.language == "python":
        script = workspace.root / f".block-{block.line}.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-c", _PRELUDE + code]
    return subprocess.run(
        command, cwd=workspace.root, env=workspace.env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_docs_example_runs(block: Block, workspaces: dict[Path, Workspace]) -> None:
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    workspace = workspaces[block.page]
    for _ in range(2 if block.twice else 1):
        done = run_block(block, workspace)
        assert done.returncode == 0, (
            f"{block.name} failed (exit {done.returncode}):\n{block.code}\n--- stdout\n"
            f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )


def test_blocks_are_found_and_marks_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```bash\necho one\n```\n\n<!-- docs-test: skip (needs a Ray cluster) -->\n\n"
        "```python\nprint(2)\n```\n```json\n{}\n```\n<!-- docs-test: twice -->\n```sh\necho three\n```\n"
    )
    found = blocks_of(page)
    assert [(b.line, b.language, b.code, b.skip, b.twice) for b in found] == [
        (2, "bash", "echo one\n", None, False),
        (8, "python", "print(2)\n", "needs a Ray cluster", False),
        (15, "sh", "echo three\n", None, True),
    ]
    assert any(b.page.name == "README.md" for b in BLOCKS) and len(BLOCKS) >= 10


def test_relative_links_and_images_of_the_docs_resolve() -> None:
    """A page's links and images point at files that exist (docs/serve.md showed no screenshot:
    it linked docs/serve.png from inside docs/)."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:|#", target):
                continue
            if not (page.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
