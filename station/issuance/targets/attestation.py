"""Is the key in a token's slot attested as generated on that token, by a root the station trusts?

A YubiKey-compatible token answers ATTEST (INS F9) for a slot with a certificate for the slot's
public key, signed by the token's attestation key (slot F9), whose certificate (object 5FFF01)
is signed by the vendor's attestation root. The station trusts only the roots its
configuration lists (``[targets] attestation_roots``: PEM files); nothing is trusted by
default. Extensions (Yubico's arc 1.3.6.1.4.1.41482.3): .3 firmware, .7 serial, .8 PIN and
touch policy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from station.devices.piv import constants
from station.devices.piv.constants import PinPolicyOnKey, TouchPolicy
from station.errors import Exit, StationError

FIRMWARE, SERIAL, POLICY = (x509.ObjectIdentifier(oid) for oid in (constants.OID_FIRMWARE, constants.OID_SERIAL,
                                                                    constants.OID_POLICY))


class AttestationError(StationError):
    """The token's attestation does not show that the certified key was made on it."""

    code = "target.attestation"
    exit_code = Exit.REFUSED
    hint = "issue at AAL2, or use a token whose attestation chains to a root in [targets] attestation_roots"


class AttestationRootsError(StationError):
    """A file ``[targets] attestation_roots`` names cannot be read as PEM certificates."""

    code = "config.attestation_roots"
    hint = "fix [targets] attestation_roots in station.toml (PEM files)"


@dataclass(frozen=True)
class Attestation:
    """What a verified attestation says; recorded with the request (no secret in it)."""

    certificate_sha256: str
    root: str  # the trusted root's subject
    serial: str = ""
    firmware: str = ""
    pin_policy: int | None = None
    touch_policy: int | None = None

    def facts(self) -> dict[str, str]:
        out = {"attestation_sha256": self.certificate_sha256, "attestation_root": self.root}
        if self.serial:
            out["attested_serial"] = self.serial
        if self.firmware:
            out["attested_firmware"] = self.firmware
        if self.pin_policy is not None or self.touch_policy is not None:  # named so: a field named *pin* reads as a secret
            out["attested_key_policy"] = f"PIN {_named(PinPolicyOnKey, self.pin_policy)}, touch {_named(TouchPolicy, self.touch_policy)}"
        return out


def load_roots(paths: list[str], base: Path, *, error: type[StationError] = AttestationRootsError,
               what: str = "attestation root") -> list[x509.Certificate]:
    """The PEM files ``[targets] attestation_roots`` names (relative to the station home); a
    file that cannot be read raises ``error`` naming it as the ``what``."""
    roots = []
    for name in paths:
        path = Path(name) if Path(name).is_absolute() else base / name
        try:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise error(f"cannot read the {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return roots


def verify(attestation: x509.Certificate, intermediate: x509.Certificate, roots: list[x509.Certificate],
           public_key) -> Attestation:
    """The chain attestation <- intermediate (the token's F9 certificate) <- a trusted root,
    and the attested key is ``public_key``; else :class:`AttestationError`."""
    if _spki(attestation.public_key()) != _spki(public_key):
        raise AttestationError("the token attests a different key than the one it generated for the request")
    if not _issued_by(attestation, intermediate):
        raise AttestationError("the attestation certificate is not signed by the token's attestation key")
    root = next((r for r in roots if _issued_by(intermediate, r)), None)
    if root is None:
        raise AttestationError("the token's attestation does not chain to a root in [targets] attestation_roots")
    serial, policy = _ext(attestation, SERIAL), _ext(attestation, POLICY) or b"\x00\x00"
    return Attestation(
        certificate_sha256=hashlib.sha256(attestation.public_bytes(Encoding.DER)).hexdigest(),
        root=root.subject.rfc4514_string(),
        serial=str(int.from_bytes(serial, "big")) if serial else "",
        firmware=".".join(str(b) for b in _ext(attestation, FIRMWARE) or b""),
        pin_policy=policy[0] or None,
        touch_policy=policy[1] or None,
    )


def _named(policy: type[PinPolicyOnKey] | type[TouchPolicy], value: int | None) -> str:
    """``once``, ``never``…: the policy's name in words (``unknown`` when the token says none)."""
    return policy(value).name.lower() if value in policy._value2member_map_ and value else "unknown"


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError):  # another signer, names that do not chain, another key type
        return False


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    """An extension's raw value (Yubico's are unwrapped bytes: serial as an INTEGER's DER)."""
    try:
        value = cert.extensions.get_extension_for_oid(oid).value.value
    except x509.ExtensionNotFound:
        return None
    if oid == SERIAL and value[:1] == b"\x02":  # DER INTEGER
        return value[2:2 + value[1]]
    return value


def _spki(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
