"""The ``station`` command line.

Each command group lives in its own module under ``station.cli`` and exposes
``register(subparsers)``; the module adds its parsers and sets ``func`` on each. A command
function returns the process exit code. Expected failures (:class:`StationError`) become a
one-line message on stderr and exit code 2 unless the command decides otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from station.errors import StationError

# Command-group modules, in the order they appear in --help.
COMMAND_MODULES = [
    "station.cli.card",
    "station.cli.sim",
    "station.cli.demo",
    "station.cli.init",
    "station.cli.ca",
    "station.cli.credentials",
    "station.cli.crl",
    "station.cli.audit",
    "station.cli.issue",
    "station.cli.operators",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station", description="Derived PIV credential issuance station (NIST SP 800-157)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StationError as exc:
        print(f"station: {exc.one_line()}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        return 130
