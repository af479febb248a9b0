"""The package's shape: the root holds only the public face, the error tree and the shared value type; every
other module lives in a part; imports between parts point one way (docs/architecture.md); no module imports one
that imports it back; every exception class derives from SplitInferError."""

from __future__ import annotations

import ast
import inspect
import pkgutil
from pathlib import Path
from typing import Dict, Set

import splitinfer
import splitinfer.errors

SRC = Path(splitinfer.__file__).parent
ROOT_MODULES = {"__init__.py", "__main__.py", "errors.py", "features.py"}

# part -> the parts it may import (its own part always). Arrows point down: cli → tools → nodes → building blocks.
LOWER = {"errors", "features"}
ALLOWED: Dict[str, Set[str]] = {
    "errors": set(),
    "features": set(),
    "splitting": LOWER | {"codec"},  # calibration measures the model for the codec's table (sensitivity.py)
    "codec": LOWER,
    "broker": LOWER,
    "fleet": LOWER | {"broker"},
    "node": LOWER | {"splitting", "codec", "broker"},
    "coordinator": LOWER | {"broker"},
    "head": LOWER | {"splitting", "codec", "broker", "node"},
    "tail": LOWER | {"splitting", "codec", "broker", "node"},
    "deploy": LOWER | {"broker", "fleet"},
    "cluster": LOWER | {"splitting", "codec", "broker", "node", "head"},
    "bench": LOWER | {"splitting", "codec", "broker", "node", "head", "tail", "coordinator", "cluster"},
    "cli": LOWER | {"splitting", "codec", "broker", "node", "head", "tail", "coordinator", "fleet", "deploy",
                    "cluster", "bench"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, *, named_only: bool = False) -> Set[str]:
    """Every splitinfer module ``name`` imports, at the top or inside functions (lazy imports count too).
    ``named_only``: just the modules the import statements name (``from X import y`` → X), each of which must
    exist."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("splitinfer")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("splitinfer"):
                continue
            found.add(module)
            if not named_only:  # `from splitinfer.x import y` may name a module
                found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(name, path) if m in modules and m != name} for name, path in modules.items()}


def test_the_package_root_holds_only_the_public_face() -> None:
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name not in ROOT_MODULES)
    assert loose == [], f"modules outside any part: {loose}"


def test_every_import_names_a_module_that_exists() -> None:
    modules = _modules()
    missing = sorted(f"{name} imports {target}" for name, path in modules.items()
                     for target in _imports(name, path, named_only=True) if target not in modules)
    assert missing == []


def test_imports_between_parts_point_down() -> None:
    wrong = []
    for module, imported in _graph().items():
        here = _part(module)
        if here in ("__init__", "__main__"):
            continue  # the public face re-exports from every part
        for target in imported:
            there = _part(target)
            if there in (here, "__init__"):
                continue
            if there not in ALLOWED.get(here, set()):
                wrong.append(f"{module} → {target}")
    assert wrong == [], "imports against the arrows of docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No strongly connected group of modules, lazy imports included. A package's ``__init__`` re-exporting its
    own modules does not count (it is the face of its part, not a dependency)."""
    modules = _modules()
    graph = {m: deps for m, deps in _graph().items() if modules[m].name != "__init__.py"}
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: list = []
    groups = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            connect(v)
    assert groups == [], f"modules that import each other: {groups}"


def test_every_exception_class_derives_from_the_root() -> None:
    import importlib

    outside = []
    for info in pkgutil.walk_packages(splitinfer.__path__, "splitinfer."):
        if info.name.endswith("__main__") or info.name.endswith("embedded"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name
                    and not issubclass(obj, splitinfer.errors.SplitInferError)):
                if issubclass(obj, ValueError) and info.name.startswith("splitinfer.fleet"):
                    continue  # pydantic validators raise ValueErrors
                outside.append(f"{info.name}.{name}")
    assert outside == []


def test_the_error_tree_is_drawn_in_its_docstring() -> None:
    classes = [n for n, o in vars(splitinfer.errors).items() if inspect.isclass(o) and issubclass(o, Exception)]
    doc = splitinfer.errors.__doc__ or ""
    assert all(name in doc for name in classes), [n for n in classes if n not in doc]
