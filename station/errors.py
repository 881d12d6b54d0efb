"""The station's error base and the exit codes of the ``station`` command.

Every error the station raises on purpose derives from :class:`StationError`: it carries a
short machine-readable ``code`` (the reason codes of the card verdicts, or a rule name) and a
``hint`` telling the person at the station what to do. Every message has one shape,
``station: <what happened>. <what to do>.`` (:meth:`StationError.one_line`). Messages never
contain a PIN, a password or key material.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Exit(IntEnum):
    """Exit codes of the ``station`` command (README, "Exit codes")."""

    OK = 0
    REFUSED = 1  # the station decided no: a card rejected, a request refused, a self-test failed
    ERROR = 2  # bad input or configuration, a device missing: nothing was decided
    SYSTEM = 3  # the machine failed under the station: disk full, database busy, I/O error
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141  # the reader of the output went away, as `| head` does (128 + SIGPIPE)


def sentence(text: str, *, capital: bool = False) -> str:
    """``text`` on one line, ending with a full stop (and starting with a capital)."""
    text = " ".join(text.split())
    if capital:
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else f"{text}."


class StationError(Exception):
    """An expected failure with a reason code and a hint for the operator.

    A class raised with several codes owns them as a nested ``class Code(str, Enum)`` (values
    are the code strings that tests, audit events and the README know); a raise site passes a
    member of it. ``code`` itself is always the plain string, so comparisons and JSON output
    do not depend on the enum."""

    code: str = "error"
    hint: str = ""
    exit_code: int = Exit.ERROR

    def __init__(self, message: str, *, code: str | Enum | None = None, hint: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = str(code.value) if isinstance(code, Enum) else code
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        """What happened, then what to do: ``<message>. <hint>.`` on one line."""
        text = sentence(str(self))
        return f"{text} {sentence(self.hint, capital=True)}" if self.hint else text


class SystemFailure(StationError):
    """The machine failed under the station (disk full, database busy): nothing the person
    typed was wrong, and trying again once the cause is gone is safe."""

    class Code(str, Enum):
        SYSTEM = "system"
        DISK_FULL = "system.disk_full"
        OS = "system.os"
        PATH = "system.path"
        DATABASE_LOCKED = "records.locked"
        DATABASE_UNAVAILABLE = "records.unavailable"

    code = Code.SYSTEM.value
    hint = "fix the cause and run the command again"
    exit_code = Exit.SYSTEM
