"""Proof of possession and CSR abuse: refused with a typed error, or overridden by the profile."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from .ca_helpers import csr, new_key
from station.ca.ca import IssuingCA, self_signed_ca_certificate
from station.ca.profile import (
    BadProofOfPossession,
    CsrProof,
    MalformedRequest,
    ProfileSettings,
    SignedChallengeProof,
    UnsupportedKey,
    plan_certificate,
)
from station.ca.signer import PrivateKeySigner

SETTINGS = ProfileSettings(ca_issuers_url="http://pki.test/ca.p7c", crl_url="http://pki.test/ca.crl")


@pytest.fixture(scope="module")
def ca():
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    return IssuingCA(self_signed_ca_certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")]), signer), signer)


def _flip_last_signature_byte(pem: bytes) -> bytes:
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return bytes(der)


def test_good_csr_yields_its_key():
    key = new_key("P-256")
    got = CsrProof(csr(key)).verified_public_key()
    assert got.public_numbers() == key.public_key().public_numbers()


def test_der_csr_accepted():
    key = new_key("P-384")
    der = x509.load_pem_x509_csr(csr(key)).public_bytes(serialization.Encoding.DER)
    assert CsrProof(der).verified_public_key().curve.name == "secp384r1"


@pytest.mark.parametrize("kind", ["P-256", "RSA-2048"])
def test_bad_signature_refused(kind):
    with pytest.raises(BadProofOfPossession) as err:
        CsrProof(_flip_last_signature_byte(csr(new_key(kind)))).verified_public_key()
    assert err.value.code == "csr.bad_signature"


def test_csr_for_one_key_signed_by_another_refused():
    """Splice key A's SubjectPublicKeyInfo into a request signed by key B."""
    a, b = new_key("P-256"), new_key("P-256")
    der_b = x509.load_pem_x509_csr(csr(b)).public_bytes(serialization.Encoding.DER)
    spki = lambda k: k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # noqa: E731
    spliced = der_b.replace(spki(b), spki(a))
    assert spliced != der_b
    with pytest.raises(BadProofOfPossession):
        CsrProof(spliced).verified_public_key()


def test_sha1_signed_csr_refused(tmp_path):
    """cryptography will not sign with SHA-1 any more; openssl still will."""
    key = new_key("P-256")
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    subprocess.run(
        ["openssl", "req", "-new", "-key", tmp_path / "k.pem", "-subj", "/CN=device", "-sha1", "-out", tmp_path / "r.pem"],
        check=True,
        capture_output=True,
    )
    pem = (tmp_path / "r.pem").read_bytes()
    check = subprocess.run(["openssl", "req", "-verify", "-noout", "-in", tmp_path / "r.pem"], capture_output=True, text=True)
    assert "OK" in check.stdout + check.stderr  # a genuine request, properly self-signed with SHA-1
    assert isinstance(x509.load_pem_x509_csr(pem).signature_hash_algorithm, hashes.SHA1)
    with pytest.raises(BadProofOfPossession) as err:
        CsrProof(pem).verified_public_key()
    assert "SHA-256" in str(err.value)


@pytest.mark.parametrize("kind", ["P-521", "RSA-1024", "RSA-4096", "Ed25519"])
def test_wrong_key_type_or_size_refused(kind):
    key = ed25519.Ed25519PrivateKey.generate() if kind == "Ed25519" else new_key(kind)
    with pytest.raises(UnsupportedKey) as err:
        CsrProof(csr(key)).verified_public_key()
    assert err.value.code == "csr.key_type"
    assert err.value.hint


@pytest.mark.parametrize("junk", [b"", b"hello", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", os.urandom(64)])
def test_garbage_refused(junk):
    with pytest.raises(MalformedRequest):
        CsrProof(junk).verified_public_key()


def test_injected_subject_extensions_are_ignored(ca, pki):
    key = new_key("P-256")
    injected = csr(
        key,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Administrator"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil")]),
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(True, True, True, True, True, True, True, False, False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]), False),
            (x509.SubjectAlternativeName([x509.DNSName("evil.test"), x509.RFC822Name("root@evil.test")]), False),
            (x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), None)]), False),
            (x509.PrivateKeyUsagePeriod(dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1)), False),
        ],
    )
    piv = pki.piv_auth()
    subject_key = CsrProof(injected).verified_public_key()
    plan = plan_certificate(issuer=ca.certificate, subject_key=subject_key, piv_auth=piv, aal="AAL2", target="software", settings=SETTINGS)
    cert = ca.issue(plan)
    assert cert.subject == piv.subject
    oids = {e.oid for e in cert.extensions}
    assert ExtensionOID.BASIC_CONSTRAINTS not in oids
    assert ExtensionOID.PRIVATE_KEY_USAGE_PERIOD not in oids
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.content_commitment
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ExtendedKeyUsageOID.SERVER_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [] and san.get_values_for_type(x509.RFC822Name) == []
    policies = [p.policy_identifier.dotted_string for p in cert.extensions.get_extension_for_class(x509.CertificatePolicies).value]
    assert policies == ["2.16.840.1.101.3.2.1.3.40"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=1095)


def _challenge_proof(key, challenge: bytes, *, tamper: bool = False) -> SignedChallengeProof:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(challenge, ec.ECDSA(hashes.SHA256()))
    else:
        sig = key.sign(challenge, padding.PKCS1v15(), hashes.SHA256())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SignedChallengeProof(spki, challenge + (b"x" if tamper else b""), sig)


@pytest.mark.parametrize("kind", ["P-256", "RSA-2048"])
def test_signed_challenge_proof(kind):
    key = new_key(kind)
    challenge = os.urandom(32)
    assert _challenge_proof(key, challenge).verified_public_key().public_numbers() == key.public_key().public_numbers()
    with pytest.raises(BadProofOfPossession):
        _challenge_proof(key, challenge, tamper=True).verified_public_key()


def test_short_challenge_refused():
    with pytest.raises(BadProofOfPossession):
        _challenge_proof(new_key("P-256"), b"short").verified_public_key()
