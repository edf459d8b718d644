"""The public API's docstring coverage stays at 90% or more.

What counts, read from the source with `ast` (no import): every module of `src/efsnas` (a
package by its `__init__.py`), and every class, function and method defined at module level or
in a counted class, whose name does not start with `_` (so `__init__` and other dunder methods
are left out), in no module or package whose name starts with `_`. Property setters and deleters
count with their getter. An item is documented when it has a docstring of its own, or, for a
method, when it overrides a documented method of the same name in one of its class's bases
defined in efsnas (found by class name, through the bases' bases too): the API reference shows
the base's text for it.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "efsnas"
THRESHOLD = 0.90


def _module_name(path: Path) -> str | None:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return None if any(p.startswith("_") for p in parts) else ".".join(parts)


def _is_accessor(node: ast.AST) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
               for d in getattr(node, "decorator_list", []))


def _base_names(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.append(base.id)
        elif isinstance(base, ast.Attribute):
            names.append(base.attr)
    return names


def public_items() -> list[tuple[str, bool]]:
    """(qualified name, documented) for every counted item of the package."""
    trees = {}
    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        if name is not None:
            trees[name] = ast.parse(path.read_text())
    # every efsnas class by its simple name: its bases and its documented methods
    classes: dict[str, list[tuple[list[str], set[str]]]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                documented = {n.name for n in node.body
                              if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                              and ast.get_docstring(n)}
                classes.setdefault(node.name, []).append((_base_names(node), documented))

    def inherited(bases: list[str], method: str, seen: set[str]) -> bool:
        for base in bases:
            if base in seen:
                continue
            seen.add(base)
            for grand, documented in classes.get(base, []):
                if method in documented or inherited(grand, method, seen):
                    return True
        return False

    items: list[tuple[str, bool]] = []

    def walk(body, prefix: str, bases: list[str] | None) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_") or _is_accessor(node):
                continue
            qualified = f"{prefix}.{node.name}"
            documented = ast.get_docstring(node) is not None
            if not documented and bases is not None and not isinstance(node, ast.ClassDef):
                documented = inherited(bases, node.name, set())
            items.append((qualified, documented))
            if isinstance(node, ast.ClassDef):
                walk(node.body, qualified, _base_names(node))

    for name, tree in trees.items():
        items.append((name, ast.get_docstring(tree) is not None))
        walk(tree.body, name, None)
    return items


def test_public_api_docstring_coverage():
    items = public_items()
    missing = [name for name, documented in items if not documented]
    coverage = 1 - len(missing) / len(items)
    assert coverage >= THRESHOLD, (
        f"docstring coverage {coverage:.1%} of {len(items)} public items is below "
        f"{THRESHOLD:.0%}; undocumented:\n  " + "\n  ".join(missing))


def test_the_count_sees_the_package():
    names = dict(public_items())
    assert "efsnas.registry" in names and "efsnas.app.run.Run" in names
