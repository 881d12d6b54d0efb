"""The station's vocabulary, in one leaf module (it imports nothing from the station): the
states of an issuance request, operators' roles and sign-in methods, the authenticator
assurance levels and the kinds of device a credential key lives on. The records, the
certificate profile, the service API, the engine and the CLI all take these names from here.
"""

from __future__ import annotations

import enum

from cryptography.x509.oid import ObjectIdentifier

# X.509 Certificate Policy for the U.S. Federal PKI Common Policy Framework §1.2
ID_FPKI_COMMON_DERIVED_PIV_AUTH = ObjectIdentifier("2.16.840.1.101.3.2.1.3.40")
ID_FPKI_COMMON_DERIVED_PIV_AUTH_HARDWARE = ObjectIdentifier("2.16.840.1.101.3.2.1.3.41")
#: the policies' names as the Federal PKI Common Policy gives them (receipts, screens)
POLICY_NAMES = {ID_FPKI_COMMON_DERIVED_PIV_AUTH.dotted_string: "id-fpki-common-derived-pivAuth",
                ID_FPKI_COMMON_DERIVED_PIV_AUTH_HARDWARE.dotted_string: "id-fpki-common-derived-pivAuth-hardware"}


class RequestState(str, enum.Enum):
    """SP 800-157's steps (docs/issuance.md). ``issued`` is reached after the self-test."""

    REQUESTED = "requested"
    APPROVED = "approved"
    AUTHENTICATED = "authenticated"  # the applicant passed PKI-AUTH after the approval
    KEY_GENERATED = "key_generated"  # key generated on the device and certified
    DELIVERED = "delivered"  # certificate installed on the device
    ACTIVATED = "activated"  # the applicant's PIN set
    ISSUED = "issued"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINAL_STATES = frozenset({RequestState.ISSUED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED})


class Role(str, enum.Enum):
    REGISTRAR = "registrar"  # checks identity and opens requests
    SUPERVISOR = "supervisor"  # approves requests (never the registrar of the same request)
    AUDITOR = "auditor"  # reads and verifies the audit trail
    ADMINISTRATOR = "administrator"  # manages operators and revocation


class AuthMethod(str, enum.Enum):
    PIV = "piv"  # the operator's own PIV card (auth_reference: PIV Auth cert SHA-256)
    PASSWORD = "password"  # argon2id hash in auth_reference


class Aal(str, enum.Enum):
    """Authenticator assurance level of the derived credential (SP 800-157r1)."""

    AAL2 = "AAL2"
    AAL3 = "AAL3"

    @property
    def policy(self) -> ObjectIdentifier:
        return ID_FPKI_COMMON_DERIVED_PIV_AUTH_HARDWARE if self is Aal.AAL3 else ID_FPKI_COMMON_DERIVED_PIV_AUTH


class TargetKind(str, enum.Enum):
    """Where the credential key lives."""

    SMART_CARD = "smart-card"  # removable token with a PIV / Derived PIV applet (USB or NFC)
    HARDWARE = "hardware"  # another hardware module: a PKCS#11 token, a phone's secure element
    SOFTWARE = "software"  # a software key store (AAL2 only)

    @property
    def is_hardware(self) -> bool:
        return self is not TargetKind.SOFTWARE

    @classmethod
    def of_device(cls, *, hardware: bool, smart_card: bool) -> TargetKind:
        """From a device description (``station.issuance.targets.base.DeviceDescription``)."""
        if smart_card:
            return cls.SMART_CARD
        return cls.HARDWARE if hardware else cls.SOFTWARE
