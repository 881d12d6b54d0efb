"""Is a phone's key attested by Android Key Attestation as held in its secure hardware, for this
enrollment's challenge, by a root the station trusts?

An Android phone asked for a key with an attestation challenge returns the key's certificate
chain (``KeyStore.getCertificateChain``: leaf first, the root last). The leaf certifies the key
and carries the KeyDescription extension (1.3.6.1.4.1.11129.2.1.17,
https://source.android.com/docs/security/features/keystore/attestation): the challenge and the
security level of the attestation and of the key (Software, TrustedEnvironment, StrongBox).
The station trusts only the roots its configuration lists (``[enrollment] attestation_roots``:
PEM files); nothing is trusted by default. The authorization lists are read as opaque
sequences: nothing here depends on them.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from station.errors import StationError

KEY_DESCRIPTION_OID = "1.3.6.1.4.1.11129.2.1.17"


class SecurityLevel(IntEnum):
    """Where Android says a key (or its attestation) lives: KeyDescription's SecurityLevel."""

    SOFTWARE = 0
    TRUSTED_ENVIRONMENT = 1
    STRONG_BOX = 2


class PhoneAttestationRootsError(StationError):
    """A file ``[enrollment] attestation_roots`` names cannot be read as PEM certificates."""

    code = "config.phone_attestation_roots"
    hint = "fix [enrollment] attestation_roots in station.toml (PEM files)"


class _SecurityLevel(core.Enumerated):
    _map = {0: "Software", 1: "TrustedEnvironment", 2: "StrongBox"}  # SecurityLevel's values, Android's names


class _AuthorizationList(core.SequenceOf):
    """Tagged entries, kept unread."""

    _child_spec = core.Any


class KeyDescription(core.Sequence):
    """The extension's value, with the field names of Android's KeyMint schema."""

    _fields = [
        ("attestationVersion", core.Integer),
        ("attestationSecurityLevel", _SecurityLevel),
        ("keyMintVersion", core.Integer),
        ("keyMintSecurityLevel", _SecurityLevel),
        ("attestationChallenge", core.OctetString),
        ("uniqueId", core.OctetString),
        ("softwareEnforced", _AuthorizationList),
        ("hardwareEnforced", _AuthorizationList),
    ]


@dataclass(frozen=True)
class AttestationVerdict:
    """What the check found. ``security_level`` is the weaker of the attestation's and the key's,
    named as in Android's docs, set whenever the KeyDescription could be read; ``reason`` says in
    plain words why the attestation is refused (empty when ``ok``)."""

    ok: bool
    security_level: str = ""
    reason: str = ""


def load_roots(paths: list[str], base: Path) -> list[x509.Certificate]:
    """The certificates in the PEM files ``paths`` names (relative paths against ``base``)."""
    from station.issuance.targets.attestation import load_roots as load_pem_roots

    return load_pem_roots(paths, base, error=PhoneAttestationRootsError, what="phone attestation root")

def verify_android_attestation(chain: list[x509.Certificate], *, public_key, challenge: bytes,
                               roots: list[x509.Certificate], now: datetime | None = None) -> AttestationVerdict:
    """Check ``chain`` (leaf first) against ``roots`` at ``now`` (default: the current time; an
    aware datetime): each certificate valid and signed by the next, the last one a root or issued
    by one, the leaf certifying ``public_key`` with a KeyDescription for ``challenge`` whose two
    security levels are both hardware. Bad input gives a refusing verdict, never an exception."""
    now = now or datetime.now(timezone.utc)
    if not chain:
        return AttestationVerdict(False, reason="the attestation chain is empty")
    for i, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return AttestationVerdict(False, reason=f"certificate {i + 1} of the attestation chain is expired or not yet valid")
        if i + 1 < len(chain) and not _issued_by(cert, chain[i + 1]):
            return AttestationVerdict(False, reason=f"certificate {i + 1} of the attestation chain is not signed by the next one")
    if not roots:
        return AttestationVerdict(False, reason="no phone attestation roots are configured")
    last = chain[-1].public_bytes(Encoding.DER)
    if not any(last == root.public_bytes(Encoding.DER) or _issued_by(chain[-1], root) for root in roots):
        return AttestationVerdict(False, reason="the attestation chain does not end at a configured root")
    if _spki(chain[0]) != public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
        return AttestationVerdict(False, reason="the attestation certifies another key than the one enrolled")
    try:
        raw = chain[0].extensions.get_extension_for_oid(x509.ObjectIdentifier(KEY_DESCRIPTION_OID)).value.value
    except x509.ExtensionNotFound:
        return AttestationVerdict(False, reason="the attestation certificate has no Android key description")
    except ValueError:  # cryptography refuses the extensions (a duplicate, a malformed known one)
        return AttestationVerdict(False, reason="the attestation certificate's extensions cannot be read")
    try:
        description = KeyDescription.load(raw, strict=True)
        description.native  # parses every field: asn1crypto reads lazily
        levels = [SecurityLevel(int(description[f])) for f in ("attestationSecurityLevel", "keyMintSecurityLevel")]
    except (ValueError, TypeError, KeyError):
        return AttestationVerdict(False, reason="the Android key description is malformed")
    level = _SecurityLevel._map[min(levels)]
    if not hmac.compare_digest(description["attestationChallenge"].native, challenge):
        return AttestationVerdict(False, level, "the attestation was made for another challenge")
    if SecurityLevel.SOFTWARE in levels:
        return AttestationVerdict(False, level, "the key is only software-protected, not held in the phone's secure hardware")
    return AttestationVerdict(True, level)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):  # another signer, names, key type
        return False


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):  # a key type cryptography cannot load
        return None
