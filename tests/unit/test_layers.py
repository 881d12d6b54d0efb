"""Nothing above the service layer touches the records: the CLI, the workflow and the Qt
interface reach the database only through ``station.service`` (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

STATION = Path(__file__).resolve().parents[2] / "station"
ABOVE_SERVICE = ("cli", "issuance", "ui", "wizard")
FORBIDDEN = ("station.records.models", "sqlalchemy", "sqlite3", "psycopg", "psycopg2")


def _imports(tree: ast.AST):
    """(line, module) of every import, also inside functions (the CLI imports lazily)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from station.records import models`
                yield node.lineno, f"{node.module}.{alias.name}"


def _forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def _offences(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{path.relative_to(root.parent)}:{line}: {module}" for line, module in _imports(tree) if _forbidden(module)]
    return found


def test_no_package_above_the_service_layer_imports_the_records():
    """Every package above the floor that exists (``wizard`` comes with the Qt interface)."""
    present = [STATION / package for package in ABOVE_SERVICE if (STATION / package).is_dir()]
    assert {p.name for p in present} >= {"cli", "issuance", "ui"}
    assert [offence for root in present for offence in _offences(root)] == []


def test_the_layer_check_sees_a_lazy_import(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "view.py").write_text("def f():\n    from station.records import models\n    import sqlalchemy\n")
    assert _offences(tmp_path / "pkg") == ["pkg/view.py:2: station.records.models", "pkg/view.py:3: sqlalchemy"]


def test_the_walk_finds_a_forbidden_import(tmp_path):
    """The check itself: lazy, aliased and from-imports of the records are found."""
    (tmp_path / "bad.py").write_text("def f():\n    from station.records import models\n    import sqlalchemy as sa\n"
                                     "from sqlalchemy.orm import Session\nimport sqlite3\nfrom station.service import requests\n")
    found = {line.split(": ")[1] for line in _offences(tmp_path)}
    assert {"station.records.models", "sqlalchemy", "sqlalchemy.orm", "sqlite3"} <= found
    assert not any(module.startswith("station.service") for module in found)
