"""The strict in-person checks of a PIV card's contents (FIPS 201-3 §6.2, SP 800-73-4,
SP 800-76-2), everything but the PIN and the challenge signature.

:class:`CardChecker` runs the checks in a fixed order and records a :class:`Finding` for
each failure; the order decides which reason comes first in the verdict:

1. PIV Authentication certificate: path, policy, validity, revocation.
2. CHUID: structure, signature, signer (id-PIV-content-signing, valid when it signed,
   path, revocation), expiry.
3. Card Authentication certificate: path, card-auth policy, validity, revocation.
4. Identifiers: FASC-N and UUID of the CHUID equal in both certificates and both
   biometric records; the PIV Authentication certificate does not outlive the CHUID.
5. Biometric records: signature, signer, validity period (and not expiring before the
   CHUID).
6. Security Object: signature, signer, and each data group hash against the object read.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from station.validation.card_contents import CardContents
from station.validation.cms import CmsError, SignedObject, verify_signed_data
from station.validation.piv_objects import (
    CERTIFICATE_CONTAINERS,
    CONTAINER_OBJECTS,
    OID_BIOMETRIC_CONTENT,
    OID_CHUID_CONTENT,
    OID_ENTRY_UUID,
    OID_LDS_SECURITY_OBJECT,
    OID_PIV_CONTENT_SIGNING,
    OID_PIV_FASCN,
    CardDataError,
    Cbeff,
    Chuid,
    cert_identifiers,
    fascn_difference,
    parse_biometric,
    parse_chuid,
    parse_lds,
    parse_security_object,
    signed_attribute_octets,
)
from station.validation.trust import TrustProfile
from station.devices.errors import TlvError
from station.devices.tlv import parse_tlv
from station.validation.validation import PathValidator

log = logging.getLogger(__name__)

#: No PIV container comes near this (SP 800-73-4 Part 1 Table 2: the largest, the facial
#: image, is 12704 bytes); anything bigger is refused before it is parsed.
MAX_OBJECT_BYTES = 65535

BIOMETRIC_OBJECTS = (("fingerprints", "fingerprint record"), ("facial_image", "facial image record"))


@dataclass(frozen=True)
class Finding:
    reason: str
    detail: str


@dataclass
class CheckState:
    """What the checks learned, for the verdict's identity."""

    piv_auth: x509.Certificate | None = None
    chuid: Chuid | None = None
    chuid_signer: bytes | None = None
    biometrics: dict[str, Cbeff] = field(default_factory=dict)
    biometric_signatures: dict[str, SignedObject | CmsError] = field(default_factory=dict)  # verified once
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, reason: str, detail: str) -> None:
        self.findings.append(Finding(reason, detail))


class CardChecker:
    def __init__(self, contents: CardContents, profile: TrustProfile, validator: PathValidator, now: datetime):
        self.contents = contents
        self.profile = profile
        self.validator = validator
        self.now = now
        self.state = CheckState()
        self._signer_results: dict[bytes, Finding | None] = {}
        self._certs: dict[bytes, x509.Certificate | None] = {}

    def _cert(self, der: bytes | None) -> x509.Certificate | None:
        """:func:`_load_cert`, once per certificate in a run (checks 1, 3 and 4 read the same ones)."""
        if der is None:
            return None
        if der not in self._certs:
            self._certs[der] = _load_cert(der)
        return self._certs[der]

    def run(self) -> CheckState:
        if self.check_sizes():
            return self.state
        checks = (
            (self.check_piv_auth, "cert-invalid"),
            (self.check_chuid, "chuid-invalid"),
            (self.check_card_auth, "cert-invalid"),
            (self.check_identifiers, "identifier-mismatch"),
            (self.check_biometrics, "object-invalid"),
            (self.check_security_object, "object-invalid"),
        )
        for check, reason in checks:
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - hostile card data must not crash the station
                log.exception("%s failed unexpectedly", check.__name__)
                self.state.fail(reason, f"{check.__name__.removeprefix('check_')}: cannot be checked "
                                        f"({type(exc).__name__}: {exc})")
        return self.state

    def check_sizes(self) -> bool:
        """Refuse objects larger than any PIV container can be (before parsing them)."""
        objects = {name: getattr(self.contents, name) for name in
                   ("discovery", "chuid", "security_object", "facial_image", "fingerprints",
                    "printed_information", "ccc")}
        objects.update({f"certificate {slot}": der for slot, der in self.contents.certificates.items()})
        too_big = [name for name, data in objects.items() if data is not None and len(data) > MAX_OBJECT_BYTES]
        for name in too_big:
            reason = "chuid-invalid" if name == "chuid" else "cert-invalid" if name.startswith("cert") else "object-invalid"
            self.state.fail(reason, f"{name} is larger than {MAX_OBJECT_BYTES} bytes")
        return bool(too_big)

    # 1 ------------------------------------------------------------------------------
    def check_piv_auth(self) -> None:
        der = self.contents.certificates.get("9A")
        if der is None:
            self.state.fail("cert-invalid", "the card holds no PIV Authentication certificate")
            return
        result = self.validator.validate(der, policies=self.profile.piv_auth_policies)
        if not result.ok:
            self.state.fail(result.reason, f"PIV Authentication certificate: {result.detail}")
        cert = self._cert(der)
        if cert is None and result.ok:
            self.state.fail("cert-invalid", "PIV Authentication certificate does not parse")
        self.state.piv_auth = cert
        self.check_key_identifier(cert, "PIV Authentication")

    def check_key_identifier(self, cert: x509.Certificate | None, label: str) -> None:
        """The subjectKeyIdentifier must identify the certificate's key: the FPKI profiles
        derive it by RFC 5280 §4.2.1.2 method (1), the SHA-1 of subjectPublicKey. A
        mismatch means the key pair was substituted under the identifier."""
        if cert is None:
            return
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            expected = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        except x509.ExtensionNotFound:
            return
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            self.state.fail("cert-invalid", f"{label} certificate key: {exc}")
            return
        if ski != expected:
            self.state.fail("key-mismatch", f"{label} certificate's subjectKeyIdentifier {ski.hex()} is not the hash of its key ({expected.hex()})")

    # 2 ------------------------------------------------------------------------------
    def check_chuid(self) -> None:
        if self.contents.chuid is None:
            self.state.fail("chuid-invalid", "the card holds no CHUID")
            return
        try:
            chuid = parse_chuid(self.contents.chuid)
        except CardDataError as exc:
            self.state.fail("chuid-invalid", f"CHUID: {exc}")
            return
        self.state.chuid = chuid
        try:
            signed = verify_signed_data(chuid.issuer_signature, detached_content=Chuid.signed_content_of(self.contents.chuid))
        except CmsError as exc:
            self.state.fail("chuid-invalid", f"CHUID signature: {exc}")
        else:
            if signed.content_type != OID_CHUID_CONTENT:
                self.state.fail("chuid-invalid", f"CHUID signature has content type {signed.content_type}")
            self.state.chuid_signer = signed.signer_der
            problem = self.check_signer(signed)
            if problem:
                self.state.fail("chuid-invalid", f"CHUID signer: {problem.detail}")
        if chuid.expiry < self.now.date():
            self.state.fail("chuid-invalid", f"CHUID expired on {chuid.expiry.isoformat()}")

    def check_signer(self, signed: SignedObject) -> Finding | None:
        """A content signer: id-PIV-content-signing, valid when it signed, path, status."""
        if signed.signer_der in self._signer_results:
            return self._signer_results[signed.signer_der]
        finding = self._check_signer(signed)
        self._signer_results[signed.signer_der] = finding
        return finding

    def _check_signer(self, signed: SignedObject) -> Finding | None:
        cert = self._cert(signed.signer_der)
        if cert is None:
            return Finding("cert-invalid", "signer certificate does not parse")
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            usages = {u.dotted_string for u in eku}
        except (x509.ExtensionNotFound, ValueError):
            usages = set()
        if OID_PIV_CONTENT_SIGNING not in usages:
            return Finding("cert-invalid", "signer certificate lacks EKU id-PIV-content-signing")
        if signed.signing_time is None:
            return Finding("cert-invalid", "the signature has no signing time")
        if not cert.not_valid_before_utc <= signed.signing_time <= cert.not_valid_after_utc:
            return Finding("cert-expired", f"signer certificate was not valid when it signed ({signed.signing_time:%Y-%m-%d})")
        result = self.validator.validate(signed.signer_der, policies=self.profile.content_signer_policies)
        if not result.ok:
            return Finding(result.reason, result.detail)
        return None

    # 3 ------------------------------------------------------------------------------
    def check_card_auth(self) -> None:
        der = self.contents.certificates.get("9E")
        if der is None:
            self.state.fail("cert-invalid", "the card holds no Card Authentication certificate")
            return
        result = self.validator.validate(der, policies=self.profile.card_auth_policies)
        if not result.ok:
            self.state.fail(result.reason, f"Card Authentication certificate: {result.detail}")
        self.check_key_identifier(self._cert(der), "Card Authentication")

    # 4 ------------------------------------------------------------------------------
    def check_identifiers(self) -> None:
        chuid = self.state.chuid
        if chuid is None:
            return
        for slot, label in (("9A", "PIV Authentication"), ("9E", "Card Authentication")):
            cert = self._cert(self.contents.certificates.get(slot))
            if cert is None:
                continue
            try:
                ids = cert_identifiers(cert)
            except CardDataError as exc:
                self.state.fail("cert-invalid", f"{label} certificate: {exc}")
                continue
            if ids.fascn is None and ids.uuid is None:
                self.state.fail("identifier-mismatch", f"{label} certificate names neither FASC-N nor UUID")
            if ids.fascn is not None and ids.fascn != chuid.fascn:
                self.state.fail("identifier-mismatch", f"{label} certificate FASC-N is not the CHUID's ({fascn_difference(ids.fascn, chuid.fascn)})")
            if ids.uuid is not None and ids.uuid != chuid.card_uuid.bytes:
                self.state.fail("identifier-mismatch", f"{label} certificate UUID {ids.uuid.hex()} is not the CHUID's {chuid.card_uuid.hex}")
        for attr, label in BIOMETRIC_OBJECTS:
            data = getattr(self.contents, attr)
            if data is None:
                continue
            try:
                record = parse_biometric(data)
            except CardDataError as exc:
                self.state.fail("object-invalid", f"{label}: {exc}")
                continue
            self.state.biometrics[attr] = record
            if record.fascn != chuid.fascn:
                self.state.fail("identifier-mismatch", f"{label} FASC-N is not the CHUID's ({fascn_difference(record.fascn, chuid.fascn)})")
            signed = self._biometric_signature(attr, record)
            if isinstance(signed, CmsError):
                continue  # judged in check_biometrics
            try:
                fascn = signed_attribute_octets(signed.attributes, OID_PIV_FASCN, 25)
                card_uuid = signed_attribute_octets(signed.attributes, OID_ENTRY_UUID, 16)
            except CardDataError:
                continue  # judged in check_biometrics
            if fascn is not None and fascn != chuid.fascn:
                self.state.fail("identifier-mismatch", f"{label} signed FASC-N is not the CHUID's ({fascn_difference(fascn, chuid.fascn)})")
            if card_uuid is not None and card_uuid != chuid.card_uuid.bytes:
                self.state.fail("identifier-mismatch", f"{label} signed UUID {card_uuid.hex()} is not the CHUID's {chuid.card_uuid.hex}")
        cert = self.state.piv_auth
        if cert is not None and cert.not_valid_after_utc.date() > chuid.expiry:
            self.state.fail("cert-invalid", f"PIV Authentication certificate expires after the CHUID ({cert.not_valid_after_utc:%Y-%m-%d} > {chuid.expiry.isoformat()})")

    def _biometric_signature(self, attr: str, record: Cbeff) -> SignedObject | CmsError:
        """The record's CMS signature, verified once for checks 4 and 5."""
        if attr not in self.state.biometric_signatures:
            try:
                self.state.biometric_signatures[attr] = verify_signed_data(
                    record.signature_block, detached_content=record.signed_content, known_signers=_present(self.state.chuid_signer))
            except CmsError as exc:
                self.state.biometric_signatures[attr] = exc
        return self.state.biometric_signatures[attr]

    # 5 ------------------------------------------------------------------------------
    def check_biometrics(self) -> None:
        for attr, label in BIOMETRIC_OBJECTS:
            record = self.state.biometrics.get(attr)
            if record is None:
                continue
            signed = self._biometric_signature(attr, record)
            if isinstance(signed, CmsError):
                self.state.fail("object-invalid", f"{label} signature: {signed}")
                continue
            if signed.content_type != OID_BIOMETRIC_CONTENT:
                self.state.fail("object-invalid", f"{label} signature has content type {signed.content_type}")
            try:
                signed_attribute_octets(signed.attributes, OID_PIV_FASCN, 25)
                signed_attribute_octets(signed.attributes, OID_ENTRY_UUID, 16)
            except CardDataError as exc:
                self.state.fail("object-invalid", f"{label} signed attributes: {exc}")
            problem = self.check_signer(signed)
            if problem:
                self.state.fail("object-invalid", f"{label} signer: {problem.detail}")
            if not record.not_before <= self.now <= record.not_after:
                self.state.fail("object-invalid", f"{label} is valid {record.not_before:%Y-%m-%d} to {record.not_after:%Y-%m-%d}, not now")
            chuid = self.state.chuid
            if chuid is not None and record.not_after.date() < chuid.expiry:
                self.state.fail("object-invalid", f"{label} expires ({record.not_after:%Y-%m-%d}) before the CHUID ({chuid.expiry.isoformat()})")

    # 6 ------------------------------------------------------------------------------
    def check_security_object(self) -> None:
        if self.contents.security_object is None:
            self.state.fail("object-invalid", "the card holds no Security Object")
            return
        try:
            so = parse_security_object(self.contents.security_object)
            signed = verify_signed_data(so.signature, known_signers=_present(self.state.chuid_signer))
            if signed.content_type not in OID_LDS_SECURITY_OBJECT:
                raise CardDataError(f"content type {signed.content_type} is not an LDS security object")
            algo, hashes = parse_lds(signed.content)
        except (CardDataError, CmsError) as exc:
            self.state.fail("object-invalid", f"Security Object: {exc}")
            return
        problem = self.check_signer(signed)
        if problem:
            self.state.fail("object-invalid", f"Security Object signer: {problem.detail}")
        if algo not in ("sha224", "sha256", "sha384", "sha512"):
            self.state.fail("object-invalid", f"Security Object hash algorithm {algo} is not accepted")
            return
        held = {attr: _hashed_bytes(getattr(self.contents, attr), attr) for attr in CONTAINER_OBJECTS.values()}
        for group, digest in sorted(hashes.items()):
            container = so.mapping.get(group)
            attr = CONTAINER_OBJECTS.get(container) if container is not None else None
            if container in CERTIFICATE_CONTAINERS:
                self.state.notes.append(f"Security Object data group {group} covers certificate container {container:04X}; not recomputed (certificates are read without their container)")
                continue
            if attr is None:
                # The BA mapping is not signed: a data group mapped to no data object must
                # still hash to one of the objects read, or it covers something missing.
                match = [a for a, data in held.items() if data is not None and hashlib.new(algo, data).digest() == digest]
                where = f"container {container:04X}" if container is not None else "no container"
                if match:
                    self.state.notes.append(f"Security Object data group {group} maps to {where}; its hash is that of {match[0]}")
                else:
                    self.state.fail("object-invalid", f"Security Object data group {group} ({where}) matches no object on the card")
                continue
            data = held[attr]
            if data is None:
                self.state.fail("object-invalid", f"Security Object covers container {container:04X} ({attr}), which the card does not hold")
            elif hashlib.new(algo, data).digest() != digest:
                self.state.fail("object-invalid", f"{attr} does not match its hash in the Security Object")


def _load_cert(der: bytes | None) -> x509.Certificate | None:
    if der is None:
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
        # cryptography parses lazily: touch every part used later, so that a malformed
        # certificate is found here and not halfway through a check.
        cert.subject, cert.issuer, cert.extensions, cert.public_key()
        cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number
        return cert
    except (ValueError, UnsupportedAlgorithm):
        return None


def _hashed_bytes(data: bytes | None, attr: str) -> bytes | None:
    """What a Security Object hash covers: a data object's container value; for the
    Discovery Object (read as a whole 7E TLV) the value of 7E."""
    if data is None or attr != "discovery":
        return data
    try:
        return parse_tlv(data, 0x7E).value
    except TlvError:
        return None


def _present(der: bytes | None) -> list[bytes]:
    return [der] if der is not None else []
