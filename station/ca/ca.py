"""The issuing CA: a CA certificate plus a :class:`~station.ca.signer.Signer`.

It signs what the profile planned (:mod:`station.ca.profile`), signs CRLs, and can make a
self-signed CA certificate for a new station. It never sees where its key is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from station.ca.crl_encoding import encode_revoked
from station.ca.profile import CertificatePlan
from station.ca.signer import Signer, sign_certificate, sign_crl_der
from station.errors import StationError

CA_VALIDITY_DAYS = 10 * 365


class CAError(StationError):
    class Code(str, Enum):
        CA = "ca"
        BAD_CERTIFICATE = "ca.bad_certificate"
        KEY_MISMATCH = "ca.key_mismatch"
        KEY_TYPE = "ca.key_type"
        KEY_REF = "ca.key_ref"
        KEY_DECRYPT = "ca.key_decrypt"
        UNREADABLE = "ca.unreadable"
        NOT_CONFIGURED = "ca.not_configured"
        PKCS11_PIN = "ca.pkcs11_pin"
        INIT_IMPORT = "init.import"

    code = Code.CA.value
    hint = "check the CA certificate and key given to `station init` (docs/ca-records.md)"


@dataclass(frozen=True)
class Revocation:
    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def self_signed_ca_certificate(
    subject: x509.Name, signer: Signer, *, days: int = CA_VALIDITY_DAYS, now: dt.datetime | None = None
) -> x509.Certificate:
    now = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    public_key = signer.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .serial_number(x509.random_serial_number())
        .issuer_name(subject)
        .subject_name(subject)
        .public_key(public_key)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    return sign_certificate(builder, signer)


def check_ca_certificate(cert: x509.Certificate, signer: Signer) -> None:
    """Refuse a CA certificate that cannot issue, or that does not belong to the key."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise CAError(f"the CA certificate lacks {exc.oid._name}", code=CAError.Code.BAD_CERTIFICATE) from exc
    if not bc.ca or not ku.key_cert_sign or not ku.crl_sign:
        raise CAError("the certificate is not a CA certificate allowed to sign certificates and CRLs",
                      code=CAError.Code.BAD_CERTIFICATE)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != signer.public_key().public_bytes(*spki):
        raise CAError(
            "the CA certificate does not match the CA key",
            code=CAError.Code.KEY_MISMATCH,
            hint="give the certificate that belongs to the key (--import-ca CERT --import-key URI)",
        )


@dataclass
class IssuingCA:
    certificate: x509.Certificate
    signer: Signer
    chain: list[x509.Certificate] = field(default_factory=list)  # above the CA certificate, if any

    def __post_init__(self) -> None:
        check_ca_certificate(self.certificate, self.signer)

    @property
    def key_id(self) -> str:
        """The CA's subjectKeyIdentifier, hex: names this CA in the records."""
        return self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()

    def issue(self, plan: CertificatePlan) -> x509.Certificate:
        return sign_certificate(plan.builder, self.signer)

    def crl(self, revoked: list[Revocation], **kwargs) -> x509.CertificateRevocationList:  # noqa: ANN003
        return x509.load_der_x509_crl(self.crl_der(revoked, **kwargs))

    def crl_der(
        self,
        revoked: list[Revocation],
        *,
        number: int,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> bytes:
        """The signed CRL (DER) listing ``revoked``, with AKI and CRL number."""
        ski = self.certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(this_update.replace(microsecond=0))
            .next_update(next_update.replace(microsecond=0))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        # the entries are encoded by the station: cryptography's per-entry builders are the
        # slow part of a 100,000-entry CRL (see station.ca.crl_encoding)
        revoked_der = encode_revoked([(r.serial, r.revoked_at, r.reason) for r in revoked])
        return sign_crl_der(builder, self.signer, revoked_der)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [self.certificate, *self.chain])
