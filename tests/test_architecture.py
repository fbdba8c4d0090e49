"""The shape of the code, read from its imports (docs/architecture.md states the rules).

Every import counts: module level, inside functions and under ``TYPE_CHECKING`` alike, so that
no cycle hides behind a lazy import.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_DIR

PACKAGES = ("broker", "adapters")
# Only these build the container (the composition root); everything else gets what it needs.
COMPOSERS = {"broker.app", "broker.cli"}
# What every layer builds on: these import no module of the project, so no layer below can reach
# one above through them.
FOUNDATIONS = {
    "broker.problems",
    "broker.clock",
    "broker.logging",
    "broker.settings",
    "broker.schemas_common",
    "broker.fifo",
    "broker.audit.merkle",
}


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported_names(module: str, path: Path, tree: ast.Module) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the project modules it imports (a name resolves to the longest module it names)."""
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        for name in _imported_names(module, path, ast.parse(path.read_text(encoding="utf-8"))):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (first module repeated at the end), or None."""
    visiting: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        visiting.append(module)
        on_path.add(module)
        for imported in sorted(graph[module]):
            if imported in on_path:
                return [*visiting[visiting.index(imported) :], imported]
            if imported not in done and (cycle := visit(imported)) is not None:
                return cycle
        on_path.discard(visiting.pop())
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done and (cycle := visit(module)) is not None:
            return cycle
    return None


def is_route(module: str) -> bool:
    return module.endswith(".routes")


def violations(root: Path) -> list[str]:
    graph = import_graph(root)
    found = []
    if (cycle := find_cycle(graph)) is not None:
        found.append("import cycle: " + " → ".join(cycle))
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            if module.startswith("adapters") and target.startswith("broker"):
                found.append(f"{module} imports {target}: adapters/ must not depend on the broker")
            if is_route(target) and module != "broker.app":
                found.append(f"{module} imports the route module {target}: only broker.app mounts routes")
            if target == "broker.bootstrap" and module not in COMPOSERS and not module.endswith(".commands"):
                found.append(f"{module} imports the composition root: only the app, the CLI and tests build it")
            if module in FOUNDATIONS:
                found.append(f"{module} imports {target}: a foundation module imports nothing of the project")
    return found


def state_assignments(root: Path) -> list[str]:
    """Assignments to ``….state`` anywhere but the exchange lifecycle."""
    found = []
    for module, path in modules(root).items():
        if module == "broker.exchange.lifecycle":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(element, ast.Attribute) and element.attr == "state":
                        found.append(f"{module}:{node.lineno}")
    return found


def test_the_code_keeps_its_shape() -> None:
    assert violations(REPO_DIR) == []


def test_only_the_lifecycle_assigns_a_state() -> None:
    assert state_assignments(REPO_DIR) == []


@pytest.fixture
def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO_DIR / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _plant(root: Path, relative: str, code: str) -> None:
    path = root / relative
    path.write_text(path.read_text(encoding="utf-8") + "\n" + code + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("relative", "code", "complaint"),
    [
        # a lazy import inside a function still makes a cycle
        ("broker/exchange/lifecycle.py", "def _late() -> None:\n    import broker.exchange.service", "import cycle"),
        # so does one only the type checker sees
        (
            "broker/audit/merkle.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broker.audit import service",
            "import cycle",
        ),
        ("adapters/protocol.py", "from broker.problems import Problem", "adapters/ must not depend on the broker"),
        ("broker/tasks/routes.py", "from broker.exchange.routes import router", "imports the route module"),
        ("broker/exchange/service.py", "from broker import bootstrap", "imports the composition root"),
        # the problems every layer raises once knew the signer's exception
        ("broker/problems.py", "from broker.seal.sealer import SignerUnavailable", "a foundation module imports"),
    ],
)
def test_the_check_catches_what_it_forbids(copy_of_the_code: Path, relative: str, code: str, complaint: str) -> None:
    assert violations(copy_of_the_code) == []
    _plant(copy_of_the_code, relative, code)
    assert any(complaint in found for found in violations(copy_of_the_code))


def test_the_check_catches_a_state_assigned_outside_the_lifecycle(copy_of_the_code: Path) -> None:
    # Two spaces before "=", so that the planted line does not match the grep for state assignments.
    cheat = "def _cheat(e: Exchange) -> None:\n    e.state  = 'delivered'"
    _plant(copy_of_the_code, "broker/preview/service.py", cheat)
    assert state_assignments(copy_of_the_code) == ["broker.preview.service:" + str(_last_line(copy_of_the_code))]


def _last_line(root: Path) -> int:
    return len((root / "broker/preview/service.py").read_text(encoding="utf-8").splitlines())
