"""One style for every message the station prints: ``station: <what happened>. <what to do>.``;
every option of every command says what it is for; ``station --version``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re

import pytest

import station
from station.cli import build_parser, main
from station.errors import StationError

ONE_LINE = re.compile(r"[^\n]+\. [A-Z0-9`$-][^\n]*[.?!]")


def _all_error_classes() -> list[type[StationError]]:
    for info in pkgutil.walk_packages(station.__path__, "station."):
        if not info.name.endswith(("__main__", "migrations.env")):
            importlib.import_module(info.name)
    found, todo = set(), [StationError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _max_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_says_what_to_do_in_one_style(cls):
    assert cls.hint.strip(), f"{cls.__qualname__} ({cls.code}) has no hint"
    error = cls.__new__(cls)
    Exception.__init__(error, "the card answered (status 6A82)\nand more")  # a message with brackets of its own
    line = error.one_line()
    assert ONE_LINE.fullmatch(line), line
    assert _max_depth(line) <= 1, f"nested brackets: {line}"


def test_hint_is_a_sentence_after_the_message():
    assert StationError("no card in the reader", hint="insert the card").one_line() == \
        "no card in the reader. Insert the card."
    assert StationError("done.").one_line() == "done."


def _actions(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _actions(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_of_every_command_has_help():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in _actions(build_parser([]), "station")
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"station {station.__version__}"


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["init", "--profile", "p.toml", "--crl-hours", "-48"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1
    assert err.startswith("station init: argument --crl-hours: must be above 0")
