"""How the issuance engine talks to people (python-fido2's ``UserInteraction`` pattern).

The engine never prompts by itself: the command line implements this with standard input
(:class:`station.cli.interaction.StdinInteraction`), the Qt interface with screens through
the thread bridge (:mod:`station.issuance.bridge`). Secrets pass through these calls and
nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from station.issuance.progress import Progress


@dataclass(frozen=True)
class ApprovalDecision:
    """A supervisor's answer to a request put to them: approved or not, and why."""

    approved: bool
    reason: str = ""


class Interaction(Protocol):
    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        """The applicant's PIV card PIN (same call as ``station.issuance.pkiauth.PinEntry``)."""

    def request_new_pin(self) -> tuple[str, str]:
        """The applicant's new credential PIN, typed twice."""

    def confirm_photo(self, facial_image: bytes | None, subject: str) -> bool:
        """The registrar confirms the card's facial image shows the person at the desk."""

    def operator_secret(self, operator: str, purpose: str) -> str:
        """A fresh password of ``operator`` for ``purpose`` (sign-in, approval)."""

    def approve_request(self, summary: str) -> ApprovalDecision:
        """A supervisor's decision on the request described (in plain words) by ``summary``."""

    def progress(self, event: Progress) -> None:
        """Where the issuance stands; called while the work runs, must not block."""
