"""One PKCS#11 layer: only station/devices/pkcs11/ calls python-pkcs11, and one error class
of that name exists (the CA's key is a thin signer over the same token code)."""

from __future__ import annotations

import ast
from pathlib import Path

STATION = Path(__file__).resolve().parents[2] / "station"
LAYER = STATION / "devices" / "pkcs11"


def _modules():
    for path in sorted(STATION.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_only_the_pkcs11_layer_imports_python_pkcs11():
    callers = set()
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(n == "pkcs11" or n.startswith("pkcs11.") for n in names):
                callers.add(path.relative_to(STATION).as_posix())
    assert callers and all(c.startswith("devices/pkcs11/") for c in callers), sorted(callers)


def test_one_class_per_error_name():
    wanted = {"Pkcs11Error", "PinIncorrect", "PinBlocked"}
    found: dict[str, list[str]] = {}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in wanted:
                found.setdefault(node.name, []).append(path.relative_to(STATION).as_posix())
    assert found == {"Pkcs11Error": ["devices/pkcs11/token.py"], "PinIncorrect": ["devices/errors.py"],
                     "PinBlocked": ["devices/errors.py"]}
