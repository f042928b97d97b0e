"""The one-way dependencies of docs/design.md#layers: simulations -> server -> strategies -> sites, and
neither the server nor a strategy imports the ClientApp module (they speak sites.protocol)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("sites", "strategies", "server", "simulations")  # each may import only those before it


def imported_packages(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports stay in its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer):
    above = LAYERS[LAYERS.index(layer) + 1:]
    offending = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / layer).rglob("*.py"))
                 for name in sorted(imported_packages(path)) if name.split(".")[0] in above]
    assert offending == []


@pytest.mark.parametrize("layer", ["server", "strategies"])
def test_the_server_and_strategies_never_import_the_client_app(layer):
    offending = [str(path.relative_to(ROOT)) for path in sorted((ROOT / layer).rglob("*.py"))
                 if any(name == "sites.client" or name.startswith("sites.client.")
                         for name in imported_packages(path))]
    assert offending == []
