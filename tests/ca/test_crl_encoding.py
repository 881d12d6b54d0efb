"""The station's own encoding of revoked entries is byte-identical to cryptography's builder."""

from __future__ import annotations

import datetime as dt
import random

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.ca.ca import IssuingCA, Revocation, self_signed_ca_certificate
from station.ca.crl_encoding import encode_revoked, splice_revoked
from station.ca.signer import PrivateKeySigner

NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CRL CA")])
REASONS = [r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl]


def entries(n: int, seed: int):
    rnd = random.Random(seed)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    serials = [1, 127, 128, 255, 256, 2**64, 2**159 - 1] + [rnd.getrandbits(rnd.choice([8, 63, 64, 159])) | 1 for _ in range(n)]
    times = [base, base + dt.timedelta(seconds=rnd.randrange(10**8)), dt.datetime(2051, 6, 1, tzinfo=dt.timezone.utc)]
    return [(s, rnd.choice(times), rnd.choice(REASONS)) for s in serials]


def reference_tbs(items, key) -> bytes:
    t = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    builder = x509.CertificateRevocationListBuilder().issuer_name(NAME).last_update(t).next_update(t + dt.timedelta(days=1))
    builder = builder.add_extension(x509.CRLNumber(5), critical=False)
    empty = builder.sign(key, hashes.SHA256()).tbs_certlist_bytes
    for serial, when, reason in items:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not x509.ReasonFlags.unspecified:
            rb = rb.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(rb.build())
    return empty, builder.sign(key, hashes.SHA256()).tbs_certlist_bytes


def test_byte_identical_to_the_builder():
    key = ec.generate_private_key(ec.SECP256R1())
    for seed in range(5):
        items = entries(200, seed)
        empty, full = reference_tbs(items, key)
        assert splice_revoked(empty, encode_revoked(items)) == full


def test_ca_crl_entries_read_back():
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP384R1()))
    ca = IssuingCA(self_signed_ca_certificate(NAME, signer), signer)
    items = entries(50, 99)
    now = dt.datetime.now(dt.timezone.utc)
    crl = ca.crl([Revocation(*i) for i in items], number=3, this_update=now, next_update=now + dt.timedelta(hours=1))
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert len(crl) == len(items)
    for (serial, when, reason), entry in zip(items, crl):
        assert entry.serial_number == serial
        assert entry.revocation_date_utc == when.replace(microsecond=0)
        got = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason if entry.extensions else x509.ReasonFlags.unspecified
        assert got == reason
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3


def lint_pkix_crl(der: bytes):
    """What pkilint's ``lint_crl -t CRL -p PKIX`` runs, on DER bytes."""
    from pkilint import loader, pkix
    from pkilint.pkix import crl, extension, name

    validator = crl.create_pkix_crl_validator_container(
        [pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS), pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
        [crl.create_issuer_validator_container([]), crl.create_validity_validator_container([]), crl.create_extensions_validator_container([])],
    )
    doc = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    return [(fd.finding.severity, fd.finding.code) for r in validator.validate(doc.root) for fd in r.finding_descriptions]


def test_crls_are_pkilint_clean():
    from pkilint.validation import ValidationFindingSeverity

    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    ca = IssuingCA(self_signed_ca_certificate(NAME, signer), signer)
    now = dt.datetime.now(dt.timezone.utc)
    for items in ([], entries(30, 7)):
        der = ca.crl_der([Revocation(*i) for i in items], number=9, this_update=now, next_update=now + dt.timedelta(days=1))
        findings = lint_pkix_crl(der)
        assert [f for f in findings if f[0] <= ValidationFindingSeverity.ERROR] == []
    # the harness does see problems: a CRL without the AKI and CRL number RFC 5280 requires
    from cryptography.hazmat.primitives import serialization

    bare = x509.CertificateRevocationListBuilder().issuer_name(NAME).last_update(now).next_update(now + dt.timedelta(days=1))
    der = bare.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    assert any(f[0] <= ValidationFindingSeverity.ERROR for f in lint_pkix_crl(der))
