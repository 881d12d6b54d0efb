"""Every certificate the station issues passes pkilint's RFC 5280 checks (lint_pkix_cert).

The one exclusion: pkilint 0.13 reports ``pkix.invalid_uri_syntax`` on ``urn:uuid:`` URIs
(it flags GSA's own PIV certificates the same way); it is ignored on exactly the SAN URI.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pkilint import loader
from pkilint.pkix import certificate, extension, name
from pkilint.validation import ValidationFindingSeverity

from .ca_helpers import new_key
from station.ca.ca import IssuingCA, self_signed_ca_certificate
from station.ca.profile import ProfileSettings, plan_certificate
from station.ca.signer import PrivateKeySigner

SETTINGS = ProfileSettings(ca_issuers_url="http://pki.test/ca.p7c", crl_url="http://pki.test/ca.crl", ocsp_url="http://ocsp.pki.test")
ALLOWED = "pkix.invalid_uri_syntax"


def lint_pkix_cert(der: bytes):
    """The validator lint_pkix_cert builds, run on DER bytes; returns (severity, code, node path, message)."""
    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "cert")
    return [
        (fd.finding.severity, fd.finding.code, result.node.path, fd.message)
        for result in validator.validate(doc.root)
        for fd in result.finding_descriptions
    ]


def serious(findings, uuid_uri: str | None):
    """Findings of severity ERROR or worse, minus the known urn:uuid false positive on the SAN."""
    return [
        (severity, code, path, message)
        for severity, code, path, message in findings
        if severity <= ValidationFindingSeverity.ERROR
        and not (
            code == ALLOWED
            and uuid_uri is not None
            and _is_san_uri(path)
            and message == f'Invalid URI syntax: "{uuid_uri}"'
        )
    ]


def _is_san_uri(path: str) -> bool:
    return path.endswith(".subjectAltName.0.uniformResourceIdentifier")


@pytest.fixture(scope="module")
def ca():
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    name_ = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
                       x509.NameAttribute(NameOID.COMMON_NAME, "Test Derived PIV CA")])  # fmt: skip
    return IssuingCA(self_signed_ca_certificate(name_, signer), signer)


@pytest.mark.parametrize(
    "aal,target,kind",
    [("AAL2", "software", "P-256"), ("AAL3", "smart-card", "RSA-2048"), ("AAL3", "hardware", "P-384"), ("AAL2", "smart-card", "RSA-3072")],
)
def test_issued_certificates_are_pkilint_clean(ca, pki, aal, target, kind):
    key = new_key(kind)
    plan = plan_certificate(issuer=ca.certificate, subject_key=key.public_key(), piv_auth=pki.piv_auth(), aal=aal, target=target, settings=SETTINGS)
    cert = ca.issue(plan)
    findings = lint_pkix_cert(cert.public_bytes(serialization.Encoding.DER))
    assert serious(findings, plan.san_uuid.urn) == []
    # nothing else at ERROR level was hidden by the exclusion
    assert [f[1] for f in findings if f[0] <= ValidationFindingSeverity.ERROR] in ([], [ALLOWED])


def test_ca_certificate_is_pkilint_clean(ca):
    findings = lint_pkix_cert(ca.certificate.public_bytes(serialization.Encoding.DER))
    assert [f for f in findings if f[0] <= ValidationFindingSeverity.ERROR] == []


def test_the_lint_harness_does_catch_errors():
    """A certificate with an empty subject and a non-critical SAN must produce an ERROR."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    bad = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    findings = lint_pkix_cert(bad.public_bytes(serialization.Encoding.DER))
    assert serious(findings, None) != []
