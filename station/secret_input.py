"""Secrets from standard input, one per line, read with a bound.

Every command that takes a PIN or password from standard input reads it here, so a huge line
(a 200 MB line once took 755 MB) or bytes that are not UTF-8 end in one clear line and exit
code 2 instead of filling memory or a traceback. A PIN is at most 8 characters (SP 800-73-4
§2.4.3) and a password far below 1 KiB, so a longer line is refused, never cut.
"""

from __future__ import annotations

import sys
from typing import IO

from station.errors import StationError

MAX_LINE = 1024  # bytes per line, without its line end


class InputError(StationError):
    code = "input"
    hint = "give the secrets on standard input, one per line, in the documented order"
    exit_code = 2


def read_line(stream: IO | None = None, *, what: str = "secret") -> str | None:
    """The next line of ``stream`` (default standard input) without its line end, or None at
    end of input. Reads at most :data:`MAX_LINE` bytes and a line end."""
    source = sys.stdin if stream is None else stream
    source = getattr(source, "buffer", source)  # bytes where there are: the bound is in bytes
    line = source.readline(MAX_LINE + 2)
    if not line:
        return None
    body = line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n")
    if len(body) > MAX_LINE:
        raise InputError(f"the line on standard input for the {what} is longer than {MAX_LINE} bytes",
                         hint="give each secret on its own line (a PIN or password is far shorter)")
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"the line on standard input for the {what} is not UTF-8 text",
                         hint="type the secret as UTF-8 text") from None


def read_lines(names: tuple[str, ...] | list[str], stream: IO | None = None) -> dict[str, str]:
    """One line per name, in order, until end of input: ``{name: line}`` for the lines given."""
    values: dict[str, str] = {}
    for name in names:
        line = read_line(stream, what=name)
        if line is None:
            break
        values[name] = line
    return values
