"""Error codes are enums owned by their class (issue 10; the rules are in station/errors.py): a
class raised with several codes lists them in its nested ``Code``; raise sites pass a member
of the raised class's own ``Code``; a code passed on is not retyped; no error is recognised by
comparing its code; ``exc.code`` stays the plain string that tests, audit events and the
README know."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from enum import Enum
from pathlib import Path

import station
from station.errors import StationError, SystemFailure

ROOT = Path(station.__file__).parent
# The only raise sites whose ``code=`` is not a member of the raised class's own Code, each with its reason.
PASSED_ON = {
    # the engine's audited refusal: its rule is an IssuanceRefused.Code member, the error it passes on
    # (that error's code), or a rejected card's verdict reason (station/errors.py, "A code passed on")
    ("issuance/engine.py", "IssuanceRefused", "rule.code if isinstance(rule, StationError) else rule"),
    # sign-in's audited refusal: ``code`` is its parameter, typed SignInRefused.Code (its callers are checked below)
    ("issuance/signin.py", "SignInRefused", "code"),
}
# parameters that carry an error code into a helper (the engine's _refuse/_stop, sign-in's _refuse)
CODE_PARAMETERS = {"code", "rule"}


def _sources():
    for file in sorted(ROOT.rglob("*.py")):
        if "migrations" not in file.parts:
            yield str(file.relative_to(ROOT)), ast.parse(file.read_text(encoding="utf-8"))


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
    """In the whole package: ``code=`` is a member of the called class's own ``Code`` (a
    class with one code is raised without one), save the documented pass-on sites."""
    strings, foreign, passed_on = [], [], set()
    for name, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg != "code":
                    continue
                callee, value = ast.unparse(node.func), ast.unparse(kw.value)
                if isinstance(kw.value, ast.Constant):
                    strings.append(f"{name}:{node.lineno}: {value}")
                elif (name, callee, value) in PASSED_ON:
                    passed_on.add((name, callee, value))
                elif not (value.startswith(f"{callee}.Code.") and value.count(".") == callee.count(".") + 2):
                    foreign.append(f"{name}:{node.lineno}: {callee}(code={value})")
    assert strings == []
    assert foreign == []
    assert passed_on == PASSED_ON  # an exception that no longer exists leaves this list


def test_helpers_that_carry_a_code_get_members_not_strings():
    """A module's own helper taking a ``code``/``rule`` parameter (the engine's ``_refuse`` and
    ``_stop``, sign-in's ``_refuse``) is never handed a string literal there."""
    strings, helpers_seen = [], 0
    for name, tree in _sources():
        helpers = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [a.arg for a in node.args.posonlyargs + node.args.args]
                offset = 1 if params[:1] in (["self"], ["cls"]) else 0
                for i, param in enumerate(params):
                    if param in CODE_PARAMETERS:
                        helpers[node.name] = (i - offset, param)
        helpers_seen += len(helpers)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if func not in helpers:
                continue
            position, param = helpers[func]
            given = [kw.value for kw in node.keywords if kw.arg == param]
            given += [node.args[position]] if position < len(node.args) else []
            strings += [f"{name}:{node.lineno}: {func}({ast.unparse(v)})" for v in given
                        if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    assert helpers_seen >= 3
    assert strings == []


def test_no_error_is_recognised_by_its_code_string():
    """Errors are told apart by class (isinstance, except), never by ``x.code ==/!=/in ...``."""
    compared = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(part, ast.Attribute) and part.attr == "code"
                                                     for part in [node.left, *node.comparators]):
                compared.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Match) and isinstance(node.subject, ast.Attribute) and node.subject.attr == "code":
                compared.append(f"{name}:{node.lineno}: match {ast.unparse(node.subject)}")
    assert compared == []


def test_codes_keep_their_two_styles():
    """``dotted.names`` for the station's own rules, ``kebab-case`` for card verdict reasons
    and the card errors they come from: no code mixes them or uses another character."""
    for cls in _classes():
        values = [m.value for m in cls.Code] if "Code" in vars(cls) else [cls.code]
        for value in values:
            assert re.fullmatch(r"[a-z0-9]+(\.[a-z0-9_]+)*|[a-z0-9]+(-[a-z0-9]+)*", value), (cls, value)

