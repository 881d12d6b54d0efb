"""What the supervisor's lock screen and the applicant's receipt show, as plain data.

Built by whoever has the request at hand (the wizard, from the service layer's answers) and
handed to ``station/ui/approval.py`` and ``station/ui/receipt.py``. No Qt here, and nothing
secret: a receipt never carries a PIN or a key (SP 800-157r1 §3.2: the PIN is the
applicant's alone), a request's facts are what the supervisor needs to decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ApprovalFacts:
    """A request as the supervisor sees it before approving or denying it."""

    request_id: int
    applicant: str  # the applicant's name (the card's subject)
    registrar: str  # the identity of the registrar who opened the request
    aal: str  # "AAL2" or "AAL3" (station.terms.Aal values)
    target: str  # the target in words (token model, phone, ...)
    photo: bytes | None = None  # the card's facial image (JPEG or JPEG 2000), None when absent


@dataclass(frozen=True)
class ReceiptFacts:
    """What the applicant's receipt says about the credential issued."""

    applicant: str
    serial: str  # the certificate serial number, hex
    policy_oid: str
    policy_name: str
    device: str  # the device in words (model, serial where it tells)
    issued_at: datetime
    station: str  # the station's name
