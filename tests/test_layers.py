"""The apps build on each other in one direction, and so do the parts of each app.

Every import counts, including those inside functions (they hide a circle, they do not remove it).
`config` is left out: it is the project package that assembles the apps (settings, URLs, ASGI), and the
apps read its settings helpers. Apps that must reach a higher layer do it through signals
(administration/hooks.py, transcription/reprocess/hooks.py) or by name (Celery task names, app labels).
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
APPS = ("meetings", "administration", "transcription", "voices", "frontend")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, anywhere in the file."""
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = list(path.relative_to(REPO).parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            # `from x import y` may import the module x.y: count both, the unused one matches nothing.
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def sources(root: Path):
    for path in sorted(root.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def part_of(name: str, depth: int) -> str | None:
    parts = name.split(".")
    return ".".join(parts[:depth]) if len(parts) >= depth else None


def parts_graph(app: str) -> dict[str, set[str]]:
    """Edges between an app's parts: its sub-packages and top-level modules (`transcription.live`, `transcription.tasks`)."""
    edges: dict[str, set[str]] = {}
    for path in sources(REPO / app):
        source = part_of(".".join(path.relative_to(REPO).with_suffix("").parts), 2)
        if source is None or source.endswith(".__init__"):
            continue
        for name in imported_modules(path):
            target = part_of(name, 2)
            if target and target != source and target.startswith(f"{app}.") and not target.endswith(".__init__"):
                edges.setdefault(source, set()).add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_apps_import_each_other_in_one_direction_only():
    edges: dict[str, set[str]] = {app: set() for app in APPS}
    for app in APPS:
        for path in sources(REPO / app):
            edges[app].update(t for t in (part_of(n, 1) for n in imported_modules(path)) if t in APPS and t != app)
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)
    assert not any("voices" in edges[app] for app in APPS if app != "voices")  # known voices sits on top, optional


@pytest.mark.parametrize("app", APPS)
def test_the_parts_of_an_app_import_each_other_in_one_direction_only(app):
    cycle = find_cycle(parts_graph(app))
    assert cycle is None, " -> ".join(cycle)


def test_the_speech_engine_imports_nothing_else_of_the_project():
    """The engine is plain torch: caption workers, reprocessing and benchmarks load it without Django."""
    for path in sources(REPO / "transcription" / "engine"):
        outside = {n for n in imported_modules(path) if part_of(n, 1) in APPS + ("config",) and not n.startswith("transcription.engine")}
        assert not outside, (path.name, outside)


def test_a_planted_circle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
