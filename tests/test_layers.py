"""The package's shape: its import graph (imports inside functions included)
has no circle, each layer imports only the layers below it, and no module is
long without saying why."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "reactor"
EXTENSIONS = {"reactor._native"}  # compiled: a leaf

# Layer -> the layers (module-name prefixes) it may import, besides itself.
SELECTORS = ("reactor._base", "reactor._epoll", "reactor._poll", "reactor._select")
ALLOWED = {
    "reactor._events": (),
    **{name: SELECTORS for name in SELECTORS},
    "reactor._poller": SELECTORS,
    "reactor.net": ("reactor._events",),
    # io_uring: the loops it serves are duck-typed (reactor/uring/_drivers.py).
    "reactor.uring": ("reactor._base",),
}
LONGEST = 600  # lines, unless the module's docstring says "long because"


def _modules():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name, path):
    """The reactor modules `name` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        for target in targets:
            if target in EXTENSIONS:
                found.add(target)
            elif target in MODULES and target != name:
                # `from . import x` names the submodule x, not the package.
                if (
                    target == package
                    and isinstance(node, ast.ImportFrom)
                    and any(
                        f"{module}.{alias.name}" in MODULES.keys() | EXTENSIONS
                        for alias in node.names
                    )
                ):
                    continue
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name):
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if name == layer or name.startswith(layer + "."):
            return layer
    return None


def test_the_import_graph_has_no_circle():
    state = {}
    stack = []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for dep in sorted(GRAPH.get(name, ())):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n)))
def test_each_layer_imports_only_the_layers_below(name):
    layer = _layer(name)
    allowed = ALLOWED[layer]
    wrong = sorted(
        dep
        for dep in GRAPH[name]
        if dep not in EXTENSIONS
        and _layer(dep) != layer
        and not any(dep == a or dep.startswith(a + ".") for a in allowed)
    )
    assert not wrong, f"{name} ({layer}) imports {wrong}; it may import only {allowed}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_long_without_a_reason(name):
    source = MODULES[name].read_text()
    lines = source.count("\n")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert lines <= LONGEST or "long because" in " ".join(docstring.lower().split()), (
        f"{name} has {lines} lines: split it, or say why in its docstring ('long because ...')"
    )


def test_the_graph_sees_function_level_imports():
    # The Reactor imports the network layer inside its setup methods.
    assert "reactor.net._servers" in GRAPH["reactor._loop"]


def test_the_readmes_layout_matches_the_tree():
    """Every path in the README's Layout table exists, and every package
    and module of reactor/ is named there (a module of the selectors' row
    counts through its row)."""
    import re

    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set()
    for cell in re.findall(r"^\| (.+?) \|", section, re.M):
        paths = re.findall(r"`([^`]+)`", cell)
        base = ""
        for path in paths:
            if "/" in path:
                base = path.rsplit("/", 1)[0] + "/" if not path.endswith("/") else ""
                full = path
            else:
                full = base + path
            assert (root / full).exists(), f"README's layout names {full}, which does not exist"
            named.add(full.rstrip("/"))
    for child in PACKAGE.iterdir():
        if child.name.startswith(("__", ".")) or child.suffix not in (".py", ""):
            continue
        if child.is_dir() and not (child / "__init__.py").exists():
            continue
        path = f"reactor/{child.name}"
        assert path in named, f"README's layout does not name {path}"
