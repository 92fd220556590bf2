"""The package's import graph, read from its source with `ast`: no import circles anywhere (function-level and
TYPE_CHECKING imports included: a circle hidden behind either is still one), and the layers of
docs/architecture.md: postgres/ and store/ never import Dagster, store/ never imports psycopg2. The public API
(`__all__` of the package, operations/ and entry_points/): every name resolves, lazily, and loads no Dagster."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import pgvector_pipeline

PACKAGE_DIR = Path(pgvector_pipeline.__file__).parent
PACKAGE = PACKAGE_DIR.name


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imported(name: str, path: Path) -> set[str]:
    return _imports_in(path.read_text(), name, is_package=path.name == "__init__.py")


def _imports_in(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every module the module `name` imports, wherever the import statement is (top level, a function,
    `if TYPE_CHECKING`)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from package import module` imports the module too.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    """Module → the modules of this package it imports (a module imported through its package counts as the module)."""
    modules = _modules()
    return {
        name: {imported for imported in _imported(name, path) if imported in modules and imported != name}
        for name, path in modules.items()
    }


def _knots(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan): modules each reachable from the other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _circle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through the first module of a strongly connected component, as a path back to its start."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest circle back to start
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    return component


def _short(name: str) -> str:
    return name.removeprefix(PACKAGE + ".")


def test_the_graph_sees_every_kind_of_import():
    source = """
from typing import TYPE_CHECKING
import a.top
from . import sibling
from ..up import thing
if TYPE_CHECKING:
    from a.typed import Name
def later():
    from a.lazy import name
"""
    assert _imports_in(source, "p.q.module") == {
        "typing",
        "typing.TYPE_CHECKING",
        "a.top",
        "p.q",
        "p.q.sibling",
        "p.up",
        "p.up.thing",
        "a.typed",
        "a.typed.Name",
        "a.lazy",
        "a.lazy.name",
    }
    graph = _graph()
    assert f"{PACKAGE}.store.layout" in graph[f"{PACKAGE}.store.local"]


def test_no_import_circles():
    graph = _graph()
    knots = _knots(graph)
    assert not knots, "Import circles (each module of a circle imports the next; then every module of its knot):\n" + (
        "\n".join(
            " -> ".join(_short(name) for name in _circle_in(graph, knot))
            + f"   [{', '.join(_short(name) for name in knot)}]"
            for knot in knots
        )
    )


def _external_imports(name: str, path: Path) -> set[str]:
    return {imported.split(".")[0] for imported in _imported(name, path)}


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [("postgres", "dagster"), ("store", "dagster"), ("store", "psycopg2"), ("store", "psycopg")],
)
def test_layers_import_only_what_they_may(layer, forbidden):
    offenders = sorted(
        _short(name)
        for name, path in _modules().items()
        if name.startswith(f"{PACKAGE}.{layer}.") and forbidden in _external_imports(name, path)
    )
    assert not offenders, f"{layer}/ must not import {forbidden}, but these modules do: {offenders}"


# The packages with a public API (`__all__`), each name imported from its module when first used (see _lazy).
PUBLIC_PACKAGES = [PACKAGE, f"{PACKAGE}.operations", f"{PACKAGE}.entry_points"]


def _type_checking_names(package: str) -> dict[str, str]:
    """What the package's `if TYPE_CHECKING:` block imports for type checkers: name -> the module it comes from."""
    path = PACKAGE_DIR.parent.joinpath(*package.split("."), "__init__.py")
    names = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                names.update({alias.asname or alias.name: statement.module for alias in statement.names})
    return names


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_name_resolves(package):
    """Each name of `__all__` is the object its defining module has; the lazy table, `__all__` and what type checkers
    import under TYPE_CHECKING name the same objects; an unknown name is an AttributeError."""
    module = importlib.import_module(package)
    defined_in = module._DEFINED_IN
    assert len(set(module.__all__)) == len(module.__all__)
    assert set(module.__all__) == set(defined_in)
    assert _type_checking_names(package) == defined_in
    for name in module.__all__:
        assert getattr(module, name) is getattr(importlib.import_module(defined_in[name]), name), name
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def test_importing_the_package_loads_no_dagster():
    """`import pgvector_pipeline` loads nothing behind its public names (the GraphQL client and the parse workers stay
    light), and using them, the client and the operations included, loads no Dagster: only the code location does."""
    code = "\n".join(
        [
            "import sys",
            "import pgvector_pipeline",
            "loaded = sorted(m for m in sys.modules if m.startswith('pgvector_pipeline'))",
            "assert loaded == ['pgvector_pipeline', 'pgvector_pipeline._lazy'], loaded",
            "assert 'dagster' not in sys.modules",
            f"for package in {PUBLIC_PACKAGES!r}:",
            "    module = __import__(package, fromlist=['__all__'])",
            "    for name in module.__all__:",
            "        getattr(module, name)",
            "dagster = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')",
            "assert not dagster, dagster",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PACKAGE_DIR.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
