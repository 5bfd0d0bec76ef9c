"""The module lines of docs/design.md, checked on the source.

- No import cycle between probae's modules, counting imports inside functions too.
- No module imports another module's private names or reaches into another probae
  module's private attributes (``model._prepare_x`` from anomaly.py, say): modules talk
  through public functions and methods. (Private *modules*, ``_validation``, ``_base`` and
  ``_serializable``, are the package's shared internals and may be imported.)
- Every module has a test file named after it, and the public API is what ``__all__`` says.
"""

import ast
import pathlib

import probae

PACKAGE = pathlib.Path(probae.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _tree(name):
    return ast.parse((PACKAGE / f"{name}.py").read_text(), filename=f"{name}.py")


def _imported_modules(name):
    """The probae modules ``name`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "probae" or alias.name.startswith("probae."):
                    found.add(alias.name.split(".")[1] if "." in alias.name else "__init__")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "probae":
                for alias in node.names:
                    found.add(alias.name if alias.name in MODULES else "__init__")
            elif node.module.startswith("probae."):
                found.add(node.module.split(".")[1])
    found.discard(name)
    return found


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = {name: _imported_modules(name) for name in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _private_attributes(name):
    """Private names a module defines: functions, classes, methods and self._x attributes."""
    names = set()
    for node in ast.walk(_tree(name)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_"):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                names.add(node.attr)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.startswith("_") and not t.id.startswith("__"):
                    names.add(t.id)
    return names


def test_no_module_uses_another_modules_private_names():
    own = {name: _private_attributes(name) for name in MODULES}
    problems = []
    for name in MODULES:
        others = set().union(*(own[m] for m in MODULES if m != name)) - own[name]
        for node in ast.walk(_tree(name)):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("probae")
            ):
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name not in MODULES:
                        problems.append(f"{name}.py imports {node.module}.{alias.name}")
            if isinstance(node, ast.Attribute) and node.attr in others:
                base = node.value
                if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                    continue
                problems.append(f"{name}.py line {node.lineno} uses .{node.attr}")
    assert not problems, problems


def test_every_module_has_its_test_file():
    tests = pathlib.Path(__file__).parent
    exempt = {"_base", "_serializable", "_validation", "networks"}  # tested through users
    missing = [m for m in MODULES if m not in exempt and not (tests / f"test_{m}.py").exists()]
    assert not missing, missing


def test_public_api_is_all():
    for name in probae.__all__:
        assert hasattr(probae, name), name
    assert "IWAE" in probae.__all__ and isinstance(probae.IWAE(3), probae.Objective)
