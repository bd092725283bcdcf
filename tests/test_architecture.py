"""The package's shape: layers import only downward, no import cycle, no private imports across modules;
one place per definition (no public name defined in two modules, no private copy); tests use public
names only (no private import, attribute or patch by name).

Parsed from the source (``ast``), so it sees every import, at module level or inside a
function. Layers, bottom to top (docs/architecture.md):

    core → verification → constructions, catalog → sweep, training, infoflow → cli, the public API
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infoflow_jax", "constructions", "verify")

LAYER = {  # module-name prefix → layer (higher may import lower, never the reverse)
    "infoflow_jax.core": 0,
    "infoflow_jax.verification": 1,
    "constructions": 2,
    "infoflow_jax.catalog": 3,
    "infoflow_jax.sweep": 4,
    "infoflow_jax.training": 4,
    "infoflow_jax.infoflow": 4,
    "infoflow_jax.cli": 5,
    "infoflow_jax": 6,  # the package itself: the public API
    "verify": 6,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The project module an import names (the longest known prefix), or None (not ours)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, str | None]]:
    """(imported project module, imported name or None) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(m, None) for a in node.names if (m := _resolve(a.name))]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES:
                    out.append((full, None))
                elif (m := _resolve(base)):
                    out.append((m, a.name))
    return out


GRAPH = {m: {t for t, _ in _imports(m) if t != m} for m in MODULES}


def _layer(module: str) -> int:
    best = max((p for p in LAYER if module == p or module.startswith(p + ".")), key=len)
    return LAYER[best]


def test_no_import_cycle_among_project_modules():
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            strong(v)
    assert cycles == []


def test_layers_import_only_downward():
    upward = [(m, t) for m, ts in GRAPH.items() for t in ts if _layer(t) > _layer(m)]
    assert upward == []


def test_no_module_imports_a_private_name_from_another_module():
    private = [(m, t, n) for m in MODULES for t, n in _imports(m)
               if t != m and ((n or "").startswith("_") or t.rpartition(".")[2].startswith("_")
                              and not t.endswith("__init__") and t.rpartition(".")[2] != "__main__")]
    assert private == []


@pytest.mark.parametrize("layer_module", ["infoflow_jax.core", "infoflow_jax.verification"])
def test_the_lower_layers_never_import_the_catalog_of_constructions(layer_module):
    offenders = [m for m in GRAPH if (m == layer_module or m.startswith(layer_module + "."))
                 and any(t == "constructions" or t.startswith("constructions.") for t in GRAPH[m])]
    assert offenders == []


# ----------------------------------------------------------------------------- one place each
#: names every module of a kind defines on purpose: a subcommand module's ``add_parser(sub)`` and
#: ``run(args)`` (infoflow_jax/cli/app.py calls them), and ``main(argv)`` of a ``python -m`` module
PROTOCOL = {("infoflow_jax.cli", "add_parser"), ("infoflow_jax.cli", "run"), ("infoflow_jax", "main")}


def _top_level_definitions(module: str) -> list[tuple[str, str]]:
    """(name, body as an AST dump) of every function and class ``module`` defines at top level."""
    tree = ast.parse(MODULES[module].read_text())
    return [(n.name, ast.dump(n)) for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _definitions_in_two_modules() -> list[tuple[str, list[str]]]:
    """Public names defined at top level in more than one package module (any body: the same body is a
    copy, another body another meaning), and private names defined with the same body (a copy)."""
    where: dict[str, list[tuple[str, str]]] = {}
    for m in MODULES:
        if m.startswith("infoflow_jax"):
            for name, body in _top_level_definitions(m):
                where.setdefault(name, []).append((m, body))
    out = []
    for name, places in sorted(where.items()):
        places = [(m, b) for m, b in places if not any((m + ".").startswith(p + ".") and name == n for p, n in PROTOCOL)]
        if len(places) < 2:
            continue
        bodies = [b for _, b in places]
        if not name.startswith("_") or len(set(bodies)) < len(bodies):
            out.append((name, sorted(m for m, _ in places)))
    return out


def test_no_name_is_defined_in_two_modules_of_the_package():
    assert _definitions_in_two_modules() == []


def test_the_duplicate_finder_sees_a_twin(monkeypatch):
    """The check above can fail: a second ``relu_net_apply`` (a copy elsewhere) is reported."""
    twin = "infoflow_jax.core.kuhn"
    real = _top_level_definitions

    def with_twin(module):
        defs = real(module)
        return defs + [d for d in real("infoflow_jax.core.relu_net") if d[0] == "relu_net_apply"] \
            if module == twin else defs

    monkeypatch.setattr(sys.modules[__name__], "_top_level_definitions", with_twin)
    assert ("relu_net_apply", ["infoflow_jax.core.kuhn", "infoflow_jax.core.relu_net"]) in _definitions_in_two_modules()


# ----------------------------------------------------------------------------- tests use public names
TESTS = sorted((ROOT / "tests").glob("*.py"))


def _private_uses(path: Path) -> list[str]:
    """Private names of project modules a test file uses: imported (``from m import _x``), read as an
    attribute of an imported module (``m._x``) or patched by name (``monkeypatch.setattr(m, "_x", …)``)."""
    tree = ast.parse(path.read_text())
    modules: set[str] = set()  # local names bound to a project module
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if _resolve(a.name)}
        elif isinstance(node, ast.ImportFrom) and node.module and _resolve(node.module):
            for a in node.names:
                if a.name.startswith("_"):
                    out.append(f"{node.lineno}: from {node.module} import {a.name}")
                elif f"{node.module}.{a.name}" in MODULES:
                    modules.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                out.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("setattr", "delattr", "setitem") and len(node.args) >= 2
              and isinstance(node.args[0], ast.Name) and node.args[0].id in modules
              and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_")):
            out.append(f"{node.lineno}: {ast.unparse(node)}")
    return out


@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_tests_use_no_private_name_of_the_package(path):
    assert _private_uses(path) == []


def test_a_private_import_from_a_test_is_seen(tmp_path):
    bad = tmp_path / "test_bad.py"
    bad.write_text("from infoflow_jax.verification import probes\n"
                   "from infoflow_jax.cli.verify import _family\n"
                   "x = probes._fixed\n")
    assert len(_private_uses(bad)) == 2
