"""The ``station`` command line.

Each command group lives in its own module under ``station.cli`` and exposes
``register(subparsers)``; the module adds its parsers and sets ``func`` on each. A command
function returns the process exit code (:class:`station.errors.Exit`). Every failure is one
line on stderr, ``station: <what happened>. <what to do>.``: expected failures are
:class:`StationError` raised where they happen; the operating system's failures that no
command can prevent (disk full, output closed by ``| head``) are caught here, last.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from station import __version__
from station.errors import BadPath, Exit, StationError, SystemFailure

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
    "station.cli.gui": ("gui",),
    "station.cli.phone": ("phone",),
}


class StationArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error in the station's one-line style (exit code 2)."""

    def error(self, message: str):
        self.exit(Exit.ERROR, f"{self.prog}: {message}. See `{self.prog} --help`.\n")


def print_table(header: list[str], rows: list[list]) -> None:
    """``rows`` under ``header`` in left-aligned columns (what list commands print without --json)."""
    cells = [[str(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def positive_int(text: str) -> int:
    """argparse type: a whole number above 0 (hours, days)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the named command's module is imported (the modules pull
    in the records, PKI and device layers); no command, ``--help`` or an unknown command
    imports them all."""
    parser = StationArgumentParser(
        prog="station", description="Derived PIV credential issuance station (NIST SP 800-157)."
    )
    parser.add_argument("--version", action="version", version=f"station {__version__}",
                        help="print the station's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    chosen = [module for module, commands in COMMANDS.items() if words and words[0] in commands]
    for name in chosen or COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


# errno values that mean a path the person gave is wrong, rather than the machine failing
_PATH_ERRORS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENAMETOOLONG}


def os_failure(exc: OSError) -> StationError:
    """The one-line error for an operating-system failure no command caught itself."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SystemFailure(f"no space left on the device{where}", code=SystemFailure.Code.DISK_FULL,
                             hint="free some space (or write elsewhere) and run the command again")
    if exc.errno in _PATH_ERRORS:
        return BadPath(f"cannot use {exc.filename or 'a file'}: {exc.strerror}")
    return SystemFailure(f"the operating system failed{where}: {exc.strerror or exc}", code=SystemFailure.Code.OS)


def run() -> int:
    """The ``station`` program (console script and ``python -m station``): no core dumps (the
    commands read PINs and passwords into this process's memory), then :func:`main`. Tests call
    :func:`main` in their own process, which keeps its limits."""
    from station import core_dumps
    from station.cli import _interrupt

    core_dumps.disable()
    _interrupt.ending_process = True  # an interruptible command's end is the process's end
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except StationError as exc:
        print(f"station: {exc.one_line()}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # `station … | head -1`: the reader has gone; nothing more goes to the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("station: the output was closed before all of it was written. Read the whole output "
              "(without `| head`) if you need it.", file=sys.stderr)
        return Exit.BROKEN_PIPE
    except OSError as exc:
        failure = os_failure(exc)
        print(f"station: {failure.one_line()}", file=sys.stderr)
        return int(failure.exit_code)
