"""The Derived PIV Authentication certificate profile (SP 800-157, FPKI Common Policy).

The station decides every field; a request contributes only its public key, and only after
proof of possession. Fields:

* certificatePolicies: id-fpki-common-derived-pivAuth (…3.40, AAL2) or
  id-fpki-common-derived-pivAuth-hardware (…3.41, AAL3);
* subject: copied from the applicant's PIV Authentication certificate;
* subjectAltName: a fresh ``urn:uuid:`` URI per certificate;
* keyUsage (critical): digitalSignature only;
* extendedKeyUsage: clientAuth and id-pkinit-KPClientAuth, plus Microsoft Smart Card Logon
  only when the key is on a smart card;
* authorityInfoAccess (caIssuers, optional OCSP) and cRLDistributionPoints from configuration;
* validity: at most 3 years (or the configured maximum) and never past the PIV Authentication
  certificate's or the CA's notAfter;
* a random serial number (159 bits), SHA-256 or stronger;
* subject keys: ECDSA P-256/P-384, RSA-2048/3072.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from station.errors import StationError
from station.signatures import verify_signature
from station.terms import Aal, TargetKind

ID_PKINIT_KP_CLIENT_AUTH = ObjectIdentifier("1.3.6.1.5.2.3.4")
MS_SMART_CARD_LOGON = ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")

MAX_VALIDITY_DAYS = 3 * 365
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
ALLOWED_RSA_BITS = (2048, 3072)
MIN_CHALLENGE_BYTES = 16

SubjectPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class ProfileError(StationError):
    class Code(str, enum.Enum):
        PROFILE = "profile"
        CONFIG = "profile.config"
        SUBJECT = "profile.subject"

    code = Code.PROFILE.value
    hint = "check the [profile] settings in station.toml (docs/ca-records.md)"


class UnsupportedKey(ProfileError):
    code = "csr.key_type"
    hint = "the credential key must be ECDSA P-256/P-384 or RSA-2048/3072"


class BadProofOfPossession(ProfileError):
    code = "csr.bad_signature"
    hint = "the request was not signed by the key it carries: generate the request again on the device"


class MalformedRequest(ProfileError):
    code = "csr.malformed"
    hint = "send a PKCS#10 request (PEM or DER)"


class AssuranceMismatch(ProfileError):
    code = "profile.aal_target"
    hint = "AAL3 (hardware policy) needs a key in a hardware token or a mobile hardware module"


class ValidityError(ProfileError):
    code = "profile.validity"
    hint = "shorten the validity or check the applicant's PIV Authentication certificate dates"


@dataclass(frozen=True)
class ProfileSettings:
    """The configured parts of the profile (``[profile]`` in station.toml)."""

    ca_issuers_url: str
    crl_url: str
    ocsp_url: str | None = None
    max_validity_days: int = MAX_VALIDITY_DAYS

    def __post_init__(self) -> None:
        if not 1 <= self.max_validity_days <= MAX_VALIDITY_DAYS:
            raise ProfileError(
                f"max_validity_days must be between 1 and {MAX_VALIDITY_DAYS}", code=ProfileError.Code.CONFIG
            )
        for name in ("ca_issuers_url", "crl_url", "ocsp_url"):
            url = getattr(self, name)
            if url is not None and not url.startswith("http://"):
                raise ProfileError(
                    f"profile {name} must be an http:// URL (FPKI profile), got {url!r}", code=ProfileError.Code.CONFIG
                )

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> ProfileSettings:
        return cls(
            ca_issuers_url=section["ca_issuers_url"],
            crl_url=section["crl_url"],
            ocsp_url=section.get("ocsp_url") or None,
            max_validity_days=int(section.get("max_validity_days", MAX_VALIDITY_DAYS)),
        )


# --- proof of possession -------------------------------------------------------------------


def check_subject_key(key: Any) -> SubjectPublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise UnsupportedKey(f"EC curve {key.curve.name} is not allowed")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in ALLOWED_RSA_BITS:
            raise UnsupportedKey(f"RSA-{key.key_size} is not allowed")
        if key.public_numbers().e != 65537:
            raise UnsupportedKey("RSA public exponent must be 65537")
        return key
    raise UnsupportedKey(f"{type(key).__name__.removeprefix('_')} keys are not allowed")


class ProofOfPossession(Protocol):
    def verified_public_key(self) -> SubjectPublicKey: ...


@dataclass(frozen=True)
class CsrProof:
    """A PKCS#10 request: only its public key is used, once its signature checks out."""

    csr: bytes

    def verified_public_key(self) -> SubjectPublicKey:
        try:
            if self.csr.lstrip().startswith(b"-----BEGIN"):
                req = x509.load_pem_x509_csr(self.csr)
            else:
                req = x509.load_der_x509_csr(self.csr)
        except ValueError as exc:
            raise MalformedRequest(f"not a certificate request: {exc}") from exc
        try:
            key = req.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UnsupportedKey(f"unreadable public key in the request: {exc}") from exc
        key = check_subject_key(key)
        try:
            algorithm = req.signature_hash_algorithm
        except UnsupportedAlgorithm as exc:
            raise BadProofOfPossession(f"unsupported request signature algorithm: {exc}") from exc
        if not isinstance(algorithm, (hashes.SHA256, hashes.SHA384, hashes.SHA512)):
            raise BadProofOfPossession(
                f"request signed with {getattr(algorithm, 'name', 'unknown hash')}; SHA-256 or stronger is required"
            )
        if not req.is_signature_valid:
            raise BadProofOfPossession("the request's signature does not verify with its public key")
        return key


@dataclass(frozen=True)
class SignedChallengeProof:
    """A signature (SHA-256; ECDSA or RSA PKCS#1 v1.5) over a fresh value the station supplied."""

    public_key_der: bytes
    challenge: bytes
    signature: bytes

    def verified_public_key(self) -> SubjectPublicKey:
        if len(self.challenge) < MIN_CHALLENGE_BYTES:
            raise BadProofOfPossession(f"challenge shorter than {MIN_CHALLENGE_BYTES} bytes")
        try:
            key = serialization.load_der_public_key(self.public_key_der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UnsupportedKey(f"unreadable public key: {exc}") from exc
        key = check_subject_key(key)
        try:
            verify_signature(key, self.signature, self.challenge, hashes.SHA256())
        except InvalidSignature as exc:
            raise BadProofOfPossession("the signature over the challenge does not verify") from exc
        return key


# --- the certificate --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificatePlan:
    """What will be signed, and the facts the records keep about it."""

    builder: x509.CertificateBuilder
    serial: int
    san_uuid: uuid.UUID
    policy: ObjectIdentifier
    not_before: dt.datetime
    not_after: dt.datetime


def extended_key_usages(target: TargetKind) -> list[ObjectIdentifier]:
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ID_PKINIT_KP_CLIENT_AUTH]
    if target is TargetKind.SMART_CARD:
        usages.append(MS_SMART_CARD_LOGON)
    return usages


def validity_window(
    now: dt.datetime, settings: ProfileSettings, piv_auth: x509.Certificate, issuer: x509.Certificate
) -> tuple[dt.datetime, dt.datetime]:
    not_before = now.replace(microsecond=0)
    limits = {
        "the configured maximum validity": not_before + dt.timedelta(days=settings.max_validity_days),
        "the PIV Authentication certificate's notAfter": piv_auth.not_valid_after_utc,
        "the CA certificate's notAfter": issuer.not_valid_after_utc,
    }
    reason, not_after = min(limits.items(), key=lambda kv: kv[1])
    if not_after <= not_before:
        raise ValidityError(
            f"no validity left: {reason} ({not_after:%Y-%m-%d}) has passed",
            hint="the applicant needs a current PIV card" if "PIV" in reason else "renew the CA",
        )
    return not_before, not_after


def plan_certificate(
    *,
    issuer: x509.Certificate,
    subject_key: SubjectPublicKey,
    piv_auth: x509.Certificate,
    aal: Aal,
    target: TargetKind,
    settings: ProfileSettings,
    now: dt.datetime | None = None,
) -> CertificatePlan:
    """Decide the whole certificate from the station's own inputs."""
    aal, target = Aal(aal), TargetKind(target)
    if aal is Aal.AAL3 and not target.is_hardware:
        raise AssuranceMismatch(f"AAL3 cannot be issued to a {target.value} key")
    subject_key = check_subject_key(subject_key)
    if len(piv_auth.subject) == 0:
        raise ProfileError("the PIV Authentication certificate has an empty subject", code=ProfileError.Code.SUBJECT)
    now = now or dt.datetime.now(dt.timezone.utc)
    not_before, not_after = validity_window(now, settings, piv_auth, issuer)
    serial = x509.random_serial_number()
    san_uuid = uuid.uuid4()
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    access = [x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(settings.ca_issuers_url))]
    if settings.ocsp_url:
        access.append(x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(settings.ocsp_url)))
    builder = (
        x509.CertificateBuilder()
        .serial_number(serial)
        .issuer_name(issuer.subject)
        .subject_name(piv_auth.subject)
        .public_key(subject_key)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(extended_key_usages(target)), critical=False)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(aal.policy, None)]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san_uuid.urn)]), critical=False)
        .add_extension(x509.AuthorityInformationAccess(access), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(settings.crl_url)], None, None, None)]
            ),
            critical=False,
        )
    )
    return CertificatePlan(builder, serial, san_uuid, aal.policy, not_before, not_after)
