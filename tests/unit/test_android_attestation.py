"""Android Key Attestation: a chain from the test generator verifies; each broken rule gives a
refusing verdict with its own reason; unreadable roots are a configuration error."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from station.enrollment.android_attestation import (KEY_DESCRIPTION_OID, KeyDescription, PhoneAttestationRootsError,
                                                    load_roots, verify_android_attestation)
from station.enrollment.test_attestation import TEST_ROOT_CERT, TEST_ROOT_KEY, make_test_attestation

CHALLENGE = b"enrollment challenge 0123456789"
KEY_DESCRIPTION = x509.ObjectIdentifier(KEY_DESCRIPTION_OID)


@pytest.fixture(scope="module")
def root():
    return load_roots([TEST_ROOT_CERT.name], TEST_ROOT_CERT.parent)


@pytest.fixture
def key():
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def _verify(chain, key, root, **kw):
    return verify_android_attestation(chain, public_key=key, challenge=kw.pop("challenge", CHALLENGE),
                                      roots=kw.pop("roots", root), **kw)


def _cert(subject: str | x509.Name, issuer: str | x509.Name, public_key, signer, extension: bytes | None = None):
    """A certificate valid for an hour either side of now; ``extension``: KeyDescription bytes."""
    subject, issuer = (n if isinstance(n, x509.Name) else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n)])
                       for n in (subject, issuer))
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(hours=1)))
    if extension is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(KEY_DESCRIPTION, extension), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _chain_with(public_key, extension: bytes | None) -> list[x509.Certificate]:
    """[leaf, intermediate] under the test root, the leaf's KeyDescription being ``extension`` (or none)."""
    root = x509.load_pem_x509_certificate(TEST_ROOT_CERT.read_bytes())
    root_key = load_pem_private_key(TEST_ROOT_KEY.read_bytes(), password=None)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = _cert("Intermediate", root.subject, intermediate_key.public_key(), root_key)
    return [_cert("Leaf", "Intermediate", public_key, intermediate_key, extension), intermediate]


def _description(chain) -> bytes:
    return chain[0].extensions.get_extension_for_oid(KEY_DESCRIPTION).value.value


@pytest.mark.parametrize("level", ["TrustedEnvironment", "StrongBox"])
def test_a_hardware_attestation_chaining_to_a_configured_root_verifies(key, root, level):
    verdict = _verify(make_test_attestation(key, CHALLENGE, security_level=level), key, root)
    assert (verdict.ok, verdict.security_level, verdict.reason) == (True, level, "")


def test_the_chain_may_end_at_a_configured_certificate_itself(key, root):
    chain = make_test_attestation(key, CHALLENGE)
    assert _verify(chain + root, key, root).ok
    assert _verify(chain, key, root, roots=[chain[1]]).ok  # not self-signed: it is the root by its DER


def test_another_challenge_is_refused(key, root):
    verdict = _verify(make_test_attestation(key, CHALLENGE), key, root, challenge=CHALLENGE + b"!")
    assert not verdict.ok and verdict.reason == "the attestation was made for another challenge"


def test_a_software_key_is_refused(key, root):
    verdict = _verify(make_test_attestation(key, CHALLENGE, security_level="Software"), key, root)
    assert not verdict.ok and verdict.security_level == "Software" and "only software-protected" in verdict.reason


def test_an_attestation_of_another_key_is_refused(key, root):
    chain = make_test_attestation(ec.generate_private_key(ec.SECP256R1()).public_key(), CHALLENGE)
    verdict = _verify(chain, key, root)
    assert not verdict.ok and verdict.reason == "the attestation certifies another key than the one enrolled"


def test_a_leaf_without_key_description_is_refused(key, root):
    chain = _chain_with(key, None)
    verdict = _verify(chain, key, root)
    assert not verdict.ok and verdict.reason == "the attestation certificate has no Android key description"


@pytest.mark.parametrize("garbage", [b"garbage", b"\x30\x00", b"\x30\x03\x02\x01\xc8",
                                     bytes.fromhex("3019020200c80a0107020200c80a01010403616263040030003000"),
                                     bytes.fromhex("301a020200c80a0101020200c80a0101040361626304003000020100"),  # an INTEGER list
                                     bytes.fromhex("3019020200c80a0101020200c80a0101040361626304003000300000")],  # trailing byte
                         ids=["garbage", "empty", "one-field", "unknown-level", "integer-list", "trailing-byte"])
def test_a_malformed_key_description_is_refused(key, root, garbage):
    chain = _chain_with(key, garbage)
    verdict = _verify(chain, key, root)
    assert not verdict.ok and verdict.reason == "the Android key description is malformed"


def test_the_helper_s_chain_with_a_good_description_verifies(key, root):
    """The chain behind the two tests above is refused only for its description."""
    assert _verify(_chain_with(key, _description(make_test_attestation(key, CHALLENGE))), key, root).ok


def test_a_chain_to_another_root_is_refused(key, root):
    other = ec.generate_private_key(ec.SECP256R1())
    other_root = _cert("Another root", "Another root", other.public_key(), other)
    chain = make_test_attestation(key, CHALLENGE)
    verdict = _verify(chain, key, root, roots=[other_root])
    assert not verdict.ok and verdict.reason == "the attestation chain does not end at a configured root"
    same_name = _cert(root[0].subject, root[0].subject, other.public_key(), other)  # the test root's name, another key
    assert _verify(chain, key, root, roots=[same_name]).reason == verdict.reason


def test_no_configured_root_is_refused(key, root):
    verdict = _verify(make_test_attestation(key, CHALLENGE), key, root, roots=[])
    assert not verdict.ok and verdict.reason == "no phone attestation roots are configured"


def test_a_broken_signature_link_is_refused(key, root):
    leaf, _ = make_test_attestation(key, CHALLENGE)
    _, other_intermediate = make_test_attestation(key, CHALLENGE)  # same name, another key, signed by the root
    verdict = _verify([leaf, other_intermediate], key, root)
    assert not verdict.ok and verdict.reason == "certificate 1 of the attestation chain is not signed by the next one"


def test_an_expired_or_not_yet_valid_certificate_is_refused(key, root):
    chain = make_test_attestation(key, CHALLENGE)
    for now in (chain[0].not_valid_after_utc + dt.timedelta(seconds=1),
                chain[0].not_valid_before_utc - dt.timedelta(seconds=1)):
        verdict = _verify(chain, key, root, now=now)
        assert not verdict.ok and verdict.reason == "certificate 1 of the attestation chain is expired or not yet valid"
    assert _verify(chain, key, root, now=chain[0].not_valid_after_utc).ok


def test_an_empty_chain_is_refused(key, root):
    assert _verify([], key, root).reason == "the attestation chain is empty"


def test_an_unreadable_root_file_is_a_configuration_error(tmp_path):
    with pytest.raises(PhoneAttestationRootsError, match="missing.pem") as raised:
        load_roots(["missing.pem"], tmp_path)
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(PhoneAttestationRootsError, match="bad.pem"):
        load_roots(["bad.pem"], tmp_path)
    assert raised.value.code == "config.phone_attestation_roots" and "\n" not in raised.value.one_line()


@pytest.mark.parametrize("attestation, key_mint, ok", [("TrustedEnvironment", "Software", False),
                                                        ("Software", "StrongBox", False),
                                                        ("StrongBox", "TrustedEnvironment", True)])
def test_both_security_levels_must_be_hardware_and_the_weaker_is_reported(key, root, attestation, key_mint, ok):
    description = KeyDescription.load(_description(make_test_attestation(key, CHALLENGE))).copy()
    description["attestationSecurityLevel"], description["keyMintSecurityLevel"] = attestation, key_mint
    verdict = _verify(_chain_with(key, description.dump(force=True)), key, root)
    assert verdict.ok is ok and verdict.security_level == ("TrustedEnvironment" if ok else "Software")
