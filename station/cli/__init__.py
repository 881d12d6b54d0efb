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

from station import core_dumps
from station.errors import StationError

# Command-group modules and the commands each registers, in the order of --help.
COMMANDS = {
    "station.cli.card": ("card",),
    "station.cli.sim": ("sim",),
    "station.cli.demo": ("demo",),
    "station.cli.init": ("init",),
    "station.cli.ca": ("ca",),
    "station.cli.credentials": ("credentials",),
    "station.cli.crl": ("crl",),
    "station.cli.audit": ("audit",),
    "station.cli.issue": ("issue", "requests", "selftest"),
    "station.cli.operators": ("operators",),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the named command's module is imported (the modules pull
    in the records, PKI and device layers); no command, ``--help`` or an unknown command
    imports them all."""
    parser = argparse.ArgumentParser(
        prog="station", description="Derived PIV credential issuance station (NIST SP 800-157)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    chosen = [module for module, commands in COMMANDS.items() if words and words[0] in commands]
    for name in chosen or COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    core_dumps.disable()  # the commands read PINs and passwords into this process's memory
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StationError as exc:
        print(f"station: {exc.one_line()}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        return 130
