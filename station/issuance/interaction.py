"""How the issuance engine talks to people (python-fido2's ``UserInteraction`` pattern).

The engine never prompts by itself: the command line implements this with standard input,
the Qt wizard with screens. Secrets pass through these calls and nowhere else.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol, TextIO

from station.secret_input import InputError, read_lines


class Interaction(Protocol):
    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        """The applicant's PIV card PIN (same call as ``station.issuance.pkiauth.PinEntry``)."""

    def request_new_pin(self) -> tuple[str, str]:
        """The applicant's new credential PIN, typed twice."""

    def confirm_photo(self, facial_image: bytes | None, subject: str) -> bool:
        """The registrar confirms the card's facial image shows the person at the desk."""

    def operator_secret(self, operator: str, purpose: str) -> str:
        """A fresh password of ``operator`` for ``purpose`` (sign-in, approval)."""

    def progress(self, state: str, message: str) -> None: ...


class InputExhausted(InputError):
    """Standard input ended before the line a step needs."""


#: read only when the --target URI carries no PIN: always the last line, after every other secret
TRANSPORT_PIN = "token transport PIN"


class StdinInteraction:
    """The headless ``station issue`` contract: standard input holds, one per line, the
    registrar's secret, the approver's secret, the applicant's PIV PIN and the new credential
    PIN, then the target token's transport PIN when the target URI names none. The new PIN
    is taken as typed twice (a script cannot mistype); the photo check is confirmed only
    when the caller says so (``--photo-confirmed``)."""

    ORDER = ("registrar secret", "approver secret", "applicant PIV PIN", "new credential PIN", TRANSPORT_PIN)

    RESUME_ORDER = ("registrar secret", "applicant PIV PIN", "new credential PIN", TRANSPORT_PIN)

    def __init__(self, stream: TextIO | None = None, *, photo_confirmed: bool = False, registrar: str = "", approver: str = "",
                 progress_to: TextIO | None = None, order: tuple[str, ...] = ORDER):
        self._values = read_lines(order, stream)
        self._photo_confirmed = photo_confirmed
        self._operators = {registrar: "registrar secret", approver: "approver secret"}
        self._progress = progress_to

    def _take(self, name: str) -> str:
        if name not in self._values:
            raise InputExhausted(f"standard input has no line for the {name}")
        return self._values[name]

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        # the functional test asks for the new credential's PIN; PKI-AUTH for the card's
        return self._take("new credential PIN" if pin_kind == "credential" else "applicant PIV PIN")

    def request_new_pin(self) -> tuple[str, str]:
        pin = self._take("new credential PIN")
        return pin, pin

    def confirm_photo(self, facial_image: bytes | None, subject: str) -> bool:
        return self._photo_confirmed

    def transport_pin(self) -> str:
        """The target token's transport PIN when ``--target`` names none (the last line)."""
        return self._take(TRANSPORT_PIN)

    def operator_secret(self, operator: str, purpose: str) -> str:
        if operator not in self._operators:
            raise InputExhausted(f"no secret was given for operator {operator!r}")
        return self._take(self._operators[operator])

    def progress(self, state: str, message: str) -> None:
        if self._progress is not None:
            print(f"[{state}] {message}", file=self._progress, flush=True)
        if os.environ.get("STATION_TEST_PAUSE_AFTER") == state:
            # failpoint for the crash tests: stop right after this step's commit until killed
            threading.Event().wait()
