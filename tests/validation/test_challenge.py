"""The PKI-AUTH challenge hook: RSA PKCS#1 v1.5 and ECDSA, SHA-256."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from station.validation.verdict import Identity, Verdict, check_challenge_signature


def self_signed(key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.DER)


def signer(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return lambda c: key.sign(c, padding.PKCS1v15(), hashes.SHA256())
    return lambda c: key.sign(c, ec.ECDSA(hashes.SHA256()))


KEYS = {
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
}


@pytest.mark.parametrize("kind", KEYS)
def test_matching_key_keeps_accept(kind):
    key = KEYS[kind]()
    verdict = check_challenge_signature(Verdict("accept", [], [], Identity()), self_signed(key), signer(key))
    assert verdict.accepted and verdict.reasons == []


@pytest.mark.parametrize("kind", KEYS)
def test_other_key_is_key_mismatch(kind):
    verdict = check_challenge_signature(Verdict("accept", [], [], Identity()), self_signed(KEYS[kind]()),
                                        signer(KEYS[kind]()))
    assert verdict.verdict == "reject" and verdict.reasons == ["key-mismatch"]


def test_challenge_is_fresh_and_signed_as_given():
    key = KEYS["p256"]()
    seen = []

    def sign(challenge):
        seen.append(challenge)
        return signer(key)(challenge)

    for _ in range(2):
        check_challenge_signature(Verdict("accept", [], [], Identity()), self_signed(key), sign)
    assert len(seen[0]) == 32 and seen[0] != seen[1]


def test_earlier_reason_stays_first():
    key = KEYS["p256"]()
    verdict = Verdict("reject", ["chuid-invalid"], ["chuid-invalid: x"], Identity())
    check_challenge_signature(verdict, self_signed(key), signer(KEYS["p256"]()))
    assert verdict.reasons == ["chuid-invalid", "key-mismatch"]
