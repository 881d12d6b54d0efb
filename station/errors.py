"""The station's error base and the exit codes of the ``station`` command.

Every error the station raises on purpose derives from :class:`StationError`: it carries a
short machine-readable ``code`` (the reason codes of the card verdicts, or a rule name) and a
``hint`` telling the person at the station what to do. Every message has one shape,
``station: <what happened>. <what to do>.`` (:meth:`StationError.one_line`). Messages never
contain a PIN, a password or key material.

Codes (issue 10). Their string values are external: tests, audit events (a refusal's
``rule``), the README and the CLI's JSON ``error`` field know them, so they never change.

- Two styles, each for one thing. ``kebab-case`` codes are the reason codes of a card
  verdict and of the card and device errors they come from (``pin-incorrect``, ``not-piv``,
  ``cert-revoked``, ``weak-pin``: docs/validation.md, "Check order and reason codes"; they
  are what ``station card check`` reports). ``dotted.names`` (``area.rule``:
  ``issuance.state``, ``operator.unknown``, ``system.disk_full``) are everything else: the
  station's own rules and failures.
- A class owns its codes. A class raised with one code has it class-level; a class raised
  with several lists them in a nested ``class Code(str, Enum)`` and every raise site passes a
  member of the raised class's own ``Code`` (tests/unit/test_error_codes.py holds the whole
  package to it: no raise site types a code string).
- A code passed on is not retyped. An error raised *because of* another error (the issuance
  engine's audited refusals, :class:`station.issuance.engine.IssuanceRefused`) takes that
  error itself and carries its ``code`` unchanged, so the code stays the one its own class
  owns; a refusal of a rejected card carries the verdict's decisive reason as the verdict
  gives it (verdict reasons are data made in ``station.validation`` and PKI-AUTH, not an
  enum). Every other refusal names one of its own class's members.
- An error is recognised by its class (``except``/``isinstance``), never by comparing its
  code string: the string is for people, the audit chain and JSON output.
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


class BadPath(StationError):
    """A path the person gave cannot be used (no such folder, no permission): their input was
    wrong, not the machine (exit code 2, unlike :class:`SystemFailure`)."""

    code = "system.path"
    hint = "check the path (its folder must exist) and its permissions"


class SystemFailure(StationError):
    """The machine failed under the station (disk full, database busy): nothing the person
    typed was wrong, and trying again once the cause is gone is safe."""

    class Code(str, Enum):
        SYSTEM = "system"
        DISK_FULL = "system.disk_full"
        OS = "system.os"
        DATABASE_LOCKED = "records.locked"
        DATABASE_UNAVAILABLE = "records.unavailable"

    code = Code.SYSTEM.value
    hint = "fix the cause and run the command again"
    exit_code = Exit.SYSTEM
