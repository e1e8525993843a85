"""The house rules, checked on the source: imports follow the data flow, docs/architecture.md
lists the modules that exist.

Imports are read from each module's AST (top-level, function-local and TYPE_CHECKING imports
alike), so a rule cannot be broken by moving an import into a function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "simsearch"
ARCHITECTURE = REPO / "docs" / "architecture.md"


def module_name(file: Path) -> str:
    parts = list(file.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(file: Path) -> set[str]:
    """Every module ``file`` imports, resolved to absolute dotted names."""
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    package = module_name(file).split(".")
    if file.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(f): imports_of(f) for f in sorted(PACKAGE.rglob("*.py"))}


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def offenders(source_prefix: str, forbidden: str, allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if under(module, source_prefix)
        for target in targets
        if under(target, forbidden) and target not in allowed
    )


def test_the_import_walk_sees_imports() -> None:
    """Guards the checks below against passing because nothing was parsed."""
    assert "simsearch.store.manifest" in MODULES
    assert "simsearch.store.manifest.read_manifest" in MODULES["simsearch.store.generation"]
    assert "click" in MODULES["simsearch.cli.main"]
    assert len(MODULES) > 30


def test_no_module_imports_another_modules_private_names() -> None:
    """A leading underscore means "this module's own": a name other modules need is made public."""
    private = sorted(
        f"{module} imports {name}"
        for module, names in MODULES.items()
        for name in names
        if name.startswith("simsearch.")
        and re.fullmatch(r"_(?!_)\w*", name.rsplit(".", 1)[1])
        and name.rsplit(".", 1)[0] != module
    )
    assert private == []


def test_the_encoder_knows_no_disk_format() -> None:
    assert offenders("simsearch.encode", "simsearch.store") == []
    assert offenders("simsearch.encode", "simsearch.index") == []


def test_the_store_makes_no_vectors() -> None:
    """store/ may name the Encoder Protocol (``simsearch.encode``), never an encoder module."""
    assert (
        offenders(
            "simsearch.store", "simsearch.encode", allowed=("simsearch.encode", "simsearch.encode.Encoder")
        )
        == []
    )
    assert offenders("simsearch.store", "simsearch.index") == []


@pytest.mark.parametrize("forbidden", ["simsearch.cli", "click"])
def test_nothing_below_the_cli_imports_it(forbidden: str) -> None:
    found = [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if not under(module, "simsearch.cli") and module != "simsearch.__main__"
        for target in targets
        if under(target, forbidden)
    ]
    assert found == []


def test_the_library_never_imports_the_server() -> None:
    """Only the CLI (`simsearch serve`) starts a server."""
    for prefix in (
        "simsearch.store",
        "simsearch.encode",
        "simsearch.eval",
        "simsearch.index",
        "simsearch.readers",
    ):
        assert offenders(prefix, "simsearch.server") == [], prefix


def documented_modules() -> set[str]:
    """Module paths in the first column of docs/architecture.md's module table."""
    names = set()
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`(simsearch/[\w/]+\.py)`\s*\|", line)
        if match:
            names.add(match.group(1))
    return names


def test_architecture_doc_lists_every_module_and_no_other() -> None:
    on_disk = {str(f.relative_to(REPO)) for f in PACKAGE.rglob("*.py")}
    documented = documented_modules()
    assert documented, "no module table found in docs/architecture.md"
    assert sorted(on_disk - documented) == [], "modules missing from docs/architecture.md"
    assert sorted(documented - on_disk) == [], "docs/architecture.md lists modules that do not exist"


def test_search_receives_vectors_never_a_model() -> None:
    """search/ may name the Encoder Protocol as a type, never an encoder module or the index."""
    assert offenders("simsearch.search", "simsearch.encode") == []
    assert offenders("simsearch.search", "simsearch.index") == []
    assert offenders("simsearch.search", "simsearch.scale") == []


def test_the_store_knows_no_search_and_scale_no_index() -> None:
    assert offenders("simsearch.store", "simsearch.search") == []
    assert offenders("simsearch.store", "simsearch.scale") == []
    assert offenders("simsearch.scale", "simsearch.index") == []
    assert offenders("simsearch.readers", "simsearch.store") == []
    assert offenders("simsearch.readers", "simsearch.index") == []


def test_no_import_cycles() -> None:
    """Between modules (lazy imports inside functions count too): the strongly connected
    components of the import graph are single modules."""
    graph = {module: edges_of(PACKAGE.parent / (module.replace(".", "/"))) - {module} for module in MODULES}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def _resolve(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def edges_of(stem: Path) -> set[str]:
    """The package's modules one module imports: ``from pkg import module`` is an edge to that
    module, not to the package (as Python itself resolves it)."""
    file = stem / "__init__.py" if stem.is_dir() else stem.with_suffix(".py")
    package = module_name(file).split(".")
    if file.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(t for alias in node.names if (t := _resolve(alias.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = (
                    _resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else _resolve(base)
                )
                if target:
                    found.add(target)
    return found


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(f.relative_to(REPO)): n
        for f in PACKAGE.rglob("*.py")
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
