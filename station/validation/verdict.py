"""The verdict on a PIV card, and the identity later steps bind to.

:func:`evaluate_card` runs every static check (:mod:`station.validation.card_checks`) and
returns a :class:`Verdict`. The card layer then adds what needs the card itself: the PIN
and the PKI-AUTH challenge (FIPS 201-3 §6.2.3.1), through :func:`check_challenge_signature`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from station.signatures import UnsupportedKeyType, verify_signature
from station.validation.card_checks import CardChecker, CheckState
from station.validation.card_contents import CardContents
from station.validation.piv_objects import facial_image_data
from station.validation.trust import TrustProfile
from station.validation.validation import PathValidator

ACCEPT, REJECT = "accept", "reject"
CHALLENGE_BYTES = 32


@dataclass
class Identity:
    fascn: str | None = None  # hex
    card_uuid: str | None = None
    cardholder_uuid: str | None = None
    subject_dn: str | None = None
    piv_auth_serial: str | None = None  # hex
    issuer_dn: str | None = None
    not_after: str | None = None  # ISO 8601
    sha256_fingerprint: str | None = None  # hex, of the PIV Authentication certificate
    facial_image: bytes | None = field(default=None, repr=False)


@dataclass
class Verdict:
    verdict: str
    reasons: list[str]  # reason codes; the first is the decisive one
    details: list[str]
    identity: Identity

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPT

    def add_failure(self, reason: str, detail: str, *, decisive: bool = False) -> None:
        """Record a failure found after the static checks (PIN, challenge); its detail reads
        ``reason: detail`` like theirs."""
        self.verdict = REJECT
        detail = f"{reason}: {detail}"
        if decisive:
            self.reasons.insert(0, reason)
            self.details.insert(0, detail)
        else:
            self.reasons.append(reason)
            self.details.append(detail)
        self.reasons = list(dict.fromkeys(self.reasons))

    def to_json(self, include_photo: bool = False) -> str:
        identity = asdict(self.identity)
        photo = identity.pop("facial_image")
        if include_photo and photo is not None:
            identity["facial_image"] = base64.b64encode(photo).decode("ascii")
        return json.dumps(
            {"verdict": self.verdict, "reasons": self.reasons, "details": self.details, "identity": identity},
            indent=2,
        )


def evaluate_card(
    contents: CardContents,
    profile: TrustProfile,
    *,
    mode: str | None = None,
    now: datetime | None = None,
    cache_dir: str | Path | None = None,
) -> Verdict:
    """Judge ``contents`` under ``profile`` (revocation ``mode`` overrides the profile's).

    Never raises for bad card data: anything malformed becomes a reject with a reason."""
    if mode is not None:
        profile = profile.with_revocation(mode)
    # The validator gets the caller's moment as given: None means "the live clock", which
    # lets it reuse results (see validation.ResultCache); the checks need a concrete time.
    validator = PathValidator(profile, cache_dir=Path(cache_dir) if cache_dir else None, now=now)
    state = CardChecker(contents, profile, validator, now or datetime.now(timezone.utc)).run()
    return _verdict(state)


def _verdict(state: CheckState) -> Verdict:
    reasons = list(dict.fromkeys(f.reason for f in state.findings))
    details = [f"{f.reason}: {f.detail}" for f in state.findings] + state.notes
    return Verdict(REJECT if reasons else ACCEPT, reasons, details, _identity(state))


def _identity(state: CheckState) -> Identity:
    identity = Identity()
    if state.chuid is not None:
        identity.fascn = state.chuid.fascn.hex().upper()
        identity.card_uuid = str(state.chuid.card_uuid)
        if state.chuid.cardholder_uuid:
            identity.cardholder_uuid = str(state.chuid.cardholder_uuid)
    cert = state.piv_auth
    if cert is not None:
        identity.subject_dn = cert.subject.rfc4514_string()
        identity.piv_auth_serial = format(cert.serial_number, "X")
        identity.issuer_dn = cert.issuer.rfc4514_string()
        identity.not_after = cert.not_valid_after_utc.isoformat()
        identity.sha256_fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    face = state.biometrics.get("facial_image")
    if face is not None:
        identity.facial_image = facial_image_data(face.bdb)
    return identity


def new_challenge() -> bytes:
    return os.urandom(CHALLENGE_BYTES)


def check_challenge_signature(
    verdict: Verdict,
    piv_auth_cert_der: bytes,
    sign: Callable[[bytes], bytes],
    *,
    challenge: bytes | None = None,
) -> Verdict:
    """PKI-AUTH's last step: have the card sign a fresh challenge with key 9A and verify it
    with the PIV Authentication certificate's key (RSA PKCS#1 v1.5 or ECDSA, SHA-256).

    ``sign(challenge) -> signature`` is the card layer's (it builds the PKCS#1 block or
    hashes for ECDSA as the algorithm needs, and sends GENERAL AUTHENTICATE). A signature
    that does not verify is ``key-mismatch``, the decisive reason."""
    challenge = challenge if challenge is not None else new_challenge()
    try:
        key = x509.load_der_x509_certificate(piv_auth_cert_der).public_key()
    except (ValueError, UnsupportedAlgorithm):
        verdict.add_failure("cert-invalid", "PIV Authentication certificate does not parse")
        return verdict
    signature = sign(challenge)
    try:
        verify_signature(key, signature, challenge, hashes.SHA256())
    except UnsupportedKeyType:
        verdict.add_failure("cert-invalid", "PIV Authentication key is neither RSA nor EC")
        return verdict
    except (InvalidSignature, ValueError):
        # Decisive when everything else passed; otherwise the earlier finding stays first.
        verdict.add_failure("key-mismatch", "the card's PIV Authentication key did not sign the challenge "
                            "(its key does not match the certificate)", decisive=verdict.accepted)
    return verdict


def challenge_digest(challenge: bytes) -> bytes:
    """SHA-256 of the challenge, for card layers that sign a digest."""
    return hashlib.sha256(challenge).digest()
