"""The package's shape: layers import only downward, no import cycle, no private imports across modules.

Parsed from the source (``ast``), so it sees every import, at module level or inside a
function. Layers, bottom to top (docs/architecture.md):

    core → verification → constructions, catalog → sweep, training, infoflow → cli, the public API
"""

from __future__ import annotations

import ast
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
