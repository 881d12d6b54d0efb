"""A token's attestation of its key: the chain to a configured root, the key it names, its facts."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.issuance.targets.attestation import (FIRMWARE, POLICY, SERIAL, AttestationError, AttestationRootsError,
                                                 load_roots, verify)


def _cert(name: str, key, issuer_name: str, issuer_key, *, extensions=()):
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365)))
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def chain():
    root_key, f9_key, slot_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("Test Attestation Root", root_key, "Test Attestation Root", root_key)
    f9 = _cert("Test Token Attestation", f9_key, "Test Attestation Root", root_key)
    attested = _cert("Test PIV Attestation 9a", slot_key, "Test Token Attestation", f9_key,
                     extensions=[(FIRMWARE, bytes([5, 7, 1])), (SERIAL, b"\x02\x03\x01\xe2\x40"), (POLICY, b"\x02\x01")])
    return root, f9, attested, slot_key, f9_key


def test_a_chain_to_a_configured_root_attesting_the_generated_key_is_verified(chain):
    root, f9, attested, slot_key, _ = chain
    facts = verify(attested, f9, [root], slot_key.public_key())
    assert (facts.serial, facts.firmware, facts.pin_policy, facts.touch_policy) == ("123456", "5.7.1", 2, 1)
    assert facts.root == "CN=Test Attestation Root" and len(facts.certificate_sha256) == 64
    assert facts.facts()["attested_serial"] == "123456" and facts.facts()["attested_key_policy"] == "PIN once, touch never"


def test_another_key_another_signer_or_an_unconfigured_root_is_refused(chain):
    root, f9, attested, slot_key, f9_key = chain
    with pytest.raises(AttestationError, match="different key"):
        verify(attested, f9, [root], ec.generate_private_key(ec.SECP256R1()).public_key())
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = _cert("Test PIV Attestation 9a", slot_key, "Test Token Attestation", stranger)
    with pytest.raises(AttestationError, match="not signed by the token's attestation key"):
        verify(forged, f9, [root], slot_key.public_key())
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_root = _cert("Test Attestation Root", other_key, "Test Attestation Root", other_key)  # same name, other key
    with pytest.raises(AttestationError, match="does not chain to a root"):
        verify(attested, f9, [other_root], slot_key.public_key())
    with pytest.raises(AttestationError, match="does not chain to a root"):
        verify(attested, f9, [], slot_key.public_key())


def test_roots_are_read_from_the_configured_files_relative_to_the_home(chain, tmp_path):
    from cryptography.hazmat.primitives.serialization import Encoding

    root = chain[0]
    (tmp_path / "roots.pem").write_bytes(root.public_bytes(Encoding.PEM))
    assert load_roots(["roots.pem"], tmp_path) == [root]
    with pytest.raises(AttestationRootsError, match="cannot read the attestation root") as bad:
        load_roots(["missing.pem"], tmp_path)
    assert bad.value.code == "config.attestation_roots" and bad.value.exit_code == 2
