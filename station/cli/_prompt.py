"""Asking the person at the station for a secret: on the terminal without echo, or from the
first line of standard input when the command was told so (``--pin-stdin``).

Without a terminal, :func:`getpass.getpass` would fall back to reading standard input with
echo and a warning, then fail at its end; the station refuses instead, before it touches a
card or token, and names the option.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from station.errors import StationError
from station.secret_input import read_line


class NoTerminal(StationError):
    code = "input.no_terminal"
    hint = "pass --pin-stdin and send the PIN on the first line of standard input"


def require_terminal(what: str, *, from_stdin: bool) -> None:
    """Refuse now when ``what`` (e.g. "PIN") will have to be typed and nobody can type it."""
    if not from_stdin and not sys.stdin.isatty():
        raise NoTerminal(f"no terminal to ask for the {what}")


def ask_secret(what: str, *, from_stdin: bool, note: str = "") -> str:
    """``what`` (e.g. "PIV PIN") typed without echo after a prompt naming it and ``note``, or
    the next line of standard input when ``from_stdin``."""
    if from_stdin:
        return read_line(what=what) or ""
    require_terminal(what, from_stdin=False)
    return getpass.getpass(f"{what}{note}: ")


def ca_token_pin() -> str | None:
    """The CA token's PIN for ``station init`` when its URI carries none: $STATION_PKCS11_PIN,
    else typed without echo on a terminal, else None (init then says how to give it)."""
    pin = os.environ.get("STATION_PKCS11_PIN")
    if pin:
        return pin
    return getpass.getpass("PKCS#11 token PIN: ") if sys.stdin.isatty() else None


def import_key_passphrase(path: Path) -> str | None:
    """The passphrase of an encrypted CA key file to import: $STATION_IMPORT_KEY_PASSPHRASE,
    else typed without echo on a terminal, else None."""
    passphrase = os.environ.get("STATION_IMPORT_KEY_PASSPHRASE")
    if passphrase is not None:
        return passphrase
    return getpass.getpass(f"passphrase of {path}: ") if sys.stdin.isatty() else None
