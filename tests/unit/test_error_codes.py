"""Error codes are enums owned by their class (issue 10): a class raised with several codes
lists them in its nested ``Code``; raise sites pass a member; ``exc.code`` stays the plain
string that tests, audit events and the README know."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
from enum import Enum
from pathlib import Path

import station
from station.errors import StationError, SystemFailure

ROOT = Path(station.__file__).parent
# the packages whose raise sites pass enum members (the engine, service/ and cli/ follow)
ENUM_PACKAGES = ["validation", "ca", "devices", "audit", "records", "home.py", "secret_store.py", "signatures.py"]


def _classes():
    for info in pkgutil.walk_packages(station.__path__, "station."):
        if info.name.endswith("__main__") or ".migrations" in info.name or ".ui" in info.name:
            continue
        importlib.import_module(info.name)
    seen, todo = set(), [StationError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen


def test_each_code_enum_is_its_class_s_and_holds_its_default():
    owners = [cls for cls in _classes() if "Code" in vars(cls)]
    assert len(owners) >= 10
    for cls in owners:
        values = [m.value for m in cls.Code]
        assert issubclass(cls.Code, str) and issubclass(cls.Code, Enum)
        assert len(values) == len(set(values)), cls
        assert type(cls.code) is str and cls.code in values, cls


def test_a_member_becomes_the_plain_code_string():
    exc = SystemFailure("the disk is full", code=SystemFailure.Code.DISK_FULL)
    assert type(exc.code) is str and exc.code == "system.disk_full"
    assert json.dumps({"code": exc.code}) == '{"code": "system.disk_full"}' and f"{exc.code}" == "system.disk_full"
    assert StationError("x", code="free.string").code == "free.string"


def test_raise_sites_pass_members_not_strings():
    strings = []
    for name in ENUM_PACKAGES:
        path = ROOT / name
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    strings += [f"{file.relative_to(ROOT)}:{node.lineno}" for kw in node.keywords
                                if kw.arg == "code" and isinstance(kw.value, ast.Constant)]
    assert strings == []
